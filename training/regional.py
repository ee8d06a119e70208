"""Serving a region its own model when its data earns one, and the pooled model with a
region offset otherwise (``train --per-region-model auto``).

The pooled tournament (``training.choice``) picks one model for every region. With
``auto``, each region with at least ``choice.MIN_REGION_CONVERSIONS`` conversions among
the evaluation rows has the candidates fitted again on its own rows only, with the same
scheme (cross-fitted, or trained on the training period and judged on the validation
period), so its own winner and the pooled model are judged on the same rows, neither
having trained on them. The region gets its own model only when its own winner's
cross-validated log loss (``choice.score``: cross-fitted Platt probabilities on the
region's rows) beats the pooled model's on those rows by more than ``choice.TOLERANCE``:
ties go to the pooled model, one model fewer to run and explain.

A region the pooled model serves may get an offset: a shift of its margin fitted on the
region's out-of-fold (or validation) margins by maximum a posteriori, a normal prior of
``OFFSET_PRIOR_SD`` log-odds centred on 0, so a region with little evidence is shrunk
toward no offset at all, kept only when it lowers the region's log loss *cross-validated
over its own rows* (fitted on the other folds, scored on the held one). Offsets are tried
only when the pooled model does not read the region feature (``reads_column``: its
margins do not move when the region does), which in practice means the points score
without a region rule. A learned pooled model (LightGBM, logistic regression, the blend)
has the region as a feature and has fitted its effect on the same rows; measured on the
simulator (``benchmarks/bench_regional.py``, ``docs/regional.md``), offsets on top of it
changed fresh-data log loss by noise only (better in some regions, worse in as many), so
they are not added there.

Calibration is shared: the bundle keeps the pooled model's calibration map, and each
region's own model is put onto the pooled margin's scale by an affine map
(``shift + scale · margin``, ``scale > 0``) fitted so that the shared calibration of the
mapped margins has the lowest log loss on the region's evaluation rows. An affine map
keeps the explanation exact (SHAP values scale, the base value moves) and the ranking
within the region; the shared map then turns every region's margins into probabilities
the same way, and the intervals keep the calibration's evidence. A calibration per region
would need a map per region fitted on that region's rows alone: the isotonic maps the
pooled model gets cannot be fitted reliably on a region's hundred-odd conversions, and
the affine alignment (two numbers) is the per-region Platt part of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from runtime.bundle import Calibration
from runtime.margin import MarginModel
from training import choice

OFFSET_PRIOR_SD = 0.5
"""Prior standard deviation of a region offset, in log-odds (a factor of e^0.5 ≈ 1.6 in
the odds at one standard deviation): regional conversion rates rarely differ more once
the features are accounted for, and a region with a handful of conversions stays near 0."""

OFFSET_LIMIT = 4.0
"""Largest offset tried, in log-odds."""

OFFSET_FOLDS = 5

MIN_OFFSET_CONVERSIONS = 2
"""Conversions (and non-conversions) a region needs before an offset is even tried."""

OWN = "own"
OFFSET = "offset"
POOLED = "pooled"


@dataclass(frozen=True)
class RegionServing:
    """Which model serves one region, with the numbers behind the decision.

    Attributes:
        region: The region ("" for leads without one).
        rows: Its evaluation rows.
        conversions: Conversions among them.
        served: ``own`` (its own model), ``offset`` (the pooled model shifted) or
            ``pooled`` (the pooled model unchanged).
        candidate: The candidate that scores its leads (its own winner, or the pooled one).
        pooled_score: The pooled model's score on the region's rows (None when not judged).
        own_scores: Its own candidates' scores on its rows (empty when none were fitted).
        scale: The affine map's slope (own model) or 1.
        shift: The affine map's intercept (own model) or the offset, in margin units.
        offset_logodds: The offset in log-odds (0 unless ``served == "offset"``).
        reason: The verdict in one sentence.
    """

    region: str
    rows: int
    conversions: int
    served: str
    candidate: str
    pooled_score: choice.Score | None = None
    own_scores: dict[str, choice.Score] = field(default_factory=dict)
    scale: float = 1.0
    shift: float = 0.0
    offset_logodds: float = 0.0
    reason: str = ""


def calibrated_log_loss(calibration: Calibration, raw: np.ndarray, y: np.ndarray) -> float:
    """Summed log loss of the shared calibration's probabilities."""
    p = np.clip(calibration(raw), 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).sum())


def margin_slope(raw: np.ndarray, y: np.ndarray) -> float:
    """Log-odds per unit of margin (a Platt fit's slope; 1 when it cannot be fitted)."""
    if len(np.unique(y)) < 2:
        return 1.0
    with threadpool_limits(limits=1, user_api="blas"):
        fit = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    slope = float(fit.coef_[0, 0])
    return slope if np.isfinite(slope) and slope > 1e-6 else 1.0


def align(
    calibration: Calibration,
    own_raw: np.ndarray,
    y: np.ndarray,
    pooled_raw: np.ndarray,
    pooled_y: np.ndarray,
) -> tuple[float, float]:
    """``(scale, shift)`` putting a region's own margins on the pooled margin's scale.

    Starts from matching the two Platt fits (the own model's on the region's rows, the
    pooled one's on all rows), then minimises the shared calibration's log loss on the
    region's rows over ``log(scale)`` and ``shift``.
    """
    own_slope, own_icpt = _platt(own_raw, y)
    pooled_slope, pooled_icpt = _platt(pooled_raw, pooled_y)
    start = np.array(
        [np.log(max(own_slope, 1e-6) / pooled_slope), (own_icpt - pooled_icpt) / pooled_slope]
    )

    def loss(theta: np.ndarray) -> float:
        return calibrated_log_loss(calibration, theta[1] + np.exp(theta[0]) * own_raw, y)

    best = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6})
    theta = best.x if best.fun <= loss(start) else start
    return float(np.exp(theta[0])), float(theta[1])


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with threadpool_limits(limits=1, user_api="blas"):
        fit = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    slope = float(fit.coef_[0, 0])
    return (slope if slope > 1e-6 else 1e-6), float(fit.intercept_[0])


