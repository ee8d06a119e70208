"""From request payloads to score cards, through the same feature code as training.

Every path that scores a lead ends here: the HTTP service (one lead or a batch), the
batch scorer over a data folder, the page and the tests. A lead-form request becomes
NumPy arrays that ``features.pipeline.feature_values`` — the function behind
``compute_features`` — turns into features exactly as it does for training
(``serving.leadform``), and ``ModelBundle.score_matrix`` turns them into probabilities,
grades and exact SHAP values; a data folder goes through ``compute_features`` and
``score_cards``. Nothing about a lead's features is computed anywhere else, so training
and serving cannot drift apart.

A model trained on a ``lead_snapshot`` dataset config has no activity log to compute
features from: it takes the features form (``{"features": {name: value}}``), which
``features.dataset_config.snapshot_frame`` types exactly as training typed the export
(``serving.featureform`` types the usual values the same way without building a frame).
Which form a model takes is ``model_form``; a request in the other form, an unknown
feature name or a value of the wrong type raises ``pydantic.ValidationError`` (a
``ValueError``) naming the field, which BentoML answers with HTTP 400 like any request
that fails to parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, cast

import numpy as np
import pandas as pd
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from features.contract import TIMESTAMP_UNIT
from features.dataset_config import snapshot_frame
from features.pipeline import LeadArrays
from runtime.actions import feature_actions, lead_actions, plan_for, wanted_rows
from runtime.bundle import ModelBundle, Scores
from runtime.cards import build_cards
from runtime.metadata import RequestForm
from serving import featureform
from serving.leadform import actions_wanted, extra_lead_features, score_lead_form
from serving.schemas import LeadFormRequest, ScoreRequest, parse_request


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
        trained_on: dict[str, Any] = {"periods": meta.window.model_dump()} if meta.window else {}
        facts = {
            "horizon_days": meta.horizon_days,
            "snapshot_rule": meta.snapshot_rule,
            "data_fingerprint": meta.data_fingerprint,
            "created_at": meta.created_at,
            # the leads it knows: a lead outside them is scored with a warning
            "population": meta.population.model_dump() if meta.population else None,
            "icp": meta.icp.model_dump() if meta.icp else None,
        }
        trained_on.update({key: value for key, value in facts.items() if value is not None})
        if meta.dataset is not None:  # the config's path on the training machine stays out
            trained_on["dataset"] = meta.dataset.model_dump(exclude={"config"}, exclude_none=True)
        metrics = {**meta.test_metrics, "by_region": meta.test_metrics_by_region}
        form = model_form(self.bundle)
        return {
            **self.ref(),
            "source": self.source,
            "run_id": self.run_id,
            "trained_on": trained_on,
            "metrics": metrics,
            "policy": policy,
            "features": list(self.bundle.spec.names),
            "request_form": form,
            "next_best_actions": [
                a.model_dump(exclude_none=True) for a in plan_for(self.bundle).actions
            ],
            "inputs": (
                [
                    {
                        "name": f.name,
                        "dtype": f.dtype,
                        "group": f.group,
                        "description": f.description,
                        "categories": list(f.categories),
                    }
                    for f in (
                        self.bundle.spec.features_
                        if form == "features"
                        else extra_lead_features(self.bundle)  # the lead form's extra keys
                    )
                ]
                or None
            ),
        }


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


def score_cards(
    model: ServedModel,
    frame: pd.DataFrame,
    top: Sequence[int] | int,
    include_contributions: Sequence[bool] | bool = False,
    actions: Sequence[int] | int = 0,
    arrays: LeadArrays | None = None,
) -> tuple[Scores, list[dict[str, Any]]]:
    """Score a feature frame and format one score card per row.

    Args:
        model: The served model.
        frame: Output of ``compute_features`` (``lead_id``, ``as_of`` and features).
        top: Reasons per direction, for all rows or per row.
        include_contributions: Whether to add every feature's SHAP value, per row or all.
        actions: Next best actions per row or for all (0: none).
        arrays: The rows' ``LeadArrays`` (``features.pipeline.lead_arrays``), which a
            model that reads an activity log needs for its actions: each variant lead's
            features are recomputed from them. A features-form model's actions change
            the encoded row itself.

    Raises:
        ValueError: actions are asked of an activity model without ``arrays``.

    Returns:
        The raw ``Scores`` and the score cards (``lead_id`` is the frame's).
    """
    bundle = model.bundle
    scores = bundle.score(frame)
    n = len(frame)
    regions = (
        frame[bundle.policy.region_feature].to_numpy(dtype=object)
        if bundle.policy.region_feature in frame
        else np.full(n, None, dtype=object)
    )
    cards = build_cards(
        bundle,
        model.ref(),
        scores,
        regions,
        [top] * n if isinstance(top, int) else list(top),
        (
            [include_contributions] * n
            if isinstance(include_contributions, bool)
            else list(include_contributions)
        ),
        [str(x) for x in scores.lead_id],
        [pd.Timestamp(x).to_pydatetime() for x in scores.as_of],
        frame_actions(
            bundle, frame, scores, [actions] * n if isinstance(actions, int) else actions, arrays
        ),
    )
    return scores, cards


def frame_actions(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    scores: Scores,
    keep: Sequence[int],
    arrays: LeadArrays | None,
) -> list[list[dict[str, Any]]] | None:
    """Next best actions of scored frame rows (None when none are asked for).

    Raises:
        ValueError: actions are asked of an activity model without ``arrays``.
    """
    plan = plan_for(bundle)
    if not len(wanted_rows(keep, plan)):
        return None
    regions = (
        frame[bundle.policy.region_feature].astype("string").fillna("").to_numpy(dtype=object)
        if bundle.policy.region_feature in frame
        else np.full(len(frame), "", dtype=object)
    )
    if not plan.activity:
        return feature_actions(bundle, scores, keep, regions)
    if arrays is None:
        raise ValueError("next best actions of an activity model need the rows' LeadArrays")
    return lead_actions(bundle, scores, keep, arrays, regions)


def model_form(bundle: ModelBundle) -> RequestForm:
    """The request form a model scores: ``features`` for a model trained on a
    ``lead_snapshot`` dataset config (one row per lead, no activity log), ``lead`` for
    one trained on the contract's tables (the simulator or a ``tables`` config): the
    ``request_form`` training recorded in the bundle's metadata."""
    return bundle.metadata.request_form


def warmup_request(model: ServedModel) -> ScoreRequest:
    """A synthetic request in the form ``model`` takes, to warm the scoring path up."""
    if model_form(model.bundle) == "features":
        return parse_request({"lead_id": "warmup", "features": {}, "as_of": "2024-02-01T00:00:00Z"})
    return parse_request(
        {
            "lead": {"lead_id": "warmup", "created_at": "2024-01-01T00:00:00Z"},
            "activities": [{"occurred_at": "2024-01-02T00:00:00Z", "activity_type": "page_view"}],
            "as_of": "2024-02-01T00:00:00Z",
        }
    )


_Problem = tuple[tuple[str | int, ...], str, str, object]
"""(location, error type, message, offending input) of one request problem."""


def request_error(problems: Sequence[_Problem]) -> ValidationError:
    """The problems as the ``ValidationError`` a request that fails to parse raises, so
    the service answers 400 with ``detail[].loc`` naming each field."""
    return ValidationError.from_exception_data(
        "ScoreRequest",
        [
            InitErrorDetails(
                type=PydanticCustomError(kind, "{msg}", {"msg": msg}), loc=loc, input=value
            )
            for loc, kind, msg, value in problems
        ],
    )


def _whose(requests: Sequence[ScoreRequest], i: int) -> str:
    """`` (lead #i of the batch)`` to tell the leads of a batch apart in a message
    (a position, not the lead's id: messages carry no request values, see
    ``serving.log_redaction``)."""
    return f" (lead #{i} of the batch)" if len(requests) > 1 else ""


def check_forms(model: ServedModel, requests: Sequence[ScoreRequest]) -> RequestForm:
    """The model's request form; raises ``ValidationError`` if any request is in the other.

    Raises:
        pydantic.ValidationError: naming ``lead`` or ``features`` and saying which form
            this model takes.
    """
    form = model_form(model.bundle)
    dataset = model.bundle.metadata.dataset
    config_name = dataset.name if dataset else "?"
    which = f"{model.name} v{model.version}"
    problems: list[_Problem] = []
    for i, req in enumerate(requests):
        if req.form == form:
            continue
        if form == "features":
            problems.append(
                (
                    ("lead",),
                    "wrong_request_form",
                    f"model {which} was trained on a lead-snapshot dataset config "
                    f"({config_name}): send the lead's feature values "
                    "as `features` ({name: value}; GET /model lists them), not "
                    f"`lead`, `account` and `activities`{_whose(requests, i)}",
                    None,
                )
            )
        else:
            problems.append(
                (
                    ("features",),
                    "wrong_request_form",
                    f"model {which} computes its features from the lead's profile "
                    "and activities: send `lead` (with optional `account` and "
                    f"`activities`), not `features`{_whose(requests, i)}",
                    None,
                )
            )
    if problems:
        raise request_error(problems)
    return form


_EXPECTS = {
    "float": "a number",
    "int": "a number",
    "bool": "true/false (or yes/no, 1/0)",
    "category": "text",
}


def _kind_of(value: object) -> str:
    """A value's JSON kind, for messages that must not echo the value itself."""
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, int | float):
        return "number"
    return "text"


