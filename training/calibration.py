"""Fitting the margin → probability map on the calibration rows, stored as plain data.

Gradient boosting with early stopping ranks leads well but its sigmoid outputs drift
from observed conversion rates. The map is fitted on rows the trees have not memorised
(the validation period, or out-of-fold margins) and stored as numbers in JSON
(``runtime.bundle.Calibration``).

Every output must be backed by evidence. A probability of 0.01% or 99.99% is a claim no
block of a few dozen leads can support, so:

* ``isotonic`` pools adjacent pool-adjacent-violators blocks until each holds at least
  ``min_block_rows`` rows, and replaces each block's rate by its Beta-posterior mean
  under a prior centred on the rate of the block and its two neighbours
  (``PRIOR_ROWS`` pseudo-rows, and at least ``PRIOR_MIN_COUNT`` pseudo-conversions and
  pseudo-non-conversions). A block of ``n`` leads with no conversion therefore gives at
  least ``PRIOR_MIN_COUNT / (n + PRIOR_ROWS + PRIOR_MIN_COUNT)`` (``evidence_bound``):
  1.1% for 199 leads, so nothing below 0.1% or above 99% without a block of 200 leads.
  The map interpolates between block centres (the median margin of each block).
* ``platt`` (logistic on the margin) and ``beta`` (Kull et al. 2017: logistic on
  ``ln q`` and ``-ln(1 - q)`` of ``q = sigmoid(margin)``, both slopes kept ``>= 0``)
  are evaluated only on the margin range whose outputs stay within what the outermost
  evidence blocks could support (``evidence_bound`` of their sizes).
* Leads beyond the calibration range get the nearest supported value (plus a rise of
  a millionth, so they keep their order), never a clamp to 0 or 1.

``auto`` chooses among the three by K-fold cross-validated log loss on the calibration
rows, with the one-standard-error rule (the simplest candidate whose mean log loss is
within one standard error of the best: Platt, then beta, then isotonic), so a method is
only chosen for extra flexibility the data shows it needs.

Every map is non-decreasing in the margin: a calibration only restates the model's
ranking in probabilities, it must never turn it upside down. Isotonic blocks and the
constrained beta map are monotone by construction; a Platt fit is checked, because on a
small or odd calibration set its slope can come out negative.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import beta as beta_distribution
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import LeadscoreError
from runtime.bundle import Calibration

Method = Literal["auto", "isotonic", "platt", "beta", "none"]
METHODS: tuple[str, ...] = ("auto", "isotonic", "platt", "beta", "none")
CANDIDATES: tuple[str, ...] = ("platt", "beta", "isotonic")
"""What ``auto`` chooses among, simplest first (the order the one-SE rule prefers)."""

CV_FOLDS = 5
"""Folds of the cross-validation that chooses the method (fewer when the rarer class has
fewer rows)."""

MIN_BLOCK_ROWS = 50
"""The smallest isotonic block, in rows: below it one block's rate is mostly noise."""

MIN_BLOCK_SHARE = 0.02
"""Each isotonic block also holds at least this share of the calibration rows (at most
50 blocks), so large validation periods get blocks of hundreds of leads."""

PRIOR_ROWS = 25.0
"""Strength, in pseudo-rows, of the Beta prior each block's rate is shrunk with."""

PRIOR_MIN_COUNT = 2.5
"""Least pseudo-conversions and pseudo-non-conversions of that prior: what keeps a block
without a conversion (or without a miss) off 0 (or 1)."""

EVIDENCE_ROWS = 200
"""A probability below 0.1% or above 99% needs a block of at least this many leads;
``PRIOR_MIN_COUNT`` and ``PRIOR_ROWS`` are chosen so smaller blocks cannot give one."""

INTERVAL = 0.95
"""Coverage of the interval each probability carries."""

TIE_BREAK = 1e-6
"""Total rise beyond the outer isotonic knots, so leads past them keep their order."""

EXTEND = 50.0
"""How far (in raw margin) the outer isotonic knots reach beyond the outer block centres."""


