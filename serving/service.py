"""The BentoML service: explained lead scores over HTTP, and the sales-rep page.

Routes:

* ``POST /score``: one lead → its score card (``ScoreRequest`` → ``ScoreResponse``).
* ``POST /score_batch``: ``{"leads": [...]}`` → a list of score cards, computed in one
  pass over the leads' arrays.

Both scoring routes are declared as BentoML APIs (so ``/docs.json`` documents them and
Python callers can use them) but answered over HTTP by ``serving.hot_route``, which runs
the same parsing and the same routine without BentoML's per-call IO, about 0.4 ms a
call: more than scoring and explaining a lead costs.
* ``POST /feedback``: one sales disposition or a list → the counts recorded (the lead
  store at ``LEADSCORE_DB_URL``, opened by each worker on first use; ``serving.feedback``).
* ``GET /model``: which model is served, its training window, test metrics and policy.
* ``GET /accounts``, ``/accounts/facets``, ``/accounts/{account_id}``: the same for
  accounts, with each account's people and buying group (``serving.account_view``).
* ``GET /worklist``: a page of the lead store's leads (filters, sort, paging) with momentum;
  ``GET /worklist/facets``: the values each filter offers; ``GET /leads/{lead_id}``: one
  lead's latest card, score timeline, dispositions and activity summary
  (``serving.worklist``).
* ``GET /samples``, ``GET /samples/{name}``: sample payloads for the "try a lead" page.
* ``GET /``: the reps' worklist page; ``GET /try``: the try-a-lead page (pick a sample or
  paste a lead's JSON and read its card). ``/readyz`` is 200 only once the model is
  loaded and warmed up; ``/docs.json`` is the OpenAPI document.

``serving.auth.ApiGuard`` wraps every route: with ``LEADSCORE_API_TOKEN`` set, ``/score``,
``/score_batch``, ``/feedback``, ``/report`` and the lead-store reads above need
``Authorization: Bearer <token>`` (401 otherwise); bodies over
``serving.schemas.MAX_BODY_BYTES`` are answered 413.

Start with ``bentoml serve serving.service:LeadScoring`` (settings: ``leadscore.settings``).
The champion is imported by a deployment hook before any worker starts, so a registry
without one stops ``bentoml serve`` with a message that says what to do, instead of a
server that answers 500s; each worker then loads that pinned version in ``__init__``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import bentoml
from fastapi import Body, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import TypeAdapter

from leadscore.settings import Settings
from runtime.bundle import ModelBundle
from serving import hot_route
from serving.account_view import AccountQuery, account_detail, account_facets, account_list
from serving.auth import ApiGuard, token_from_env
from serving.feedback import FeedbackStore, record_feedback
from serving.launch import prepare
from serving.log_redaction import redact_request_values
from serving.model_store import (
    PINNED_ENV,
    ModelNotAvailableError,
    packaged_tag,
    quiet_telemetry,
    resolve_model,
)
from serving.recorder import ScoreRecorder, lead_attributes
from serving.reload import warm_up, watch_registry
from serving.samples import list_samples, read_sample
from serving.schemas import (
    BatchLeads,
    FeedbackBody,
    FeedbackResponse,
    ModelInfo,
    SampleInfo,
    ScoreRequest,
    ScoreResponse,
    parse_batch_json,
    parse_request_json,
)
from serving.scorer import model_form, score_requests, use_threads_for
from serving.worklist import WorklistError, WorklistQuery, facets, lead_detail, parse_time, worklist
from store.engine import StoreError

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "common.js": "text/javascript",
    "worklist.js": "text/javascript",
    "accounts.js": "text/javascript",
    "worklist.css": "text/css",
}
"""The page's own files under ``static/`` that ``GET /static/{name}`` serves (no others)."""
UNTRACED_ROUTES = (r"/score$", r"/score_batch$")
"""URL patterns kept out of OpenTelemetry tracing by default (see the service config)."""
CARDS = TypeAdapter(list[ScoreResponse])
redact_request_values()  # no request value reaches the log (serving.log_redaction)

pages = FastAPI(
    title="leadscore page and model info", docs_url=None, redoc_url=None, openapi_url=None
)


