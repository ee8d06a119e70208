"""Monotone constraints from the signals' declared directions, kept only when they are cheap.

A signal declared ``increasing`` (a positive-intent activity such as a demo request) should
never lower the score as it grows: more demo requests are never bad news. LightGBM's
``monotone_constraints`` make the booster obey that per feature. Each feature's direction
comes from its signal (``SignalSpec.feature_direction``): the counts follow the signal, a
"days since the last one" member the reverse, ratios and trends none.

Constraints can cost ranking power, so ``auto`` fits the booster with and without them on
the same training and validation periods and keeps them when the validation ROC AUC drops
by at most ``TOLERANCE``; both AUCs and the decision go into the bundle's metadata
(``runtime.metadata.MonotoneFacts``) and the model card.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import numpy as np
from sklearn.metrics import roc_auc_score

from runtime.encoding import InputSpec
from runtime.metadata import MonotoneFacts
from training.estimator import BoostedEstimator

TOLERANCE = 0.002
"""Validation ROC AUC ``auto`` gives up for monotone constraints, at most."""

Mode = Literal["auto", "on", "off"]
E = TypeVar("E", bound=BoostedEstimator)
F = TypeVar("F")


def feature_directions(spec: InputSpec) -> list[int]:
    """Per model column: 1 (never lowers the score), -1 (never raises it) or 0 (free)."""
    owner = {name: s for s in spec.signals_ for name in s.features}
    return [
        0 if f.dtype == "category" else owner[f.name].feature_direction(f.name)
        for f in spec.features_
    ]


def _copy(base: BoostedEstimator) -> BoostedEstimator:
    """An unfitted estimator with ``base``'s arguments, shared rather than deep-copied (as
    ``sklearn.base.clone`` would): a Dask engine's scheduler may be a live ``Client``."""
    return type(base)(**base.get_params(deep=False))


def _constrained(base: BoostedEstimator, directions: list[int]) -> BoostedEstimator:
    """A copy of ``base`` whose LightGBM parameters carry the constraints."""
    params: dict[str, Any] = dict(base.get_params().get("params") or {})
    params["monotone_constraints"] = directions
    return _copy(base).set_params(params=params)


def constrained(base: BoostedEstimator, spec: InputSpec) -> BoostedEstimator | None:
    """An unfitted copy of ``base`` constrained by the signals' directions (None: no
    feature has one). For callers that fit elsewhere (cross-fitting)."""
    directions = feature_directions(spec)
    return _constrained(base, directions) if any(directions) else None


def fit_monotone(
    base: BoostedEstimator,
    X: np.ndarray,
    y: np.ndarray,
    Xv: np.ndarray,
    yv: np.ndarray,
    spec: InputSpec,
    mode: Mode = "auto",
) -> tuple[BoostedEstimator, MonotoneFacts]:
    """Fit ``base`` with or without monotone constraints; return it and the decision.

    ``off`` and ``on`` fit once; ``auto`` fits both ways (early stopping on the same
    validation period) and keeps the constrained booster when its validation ROC AUC is
    at most ``TOLERANCE`` below the free one's.

    Args:
        base: The unfitted estimator, with its final parameters (after any search).
        X: Encoded training matrix.
        y: Training labels.
        Xv: Encoded validation matrix (early stopping and the comparison).
        yv: Validation labels.
        spec: The fitted input spec: its signals give each feature's direction.
        mode: ``auto`` (compare on validation), ``on`` or ``off``.

    Returns:
        The fitted estimator and the ``MonotoneFacts`` recorded in the bundle. When the
        constraints are kept, the spec's signals with a direction are marked ``enforced``
        (their lowering reasons may then say "less than typical").
    """
    directions = feature_directions(spec)
    constraints = {n: d for n, d in zip(spec.names, directions, strict=True) if d}
    fit: dict[str, Any] = {
        "eval_set": [(Xv, yv)],
        "feature_names": spec.names,
        "categorical_features": spec.categorical_indices,
    }
    if mode == "off" or not constraints:
        reason = "off as asked" if mode == "off" else "no signal declares a direction"
        return base.fit(X, y, **fit), MonotoneFacts(mode=mode, applied=False, reason=reason)
    with_them = _constrained(base, directions).fit(X, y, **fit)
    if mode == "on":
        _enforce(spec)
        facts = MonotoneFacts(
            mode=mode,
            applied=True,
            constraints=constraints,
            valid_roc_auc_constrained=_auc(with_them, Xv, yv),
            reason="on as asked",
        )
        return with_them, facts
    without = base.fit(X, y, **fit)
    facts = _compare(
        constraints,
        _auc(with_them, Xv, yv),
        _auc(without, Xv, yv),
        "validation",
        "the validation period has one class",
    )
    if facts.applied:
        _enforce(spec)
    return (with_them if facts.applied else without), facts


