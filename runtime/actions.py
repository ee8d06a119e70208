"""Next best actions: what would raise a lead's score most if it happened now.

For every action a model can take (``features.actions``: the built-in activities, or a
dataset config's ``actions:``), a *variant* of each lead is scored: the lead with one
more activity at its ``as_of``, its features recomputed by the pipeline's own code
(``features.actions.activity_variants`` then ``feature_values``), or, for a model
trained on a ``lead_snapshot`` config, its feature row with one value changed. All the
variants of all the leads go through the model together: one margin pass without SHAP
for every variant ranks them by the gain in calibrated probability, and only the few
kept per lead (``keep``, 3 by default) are scored in full by ``ModelBundle.score_matrix``
(``Policy.apply``: score, MQL flag, grade), exactly as re-scoring the changed lead would
score it.

Each kept action becomes a dict shaped like ``serving.schemas.NextBestAction``:
``action``, ``probability``, ``score``, ``mql``, ``grade``, ``gain`` (the rise in
probability) and a ``sentence`` such as "A demo request now would raise the score from 41
to 78 and make it an MQL".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from features.actions import ACTIONS, ActionSpec, activity_codes
from features.catalogue import CATALOGUE
from features.dataset_config.values import type_column
from features.pipeline import LeadArrays, feature_values, icp_of
from features.variants import activity_variants, by_lead_and_time
from runtime.bundle import CalibratedModel, ModelBundle, Scores

DEFAULT_ACTIONS = 3
"""Next best actions per lead when a request does not say."""
MAX_ACTIONS = 20
"""The most a request may ask for."""
SMALL_GAIN = 3
"""A score rise below this many points "barely changes" the score."""


@dataclass(frozen=True)
class ActionPlan:
    """What a model can be asked about: its actions, split by kind, ready to apply.

    Attributes:
        actions: The actions, in declaration order (ties in gain keep this order).
        activity: Whether they are activity actions (lead-form models) or feature changes.
        codes: Activity type codes of activity actions.
        columns: Model column of each feature action; for activity actions, the model
            columns of the numeric features the pipeline computes (``computed``).
        values: Encoded value each ``set`` action writes (NaN for ``add`` actions).
        computed: Activity actions: the names of ``columns``.
    """

    actions: tuple[ActionSpec, ...]
    activity: bool
    codes: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    computed: tuple[str, ...] = ()


_PIPELINE_FEATURES = frozenset(f.name for f in CATALOGUE)
"""The features ``feature_values`` computes (a ``tables`` config adds lead columns)."""
_PLANS: WeakKeyDictionary[ModelBundle, ActionPlan] = WeakKeyDictionary()


def declared_actions(bundle: ModelBundle) -> tuple[ActionSpec, ...]:
    """The actions of a model: its dataset config's ``actions:`` when it declared them,
    else the built-in activities for a model that reads an activity log, else none."""
    dataset = bundle.metadata.dataset
    if dataset is not None and dataset.actions is not None:
        return tuple(dataset.actions)
    return ACTIONS if bundle.metadata.request_form == "lead" else ()


def plan_for(bundle: ModelBundle) -> ActionPlan:
    """The model's ``ActionPlan``, built once per loaded bundle.

    Activity actions apply to a model that reads an activity log (lead form); feature
    actions to one that takes feature values, and only for features it has. A ``set``
    value is typed as a request's value would be (``type_column``) and encoded by the
    model's own ``InputSpec.encode``.
    """
    plan = _PLANS.get(bundle)
    if plan is not None:
        return plan
    lead_form = bundle.metadata.request_form == "lead"
    names = bundle.spec.names
    actions = tuple(
        a
        for a in declared_actions(bundle)
        if (a.activity is not None) == lead_form and (a.activity is not None or a.feature in names)
    )
    if lead_form:
        computed = [
            (j, f.name)
            for j, f in enumerate(bundle.spec.features_)
            if f.name in _PIPELINE_FEATURES and f.dtype != "category"
        ]
        plan = ActionPlan(
            actions,
            True,
            activity_codes(actions),
            np.asarray([j for j, _ in computed], dtype=np.int64),
            np.empty(0),
            tuple(name for _, name in computed),
        )
    else:
        plan = ActionPlan(
            actions,
            False,
            np.empty(0, np.int64),
            np.asarray([names.index(str(a.feature)) for a in actions], dtype=np.int64),
            np.asarray([_encoded(bundle, a) for a in actions], dtype=np.float64),
        )
    _PLANS[bundle] = plan
    return plan


def _encoded(bundle: ModelBundle, action: ActionSpec) -> float:
    """The model's encoding of a ``set`` action's value (NaN for an ``add`` action, or a
    value that does not type as its feature: scored as unknown, like a request's)."""
    if action.add is not None:
        return float("nan")
    features = bundle.spec.features_
    j = bundle.spec.names.index(str(action.feature))
    typed = type_column([action.set], features[j].dtype)
    values: dict[str, np.ndarray] = {
        f.name: (np.full(1, None, dtype=object) if f.dtype == "category" else np.full(1, np.nan))
        for f in features
    }
    if typed is not None:
        values[features[j].name] = typed
    return float(bundle.spec.encode(values)[0, j])


@dataclass(frozen=True)
class Variants:
    """Every variant row of the leads asked about, ready to score.

    Attributes:
        X: Encoded variant rows; row ``k * len(actions) + a`` is base row ``rows[k]`` with
            action ``a``.
        rows: The base rows (indices into the ``Scores``) that were varied.
        regions: Each variant row's region text, for regional thresholds.
        actions: The actions, in column order of the variants.
    """

    X: np.ndarray
    rows: np.ndarray
    regions: np.ndarray
    actions: tuple[ActionSpec, ...]


def wanted_rows(keep: Sequence[int], plan: ActionPlan) -> np.ndarray:
    """The base rows that asked for at least one action (none when the model has none)."""
    if not plan.actions:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.asarray(keep, dtype=np.int64) > 0)


