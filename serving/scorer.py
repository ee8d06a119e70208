"""From request payloads to score cards, through the same feature code as training.

Every path that scores a lead ends here: the HTTP service (one lead or a batch), the
batch scorer over a data folder, the page and the tests. A request becomes one-lead
copies of the contract's tables, ``features.pipeline.compute_features`` turns them
into the feature frame exactly as it does for training, and ``ModelBundle.score``
turns that frame into probabilities, grades and exact SHAP values. Nothing about a
lead's features is computed anywhere else, so training and serving cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import ACTIVITY_TYPES
from features.contract import TIMESTAMP_UNIT
from features.pipeline import compute_features
from serving.schemas import ScoreRequest
from training.bundle import ModelBundle, Scores

_KNOWN_ACTIVITIES = frozenset(ACTIVITY_TYPES)
_LEAD_TEXT = ("job_title", "seniority", "department", "country", "region", "lead_source",
              "email")
_ACCOUNT_TEXT = ("company_name", "industry", "country")


@dataclass(frozen=True)
class ServedModel:
    """A loaded bundle plus where it came from, for answers and ``GET /model``.

    Attributes:
        bundle: The model artifact that scores.
        name: Registered model name.
        version: Registry version (``local`` for a bundle folder).
        alias: Registry alias it was resolved through, if any.
        source: ``registry``, ``bento`` or ``folder``.
        run_id: MLflow run that trained it, when known.
        extra: Registry facts (tags, description) to show in ``GET /model``.
    """

    bundle: ModelBundle
    name: str
    version: str
    alias: str | None
    source: str
    run_id: str | None = None
    extra: dict = field(default_factory=dict)

    def ref(self) -> dict[str, Any]:
        """The ``model`` block of every answer."""
        return {"name": self.name, "version": self.version, "alias": self.alias}

    def info(self) -> dict[str, Any]:
        """The body of ``GET /model``: identity, training window, metrics and policy."""
        meta = self.bundle.metadata
        policy = self.bundle.policy.to_dict()
        policy.pop("score_knots", None)
        window = meta.get("window") or meta.get("trained_on") or {}
        trained_on = {"periods": window} if window else {}
        for key in ("horizon_days", "snapshot_rule", "data_fingerprint", "created_at"):
            if meta.get(key) is not None:
                trained_on[key] = meta[key]
        metrics = dict(_first_dict(meta, ("test_metrics", "metrics")))
        if isinstance(meta.get("test_metrics_by_region"), dict):
            metrics["by_region"] = meta["test_metrics_by_region"]
        return {
            **self.ref(),
            "source": self.source,
            "run_id": self.run_id or meta.get("run_id"),
            "trained_on": trained_on,
            "metrics": metrics,
            "policy": policy,
            "features": list(self.bundle.spec.names),
        }


def _first_dict(meta: dict, keys: tuple[str, ...]) -> dict:
    """The first of ``keys`` holding a dict in the bundle metadata (empty if none)."""
    for key in keys:
        value = meta.get(key)
        if isinstance(value, dict):
            return value
    return {}


@dataclass
class RequestTables:
    """One-lead tables for a list of requests, keyed by position (``"0"``, ``"1"``, ...).

    Positional keys keep two callers' leads apart when BentoML merges their requests
    into one batch, even if both happen to use the same ``lead_id``.
    """

    leads: pd.DataFrame
    accounts: pd.DataFrame
    activities: pd.DataFrame
    snapshots: pd.DataFrame
    warnings: list[list[str]]


PARALLEL_FROM = 64
"""Leads per call from which the compiled kernels may use every core."""


def use_threads_for(n_leads: int) -> None:
    """Pick the compiled kernels' thread count for a call scoring ``n_leads`` leads.

    Waking a thread pool costs more than one lead's whole feature pass (and far more on
    a busy machine), so small calls run single-threaded. Numba keeps the setting per
    calling thread, hence one call per request rather than once at start-up.
    """
    import numba

    numba.set_num_threads(1 if n_leads < PARALLEL_FROM else numba.config.NUMBA_NUM_THREADS)


def request_tables(requests: Sequence[ScoreRequest]) -> RequestTables:
    """Turn validated requests into the contract's typed tables (as ``validate`` returns).

    The columns and types match what ``features.contract.validate`` produces for a data
    folder (stripped text with None for missing, timestamps as tz-naive UTC
    ``datetime64[us]``, numbers as float64), which is what makes the service's features
    equal batch scoring's. Unknown activity types become ``other`` and activities after
    ``as_of`` are counted; both are reported in the per-request warnings.
    """
    n = len(requests)
    keys = [str(i) for i in range(n)]
    warnings: list[list[str]] = [[] for _ in range(n)]
    lead_cols: dict[str, list] = {c: [] for c in _LEAD_TEXT}
    acc_cols: dict[str, list] = {c: [] for c in (*_ACCOUNT_TEXT, "employee_count",
                                                  "annual_revenue")}
    act_lead: list[str] = []
    act_time: list = []
    act_type: list[str] = []
    act_detail: list = []
    for i, req in enumerate(requests):
        lead, account = req.lead, req.account
        for c in _LEAD_TEXT:
            lead_cols[c].append(getattr(lead, c))
        for c in acc_cols:
            acc_cols[c].append(getattr(account, c) if account is not None else None)
        late = unknown = 0
        for activity in req.activities:
            kind = activity.activity_type
            if kind not in _KNOWN_ACTIVITIES:
                unknown += 1
                kind = "other"
            late += activity.occurred_at > req.as_of
            act_lead.append(keys[i])
            act_time.append(activity.occurred_at)
            act_type.append(kind)
            act_detail.append(activity.detail)
        if unknown:
            warnings[i].append(f"{unknown} activit{'y' if unknown == 1 else 'ies'} of an "
                               f"unknown type counted as 'other'")
        if late:
            warnings[i].append(f"{late} activit{'y' if late == 1 else 'ies'} after as_of "
                               "ignored")
    key_col = np.asarray(keys, dtype=object)
    leads = pd.DataFrame({
        "lead_id": key_col,
        "account_id": key_col,
        "created_at": _timestamps([r.lead.created_at for r in requests]),
        **{c: _text(v) for c, v in lead_cols.items()},
    })
    accounts = pd.DataFrame({
        "account_id": key_col,
        **{c: _text(acc_cols[c]) for c in _ACCOUNT_TEXT},
        "employee_count": _floats(acc_cols["employee_count"]),
        "annual_revenue": _floats(acc_cols["annual_revenue"]),
    })
    activities = pd.DataFrame({
        "lead_id": np.asarray(act_lead, dtype=object),
        "occurred_at": _timestamps(act_time),
        "activity_type": np.asarray(act_type, dtype=object),
        "detail": _text(act_detail),
    })
    snapshots = pd.DataFrame({
        "lead_id": key_col, "as_of": _timestamps([r.as_of for r in requests]),
    })
    return RequestTables(leads, accounts, activities, snapshots, warnings)


def _text(values: list) -> np.ndarray:
    return np.asarray(values, dtype=object)


def _floats(values: list) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _timestamps(values: list) -> np.ndarray:
    """``np.asarray(values, dtype=TIMESTAMP_UNIT)``, about 6x faster for the tz-naive
    ``datetime`` objects the request schema produces (NumPy's own conversion of a
    ``datetime`` costs microseconds each, which adds up over a lead's activities)."""
    if all(type(v) is datetime and v.tzinfo is None for v in values):
        micros = np.fromiter(((v - _EPOCH) // _MICROSECOND for v in values), dtype=np.int64,
                             count=len(values))
        return micros.view(TIMESTAMP_UNIT)
    return np.asarray(values, dtype=TIMESTAMP_UNIT)


def request_features(requests: Sequence[ScoreRequest]) -> tuple[pd.DataFrame, list[list[str]]]:
    """Feature frame of each request (positional lead keys) and per-request warnings."""
    t = request_tables(requests)
    frame = compute_features(t.leads, t.accounts, t.activities, t.snapshots)
    return frame, t.warnings


INPUT_CATEGORIES = {
    "seniority": "lead.seniority",
    "department": "lead.department",
    "region": "lead.region",
    "lead_source": "lead.lead_source",
    "industry": "account.industry",
}
"""Categorical features copied straight from a request field (derived bands are not)."""


def unknown_category_warnings(bundle: ModelBundle, frame: pd.DataFrame) -> list[list[str]]:
    """Per row: input categories the model never saw in training (scored as unknown)."""
    out: list[list[str]] = [[] for _ in range(len(frame))]
    for feature in bundle.spec.features_:
        field_name = INPUT_CATEGORIES.get(feature.name)
        if field_name is None or feature.dtype != "category" or feature.name not in frame:
            continue
        known = set(feature.categories)
        values = frame[feature.name].to_numpy(dtype=object)
        for i, value in enumerate(values):
            if isinstance(value, str) and value not in known:
                out[i].append(f"{field_name} {value!r} was not seen in training; scored as "
                              "unknown")
    return out


def score_cards(
    model: ServedModel,
    frame: pd.DataFrame,
    top: Sequence[int] | int,
    include_contributions: Sequence[bool] | bool = False,
) -> tuple[Scores, list[dict[str, Any]]]:
    """Score a feature frame and format one score card per row.

    Args:
        model: The served model.
        frame: Output of ``compute_features`` (``lead_id``, ``as_of`` and features).
        top: Reasons per direction, for all rows or per row.
        include_contributions: Whether to add every feature's SHAP value, per row or all.

    Returns:
        The raw ``Scores`` and the score cards (``lead_id`` is the frame's).
    """
    bundle = model.bundle
    scores = bundle.score(frame)
    n = len(frame)
    tops = [top] * n if isinstance(top, int) else list(top)
    full = ([include_contributions] * n if isinstance(include_contributions, bool)
            else list(include_contributions))
    names = bundle.spec.names
    region_thresholds = bundle.policy.region_thresholds
    regions = (frame[bundle.policy.region_feature].to_numpy(dtype=object)
               if bundle.policy.region_feature in frame else np.full(n, None, dtype=object))
    ref = model.ref()
    cards = []
    for i in range(n):
        region = regions[i]
        region = region if isinstance(region, str) and region in region_thresholds else None
        cards.append({
            "lead_id": str(scores.lead_id[i]),
            "as_of": pd.Timestamp(scores.as_of[i]).to_pydatetime(),
            "probability": float(scores.probability[i]),
            "score": int(scores.score[i]),
            "mql": bool(scores.mql[i]),
            "threshold": float(scores.threshold[i]),
            "threshold_region": region,
            "grade": str(scores.grade[i]),
            "raw_score": float(scores.raw[i]),
            "base_value": float(scores.base_value),
            "reasons": scores.reasons(i, bundle.spec, tops[i]),
            "contributions": (dict(zip(names, map(float, scores.shap[i]), strict=True))
                              if full[i] else None),
            "warnings": [],
            "model": ref,
        })
    return scores, cards


def score_requests(
    model: ServedModel, requests: Sequence[ScoreRequest], default_top: int
) -> list[dict[str, Any]]:
    """Score validated requests: the one routine behind ``/score`` and ``/score_batch``.

    Returns:
        One score card (a dict shaped like ``ScoreResponse``) per request, in order.
    """
    if not requests:
        return []
    frame, warnings = request_features(requests)
    tops = [r.top_reasons or default_top for r in requests]
    _, cards = score_cards(model, frame, tops, [r.include_contributions for r in requests])
    unknown = unknown_category_warnings(model.bundle, frame)
    for req, card, warn, unk in zip(requests, cards, warnings, unknown, strict=True):
        card["lead_id"] = req.lead.lead_id
        card["as_of"] = req.as_of.replace(tzinfo=UTC)
        card["warnings"] = unk + warn
    return cards
