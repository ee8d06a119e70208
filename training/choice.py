"""Choosing the registered model among the points score, LightGBM, logistic regression and
their blend.

Every candidate is judged on margins it did not train on: the validation period (large
data) or out-of-fold margins (cross-fitting, ``training.crossfit``). Margins of different
models live on different scales, so each is first recalibrated by a Platt map fitted
*across folds of the evaluation rows* (each row's probability comes from a map fitted on
the other rows); the log loss of those probabilities is the choice criterion, ROC AUC and
Brier score are reported beside it.

Ties go to the simpler model: a candidate must lower the log loss by more than
``TOLERANCE`` (relative) to beat a simpler one (points < logistic < LightGBM < blend),
because a difference that small is within the noise of the evaluation rows and the simpler
model is cheaper to run and easier to explain.

The points candidate is the hand-set points score (a dataset config's ``points`` rules, or
``training.baselines``' default points), with only its log-odds scale learned
(``runtime.points``). It is the simplest of all, so with little data, where the learned
models cannot show that they do better, a team still gets explained MQLs from the rules
it already trusts; once the data supports a learned model, that model wins by log loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

POINTS = "points"
LIGHTGBM = "lightgbm"
LOGISTIC = "logistic"
BLEND = "blend"
SIMPLICITY = (POINTS, LOGISTIC, LIGHTGBM, BLEND)
"""Candidates from simplest to most complex (the tie-break order)."""

LEARNED = (LOGISTIC, LIGHTGBM, BLEND)
"""Candidates learned from outcomes (everything but the hand-set points)."""

KIND = {POINTS: "points", LIGHTGBM: "tree", LOGISTIC: "linear", BLEND: "blend"}
"""The runtime margin kind (``runtime.margin``) of each candidate."""

TOLERANCE = 0.001
"""Relative log-loss gain a more complex candidate needs over a simpler one (0.1%)."""

SMALL_ADVANTAGE = 0.01
"""LightGBM's relative log-loss advantage over logistic below which the card calls it small."""

BLEND_WEIGHTS = tuple(np.round(np.arange(0.1, 0.91, 0.1), 2))
"""Weights of the tree margin tried for the blend."""

PLATT_FOLDS = 5


@dataclass(frozen=True)
class Score:
    """How well one candidate's margins predict the evaluation rows.

    Attributes:
        log_loss: Of cross-fitted Platt probabilities (the choice criterion).
        roc_auc: Of the margins.
        brier: Of the same probabilities.
    """

    log_loss: float
    roc_auc: float
    brier: float