def _compare(
    constraints: dict[str, int],
    constrained_auc: float | None,
    free_auc: float | None,
    where: str,
    one_class: str,
) -> MonotoneFacts:
    """``auto``'s decision: keep the constraints when they cost at most ``TOLERANCE`` ROC AUC
    on ``where`` (the validation period or out-of-fold margins), or when it cannot be told."""
    if free_auc is None or constrained_auc is None:
        return MonotoneFacts(
            mode="auto",
            applied=True,
            constraints=constraints,
            reason=f"kept: {one_class}, so the cost cannot be measured",
        )
    cost = free_auc - constrained_auc
    keep = cost <= TOLERANCE
    reason = (
        f"kept: {where} ROC AUC {constrained_auc:.4f} with them vs {free_auc:.4f} "
        f"without (cost {cost:+.4f}, at most {TOLERANCE})"
        if keep
        else f"dropped: they cost {cost:.4f} {where} ROC AUC ({constrained_auc:.4f} vs "
        f"{free_auc:.4f}), more than {TOLERANCE}"
    )
    return MonotoneFacts(
        mode="auto",
        applied=keep,
        constraints=constraints,
        valid_roc_auc_constrained=constrained_auc,
        valid_roc_auc_free=free_auc,
        tolerance=TOLERANCE,
        reason=reason,
    )


def _enforce(spec: InputSpec) -> None:
    """Mark the signals the constrained model obeys (stored with the spec in the bundle)."""
    spec.signals_ = tuple(
        s.model_copy(update={"enforced": True}) if s.direction else s for s in spec.signals_
    )


def _auc(model: BoostedEstimator, X: np.ndarray, y: np.ndarray) -> float | None:
    """Validation ROC AUC (None when the period has one class only)."""
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, model.predict_raw(X)))


def crossfit_monotone(
    base: E,
    spec: InputSpec,
    mode: Mode,
    crossfit: Callable[[E], F],
    y: np.ndarray,
) -> tuple[E, F, MonotoneFacts]:
    """``fit_monotone`` for cross-fitted data: the same decision on out-of-fold margins.

    Small data has no validation period, so ``auto`` cross-fits the booster with and
    without the constraints over the same folds and compares their out-of-fold ROC AUC.

    Args:
        base: The unfitted estimator, with its final parameters.
        spec: The fitted input spec: its signals give each feature's direction.
        mode: ``auto``, ``on`` or ``off``.
        crossfit: Cross-fits an estimator; its result has ``oof_raw`` (one margin per row).
        y: Labels of the cross-fitted rows.

    Returns:
        The estimator to refit on all rows, its cross-fit result and the decision.
    """
    directions = feature_directions(spec)
    constraints = {n: d for n, d in zip(spec.names, directions, strict=True) if d}
    if mode == "off" or not constraints:
        reason = "off as asked" if mode == "off" else "no signal declares a direction"
        return base, crossfit(base), MonotoneFacts(mode=mode, applied=False, reason=reason)
    with_base = cast(E, _constrained(base, directions))
    with_them = crossfit(with_base)
    constrained_auc = _oof_auc(with_them, y)
    if mode == "on":
        _enforce(spec)
        facts = MonotoneFacts(
            mode=mode,
            applied=True,
            constraints=constraints,
            valid_roc_auc_constrained=constrained_auc,
            reason="on as asked",
        )
        return with_base, with_them, facts
    without = crossfit(base)
    facts = _compare(
        constraints,
        constrained_auc,
        _oof_auc(without, y),
        "out-of-fold",
        "the rows have one class",
    )
    if facts.applied:
        _enforce(spec)
        return with_base, with_them, facts
    return base, without, facts


def _oof_auc(result: Any, y: np.ndarray) -> float | None:
    """Out-of-fold ROC AUC of a cross-fit result (None when ``y`` has one class)."""
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, result.oof_raw))
