"""Exact behaviour of fitting the margin → probability map (``training.calibration``).

Small inputs whose isotonic fit can be written down, so the tie-break ramp, the outer
knots, the probability floor and the ``auto`` switch are each pinned to their documented
values (fast tests that ``make mutation`` runs against the calibration module).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from training.calibration import (
    EXTEND,
    MIN_POSITIVES_FOR_ISOTONIC,
    PROBABILITY_FLOOR,
    TIE_BREAK,
    fit_calibration,
    fit_isotonic,
)

RAW = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
Y = np.array([0, 0, 1, 0, 1, 1, 1, 1])


def test_constants_are_the_documented_ones():
    assert MIN_POSITIVES_FOR_ISOTONIC == 100
    assert TIE_BREAK == 1e-6
    assert EXTEND == 50.0
    assert PROBABILITY_FLOOR == 1e-4


def test_isotonic_knots_are_the_fitted_steps_plus_a_tiny_ramp_and_outer_knots():
    calibration = fit_isotonic(RAW, Y)
    assert calibration.method == "isotonic"
    x, p = np.array(calibration.x), np.array(calibration.y)
    # Outer knots EXTEND beyond the validation range, then the isotonic thresholds.
    assert x[0] == -50.0 and x[-1] == 57.0
    assert x[1] == 0.0 and x[-2] == 7.0
    assert np.all(np.diff(x) > 0)
    # The pooled steps: 0 on [0, 1], 0.5 on [2, 3], 1 on [4, 7] (floored and capped).
    inner = p[1:-1]
    ramp = (x[1:-1] - 0.0) / 7.0 * TIE_BREAK
    step = np.interp(x[1:-1], [0, 1, 2, 3, 4, 7], [0, 0, 0.5, 0.5, 1, 1])
    expected = np.clip(step, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR) * (1 - TIE_BREAK) + ramp
    assert inner == pytest.approx(expected, abs=1e-15)
    assert p[1] == pytest.approx(PROBABILITY_FLOOR * (1 - TIE_BREAK), abs=1e-18)
    assert p[-2] == pytest.approx((1 - PROBABILITY_FLOOR) * (1 - TIE_BREAK) + TIE_BREAK, abs=1e-15)
    assert p[0] == pytest.approx(p[1] - TIE_BREAK / 2, abs=1e-18)
    assert p[-1] == pytest.approx(p[-2] + TIE_BREAK / 2, abs=1e-15)
    assert np.all(np.diff(p) > 0)  # strictly increasing: no two leads tie
    assert isinstance(calibration.x, tuple) and isinstance(calibration.y, tuple)


def test_isotonic_probabilities_stay_inside_the_floor_and_keep_the_ranking():
    calibration = fit_calibration(RAW, Y, "isotonic")
    p = calibration(np.array([-100.0, -60.0, -10.0, 0.0, 0.5, 7.0, 20.0, 60.0, 70.0]))
    assert np.all(np.diff(p[1:-1]) > 0)  # ranking kept within EXTEND of the data
    assert p.min() > 0 and p.max() < 1
    assert p[0] == p[1] and p[-1] == p[-2]  # beyond the outer knots: clamped
    assert calibration(np.array([1.0]))[0] == pytest.approx(PROBABILITY_FLOOR, abs=2e-6)
    assert calibration(np.array([2.5]))[0] == pytest.approx(0.5, abs=2e-6)
    assert calibration(np.array([5.0]))[0] == pytest.approx(1 - PROBABILITY_FLOOR, abs=2e-6)


def test_isotonic_on_two_distinct_margins_keeps_isotonic():
    calibration = fit_isotonic(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 1, 1, 1]))
    assert calibration.method == "isotonic"
    assert calibration.x == (-50.0, 0.0, 1.0, 51.0)
    assert calibration(np.array([0.0, 1.0])) == pytest.approx([0.5, 1.0], abs=2e-4)


def test_isotonic_on_a_single_margin_gives_the_conversion_rate_there():
    raw = np.ones(10)
    y = np.array([0, 1] * 5)
    calibration = fit_isotonic(raw, y)
    assert calibration.method != "none"
    assert calibration(np.array([1.0])) == pytest.approx([0.5], abs=1e-3)
    p = calibration(np.array([-5.0, 0.0, 1.0, 2.0, 5.0]))
    assert np.all(np.diff(p) >= -1e-9)  # never decreasing in the margin


def _increasing(n: int, positives: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins 0..n-1 and labels mostly at the top, with exactly ``positives`` ones."""
    raw = np.arange(n, dtype=float)
    y = np.zeros(n, dtype=int)
    rng = np.random.default_rng(0)
    top = rng.choice(np.arange(n // 2, n), positives - 2, replace=False)
    y[top] = 1
    y[[n // 4, n // 3]] = 1  # a couple lower down, so the fit is not a perfect split
    return raw, y


@pytest.mark.parametrize(("positives", "method"), [(99, "platt"), (100, "isotonic")])
def test_auto_picks_isotonic_from_100_validation_conversions(positives, method):
    raw, y = _increasing(400, positives)
    assert int(y.sum()) == positives
    assert fit_calibration(raw, y, "auto").method == method
    assert fit_calibration(raw, y).method == method  # auto is the default


def test_each_method_gives_its_own_map():
    raw, y = _increasing(400, 100)
    assert fit_calibration(raw, y, "isotonic") == fit_isotonic(raw, y)
    platt = fit_calibration(raw[:300], y[:300], "platt")
    assert platt.method == "platt" and platt.x == () and platt.y == ()
    assert platt.a > 0  # conversions rise with the margin
    assert type(platt.a) is float and type(platt.b) is float
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


@pytest.mark.parametrize("method", ["auto", "isotonic", "platt"])
def test_a_single_class_cannot_be_calibrated(method):
    message = "cannot calibrate: the validation period has a single class"
    for y in (np.zeros(8), np.ones(8)):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            fit_calibration(RAW, y, method)


def test_unknown_method_is_named():
    message = "unknown calibration method 'sigmoid': use auto, isotonic, platt or none"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_calibration(RAW, Y, "sigmoid")  # type: ignore[arg-type]


def test_isotonic_ramp_is_measured_from_the_lowest_margin():
    shifted = fit_isotonic(RAW + 10.0, Y)
    x, p = np.array(shifted.x), np.array(shifted.y)
    assert x[0] == -40.0 and x[-1] == 67.0
    ramp = (x[1:-1] - 10.0) / 7.0 * TIE_BREAK
    step = np.interp(x[1:-1], [10, 11, 12, 13, 14, 17], [0, 0, 0.5, 0.5, 1, 1])
    expected = np.clip(step, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR) * (1 - TIE_BREAK) + ramp
    assert p[1:-1] == pytest.approx(expected, abs=1e-15)
    assert np.array(fit_isotonic(RAW, Y).y) == pytest.approx(p, abs=1e-15)  # shift-invariant


def test_platt_is_the_unpenalised_maximum_likelihood_fit():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    raw = rng.normal(0.0, 1.0, 60)
    y = (rng.random(60) < 1 / (1 + np.exp(-(3.0 * raw)))).astype(int)
    mle = LogisticRegression(penalty=None, max_iter=10_000).fit(raw.reshape(-1, 1), y)
    platt = fit_calibration(raw, y, "platt")
    assert platt.a == pytest.approx(mle.coef_[0, 0], rel=1e-3)
    assert platt.b == pytest.approx(mle.intercept_[0], abs=1e-3)