def fit_offset(calibration: Calibration, raw: np.ndarray, y: np.ndarray, slope: float) -> float:
    """The region's offset in margin units: MAP under a N(0, ``OFFSET_PRIOR_SD``²) prior on
    the log-odds scale (``slope`` log-odds per margin unit)."""
    sd = OFFSET_PRIOR_SD / slope
    bound = OFFSET_LIMIT / slope

    def objective(delta: float) -> float:
        return calibrated_log_loss(calibration, raw + delta, y) + 0.5 * (delta / sd) ** 2

    found = minimize_scalar(objective, bounds=(-bound, bound), method="bounded")
    delta = float(found.x)
    return delta if objective(delta) < objective(0.0) else 0.0


def offset_cv_gain(
    calibration: Calibration, raw: np.ndarray, y: np.ndarray, slope: float, seed: int = 0
) -> float | None:
    """How much an offset lowers the region's log loss on held-out folds of its rows
    (mean per row; positive is better), or None with too few conversions to tell."""
    positives = int(y.sum())
    k = min(OFFSET_FOLDS, positives, len(y) - positives)
    if k < MIN_OFFSET_CONVERSIONS:
        return None
    with_offset = without = 0.0
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(raw.reshape(-1, 1), y)
    for fit, held in folds:
        delta = fit_offset(calibration, raw[fit], y[fit], slope)
        with_offset += calibrated_log_loss(calibration, raw[held] + delta, y[held])
        without += calibrated_log_loss(calibration, raw[held], y[held])
    return (without - with_offset) / len(y)


def reads_column(margin: MarginModel, X: np.ndarray, column: int, codes: Iterable[float]) -> bool:
    """Whether the margin changes with ``column`` on rows ``X`` (set to each code, and
    missing): a learned pooled model that reads the region has already fitted what an
    offset would add."""
    if len(X) == 0:
        return False
    base = margin.predict_raw(X)
    for code in [np.nan, *codes]:
        moved = X.copy()
        moved[:, column] = code
        if not np.allclose(margin.predict_raw(moved), base, rtol=0.0, atol=1e-9):
            return True
    return False


def decide_own(
    own_scores: Mapping[str, choice.Score], pooled_score: choice.Score
) -> tuple[str, bool]:
    """The region's own winner, and whether it beats the pooled model (ties to pooled)."""
    own = choice.choose(own_scores)
    wins = own_scores[own].log_loss < pooled_score.log_loss * (1 - choice.TOLERANCE)
    return own, wins


def plural(n: int, word: str) -> str:
    """``1 conversion``, ``2 conversions``."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def card_lines(serving: list[RegionServing]) -> list[str]:
    """Which model actually serves which region, and why (``training.regional``).

    Args:
        serving: One entry per region of the evaluation rows, largest first.
    """
    if not serving:
        return []
    from training.card import CANDIDATE_NAMES

    own = [s for s in serving if s.served == "own"]
    lines = [
        "## Model by region",
        "",
        f"Served per region (`--per-region-model auto`): a region with at least "
        f"{choice.MIN_REGION_CONVERSIONS} conversions among the rows the choice was made on has "
        "the candidates fitted again on its own rows, and is served its own winner only "
        f"when that beats the pooled model's cross-validated log loss on its rows by more "
        f"than {choice.TOLERANCE:.1%}; its margins are mapped onto the pooled margin's scale (an "
        "affine map) so the one calibration serves every region. Every other region is "
        "served by the pooled model; where the pooled model does not read the region (the "
        "points score), with a region offset fitted on its out-of-fold margins, shrunk "
        "toward 0, and kept only when it lowers the region's held-out log loss. Leads in a "
        "region unseen at training, or without one, get the pooled model.",
        "",
        f"This model serves {len(own)} region{'' if len(own) == 1 else 's'} with a model of "
        "its own"
        + (
            f" ({', '.join(s.region for s in own)}; the bundle's margin is regional)."
            if own
            else "."
        ),
        "",
        "| Region | Rows | Conversions | Served by | Pooled log loss | Own best log loss |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for s in serving:
        name = CANDIDATE_NAMES.get(s.candidate, s.candidate)
        served = {
            "own": f"{name} (its own)",
            "offset": f"{name} (pooled, offset {s.offset_logodds:+.3f} log-odds)",
        }.get(s.served, f"{name} (pooled)")
        pooled = f"{s.pooled_score.log_loss:.4f}" if s.pooled_score else "–"
        best = min(s.own_scores.values(), key=lambda x: x.log_loss) if s.own_scores else None
        own_text = f"{best.log_loss:.4f}" if best else "–"
        lines.append(
            f"| {s.region or '(no region)'} | {s.rows:,} | {s.conversions:,} | {served} | "
            f"{pooled} | {own_text} |"
        )
    lines += ["", *(f"- {s.reason}." for s in serving)]
    return [*lines, ""]
