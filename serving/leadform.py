"""Lead-form requests → score cards, through NumPy arrays instead of one-lead tables.

A request already holds one lead, its account and its activities, so building pandas
tables for it (and a feature frame out of them) would cost far more than the features
themselves: about 5 ms a lead, against a few hundred microseconds for the whole path
here. The requests are turned into ``features.pipeline.LeadArrays`` directly, and from
there the features are computed by ``features.pipeline.feature_values``, the very
function ``compute_features`` runs for training sets and batch scoring; the model
matrix comes from ``InputSpec.encode``, which codes values exactly as
``InputSpec.transform`` codes the frame. ``tests/integration/test_leadform.py`` checks that every
score card equals the one computed through tables and frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from features.catalogue import ACTIVITY_TYPES
from features.engagement import SECOND
from features.pipeline import PROFILE_FIELDS, LeadArrays, feature_values, icp_of
from runtime.bundle import ModelBundle
from runtime.cards import build_cards
from serving.schemas import LeadFormRequest

_TYPE_CODE = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
_OTHER = _TYPE_CODE["other"]
_LEAD_FIELDS = ("seniority", "department", "region", "lead_source", "email")
_ACCOUNT_FIELDS = ("industry", "employee_count", "annual_revenue")
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)

INPUT_CATEGORIES = {
    "seniority": "lead.seniority",
    "department": "lead.department",
    "region": "lead.region",
    "lead_source": "lead.lead_source",
    "industry": "account.industry",
}
"""Categorical features copied straight from a request field (derived bands are not)."""


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly; a time without an offset is UTC.

    The same integer the contract's ``datetime64[us]`` holds for the same instant, so the
    lead form compares times at the resolution of training features and labels.
    """
    delta = value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def request_arrays(requests: Sequence[LeadFormRequest]) -> tuple[LeadArrays, list[list[str]]]:
    """The arrays ``feature_values`` needs for lead-form requests, one lead per request.

    Each request is its own lead (by position), so two callers' leads never mix even
    when they share a ``lead_id``. Unknown activity types count as ``other`` and
    activities after ``as_of`` are left to the point-in-time rule; both are reported in
    the per-request warnings.
    """
    n = len(requests)
    profile: dict[str, list] = {name: [] for name in PROFILE_FIELDS}
    created = np.empty(n, dtype=np.int64)
    snap_t = np.empty(n, dtype=np.int64)
    act_lead: list[int] = []
    act_t: list[int] = []
    act_type: list[int] = []
    warnings: list[list[str]] = [[] for _ in range(n)]
    for i, req in enumerate(requests):
        lead, account = req.lead, req.account
        for name in _LEAD_FIELDS:
            profile[name].append(getattr(lead, name))
        for name in _ACCOUNT_FIELDS:
            profile[name].append(getattr(account, name) if account is not None else None)
        created[i] = _micros(lead.created_at)
        as_of = snap_t[i] = _micros(req.as_of)
        late = unknown = 0
        for activity in req.activities:
            code = _TYPE_CODE.get(activity.activity_type)
            if code is None:
                unknown += 1
                code = _OTHER
            when = _micros(activity.occurred_at)
            late += when > as_of
            act_lead.append(i)
            act_t.append(when)
            act_type.append(code)
        if unknown:
            warnings[i].append(
                f"{unknown} activit{_plural(unknown, 'y', 'ies')} of an "
                "unknown type counted as 'other'"
            )
        if late:
            warnings[i].append(f"{late} activit{_plural(late, 'y', 'ies')} after as_of ignored")
    arrays = LeadArrays(
        profile={
            name: (
                np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
                if name in ("employee_count", "annual_revenue")
                else np.asarray(values, dtype=object)
            )
            for name, values in profile.items()
        },
        created_t=created,
        act_lead=np.asarray(act_lead, dtype=np.int64),
        act_t=np.asarray(act_t, dtype=np.int64),
        act_type=np.asarray(act_type, dtype=np.int64),
        snap_lead=np.arange(n, dtype=np.int64),
        snap_t=snap_t,
    )
    return arrays, warnings


def unknown_categories(
    bundle: ModelBundle, values: dict[str, np.ndarray], n: int
) -> list[list[str]]:
    """Per lead: input categories the model never saw in training (scored as unknown)."""
    out: list[list[str]] = [[] for _ in range(n)]
    for feature in bundle.spec.features_:
        field_name = INPUT_CATEGORIES.get(feature.name)
        if field_name is None or feature.dtype != "category" or feature.name not in values:
            continue
        known = set(feature.categories)
        for i, value in enumerate(values[feature.name]):
            if isinstance(value, str) and value not in known:
                out[i].append(f"{field_name} {value!r} was not seen in training; scored as unknown")
    return out


def population_warnings(bundle: ModelBundle, arrays: LeadArrays) -> list[list[str]]:
    """Per lead: whether it is outside the population the model was trained on.

    Such a lead is still scored (the caller asked), but its probability and MQL flag
    come from a model and a threshold fitted on other leads, so the answer says so.
    """
    population = bundle.metadata.population
    n = len(arrays.snap_t)
    if population is None:
        return [[] for _ in range(n)]
    ages = (arrays.snap_t - arrays.created_t[arrays.snap_lead]) / SECOND  # µs → s
    return [[w] if (w := population.age_warning(float(age))) else [] for age in ages]


def score_lead_form(
    bundle: ModelBundle,
    model_ref: dict[str, Any],
    requests: Sequence[LeadFormRequest],
    default_top: int,
) -> list[dict[str, Any]]:
    """Score lead-form requests: one score card (shaped like ``ScoreResponse``) each.

    Args:
        bundle: The served model.
        model_ref: The ``model`` block of every card (name, version, alias).
        requests: Validated lead-form requests.
        default_top: Reasons per direction when a request does not say.
    """
    if not requests:
        return []
    arrays, warnings = request_arrays(requests)
    values = feature_values(arrays, icp_of(bundle.metadata.icp))  # training's own profile
    for warn, outside in zip(warnings, population_warnings(bundle, arrays), strict=True):
        warn.extend(outside)
    n = len(requests)
    missing = [f.name for f in bundle.spec.features_ if f.name not in values]
    if missing:  # a ``tables`` config's extra lead columns: the lead form cannot carry them
        values.update({name: np.full(n, np.nan) for name in missing})
        note = (
            f"{len(missing)} model feature(s) are not part of the lead form and were "
            f"scored as unknown: {', '.join(missing[:8])}" + (", …" if len(missing) > 8 else "")
        )
        for warn in warnings:
            warn.append(note)
    X = bundle.spec.encode(values)
    region_feature = bundle.policy.region_feature
    if region_feature in bundle.spec.names and region_feature in values:
        regions = np.asarray(
            [v if isinstance(v, str) else "" for v in values[region_feature]], dtype=object
        )
    else:
        regions = np.full(n, "", dtype=object)
    lead_ids = [req.lead.lead_id for req in requests]
    as_of = [req.as_of for req in requests]
    scores = bundle.score_matrix(
        X, regions, np.asarray(lead_ids, dtype=object), np.asarray(as_of, dtype=object)
    )
    cards = build_cards(
        bundle,
        model_ref,
        scores,
        regions,
        [req.top_reasons or default_top for req in requests],
        [req.include_contributions for req in requests],
        lead_ids,
        [t.replace(tzinfo=UTC) for t in as_of],
    )
    for card, unknown, warn in zip(
        cards, unknown_categories(bundle, values, n), warnings, strict=True
    ):
        card["warnings"] = unknown + warn
    return cards