def snapshot_request_frame(
    bundle: ModelBundle, requests: Sequence[ScoreRequest]
) -> tuple[pd.DataFrame, list[list[str]]]:
    """Feature frame of features-form requests (positional lead keys) and warnings.

    The frame comes from ``features.dataset_config.snapshot_frame``, which types each
    value as training typed the export. Missing features and categories the model never
    saw are scored as unknown and reported in the warnings.

    Raises:
        pydantic.ValidationError: naming every unknown feature and every value whose type
            does not fit its feature.
    """
    features = bundle.spec.features_
    check_feature_names(bundle, requests)
    rows = [{"lead_id": str(i), **(req.features or {})} for i, req in enumerate(requests)]
    try:
        frame = snapshot_frame(features, rows)
    except ValueError:
        raise request_error(
            _value_problems(features, requests)
            or [
                (
                    ("features",),
                    "feature_value",
                    "the values cannot be typed as this model's "
                    "features (see GET /model, `inputs`)",
                    None,
                )
            ]
        ) from None
    frame["as_of"] = np.asarray([r.as_of for r in requests], dtype=TIMESTAMP_UNIT)
    return frame, snapshot_warnings(bundle, requests)


def check_feature_names(bundle: ModelBundle, requests: Sequence[ScoreRequest]) -> None:
    """Raise ``pydantic.ValidationError`` naming every feature the model does not take."""
    names = set(bundle.spec.names)
    problems: list[_Problem] = []
    for i, req in enumerate(requests):
        for key, value in (req.features or {}).items():
            if key not in names:
                known = ", ".join(sorted(names))
                problems.append(
                    (
                        ("features", key),
                        "unknown_feature",
                        f"unknown feature {key!r}{_whose(requests, i)}: this model takes {known}",
                        value,
                    )
                )
    if problems:
        raise request_error(problems)