def lead_variants(
    bundle: ModelBundle,
    arrays: LeadArrays,
    rows: np.ndarray,
    regions: np.ndarray,
    X: np.ndarray,
) -> Variants:
    """Variants of lead-form rows: each lead with one more activity at its ``as_of``, its
    features recomputed by ``feature_values`` with the model's ICP.

    Every numeric feature is the variant's own, written as ``InputSpec.encode`` writes a
    number (as it is). A categorical feature comes from the lead's profile, which an
    activity does not change, and a ``tables`` config's extra lead columns come from the
    leads file: those keep the codes of the lead's own encoded row ``X`` (coding them
    again, one dictionary look-up per value, would cost more than the rest).

    Args:
        bundle: The model.
        arrays: The scored snapshots' arrays (row ``i`` is snapshot ``i``).
        rows: The snapshots to vary (``wanted_rows``).
        regions: Each snapshot's region text.
        X: The snapshots' encoded rows (``Scores.X``).
    """
    plan = plan_for(bundle)
    n_actions = len(plan.actions)
    values = feature_values(
        activity_variants(arrays, rows, plan.codes), icp_of(bundle.metadata.icp)
    )
    out = np.repeat(np.asarray(X, dtype=np.float64)[rows], n_actions, axis=0)
    for j, name in zip(plan.columns, plan.computed, strict=True):
        out[:, j] = values[name]
    return Variants(out, rows, np.repeat(regions[rows], n_actions), plan.actions)


def feature_variants(
    bundle: ModelBundle, X: np.ndarray, rows: np.ndarray, regions: np.ndarray
) -> Variants:
    """Variants of feature-form rows: the encoded row with one feature set or added to.

    A numeric feature's encoding is its value, so ``add`` adds to the encoded value (an
    unknown value stays unknown); ``set`` writes the encoded value of ``plan_for``. A
    change of the region feature changes the region whose threshold applies.
    """
    plan = plan_for(bundle)
    n_actions = len(plan.actions)
    out = np.repeat(np.asarray(X, dtype=np.float64)[rows], n_actions, axis=0)
    var_regions = np.repeat(np.asarray(regions, dtype=object)[rows], n_actions)
    region_feature = bundle.policy.region_feature
    for a, action in enumerate(plan.actions):
        j = int(plan.columns[a])
        if action.add is not None:
            out[a::n_actions, j] += float(action.add)
        else:
            out[a::n_actions, j] = plan.values[a]
            if action.feature == region_feature:
                var_regions[a::n_actions] = action.set if isinstance(action.set, str) else ""
    return Variants(out, rows, var_regions, plan.actions)


def margins(model: CalibratedModel, X: np.ndarray) -> np.ndarray:
    """Raw margins of encoded rows without SHAP values: the cheap pass that ranks variants.

    The margin model's own ``predict_raw`` (``model.margin`` where the bundle has a
    pluggable margin model, else the TreeSHAP explainer's tree walk, which equals
    ``booster.predict(raw_score=True)``).
    """
    source: Any = getattr(model, "margin", None) or model.explainer
    return np.asarray(
        source.predict_raw(np.ascontiguousarray(X, dtype=np.float64)), dtype=np.float64
    )


