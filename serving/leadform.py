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
import pandas as pd
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from features.catalogue import ACTIVITY_TYPES, CATALOGUE, FeatureSpec
from features.dataset_config.values import lead_column
from features.engagement import SECOND
from features.pipeline import PROFILE_FIELDS, LeadArrays, feature_values, icp_of
from leadscore.errors import LeadscoreError
from runtime.actions import DEFAULT_ACTIONS, lead_actions
from runtime.bundle import ModelBundle
from runtime.cards import build_cards
from serving.schemas import Lead, LeadFormRequest

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


_BUILT_IN = frozenset(f.name for f in CATALOGUE)
"""The features ``feature_values`` computes from the lead form's own fields."""
_LEAD_MODEL_FIELDS = frozenset(Lead.model_fields)
_EXPECTS = {
    "float": "a number",
    "int": "a number",
    "bool": "true/false (or yes/no, 1/0)",
    "category": "text",
}


class ExtraLeadColumnError(LeadscoreError, ValueError):
    """A leads table cannot give a model's extra lead columns (missing, or values that do
    not type as training typed them)."""


def extra_lead_features(bundle: ModelBundle) -> list[FeatureSpec]:
    """The model's extra lead columns: the features of a ``tables`` dataset config read
    from the leads file, which the pipeline does not compute, so the lead form carries
    them as further keys of ``lead`` (by feature name) and batch scoring reads them from
    the leads table. Empty for a model without any (and for a features-form model)."""
    if bundle.metadata.request_form != "lead":
        return []
    return [f for f in bundle.spec.features_ if f.name not in _BUILT_IN]


def lead_column_name(bundle: ModelBundle, feature: str) -> str:
    """The leads table's column holding an extra lead feature: the config's ``column``
    as training recorded it (the feature's name for a model that recorded none)."""
    dataset = bundle.metadata.dataset
    columns = (dataset.lead_columns if dataset is not None else None) or {}
    return columns.get(feature, feature)


def with_extra_lead_columns(
    frame: pd.DataFrame, leads: pd.DataFrame, bundle: ModelBundle
) -> pd.DataFrame:
    """``frame`` (snapshots' features) with the model's extra lead columns, computed from
    ``leads`` by ``features.dataset_config.lead_column``, the code training ran on them.

    Raises:
        ExtraLeadColumnError: naming each extra column the table lacks or cannot type.
    """
    problems: list[str] = []
    for f in extra_lead_features(bundle):
        column = lead_column_name(bundle, f.name)
        values, problem = lead_column(frame["lead_id"], leads, column, f.dtype, f"leads.{column}")
        if problem:
            problems.append(f"{problem} (the model's extra lead feature {f.name!r})")
        frame[f.name] = values
    if problems:
        raise ExtraLeadColumnError(
            "cannot score with this model's extra lead columns: " + "; ".join(problems)
        )
    return frame


def _whose(n: int, i: int) -> str:
    """`` (lead #i of the batch)``: a position, never a request value (log redaction)."""
    return f" (lead #{i} of the batch)" if n > 1 else ""


def _refused(problems: list[tuple[tuple[str | int, ...], str, str]]) -> ValidationError:
    """The problems as the error a request that fails to parse raises: HTTP 400 with
    ``detail[].loc`` naming each field."""
    return ValidationError.from_exception_data(
        "ScoreRequest",
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{msg}", {"msg": msg}), loc=loc, input=None
            )
            for loc, kind, msg in problems
        ],
    )


def _lead_value(lead: Lead, name: str) -> object:
    """A lead's value of an extra column: a further key, or a field of the same name."""
    if name in _LEAD_MODEL_FIELDS:
        return getattr(lead, name)
    return (lead.model_extra or {}).get(name)


