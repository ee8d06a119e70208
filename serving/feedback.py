"""``POST /feedback``: sales dispositions into the lead store, over HTTP.

The service's part is small on purpose: the body is parsed by ``serving.schemas``
(``FeedbackBody``; a malformed one is FastAPI's 422 naming the field) and the events go
to ``store.feedback.record_dispositions``, whose rules, idempotence and single
transaction are the same for every way feedback comes in. What the store refuses is
answered 400 with each problem located where the body has it (``["body", 2, "stage"]``).

Each worker opens the store once, on the first feedback it receives (``FeedbackStore``):
a service that never receives feedback never touches a database. The store must be
migrated already (``leadscore score`` and ``leadscore db upgrade`` do it): several
workers racing to migrate one database is not something a request should start.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from serving.schemas import FeedbackEvent, FeedbackResponse
from store.engine import StoreError, open_store
from store.feedback import FeedbackError, Naming, record_dispositions

API_RECORDER = "api"
"""``recorded_by`` of events that do not say who recorded them."""


class FeedbackStore:
    """The lead store of one worker, opened on first use (thread-safe), then kept.

    Args:
        url: The store's URL (``Settings.store_url``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        """The open engine (opened now if it is not yet; a failure is retried next time).

        Raises:
            StoreError: the store cannot be reached or is not migrated.
        """
        with self._lock:
            if self._engine is None:
                self._engine = open_store(self.url, migrate=False)
            return self._engine

    def close(self) -> None:
        """Close the engine's connections (a later call opens it again)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _frame(events: list[FeedbackEvent]) -> pd.DataFrame:
    """The events as the store's frame (times as tz-naive UTC, as parsed)."""
    return pd.DataFrame(
        [event.model_dump() for event in events],
        columns=list(FeedbackEvent.model_fields),
    )


def _refused(error: FeedbackError, single: bool) -> JSONResponse:
    """A 400 whose ``detail`` locates each problem in the body, as a 422 would."""
    detail = []
    for problem in error.details:
        loc: list[str | int] = ["body"]
        if problem.position is not None and not single:
            loc.append(problem.position)
        if problem.column is not None:
            loc.append(problem.column)
        detail.append({"loc": loc, "msg": problem.message, "type": "feedback"})
    head = str(error).splitlines()[0]
    return JSONResponse(status_code=400, content={"error": head, "detail": detail})


def record_feedback(store: FeedbackStore, body: FeedbackEvent | list[FeedbackEvent]) -> Any:
    """Record one event or a list of them; the counts, or a 400/503 answer.

    Returns:
        ``FeedbackResponse`` with the counts, or a ``JSONResponse``: 400 naming each bad
        event and field (nothing recorded), 503 when the store cannot be used.
    """
    single = isinstance(body, FeedbackEvent)
    events = [body] if isinstance(body, FeedbackEvent) else list(body)
    try:
        engine = store.engine()
    except StoreError as exc:
        return JSONResponse(status_code=503, content={"detail": str(exc)})
    where = "body" if single else "body (a list of events)"
    try:
        result = record_dispositions(
            engine, _frame(events), "api", API_RECORDER, naming=Naming(where=where)
        )
    except FeedbackError as error:
        return _refused(error, single)
    except StoreError as exc:
        return JSONResponse(status_code=503, content={"detail": str(exc)})
    return FeedbackResponse(**result.to_dict())