class CalibrationError(LeadscoreError, ValueError):
    """The calibration cannot be fitted, or its fit would not be non-decreasing in the
    model's margin (it would invert the ranking). A ``ValueError`` too, as the checks of
    the inputs always were."""


@dataclass(frozen=True)
class CalibrationChoice:
    """The fitted map and how it was chosen.

    Attributes:
        calibration: The map stored in the bundle.
        requested: The method asked for (``auto`` included).
        fallback: Why the map is not the one ``requested`` would normally give (``auto``
            left out a candidate whose fit would not rise with the margin); None when it
            is. Recorded in the model's metadata and stated on its card.
        cv_log_loss: Cross-validated log loss of each candidate ``auto`` compared (empty
            for an explicit method).
        min_block_rows: The smallest isotonic block allowed on these rows.
        block_rows: Rows of each evidence block (the isotonic blocks on all calibration
            rows, lowest margin first), whichever method was chosen.
    """

    calibration: Calibration
    requested: Method
    fallback: str | None = None
    cv_log_loss: dict[str, float] = field(default_factory=dict)
    min_block_rows: int = 0
    block_rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class Blocks:
    """Isotonic evidence blocks, lowest margin first.

    Attributes:
        x: Median margin of each block (its knot).
        rows: Rows in each block.
        positives: Conversions in each block.
        alpha: Pseudo-conversions of each block's prior.
        beta: Pseudo-non-conversions of each block's prior.
    """

    x: np.ndarray
    rows: np.ndarray
    positives: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    @property
    def rate(self) -> np.ndarray:
        """Posterior-mean conversion rate of each block (strictly increasing)."""
        return (self.positives + self.alpha) / (self.rows + self.alpha + self.beta)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``INTERVAL`` equal-tailed Beta-posterior interval of each block's rate,
        widened if needed to hold the posterior mean (a very skewed posterior's mean can
        lie beyond a quantile)."""
        a = self.positives + self.alpha
        b = self.rows - self.positives + self.beta
        tail = (1.0 - INTERVAL) / 2
        low = beta_distribution.ppf(tail, a, b)
        high = beta_distribution.ppf(1.0 - tail, a, b)
        return np.minimum(low, self.rate), np.maximum(high, self.rate)


def min_block_rows(n: int) -> int:
    """The smallest isotonic block on ``n`` calibration rows."""
    return max(MIN_BLOCK_ROWS, math.ceil(MIN_BLOCK_SHARE * n))


def evidence_bound(rows: int) -> float:
    """The least probability a block of ``rows`` leads with no conversion can give (and
    the least ``1 - p`` one with only conversions can): the prior's minimum pseudo-count
    over the most pseudo-rows it can add."""
    return PRIOR_MIN_COUNT / (rows + PRIOR_ROWS + PRIOR_MIN_COUNT)


def evidence_blocks(raw: np.ndarray, y: np.ndarray, min_rows: int | None = None) -> Blocks:
    """Pool-adjacent-violators blocks with a minimum size, shrunk toward their neighbours.

    Steps: group equal margins (a margin is never split between blocks); pool adjacent
    violators so the rates strictly rise; merge each block under ``min_rows`` with the
    neighbour whose rate is nearer (merging neighbours keeps the rates rising); then
    shrink every rate with its Beta prior and merge again wherever shrinkage made two
    neighbours equal or out of order, until the shrunk rates strictly rise.

    Args:
        raw: Margins of the calibration rows.
        y: Their 0/1 labels.
        min_rows: Smallest block (default ``min_block_rows(len(raw))``; capped at the
            number of rows).
    """
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    limit = min(min_block_rows(raw.size) if min_rows is None else min_rows, raw.size)
    values, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y, minlength=values.size)
    groups = _pool_violators(counts.astype(np.float64), sums)
    groups = _merge_small(groups, limit)
    while True:
        blocks = _shrunk(groups, values, counts)
        rate = blocks.rate
        order = np.flatnonzero(np.diff(rate) <= 0)
        if order.size == 0:
            return blocks
        j = int(order[0])
        groups = [*groups[:j], _join(groups[j], groups[j + 1]), *groups[j + 2 :]]


Group = tuple[int, int, float, float]
"""A block as (first unique margin, one past its last, rows, positives)."""


def _pool_violators(counts: np.ndarray, sums: np.ndarray) -> list[Group]:
    """Pool adjacent groups until the rates strictly rise (ties are pooled too)."""
    stack: list[Group] = []
    for i in range(counts.size):
        block: Group = (i, i + 1, float(counts[i]), float(sums[i]))
        while stack and stack[-1][3] * block[2] >= block[3] * stack[-1][2]:
            block = _join(stack.pop(), block)
        stack.append(block)
    return stack


def _join(left: Group, right: Group) -> Group:
    """Two adjacent blocks as one."""
    return (left[0], right[1], left[2] + right[2], left[3] + right[3])


def _merge_small(groups: list[Group], limit: int) -> list[Group]:
    """Merge the smallest block under ``limit`` rows into its nearer-rate neighbour until
    every block holds ``limit`` rows (or one block is left)."""
    groups = list(groups)
    while len(groups) > 1:
        sizes = [g[2] for g in groups]
        j = int(np.argmin(sizes))
        if sizes[j] >= limit:
            break
        if j == 0:
            k = 1
        elif j == len(groups) - 1:
            k = j - 1
        else:
            rate = groups[j][3] / groups[j][2]
            below = rate - groups[j - 1][3] / groups[j - 1][2]
            above = groups[j + 1][3] / groups[j + 1][2] - rate
            k = j - 1 if below <= above else j + 1
        lo, hi = min(j, k), max(j, k)
        groups = [*groups[:lo], _join(groups[lo], groups[hi]), *groups[hi + 1 :]]
    return groups


def _shrunk(groups: list[Group], values: np.ndarray, counts: np.ndarray) -> Blocks:
    """The blocks with their knots and Beta priors (centred on the pooled rate of the
    block and its neighbours)."""
    rows = np.array([g[2] for g in groups])
    positives = np.array([g[3] for g in groups])
    padded_rows = np.r_[0.0, rows, 0.0]
    padded_pos = np.r_[0.0, positives, 0.0]
    local = (padded_pos[:-2] + padded_pos[1:-1] + padded_pos[2:]) / (
        padded_rows[:-2] + padded_rows[1:-1] + padded_rows[2:]
    )
    alpha = np.maximum(PRIOR_ROWS * local, PRIOR_MIN_COUNT)
    beta = np.maximum(PRIOR_ROWS * (1.0 - local), PRIOR_MIN_COUNT)
    x = np.array([_weighted_median(values[g[0] : g[1]], counts[g[0] : g[1]]) for g in groups])
    return Blocks(x, rows, positives, alpha, beta)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The median of ``values`` repeated ``weights`` times (the lower one on a tie)."""
    cumulative = np.cumsum(weights)
    return float(values[int(np.searchsorted(cumulative, cumulative[-1] / 2))])