def snapshot_warnings(bundle: ModelBundle, requests: Sequence[ScoreRequest]) -> list[list[str]]:
    """Per features-form request: categories the model never saw and features not given."""
    features = bundle.spec.features_
    by_name = {f.name: f for f in features}
    warnings: list[list[str]] = []
    for req in requests:
        given = {k: v for k, v in (req.features or {}).items() if v is not None}
        warn = []
        for name, value in given.items():
            f = by_name[name]
            if f.dtype == "category" and str(value).strip() not in f.categories:
                warn.append(
                    f"features.{name} {value!r} is not one of the model's categories; "
                    "scored as unknown"
                )
        missing = [f.name for f in features if f.name not in given]
        if missing:
            shown = ", ".join(missing[:8]) + (", …" if len(missing) > 8 else "")
            warn.append(
                f"{len(missing)} of {len(features)} features not given, scored as unknown: {shown}"
            )
        warnings.append(warn)
    return warnings


def _value_problems(features: Sequence, requests: Sequence[ScoreRequest]) -> list[_Problem]:
    """Which values ``snapshot_frame`` refused, one problem per (lead, feature).

    Only run once a batch failed: each feature's values are typed together first, then
    one by one where that fails, through the same ``snapshot_frame``.
    """
    problems: list[_Problem] = []
    for f in features:
        given = [
            (i, req.features[f.name])
            for i, req in enumerate(requests)
            if (req.features or {}).get(f.name) is not None
        ]
        if not given:
            continue
        try:
            snapshot_frame([f], [{f.name: v} for _, v in given])
            continue
        except ValueError:
            pass
        for i, value in given:
            try:
                snapshot_frame([f], [{f.name: value}])
            except ValueError:
                problems.append(
                    (
                        ("features", f.name),
                        "feature_type",
                        f"feature {f.name!r} takes {_EXPECTS.get(f.dtype, f.dtype)}: "
                        f"the {_kind_of(value)} sent does not read as one"
                        f"{_whose(requests, i)}",
                        value,
                    )
                )
    return problems


def score_requests(
    model: ServedModel, requests: Sequence[ScoreRequest], default_top: int
) -> list[dict[str, Any]]:
    """Score validated requests: the one routine behind ``/score`` and ``/score_batch``.

    Lead-form requests go through ``serving.leadform.score_lead_form`` (the pipeline's
    own feature code); features-form requests (for a model trained on a ``lead_snapshot``
    dataset config) through ``features.dataset_config.snapshot_frame``.

    Returns:
        One score card (a dict shaped like ``ScoreResponse``) per request, in order.

    Raises:
        pydantic.ValidationError: (a ``ValueError``; HTTP 400) when a request is in the
            form the model does not take, names an unknown feature or gives a feature a
            value of the wrong type; each error's ``loc`` names the field.
    """
    if not requests:
        return []
    form = check_forms(model, requests)
    if form == "lead":  # check_forms has seen that every request is in the lead form
        return score_lead_form(
            model.bundle, model.ref(), cast(Sequence[LeadFormRequest], requests), default_top
        )
    check_feature_names(model.bundle, requests)
    values = featureform.feature_values(model.bundle, requests)
    if values is not None:  # every value typed without a frame (the usual case)
        return featureform.score_feature_values(
            model.bundle,
            model.ref(),
            requests,
            values,
            snapshot_warnings(model.bundle, requests),
            default_top,
            actions_wanted(requests),
        )
    frame, warnings = snapshot_request_frame(model.bundle, requests)
    unknown: list[list[str]] = [[] for _ in requests]
    tops = [r.top_reasons or default_top for r in requests]
    _, cards = score_cards(
        model,
        frame,
        tops,
        [r.include_contributions for r in requests],
        actions_wanted(requests),
    )
    for req, card, warn, unk in zip(requests, cards, warnings, unknown, strict=True):
        card["lead_id"] = req.scored_id
        card["as_of"] = req.as_of.replace(tzinfo=UTC)
        card["warnings"] = unk + warn
    return cards