def extra_lead_values(
    bundle: ModelBundle, requests: Sequence[LeadFormRequest]
) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """The model's extra lead columns of lead-form requests, and per-request warnings.

    Each column is computed by ``features.dataset_config.lead_column`` over a leads
    table made of the requests (one row each), the code training ran on the export.

    Raises:
        pydantic.ValidationError: naming (``lead.<key>``) every key the model does not
            take and every value that does not type as its feature's dtype.
    """
    n = len(requests)
    extras = extra_lead_features(bundle)
    takes = {f.name for f in extras}
    known = ", ".join(sorted(takes)) if takes else "no extra lead columns"
    problems: list[tuple[tuple[str | int, ...], str, str]] = [
        (
            ("lead", key),
            "extra_forbidden",
            f"unknown field lead.{key}{_whose(n, i)}: this model takes {known} "
            "besides the lead's own fields (GET /model, `inputs`)",
        )
        for i, req in enumerate(requests)
        for key in req.lead.model_extra or {}
        if key not in takes
    ]
    if problems:
        raise _refused(problems)
    values: dict[str, np.ndarray] = {}
    warnings: list[list[str]] = [[] for _ in range(n)]
    if not extras:
        return values, warnings
    ids = pd.Series([str(i) for i in range(n)], dtype=object)
    for f in extras:
        raw = pd.Series([_lead_value(req.lead, f.name) for req in requests], dtype=object)
        typed, problem = lead_column(
            ids, pd.DataFrame({"lead_id": ids, f.name: raw}), f.name, f.dtype, f"lead.{f.name}"
        )
        if problem:
            problems += _type_problems(f, raw, n)
            continue
        values[f.name] = typed.to_numpy(dtype=object if f.dtype == "category" else np.float64)
    if problems:
        raise _refused(problems)
    for i, req in enumerate(requests):
        missing = [f.name for f in extras if _lead_value(req.lead, f.name) is None]
        if missing:
            warnings[i].append(
                f"{len(missing)} extra lead column(s) not given, scored as unknown: "
                + ", ".join(missing[:8])
                + (", …" if len(missing) > 8 else "")
            )
    return values, warnings


def _type_problems(
    feature: FeatureSpec, raw: pd.Series, n: int
) -> list[tuple[tuple[str | int, ...], str, str]]:
    """One problem per request whose value of ``feature`` does not type (each typed alone
    by the same ``lead_column``); the message says what kind was sent, not the value."""
    out: list[tuple[tuple[str | int, ...], str, str]] = []
    one = pd.Series(["0"], dtype=object)
    for i, value in enumerate(raw):
        if value is None:
            continue
        table = pd.DataFrame({"lead_id": one, feature.name: pd.Series([value], dtype=object)})
        if lead_column(one, table, feature.name, feature.dtype, "")[1] is None:
            continue
        kind = (
            "true/false value"
            if isinstance(value, bool)
            else "number"
            if isinstance(value, int | float)
            else "text"
        )
        out.append(
            (
                ("lead", feature.name),
                "feature_type",
                f"lead.{feature.name} takes {_EXPECTS.get(feature.dtype, feature.dtype)}: "
                f"the {kind} sent does not read as one{_whose(n, i)}",
            )
        )
    return out


def unknown_categories(
    bundle: ModelBundle, values: dict[str, np.ndarray], n: int
) -> list[list[str]]:
    """Per lead: input categories the model never saw in training (scored as unknown)."""
    out: list[list[str]] = [[] for _ in range(n)]
    extras = {f.name for f in extra_lead_features(bundle)}
    for feature in bundle.spec.features_:
        field_name = INPUT_CATEGORIES.get(feature.name) or (
            f"lead.{feature.name}" if feature.name in extras else None
        )
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


def actions_wanted(requests: Sequence[Any]) -> list[int]:
    """Next best actions each request asks for (``DEFAULT_ACTIONS`` when it does not say)."""
    return [
        DEFAULT_ACTIONS if req.next_best_actions is None else req.next_best_actions
        for req in requests
    ]


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
    extra, extra_warnings = extra_lead_values(bundle, requests)
    arrays, warnings = request_arrays(requests)
    values = feature_values(arrays, icp_of(bundle.metadata.icp))  # training's own profile
    values.update(extra)  # a ``tables`` config's extra lead columns
    for warn, more, outside in zip(
        warnings, extra_warnings, population_warnings(bundle, arrays), strict=True
    ):
        warn.extend(more)
        warn.extend(outside)
    n = len(requests)
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
    actions = lead_actions(bundle, scores, actions_wanted(requests), arrays, regions)
    cards = build_cards(
        bundle,
        model_ref,
        scores,
        regions,
        [req.top_reasons or default_top for req in requests],
        [req.include_contributions for req in requests],
        lead_ids,
        [t.replace(tzinfo=UTC) for t in as_of],
        actions,
    )
    for card, unknown, warn in zip(
        cards, unknown_categories(bundle, values, n), warnings, strict=True
    ):
        card["warnings"] = unknown + warn
    return cards
