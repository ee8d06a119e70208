"""Exact behaviour of fitting the margin → probability map (``training.calibration``).

Small inputs whose evidence blocks can be written down, so the pooling, the minimum block
size, the Beta shrinkage, the outer knots and the evidence bound are each pinned to their
documented values (fast tests that ``make mutation`` runs against the calibration module).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from training.calibration import (
    CANDIDATES,
    CV_FOLDS,
    EVIDENCE_ROWS,
    EXTEND,
    INTERVAL,
    MIN_BLOCK_ROWS,
    MIN_BLOCK_SHARE,
    PRIOR_MIN_COUNT,
    PRIOR_ROWS,
    TIE_BREAK,
    evidence_blocks,
    evidence_bound,
    fit_calibration,
    fit_isotonic,
    min_block_rows,
)

RAW = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
Y = np.array([0, 0, 1, 0, 1, 1, 1, 1])


def test_constants_are_the_documented_ones():
    assert CANDIDATES == ("platt", "beta", "isotonic")  # simplest first
    assert CV_FOLDS == 5
    assert MIN_BLOCK_ROWS == 50
    assert MIN_BLOCK_SHARE == 0.02
    assert PRIOR_ROWS == 25.0
    assert PRIOR_MIN_COUNT == 2.5
    assert EVIDENCE_ROWS == 200
    assert INTERVAL == 0.95
    assert TIE_BREAK == 1e-6
    assert EXTEND == 50.0


def test_the_prior_keeps_blocks_under_200_leads_between_a_tenth_of_a_percent_and_99():
    assert evidence_bound(EVIDENCE_ROWS - 1) == pytest.approx(2.5 / (199 + 25 + 2.5))
    assert evidence_bound(EVIDENCE_ROWS - 1) > 0.01  # so p > 0.1% and p < 99%
    assert evidence_bound(1000) == pytest.approx(2.5 / 1027.5)


def test_minimum_block_size_is_50_rows_or_2_percent():
    assert min_block_rows(10) == 50
    assert min_block_rows(2500) == 50
    assert min_block_rows(2501) == 51
    assert min_block_rows(20_000) == 400


def _posterior(k: float, n: float, local: float) -> float:
    alpha = max(PRIOR_ROWS * local, PRIOR_MIN_COUNT)
    beta = max(PRIOR_ROWS * (1 - local), PRIOR_MIN_COUNT)
    return (k + alpha) / (n + alpha + beta)


def test_blocks_are_pooled_violators_shrunk_toward_their_neighbours():
    # Pooled steps: 0/2 on margins {0, 1}, 1/2 on {2, 3}, 4/4 on {4..7}.
    blocks = evidence_blocks(RAW, Y, min_rows=2)
    assert blocks.rows.tolist() == [2, 2, 4]
    assert blocks.positives.tolist() == [0, 1, 4]
    assert blocks.x.tolist() == [0.0, 2.0, 5.0]  # median margin (the lower on a tie)
    expected = [
        _posterior(0, 2, 1 / 4),  # local rate of blocks 0-1: 1 of 4
        _posterior(1, 2, 5 / 8),  # blocks 0-2: 5 of 8
        _posterior(4, 4, 5 / 6),  # blocks 1-2: 5 of 6
    ]
    assert blocks.rate == pytest.approx(expected, abs=1e-15)


def test_isotonic_knots_are_the_block_centres_plus_outer_knots():
    calibration = fit_isotonic(RAW, Y, min_rows=2)
    rate = evidence_blocks(RAW, Y, min_rows=2).rate
    assert calibration.method == "isotonic"
    assert calibration.x == (-50.0, 0.0, 2.0, 5.0, 55.0)
    p = np.array(calibration.y)
    assert p[1:-1] == pytest.approx(rate, abs=1e-15)
    assert p[0] == pytest.approx(rate[0] - TIE_BREAK / 2, abs=1e-18)
    assert p[-1] == pytest.approx(rate[-1] + TIE_BREAK / 2, abs=1e-15)
    assert np.all(np.diff(p) > 0)  # strictly increasing: no two leads tie
    assert calibration.rows == (0, 2, 2, 4, 0) and calibration.positives == (0, 0, 1, 4, 0)
    assert isinstance(calibration.x, tuple) and isinstance(calibration.y, tuple)
    low, high = np.array(calibration.low), np.array(calibration.high)
    assert np.all(low <= p) and np.all(p <= high)


def test_a_small_block_merges_into_the_neighbour_with_the_nearer_rate():
    raw = np.arange(11.0)
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    # PAV: 0/4, 2/3 (margins 4-6), 4/4: the small middle block is nearer the top one.
    assert evidence_blocks(raw, y, min_rows=1).rows.tolist() == [4, 3, 4]
    merged = evidence_blocks(raw, y, min_rows=4)
    assert merged.rows.tolist() == [4, 7]
    assert merged.positives.tolist() == [0, 6]
    lower = np.array([0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1])  # middle 1/3: nearer the bottom
    assert evidence_blocks(raw, lower, min_rows=4).rows.tolist() == [7, 4]


def test_shrinkage_that_would_break_the_order_pools_the_blocks_again():
    # A small block just above a large one: shrunk toward a high local rate it stays
    # above; the pooled rates are strictly increasing in every case.
    rng = np.random.default_rng(0)
    raw = rng.normal(size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * raw))).astype(int)
    for min_rows in (1, 10, 60, 500):
        blocks = evidence_blocks(raw, y, min_rows=min_rows)
        assert np.all(np.diff(blocks.rate) > 0)
        assert np.all(np.diff(blocks.x) > 0)
        assert blocks.rows.min() >= min_rows
        assert blocks.rows.sum() == 3000 and blocks.positives.sum() == y.sum()


def test_isotonic_probabilities_beyond_the_blocks_are_the_nearest_block_values():
    calibration = fit_calibration(RAW, Y, "isotonic")  # 8 rows: one block of 5/8 after all
    p = calibration(np.array([-100.0, -60.0, -10.0, 0.0, 3.5, 7.0, 20.0, 60.0, 70.0]))
    assert np.all(np.diff(p) >= 0)
    assert p[0] == p[1] and p[-1] == p[-2]  # beyond the outer knots: flat
    rate = (5 + 25 * 0.625) / (8 + 25)  # one block, prior centred on its own rate
    assert p == pytest.approx(rate, abs=TIE_BREAK)
    assert np.all((p > 0) & (p < 1))


def test_isotonic_on_two_distinct_margins_keeps_both():
    calibration = fit_isotonic(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 1, 1, 1]), 1)
    assert calibration.method == "isotonic"
    assert calibration.x == (-50.0, 0.0, 1.0, 51.0)
    first = _posterior(1, 2, 0.75)
    second = _posterior(2, 2, 0.75)
    assert calibration(np.array([0.0, 1.0])) == pytest.approx([first, second], abs=1e-12)


def test_isotonic_on_a_single_margin_gives_the_conversion_rate_there():
    raw = np.ones(10)
    y = np.array([0, 1] * 5)
    calibration = fit_isotonic(raw, y)
    assert calibration.method != "none"
    assert calibration(np.array([1.0])) == pytest.approx([0.5], abs=1e-12)
    p = calibration(np.array([-5.0, 0.0, 1.0, 2.0, 5.0]))
    assert np.all(np.diff(p) >= -1e-9)  # never decreasing in the margin


def test_each_method_gives_its_own_map():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=400)
    y = (rng.random(400) < 1 / (1 + np.exp(-2 * raw))).astype(int)
    assert fit_calibration(raw, y, "isotonic") == fit_isotonic(raw, y)
    platt = fit_calibration(raw[:300], y[:300], "platt")
    assert platt.method == "platt" and platt.x == () and platt.y == ()
    assert platt.a > 0  # conversions rise with the margin
    assert type(platt.a) is float and type(platt.b) is float
    beta = fit_calibration(raw, y, "beta")
    assert beta.method == "beta" and beta.a >= 0 and beta.b >= 0 and beta.a + beta.b > 0
    assert fit_calibration(raw, y, "none").method == "none"
    assert fit_calibration([0.0, 1.0], [0, 1], "none") == fit_calibration(raw, y, "none")


def test_platt_fits_the_logistic_curve_of_the_data():
    rng = np.random.default_rng(3)
    raw = rng.normal(0.0, 1.5, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(0.8 * raw - 0.4)))).astype(int)
    platt = fit_calibration(raw, y, "platt")
    assert platt.a == pytest.approx(0.8, abs=0.08)
    assert platt.b == pytest.approx(-0.4, abs=0.08)
    p = platt(raw)
    assert p.mean() == pytest.approx(y.mean(), abs=0.005)
    assert (platt.lo, platt.hi) == (raw.min(), raw.max())  # no extreme: the whole range


@pytest.mark.parametrize("method", ["auto", "isotonic", "platt", "beta"])
def test_a_single_class_cannot_be_calibrated(method):
    message = "cannot calibrate: the validation period has a single class"
    for y in (np.zeros(8), np.ones(8)):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            fit_calibration(RAW, y, method)


def test_unknown_method_is_named():
    message = "unknown calibration method 'sigmoid': use auto, isotonic, platt, beta or none"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_calibration(RAW, Y, "sigmoid")  # type: ignore[arg-type]


def test_isotonic_is_shift_invariant():
    shifted = fit_isotonic(RAW + 10.0, Y, min_rows=2)
    x, p = np.array(shifted.x), np.array(shifted.y)
    assert x.tolist() == [-40.0, 10.0, 12.0, 15.0, 65.0]
    assert np.array(fit_isotonic(RAW, Y, min_rows=2).y) == pytest.approx(p, abs=1e-15)


def test_platt_is_the_unpenalised_maximum_likelihood_fit():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    raw = rng.normal(0.0, 1.0, 60)
    y = (rng.random(60) < 1 / (1 + np.exp(-(3.0 * raw)))).astype(int)
    mle = LogisticRegression(penalty=None, max_iter=10_000).fit(raw.reshape(-1, 1), y)
    platt = fit_calibration(raw, y, "platt")
    assert platt.a == pytest.approx(mle.coef_[0, 0], rel=1e-3)
    assert platt.b == pytest.approx(mle.intercept_[0], abs=1e-3)


def test_beta_is_the_maximum_likelihood_fit_on_log_q_and_log_one_minus_q():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(6)
    raw = rng.normal(-1.0, 1.5, 4000)
    q = 1 / (1 + np.exp(-raw))
    y = (
        rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2.0 * np.log(q) - 0.3 * np.log(1 - q))))
    ).astype(int)
    design = np.column_stack([np.log(q), -np.log(1 - q)])
    mle = LogisticRegression(penalty=None, max_iter=10_000).fit(design, y)
    beta = fit_calibration(raw, y, "beta")
    assert (beta.a, beta.b) == pytest.approx(tuple(mle.coef_[0]), rel=1e-3)
    assert beta.c == pytest.approx(mle.intercept_[0], abs=1e-3)
    assert beta.a == pytest.approx(2.0, abs=0.3) and beta.b == pytest.approx(0.3, abs=0.2)