def next_best_actions(
    bundle: ModelBundle, scores: Scores, variants: Variants, keep: Sequence[int]
) -> list[list[dict[str, Any]]]:
    """The top actions of every base row, best first (empty for rows not varied).

    Variants are ranked by their gain in calibrated probability from one margin pass
    without SHAP; the ``keep[i]`` best with a positive gain are then scored in full by
    ``ModelBundle.score_matrix``, so their probability, score, MQL flag and grade are
    exactly those of the lead re-scored with the action.

    Args:
        bundle: The model.
        scores: The base rows' scores.
        variants: ``lead_variants`` or ``feature_variants`` of the rows asked about.
        keep: Actions wanted per base row (0: none).
    """
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(scores.probability))]
    n_actions = len(variants.actions)
    rows = variants.rows
    if not len(rows) or not n_actions:
        return out
    probability = bundle.calibration(margins(bundle, variants.X)).reshape(len(rows), n_actions)
    gain = probability - scores.probability[rows][:, None]
    order = np.argsort(-gain, axis=1, kind="stable")
    picked: list[int] = []
    for k, row in enumerate(rows):
        best = order[k][gain[k, order[k]] > 0][: keep[row]]
        picked.extend(k * n_actions + int(a) for a in best)
    if not picked:
        return out
    chosen = np.asarray(picked, dtype=np.int64)
    base = rows[chosen // n_actions]
    full = bundle.score_matrix(
        variants.X[chosen],
        variants.regions[chosen],
        scores.lead_id[base],
        scores.as_of[base],
    )
    for v, (idx, row) in enumerate(zip(chosen, base, strict=True)):
        gained = float(full.probability[v] - scores.probability[row])
        if gained <= 0:  # the ranking pass and the full pass agree to rounding
            continue
        action = variants.actions[int(idx) % n_actions]
        out[int(row)].append(
            {
                "action": action.name,
                "probability": float(full.probability[v]),
                "score": int(full.score[v]),
                "mql": bool(full.mql[v]),
                "grade": str(full.grade[v]),
                "gain": gained,
                "sentence": sentence(
                    action.phrase,
                    (int(scores.score[row]), int(full.score[v])),
                    (float(scores.probability[row]), float(full.probability[v])),
                    (bool(scores.mql[row]), bool(full.mql[v])),
                ),
            }
        )
    return out


CHUNK_ROWS = 2048
"""Leads whose variants are built and ranked together: bounds the memory of a large batch
(every variant lead copies its lead's activity log) and keeps the passes vectorised."""


def lead_actions(
    bundle: ModelBundle,
    scores: Scores,
    keep: Sequence[int],
    arrays: LeadArrays,
    regions: np.ndarray,
) -> list[list[dict[str, Any]]] | None:
    """Next best actions of lead-form rows (``lead_variants``), or None when no row asked
    for any or the model has none.

    Args:
        bundle: The model.
        scores: The rows' scores (``ModelBundle.score_matrix`` or ``score``).
        keep: Actions wanted per row (0: none).
        arrays: The rows' ``LeadArrays`` (row ``i`` is snapshot ``i``).
        regions: Each row's region text.
    """
    ordered = by_lead_and_time(arrays)  # sorted once for every chunk
    return _in_chunks(
        bundle, scores, keep, lambda rows: lead_variants(bundle, ordered, rows, regions, scores.X)
    )


def feature_actions(
    bundle: ModelBundle, scores: Scores, keep: Sequence[int], regions: np.ndarray
) -> list[list[dict[str, Any]]] | None:
    """Next best actions of feature-form rows (``feature_variants``); see ``lead_actions``."""
    return _in_chunks(
        bundle, scores, keep, lambda rows: feature_variants(bundle, scores.X, rows, regions)
    )


def _in_chunks(
    bundle: ModelBundle,
    scores: Scores,
    keep: Sequence[int],
    variants_of: Callable[[np.ndarray], Variants],
) -> list[list[dict[str, Any]]] | None:
    """``next_best_actions`` of the rows that asked, ``CHUNK_ROWS`` leads at a time."""
    rows = wanted_rows(keep, plan_for(bundle))
    if not len(rows):
        return None
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(scores.probability))]
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        found = next_best_actions(bundle, scores, variants_of(chunk), keep)
        for row in chunk:
            out[row] = found[row]
    return out


def _percents(before: float, after: float) -> tuple[str, str] | None:
    """Two probabilities as percentages with enough digits (up to 2 decimals) to tell
    them apart; None when even those do not."""
    for digits in (1, 2):
        a, b = f"{100 * before:.{digits}f}%", f"{100 * after:.{digits}f}%"
        if a != b:
            return a, b
    return None


def sentence(
    phrase: str,
    score: tuple[int, int],
    probability: tuple[float, float],
    mql: tuple[bool, bool],
) -> str:
    """What an action would do, in one sentence for a rep.

    "A demo request now would raise the score from 41 to 78 and make it an MQL"; a rise
    under ``SMALL_GAIN`` points is said to barely change the score, and one that leaves the
    score where it is says by how much the chance to convert would move.

    Args:
        phrase: The action's phrase ("A demo request").
        score: The 0–100 score before and after.
        probability: The probability before and after.
        mql: The MQL flag before and after.
    """
    (s0, s1), (m0, m1) = score, mql
    becomes = not m0 and m1
    if s1 == s0:
        moved = _percents(*probability)
        text = f"{phrase} now would barely change the score (it stays at {s0}" + (
            f"; the chance to convert moves from {moved[0]} to {moved[1]})" if moved else ")"
        )
        return text + (", but it would make it an MQL." if becomes else ".")
    if s1 - s0 < SMALL_GAIN:
        text = f"{phrase} now would barely change the score (from {s0} to {s1})"
        return text + (", but it would make it an MQL." if becomes else ".")
    text = f"{phrase} now would raise the score from {s0} to {s1}"
    return text + (" and make it an MQL." if becomes else ".")