@bentoml.asgi_app(pages, path="/")
@bentoml.service(
    name="leadscore",
    workers=1,
    traffic={"timeout": 60, "max_concurrency": 256},
    # OpenTelemetry's middleware costs about 0.4 ms a call even when no exporter is set
    # (BentoML's default: nothing is traced), half of a scored lead's latency. Whoever
    # configures tracing can trace these routes too (serving/README.md, "Tracing").
    tracing={"excluded_urls": list(UNTRACED_ROUTES)},
)
class LeadScoring:
    """Scores leads with the champion model and explains every score."""

    @bentoml.on_deployment
    def import_champion() -> None:
        """Once per ``bentoml serve``, before any worker starts: import the champion.

        Running in the server's main process means a registry without a champion stops
        ``bentoml serve`` at once with one clear error, instead of workers that fail and
        are restarted in a loop. The imported tag is pinned for the workers, so all of
        them serve the same version.
        """
        token_from_env()  # a malformed LEADSCORE_API_TOKEN stops the server here
        settings = Settings.from_env()
        try:
            tag = prepare(settings)
            if settings.model_dir is not None:  # a broken folder stops the server here too
                ModelBundle.load(settings.model_dir)
        except ModelNotAvailableError:
            raise
        except Exception as exc:  # unreachable registry, corrupted or incompatible artifact
            raise ModelNotAvailableError(
                f"cannot serve the model ({settings.model_dir or settings.tracking_uri}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if tag:
            os.environ[PINNED_ENV] = tag

    def __init__(self) -> None:
        quiet_telemetry()
        self.settings = Settings.from_env()
        self.served = resolve_model(
            self.settings, packaged_tag(LeadScoring.bento), os.environ.get(PINNED_ENV)
        )
        warm_up(self.served, self.settings.top_reasons)  # compiles and runs the whole path
        self._ready = True
        # A child of BentoML's logger, so the line appears in the server log as configured.
        logging.getLogger("bentoml.leadscore").info(
            "serving %s version %s (alias %s) from the %s%s",
            self.served.name,
            self.served.version,
            self.served.alias,
            self.served.source,
            " (pinned at deployment)" if os.environ.get(PINNED_ENV) else "",
        )
        self.recorder = (
            ScoreRecorder(self.settings.store_url, self.served.name)
            if self.settings.record_scores
            else None
        )
        self.watcher = watch_registry(self)  # hot reload swaps self.served (serving.reload)
        hot_route.register("/score", self._score_json)
        hot_route.register("/score_batch", self._score_batch_json, threaded=True)

    @bentoml.on_shutdown
    def close_recorder(self) -> None:
        """Write the scores still queued for the lead store before the worker exits."""
        if getattr(self, "recorder", None) is not None:
            self.recorder.close()

    def __is_ready__(self) -> bool:
        """Ready once the model is loaded and warmed up (``GET /readyz``)."""
        return getattr(self, "_ready", False)

    def _score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResponse]:
        """The shared scoring routine behind both APIs."""
        use_threads_for(len(requests))
        cards = score_requests(self.served, requests, self.settings.top_reasons)
        if self.recorder is not None:
            self.recorder.record(cards, [lead_attributes(r) for r in requests])
        return [ScoreResponse.model_validate(card) for card in cards]

    def _score_json(self, body: bytes) -> bytes:
        """``POST /score`` as ``serving.hot_route`` serves it: JSON body in, JSON card out,
        through the same ``ScoreRequest``, ``_score`` and ``ScoreResponse`` as ``score``
        (the served model's form is tried first, which spares the union's dispatch)."""
        request = parse_request_json(body, model_form(self.served.bundle))
        return self._score([request])[0].model_dump_json().encode()

    @bentoml.api(route="/score")
    def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score one lead: calibrated probability, 0–100 score, MQL flag, A1–D4 grade and
        the top positive and negative reasons, each with its exact SHAP contribution and
        a plain sentence.

        The body is the request itself (a positional-only parameter is BentoML's root
        input), so the Python client takes it as one argument:
        ``bentoml.SyncHTTPClient(url).score(body)``."""
        return self._score([request])[0]

    def _score_batch_json(self, body: bytes) -> bytes:
        """``POST /score_batch`` as ``serving.hot_route`` serves it (see ``_score_json``)."""
        leads = parse_batch_json(body, model_form(self.served.bundle))
        return CARDS.dump_json(self._score(leads))

    @bentoml.api(route="/score_batch")
    def score_batch(self, leads: BatchLeads) -> list[ScoreResponse]:
        """Score many leads in one call (at most 1,000 leads and 200,000 activities);
        answers come back in the order of `leads`."""
        return self._score(leads)

    @pages.get("/model", response_model=ModelInfo, summary="The model being served")
    def model_info(self) -> dict:
        """Model name, version, alias, trained-on window, test metrics and MQL policy."""
        return self.served.info()

    @pages.post(
        "/feedback",
        response_model=FeedbackResponse,
        summary="Record sales feedback",
        responses={
            400: {"description": "An event the store refuses: `detail` names event and field."},
            503: {"description": "The lead store cannot be used (not reachable or migrated)."},
        },
    )
    def feedback(self, body: Annotated[FeedbackBody, Body()]) -> Any:
        """Record what sales did with leads: one event or a list (accepted, rejected with a
        reason code, sql, opportunity, won, lost), all or nothing; the same event sent
        twice is stored once (counted in `duplicates`)."""
        return record_feedback(self.feedback_store, body)

    @functools.cached_property
    def feedback_store(self) -> FeedbackStore:
        """This worker's lead store for feedback, opened on the first event it records."""
        return FeedbackStore(self.settings.store_url)

    @pages.get(
        "/report",
        response_class=HTMLResponse,
        summary="The MQL loop's report",
        responses={503: {"description": "The lead store cannot be used."}},
    )
    def report(self) -> HTMLResponse:
        """The report of ``leadscore report``, from the lead store, as of now: scoring runs,
        MQL flow, funnel by grade, threshold diagnostics, model health and drift."""
        from serving.report import build_report  # matplotlib: loaded only when asked

        try:
            engine = self.feedback_store.engine()
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return HTMLResponse(build_report(engine, self.settings.mql_capacity))

    def _store_engine(self) -> Any:
        """This worker's lead store engine, or a 503 naming why it cannot be used."""
        try:
            return self.feedback_store.engine()
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None

    @pages.get(
        "/worklist",
        summary="The reps' worklist",
        responses={
            400: {"description": "A filter, sort or page the worklist cannot use."},
            503: {"description": "The lead store cannot be used."},
        },
    )
    def worklist(
        self,
        mql: bool | None = None,
        region: Annotated[list[str] | None, Query()] = None,
        grade: Annotated[list[str] | None, Query()] = None,
        lead_source: Annotated[list[str] | None, Query()] = None,
        owner: Annotated[list[str] | None, Query()] = None,
        new_since: str | None = None,
        sort: str = "score",
        order: str = "desc",
        limit: int = 50,
        offset: int = 0,
    ) -> Any:
        """A page of the store's leads (latest state, momentum over 7 and 30 days):
        ``mql`` true/false/absent, any of ``region``/``grade``/``lead_source``/``owner``
        (repeatable), ``new_since`` (MQL since after this ISO time), ``sort`` (score,
        momentum_7d, momentum_30d, mql_since, probability, lead_id), ``order`` (desc/asc),
        ``limit`` (1-500) and ``offset``; ``total`` counts every matching lead."""
        try:
            if order not in ("asc", "desc"):
                raise WorklistError(f"order: {order!r} is not asc or desc")
            query = WorklistQuery(
                mql=mql,
                region=tuple(region or ()),
                grade=tuple(grade or ()),
                lead_source=tuple(lead_source or ()),
                owner=tuple(owner or ()),
                new_since=parse_time(new_since, "new_since"),
                sort=sort,
                descending=order == "desc",
                limit=limit,
                offset=offset,
            )
        except WorklistError as exc:
            return JSONResponse(status_code=400, content={"detail": str(exc)})
        engine = self._store_engine()
        try:
            return worklist(engine, query).to_dict()
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None

    @pages.get("/worklist/facets", summary="The worklist's filter values")
    def worklist_facets(self) -> dict[str, list[str]]:
        """The distinct regions, grades, lead sources and owners of the store's leads."""
        return facets(self._store_engine())

    @pages.get(
        "/leads/{lead_id:path}",
        summary="One lead's card, timeline and dispositions",
        responses={404: {"description": "The store has never scored this lead."}},
    )
    def lead(self, lead_id: str) -> dict[str, Any]:
        """The lead's latest stored score card (probability and interval, reasons by
        signal, next best actions), state with momentum, score timeline, dispositions and
        activity summary (from the card's engagement reasons)."""
        detail = lead_detail(self._store_engine(), lead_id)
        if detail is None:
            raise HTTPException(status_code=404, detail=f"no lead {lead_id!r} in the lead store")
        return detail

    @pages.get(
        "/accounts",
        summary="The reps' account list",
        responses={
            400: {"description": "A filter, sort or page the account list cannot use."},
            503: {"description": "The lead store cannot be used."},
        },
    )
    def accounts(
        self,
        mqa: bool | None = None,
        region: Annotated[list[str] | None, Query()] = None,
        grade: Annotated[list[str] | None, Query()] = None,
        new_since: str | None = None,
        sort: str = "score",
        order: str = "desc",
        limit: int = 50,
        offset: int = 0,
    ) -> Any:
        """A page of the store's accounts (latest state, momentum over 7 and 28 days):
        ``mqa`` true/false/absent, any of ``region``/``grade`` (repeatable), ``new_since``
        (MQA since after this ISO time), ``sort`` (score, momentum_7d, momentum_28d,
        mqa_since, probability, engaged), ``order`` (desc/asc), ``limit`` (1-500) and
        ``offset``; ``total`` counts every matching account."""
        try:
            if order not in ("asc", "desc"):
                raise WorklistError(f"order: {order!r} is not asc or desc")
            query = AccountQuery(
                mqa=mqa,
                region=tuple(region or ()),
                grade=tuple(grade or ()),
                new_since=parse_time(new_since, "new_since"),
                sort=sort,
                descending=order == "desc",
                limit=limit,
                offset=offset,
            )
        except WorklistError as exc:
            return JSONResponse(status_code=400, content={"detail": str(exc)})
        engine = self._store_engine()
        try:
            return account_list(engine, query).to_dict()
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None

    @pages.get("/accounts/facets", summary="The account list's filter values")
    def accounts_facets(self) -> dict[str, list[str]]:
        """The distinct regions and grades of the store's accounts."""
        return account_facets(self._store_engine())

    @pages.get(
        "/accounts/{account_id:path}",
        summary="One account's card, buying group, people and timeline",
        responses={404: {"description": "The store has never scored this account."}},
    )
    def account(self, account_id: str) -> dict[str, Any]:
        """The account's latest stored card (probability and interval, reasons, buying
        group: personas engaged and missing, contacts to reach next), state with momentum,
        score timeline, its people with their latest scores, and their dispositions."""
        detail = account_detail(self._store_engine(), account_id)
        if detail is None:
            raise HTTPException(
                status_code=404, detail=f"no account {account_id!r} in the lead store"
            )
        return detail

    @pages.get("/samples", response_model=list[SampleInfo], summary="Sample leads")
    def samples(self) -> list[dict]:
        """Sample lead payloads written by the demo (empty when none are configured)."""
        return list_samples(self.settings.samples_dir)

    @pages.get("/samples/{name}", summary="One sample lead payload")
    def sample(self, name: str) -> dict:
        """The body of ``POST /score`` for one sample lead."""
        payload = read_sample(self.settings.samples_dir, name)
        if payload is None:
            raise HTTPException(status_code=404, detail=f"no sample named {name!r}")
        return payload

    @pages.get("/", include_in_schema=False)
    def page(self) -> FileResponse:
        """The reps' worklist page (plain HTML, JavaScript and CSS, no external assets)."""
        return FileResponse(STATIC / "worklist.html", media_type="text/html")

    @pages.get("/account-view", include_in_schema=False)
    def accounts_page(self) -> FileResponse:
        """The reps' account list: accounts ranked, their buying group and people."""
        return FileResponse(STATIC / "accounts.html", media_type="text/html")

    @pages.get("/try", include_in_schema=False)
    def try_page(self) -> FileResponse:
        """The try-a-lead page: pick a sample or paste a lead's JSON, read its card."""
        return FileResponse(STATIC / "try.html", media_type="text/html")

    @pages.get("/static/{name}", include_in_schema=False)
    def asset(self, name: str) -> FileResponse:
        """The worklist and account pages' scripts and style sheet (only ``ASSETS``)."""
        if name not in ASSETS:
            raise HTTPException(status_code=404, detail=f"no file named {name!r}")
        return FileResponse(STATIC / name, media_type=ASSETS[name])


LeadScoring.add_asgi_middleware(ApiGuard)
LeadScoring.add_asgi_middleware(hot_route.HotRoute)  # after ApiGuard: auth runs first