def fit_isotonic(raw: np.ndarray, y: np.ndarray, min_rows: int | None = None) -> Calibration:
    """Isotonic regression with a minimum block size and shrunk rates, kept as knots.

    One knot per evidence block (``evidence_blocks``) at its median margin, holding the
    block's posterior-mean rate, its ``INTERVAL`` interval, rows and conversions; the map
    interpolates between knots, so it strictly rises across the calibration range and
    keeps the model's ranking there. Two outer knots, ``EXTEND`` margin units beyond the
    outer blocks, rise by ``TIE_BREAK / 2`` each: leads beyond get the outer block's value
    (the nearest supported one) and still keep their order.
    """
    blocks = evidence_blocks(raw, y, min_rows)
    p = blocks.rate
    low, high = blocks.interval()
    x = np.r_[blocks.x[0] - EXTEND, blocks.x, blocks.x[-1] + EXTEND]
    p = np.r_[p[0] - TIE_BREAK / 2, p, p[-1] + TIE_BREAK / 2]
    low = np.r_[low[0], low, low[-1]]
    high = np.r_[high[0], high, high[-1]]
    rows = np.r_[0, blocks.rows, 0].astype(int)
    positives = np.r_[0, blocks.positives, 0].astype(int)
    return Calibration(
        "isotonic",
        tuple(x.tolist()),
        tuple(p.tolist()),
        low=tuple(np.minimum(low, p).tolist()),
        high=tuple(np.maximum(high, p).tolist()),
        rows=tuple(rows.tolist()),
        positives=tuple(positives.tolist()),
    )


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling: a logistic regression of the label on the raw margin, used on the
    margin range the evidence supports (``_supported``).

    Raises:
        CalibrationError: the fitted slope is not positive, so the probability would
            not rise with the margin (see ``check_platt``).
    """
    calibration = _platt(raw, y)
    check_platt(calibration, np.asarray(y))
    return _supported(calibration, raw, y)


def _platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """The Platt fit itself, unchecked and unbounded."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(np.asarray(raw, dtype=np.float64).reshape(-1, 1), y)
    return Calibration("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def check_platt(calibration: Calibration, y: np.ndarray) -> None:
    """Refuse a Platt map whose slope is not positive.

    ``sigmoid(a * margin + b)`` falls as the margin rises when ``a < 0``: leads the model
    ranks highest would get the lowest probabilities, and the MQL threshold, grades and
    scores would follow. A slope of exactly 0 gives every lead the same probability,
    which throws the ranking away. Either means the margin does not rank the validation
    period the way it ranks training: the calibration is not the place to hide that.

    Raises:
        CalibrationError: naming the method, the slope and what to do.
    """
    if calibration.a > 0:
        return
    raise CalibrationError(
        f"platt calibration refused: its fitted slope is {calibration.a:.3g} on "
        f"{len(y):,} validation rows with {int(np.sum(y)):,} conversions, so the calibrated "
        "probability would not rise with the model's margin and the ranking would be "
        "inverted or lost. Train with --calibration isotonic, auto (which falls back to "
        "isotonic) or none; a negative slope also means the model ranks the validation "
        "period backwards: check the labels and the split"
    )


def fit_beta(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Beta calibration (Kull, Silva Filho and Flach 2017), used on the supported range.

    Raises:
        CalibrationError: neither slope comes out positive, so the map would not rise
            with the margin.
    """
    calibration = _beta(raw, y)
    check_beta(calibration, np.asarray(y))
    return _supported(calibration, raw, y)


def _beta_design(raw: np.ndarray) -> np.ndarray:
    """``ln q`` and ``-ln(1 - q)`` of ``q = sigmoid(raw)``, computed stably."""
    raw = np.asarray(raw, dtype=np.float64)
    return np.column_stack([-np.logaddexp(0.0, -raw), np.logaddexp(0.0, raw)])


def _beta(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """The beta fit with its monotonicity constraint, unbounded.

    ``logit p = c + a ln q - b ln(1 - q)`` rises with the margin when ``a, b >= 0``. As in
    the authors' reference implementation, a negative coefficient drops its regressor and
    the fit is repeated on the other; when both would be dropped the map is flat
    (``a = b = 0``), which ``check_beta`` refuses.
    """
    design = _beta_design(raw)
    active = [0, 1]
    while active:
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(design[:, active], y)
        coefs = lr.coef_[0]
        if np.all(coefs >= 0):
            ab = [0.0, 0.0]
            for column, value in zip(active, coefs, strict=True):
                ab[column] = float(value)
            return Calibration("beta", a=ab[0], b=ab[1], c=float(lr.intercept_[0]))
        active = [column for column, value in zip(active, coefs, strict=True) if value >= 0]
    rate = float(np.clip(np.mean(y), 1e-12, 1 - 1e-12))
    return Calibration("beta", a=0.0, b=0.0, c=math.log(rate / (1 - rate)))


def check_beta(calibration: Calibration, y: np.ndarray) -> None:
    """Refuse a flat beta map (both slopes 0): it would throw the ranking away.

    Raises:
        CalibrationError: naming the method and what to do.
    """
    if calibration.a > 0 or calibration.b > 0:
        return
    raise CalibrationError(
        f"beta calibration refused: on {len(y):,} validation rows with "
        f"{int(np.sum(y)):,} conversions neither of its slopes comes out positive, so the "
        "calibrated probability would not rise with the model's margin. Train with "
        "--calibration isotonic, auto or none; check the labels and the split"
    )


def _supported(calibration: Calibration, raw: np.ndarray, y: np.ndarray) -> Calibration:
    """A parametric map restricted to the margins its evidence supports, with the
    covariance of its coefficients for the delta-method interval.

    The range is the calibration rows' margins, narrowed where the curve would go below
    (above) what the lowest (highest) evidence block could support even with no
    conversion (no miss) among its leads (``evidence_bound`` of its size).
    """
    raw = np.asarray(raw, dtype=np.float64)
    blocks = evidence_blocks(raw, y)
    floor = evidence_bound(int(blocks.rows[0]))
    ceiling = 1.0 - evidence_bound(int(blocks.rows[-1]))
    lo, hi = float(raw.min()), float(raw.max())
    f_lo, f_hi = calibration(np.array([lo, hi]))
    new_lo = lo if f_lo >= floor else hi if f_hi <= floor else _crossing(calibration, floor, lo, hi)
    new_hi = (
        hi
        if f_hi <= ceiling
        else lo
        if f_lo >= ceiling
        else _crossing(calibration, ceiling, lo, hi)
    )
    lo, hi = new_lo, max(new_lo, new_hi)
    return Calibration(
        calibration.method,
        a=calibration.a,
        b=calibration.b,
        c=calibration.c,
        cov=_covariance(calibration, raw),
        lo=lo,
        hi=hi,
    )


def _crossing(calibration: Calibration, target: float, lo: float, hi: float) -> float:
    """The margin in ``[lo, hi]`` where the unbounded, rising map reaches ``target``
    (bisection; the map is below ``target`` at ``lo`` and above it at ``hi``)."""
    for _ in range(80):
        mid = (lo + hi) / 2
        if calibration(np.array([mid]))[0] < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _covariance(calibration: Calibration, raw: np.ndarray) -> tuple[float, ...]:
    """Inverse Fisher information of the coefficients at the fitted map (the regressors
    a dropped beta slope no longer uses get zero variance)."""
    z = calibration._design(raw)
    keep = np.ones(z.shape[1], dtype=bool)
    if calibration.method == "beta":
        keep[:2] = [calibration.a > 0, calibration.b > 0]
    p = calibration(raw)
    weights = p * (1.0 - p)
    info = (z[:, keep] * weights[:, None]).T @ z[:, keep]
    cov = np.zeros((z.shape[1], z.shape[1]))
    cov[np.ix_(keep, keep)] = np.linalg.pinv(info)
    return tuple(cov.ravel().tolist())


def _fit(method: str, raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Fit one explicit method (checked)."""
    if method == "isotonic":
        return fit_isotonic(raw, y)
    if method == "platt":
        return fit_platt(raw, y)
    return fit_beta(raw, y)


def _unchecked(method: str, raw: np.ndarray, y: np.ndarray) -> Calibration:
    """One method's map as cross-validation scores it: fitted as it would be, without the
    refusal of a fold whose slope comes out wrong (the loss says how bad that is)."""
    if method == "isotonic":
        return fit_isotonic(raw, y)
    calibration = _platt(raw, y) if method == "platt" else _beta(raw, y)
    return _supported(calibration, raw, y)


def cross_validated_losses(
    raw: np.ndarray, y: np.ndarray, methods: tuple[str, ...], folds: int = CV_FOLDS
) -> dict[str, np.ndarray]:
    """Held-out log loss of every row under each method, from stratified K-fold fits.

    Args:
        raw: Margins of the calibration rows.
        y: Their 0/1 labels (both classes, at least 2 rows of each).
        methods: Candidates to score.
        folds: Folds wanted; fewer when the rarer class has fewer rows.
    """
    k = min(folds, int(min(np.sum(y), np.sum(1 - y))))
    losses = {m: np.zeros(raw.size) for m in methods}
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    for fit_rows, held in splitter.split(raw.reshape(-1, 1), y):
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # separable folds: lbfgs may not converge
                p = _unchecked(method, raw[fit_rows], y[fit_rows])(raw[held])
            p = np.clip(p, 1e-15, 1 - 1e-15)
            losses[method][held] = -(y[held] * np.log(p) + (1 - y[held]) * np.log(1 - p))
    return losses


def one_standard_error_choice(losses: dict[str, np.ndarray]) -> str:
    """The simplest candidate (in ``CANDIDATES`` order) whose mean held-out loss is within
    one standard error (of its paired difference with the best) of the best mean."""
    best = min(losses, key=lambda m: float(losses[m].mean()))
    for method in CANDIDATES:
        if method not in losses:
            continue
        difference = losses[method] - losses[best]
        error = (
            float(difference.std(ddof=1) / math.sqrt(difference.size))
            if difference.size > 1
            else 0.0
        )
        if float(difference.mean()) <= error:
            return method
    return best


def choose_calibration(
    raw: np.ndarray, y: np.ndarray, method: Method = "auto"
) -> CalibrationChoice:
    """Fit the calibration map on calibration margins and labels, saying how it was chosen.

    Args:
        raw: Raw margins of the calibration rows (validation period or out-of-fold).
        y: Their 0/1 labels.
        method: ``isotonic``, ``platt``, ``beta``, ``none`` (plain sigmoid) or ``auto``
            (the candidate with the best cross-validated log loss, one-SE rule; a
            candidate whose fit would not rise with the margin is left out, and said so;
            with fewer than 2 rows of the rarer class no fold can be scored, and the
            evidence-backed isotonic map is fitted, with ``cv_log_loss`` left empty).

    Raises:
        CalibrationError: on an unknown method, labels of a single class, or an explicit
            ``platt``/``beta`` whose fit would invert or flatten the ranking.
    """
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y)
    if method not in METHODS:
        raise CalibrationError(
            f"unknown calibration method {method!r}: use auto, isotonic, platt, beta or none"
        )
    if method == "none":
        return CalibrationChoice(Calibration("none"), method)
    if len(np.unique(y)) < 2:
        raise CalibrationError("cannot calibrate: the validation period has a single class")
    limit = min(min_block_rows(raw.size), raw.size)
    evidence = tuple(int(n) for n in evidence_blocks(raw, y, limit).rows)
    if method != "auto":
        return CalibrationChoice(_fit(method, raw, y), method, None, {}, limit, evidence)
    fitted: dict[str, Calibration] = {}
    refused: list[str] = []
    for candidate in CANDIDATES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fitted[candidate] = _fit(candidate, raw, y)
            except CalibrationError:
                refused.append(_refusal(candidate, raw, y))
    if int(min(np.sum(y), np.sum(1 - y))) >= 2 and len(fitted) > 1:
        losses = cross_validated_losses(raw, y, tuple(fitted))
        chosen = one_standard_error_choice(losses)
        scores = {m: float(v.mean()) for m, v in losses.items()}
    else:
        chosen = "isotonic"
        scores = {}
    fallback = None
    if refused:
        fallback = (
            "auto left out "
            + "; ".join(refused)
            + f", so {chosen} was fitted instead"
            + (" (chosen by cross-validated log loss among the rest)" if len(fitted) > 1 else "")
        )
    return CalibrationChoice(fitted[chosen], method, fallback, scores, limit, evidence)


def _refusal(method: str, raw: np.ndarray, y: np.ndarray) -> str:
    """Why ``auto`` left a candidate out, for the model's metadata and card."""
    if method == "platt":
        return (
            f"platt (its fitted slope was {_platt(raw, y).a:.3g}: the probability would not "
            "rise with the model's margin)"
        )
    return "beta (neither slope came out positive: the probability would not rise with the margin)"


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: Method = "auto") -> Calibration:
    """The calibration map alone (see ``choose_calibration``).

    Raises:
        CalibrationError: as ``choose_calibration``.
    """
    return choose_calibration(raw, y, method).calibration