def crossfitted_platt(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Probabilities from Platt maps each fitted on the other folds of these rows."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y)
    k = int(min(PLATT_FOLDS, y.sum(), len(y) - y.sum()))
    if k < 2:
        return np.full(len(y), float(np.clip(y.mean(), 1e-6, 1 - 1e-6)))
    out = np.empty(len(y), dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        for fit, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(raw, y):
            platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw[fit], y[fit])
            out[held] = platt.predict_proba(raw[held])[:, 1]
    return out


def score(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> Score:
    """The candidate's ``Score`` on evaluation rows."""
    p = np.clip(crossfitted_platt(raw, y, seed), 1e-7, 1 - 1e-7)
    return Score(
        float(log_loss(y, p, labels=[0, 1])),
        float(roc_auc_score(y, raw)),
        float(brier_score_loss(y, p)),
    )


def blend_weight(
    raw_tree: np.ndarray, raw_linear: np.ndarray, y: np.ndarray, seed: int = 0
) -> tuple[float, Score]:
    """The weight of the tree margin whose blend scores best.

    ``BLEND_WEIGHTS`` are shares of the two margins *after* scaling each to unit standard
    deviation on these rows, turned into weights on the raw margins: a logistic margin ten
    times wider than the trees' would otherwise drown them at every weight tried. The
    calibration that follows absorbs the overall scale.
    """
    sd_tree = float(np.std(raw_tree)) or 1.0
    sd_linear = float(np.std(raw_linear)) or 1.0
    best: tuple[float, Score] | None = None
    for share in BLEND_WEIGHTS:
        a, b = share / sd_tree, (1 - share) / sd_linear
        w = round(a / (a + b), 4)
        s = score(w * raw_tree + (1 - w) * raw_linear, y, seed)
        if best is None or s.log_loss < best[1].log_loss:
            best = (w, s)
    assert best is not None
    return best


def choose(scores: Mapping[str, Score], tolerance: float = TOLERANCE) -> str:
    """The candidate with the lowest log loss, ties (within ``tolerance``) to the simpler."""
    ordered = [name for name in SIMPLICITY if name in scores]
    if not ordered:
        raise ValueError("no candidates to choose from")
    chosen = ordered[0]
    for name in ordered[1:]:
        if scores[name].log_loss < scores[chosen].log_loss * (1 - tolerance):
            chosen = name
    return chosen


def explain_choice(chosen: str, scores: Mapping[str, Score], where: str) -> str:
    """One or two plain sentences: which candidate won, by how much, and what that means."""
    names = {
        POINTS: "the points score",
        LIGHTGBM: "LightGBM",
        LOGISTIC: "logistic regression",
        BLEND: "the blend",
    }
    best = scores[chosen]
    others = ", ".join(
        f"{names[n]} {scores[n].log_loss:.4f}" for n in SIMPLICITY if n in scores and n != chosen
    )
    text = (
        f"{names[chosen][0].upper() + names[chosen][1:]} was registered: it had the lowest "
        f"{where} log loss ({best.log_loss:.4f}; {others})"
    )
    lower = [n for n in scores if scores[n].log_loss < best.log_loss]
    if lower:
        text += f", within {TOLERANCE:.1%} of the best, so the simpler model was kept"
    text += "."
    if chosen == POINTS:
        text += (
            " No model learned from these outcomes beats the hand-set points yet, so the "
            "points serve, calibrated on the outcomes there are; leadscore retrain switches "
            "to a learned model once one beats them on the same held-out period."
        )
    if LIGHTGBM in scores and LOGISTIC in scores:
        gain = scores[LOGISTIC].log_loss - scores[LIGHTGBM].log_loss
        relative = gain / scores[LOGISTIC].log_loss
        auc = scores[LIGHTGBM].roc_auc - scores[LOGISTIC].roc_auc
        if relative <= 0:
            text += (
                f" LightGBM is no better than logistic regression here ({-gain:.4f} higher "
                f"log loss, ROC AUC {auc:+.3f}): the signal is close to additive in the "
                "features as encoded."
            )
        elif relative < SMALL_ADVANTAGE:
            text += (
                f" LightGBM's advantage over logistic regression is small ({gain:.4f} log "
                f"loss, {relative:.1%}; ROC AUC {auc:+.3f})."
            )
        else:
            text += (
                f" LightGBM beats logistic regression by {gain:.4f} log loss "
                f"({relative:.1%}; ROC AUC {auc:+.3f}): interactions or non-linear "
                "effects matter."
            )
    return text


MIN_REGION_CONVERSIONS = 100
"""Conversions a region needs among the evaluation rows for a choice of its own.

Below ``features.sufficiency.MIN_CONVERSIONS["train"]`` (180, where the simulator's learning
curves put a model within 0.02 AUC of its large-data AUC) on purpose: this is only where
trying a region's own model is worth its cost, since that model must then also beat the
pooled one on the region's cross-validated log loss to serve it (``training.regional``).
Near the market leaders' per-segment minimums (HubSpot ~100, Salesforce Einstein 120)."""


@dataclass(frozen=True)
class RegionChoice:
    """Which candidate serves one region, which would win on its own rows, and why.

    Attributes:
        region: The region ("" for leads without one).
        rows: Its evaluation rows.
        conversions: Conversions among them.
        serving: The candidate that scores its leads (today always the pooled winner:
            one model for every region, the region one of its features).
        own_best: The candidate with the lowest log loss on the region's own rows (None
            when the region has fewer than ``MIN_REGION_CONVERSIONS`` conversions).
        scores: Each candidate's score on the region's own rows (empty when too few).
        reason: The verdict in one sentence.
    """

    region: str
    rows: int
    conversions: int
    serving: str
    own_best: str | None
    scores: dict[str, Score]
    reason: str


def choose_by_region(
    eval_raw: Mapping[str, np.ndarray],
    y: np.ndarray,
    regions: np.ndarray,
    pooled: str,
    min_conversions: int = MIN_REGION_CONVERSIONS,
    seed: int = 0,
) -> list[RegionChoice]:
    """The tournament re-run on each region's own evaluation rows, largest region first.

    A region with at least ``min_conversions`` conversions gets its candidates scored on
    its own rows (the same cross-fitted Platt log loss and tie-break as the pooled
    choice); the others are left to the pooled model, which sees the region as a feature
    (a region offset). The pooled winner serves every region: the result says where a
    region's own rows would pick another candidate, the evidence a model per region needs.

    Args:
        eval_raw: Each candidate's margins on the evaluation rows.
        y: Their labels.
        regions: Their regions ("" when unknown).
        pooled: The candidate chosen on all rows.
        min_conversions: Conversions a region needs for a choice of its own.
        seed: Seed of the Platt folds.
    """
    y = np.asarray(y)
    regions = np.asarray(regions, dtype=object)
    out: list[RegionChoice] = []
    names, counts = np.unique(regions, return_counts=True)
    for region in [str(n) for _, n in sorted(zip(-counts, names, strict=True))]:
        mask = regions == region
        rows, conversions = int(mask.sum()), int(y[mask].sum())
        label = region or "(no region)"
        if conversions < min_conversions or conversions == rows:
            reason = (
                f"{label}: {_conversions(conversions)}, fewer than the {min_conversions} a "
                "choice of its own needs, so the pooled model serves it (the region is one "
                "of its features)"
            )
            out.append(RegionChoice(region, rows, conversions, pooled, None, {}, reason))
            continue
        scores = {name: score(raw[mask], y[mask], seed) for name, raw in eval_raw.items()}
        own = choose(scores)
        if own == pooled:
            reason = (
                f"{label}: {_conversions(conversions)}; on its own rows the pooled choice is "
                f"also the best ({scores[own].log_loss:.4f} log loss), so it serves it"
            )
        else:
            reason = (
                f"{label}: {_conversions(conversions)}; on its own rows {own} does better "
                f"({scores[own].log_loss:.4f} against {scores[pooled].log_loss:.4f} log "
                f"loss), but the bundle holds one pooled model for every region (train "
                "--per-region-model auto serves a region its own when it earns one)"
            )
        out.append(RegionChoice(region, rows, conversions, pooled, own, scores, reason))
    return out


def _conversions(n: int) -> str:
    return f"{n:,} conversion" + ("" if n == 1 else "s")
