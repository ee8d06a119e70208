"""Calibration never inverts the model's ranking: every map rises (or stays) with the margin.

A Platt fit on a small validation period whose margin is anti-correlated with the labels
gets a negative slope; asked for explicitly it is refused, and ``auto`` leaves it out,
saying so in the model's metadata and card. ``auto`` chooses by cross-validated log loss;
every probability is backed by a block of evidence and carries an interval.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from leadscore.errors import LeadscoreError
from runtime.bundle import Policy
from runtime.metadata import BundleMetadata
from training.calibration import (
    EVIDENCE_ROWS,
    CalibrationError,
    choose_calibration,
    evidence_bound,
    fit_calibration,
    fit_isotonic,
)
from training.card import render_card

METHODS = ("auto", "isotonic", "platt", "beta", "none")
GRID = np.linspace(-80.0, 80.0, 4001)


def _anti_correlated(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose conversions sit at the *low* margins, a few dozen of them."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(2.0 * raw + 5.3))).astype(int)
    return raw, y


def _non_decreasing(calibration, raw: np.ndarray) -> bool:
    margins = np.sort(np.r_[GRID, raw])
    return bool(np.all(np.diff(calibration(margins)) >= 0))


def test_the_anti_correlated_sample_is_the_one_the_issue_describes():
    raw, y = _anti_correlated()
    assert 20 <= y.sum() < 100
    assert np.corrcoef(raw, y)[0, 1] < -0.1


def test_explicit_platt_that_would_invert_the_ranking_is_refused():
    raw, y = _anti_correlated()
    with pytest.raises(CalibrationError) as caught:
        fit_calibration(raw, y, "platt")
    message = str(caught.value)
    assert isinstance(caught.value, LeadscoreError)
    assert "platt" in message and "slope is -" in message
    assert "isotonic" in message and "none" in message  # what to do instead
    assert f"{len(y):,} validation rows" in message and f"{int(y.sum())} conversions" in message


def test_auto_falls_back_to_isotonic_and_says_so():
    raw, y = _anti_correlated()
    chosen = choose_calibration(raw, y, "auto")
    assert chosen.calibration.method == "isotonic"
    assert chosen.requested == "auto"
    assert chosen.fallback is not None
    assert "platt" in chosen.fallback and "slope was -" in chosen.fallback
    assert "beta" in chosen.fallback and "neither slope" in chosen.fallback
    assert "isotonic" in chosen.fallback
    with pytest.raises(CalibrationError, match=r"^beta calibration refused: "):
        fit_calibration(raw, y, "beta")
    assert _non_decreasing(chosen.calibration, raw)
    p = chosen.calibration(raw)
    assert abs(p.mean() - y.mean()) < 0.01  # the fallback is still calibrated on average


def test_auto_states_no_fallback_when_platt_rises_with_the_margin():
    raw, y = _anti_correlated()
    chosen = choose_calibration(-raw, y, "auto")
    assert chosen.calibration.method == "platt" and chosen.calibration.a > 0
    assert chosen.fallback is None


def test_a_fallback_is_recorded_in_the_metadata_and_stated_on_the_card():
    raw, y = _anti_correlated()
    fallback = choose_calibration(raw, y, "auto").fallback
    metadata = BundleMetadata(calibration_method="isotonic", calibration_fallback=fallback)
    again = BundleMetadata.from_json(metadata.to_json(), "metadata.json")
    assert again.calibration_fallback == fallback
    assert BundleMetadata().calibration_fallback is None  # older bundles load unchanged
    policy = Policy(
        rule="capacity",
        target=0.2,
        threshold=0.3,
        fit_cuts=(-1.0, 0.0, 1.0),
        engagement_cuts=(-1.0, 0.0, 1.0),
        score_knots=tuple(np.linspace(0.01, 0.9, 101).tolist()),
    )
    card = render_card(again, {"model": {"roc_auc": 0.7}}, {}, policy)
    assert (
        f"- Calibration: isotonic (fitted on validation).\n- Calibration fallback: {fallback}."
        in card
    )
    plain = render_card(BundleMetadata(calibration_method="platt"), {"model": {}}, {}, policy)
    assert "Calibration fallback" not in plain
    assert "Calibration candidates" not in plain and "Evidence:" not in plain
    chosen = BundleMetadata(
        calibration_method="platt",
        calibration_cv_log_loss={"platt": 0.19381, "isotonic": 0.19552, "beta": 0.194},
        calibration_min_block_rows=122,
        calibration_block_rows=(678, 624, 253),
    )
    card = render_card(chosen, {"model": {}}, {}, policy)
    assert (
        "- Calibration candidates, cross-validated log loss: beta 0.1940, isotonic 0.1955, "
        "platt 0.1938" in card
    )
    assert "- Evidence: 3 blocks of 253 to 678 rows (at least 122)" in card


def test_one_distinct_margin_gives_a_rising_isotonic_map_not_a_platt_fit():
    raw, y = np.zeros(50), np.r_[np.ones(5), np.zeros(45)].astype(int)
    calibration = fit_calibration(raw, y, "isotonic")
    assert calibration.method == "isotonic"
    assert calibration(np.zeros(1))[0] == pytest.approx(0.1, abs=1e-12)
    assert _non_decreasing(calibration, raw)


@st.composite
def _validation_periods(draw) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=2, max_value=120))
    raw = draw(
        arrays(
            np.float64,
            n,
            elements=st.floats(-20.0, 20.0, allow_nan=False, allow_infinity=False, width=32),
        )
    )
    y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    y[0], y[-1] = 0, 1  # both classes
    return raw, y


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(period=_validation_periods(), method=st.sampled_from(METHODS))
def test_every_calibration_is_non_decreasing_in_the_margin(period, method):
    """Whatever the validation period, a fitted map never lowers the probability of a
    lead the model ranks higher; an explicit Platt fit that would is refused instead."""
    raw, y = period
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separable periods: lbfgs may not converge
        try:
            calibration = fit_calibration(raw, y, method)
        except CalibrationError as exc:
            assert method in ("platt", "beta") and "slope" in str(exc)
            return
    with np.errstate(over="ignore"):  # a steep Platt slope: exp overflows to p = 0
        p = calibration(np.sort(np.r_[GRID, raw]))
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) >= 0), method


@pytest.mark.slow
def test_training_records_the_fallback_in_the_bundle_and_its_card(
    training_set, monkeypatch, tmp_path
):
    """``fit_bundle`` keeps what ``choose_calibration`` says about a fallback: in the
    metadata saved with the bundle and on the model card."""
    import training.train as train
    from runtime.bundle import ModelBundle

    raw, y = _anti_correlated()
    chosen = choose_calibration(raw, y, "auto")
    monkeypatch.setattr(train, "choose_calibration", lambda *_: chosen)
    config = train.TrainConfig(num_boost_round=20, early_stopping_rounds=5, num_threads=1)
    fitted = train.fit_bundle(training_set, config)
    metadata = ModelBundle.load(fitted.bundle.save(tmp_path / "bundle")).metadata
    assert metadata.calibration_method == "isotonic"
    assert metadata.calibration_fallback == chosen.fallback
    card = render_card(metadata, {"model": {"roc_auc": 0.7}}, {}, fitted.bundle.policy)
    assert f"- Calibration fallback: {chosen.fallback}." in card


def test_a_flat_platt_map_is_refused_with_the_whole_message():
    """Slope 0 throws the ranking away, as a negative one inverts it; the message says
    exactly what happened and what to do."""
    from runtime.bundle import Calibration
    from training.calibration import check_platt

    y = np.array([0, 1, 0, 0])
    check_platt(Calibration("platt", a=1e-9, b=0.0), y)  # any rising map passes
    with pytest.raises(CalibrationError) as err:
        check_platt(Calibration("platt", a=0.0, b=0.0), y)
    assert str(err.value) == (
        "platt calibration refused: its fitted slope is 0 on 4 validation rows with 1 "
        "conversions, so the calibrated probability would not rise with the model's margin "
        "and the ranking would be inverted or lost. Train with --calibration isotonic, auto "
        "(which falls back to isotonic) or none; a negative slope also means the model ranks "
        "the validation period backwards: check the labels and the split"
    )


def test_choose_calibration_records_what_was_asked_and_defaults_to_auto():
    from training.calibration import _platt

    raw, y = _anti_correlated()
    default = choose_calibration(raw, y)
    assert default.requested == "auto" and default.calibration.method == "isotonic"
    assert default.fallback == (
        f"auto left out platt (its fitted slope was {_platt(raw, y).a:.3g}: the probability "
        "would not rise with the model's margin); beta (neither slope came out positive: the "
        "probability would not rise with the margin), so isotonic was fitted instead"
    )
    assert default.cv_log_loss == {}  # one candidate left: nothing to compare
    for method in ("isotonic", "none"):
        choice = choose_calibration(raw, y, method)
        assert (choice.requested, choice.calibration.method, choice.fallback) == (
            method,
            method,
            None,
        )
    rising = choose_calibration(-raw, y)  # the same labels ranked the right way round
    assert (rising.requested, rising.calibration.method, rising.fallback) == (
        "auto",
        "platt",
        None,
    )
    assert rising.calibration.a > 0
    assert set(rising.cv_log_loss) == {"platt", "beta", "isotonic"}
    assert sum(rising.block_rows) == len(y) and min(rising.block_rows) >= rising.min_block_rows


# --- choice by cross-validated log loss ---------------------------------------------------


def _margins(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(-1.0, 1.5, n)


def _labels(truth: np.ndarray, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed + 100).random(truth.size) < truth).astype(int)


@pytest.mark.parametrize(
    ("name", "true_map"),
    [
        ("platt", lambda raw: 1 / (1 + np.exp(-(1.2 * raw - 0.5)))),
        # logit = c + a ln q - b ln(1 - q) with a far from b: not logistic in the margin
        (
            "beta",
            lambda raw: (
                1 / (1 + np.exp(-(1.0 - 3.0 * np.logaddexp(0, -raw) + 0.2 * np.logaddexp(0, raw))))
            ),
        ),
        ("isotonic", lambda raw: np.where(raw > -0.5, 0.55, 0.04)),  # a step
    ],
)
def test_auto_picks_the_method_that_is_right_by_cross_validated_log_loss(name, true_map):
    raw = _margins(6000, seed=1)
    y = _labels(true_map(raw), seed=1)
    chosen = choose_calibration(raw, y, "auto")
    assert chosen.calibration.method == name, chosen.cv_log_loss
    losses = chosen.cv_log_loss
    assert set(losses) == {"platt", "beta", "isotonic"}
    if name != "platt":  # a more flexible map is only chosen when it is clearly better
        assert losses[name] < losses["platt"] - 0.002
    held = _margins(20_000, seed=2)
    held_y = _labels(true_map(held), seed=2)

    def held_loss(method: str) -> float:
        p = np.clip(fit_calibration(raw, y, method)(held), 1e-15, 1 - 1e-15)
        return float(-np.mean(held_y * np.log(p) + (1 - held_y) * np.log(1 - p)))

    others = [m for m in ("platt", "beta", "isotonic") if m != name]
    assert held_loss(name) <= min(held_loss(m) for m in others) + 0.001  # right on new rows


def test_a_refused_candidate_leaves_the_choice_to_the_others(monkeypatch):
    """Platt refused (a falling fit, forced here): beta and isotonic are still compared by
    cross-validated log loss, and the fallback says so."""
    import training.calibration as calibration_module
    from runtime.bundle import Calibration

    monkeypatch.setattr(
        calibration_module, "_platt", lambda raw, y: Calibration("platt", a=-0.5, b=0.0)
    )
    raw = _margins(3000, seed=8)
    y = _labels(np.where(raw > -0.5, 0.55, 0.04), seed=8)
    chosen = choose_calibration(raw, y, "auto")
    assert set(chosen.cv_log_loss) == {"beta", "isotonic"}
    assert chosen.calibration.method == min(chosen.cv_log_loss, key=chosen.cv_log_loss.get)
    assert chosen.fallback == (
        "auto left out platt (its fitted slope was -0.5: the probability would not rise with "
        f"the model's margin), so {chosen.calibration.method} was fitted instead (chosen by "
        "cross-validated log loss among the rest)"
    )


# --- every probability backed by evidence -------------------------------------------------


def _blocks_respect_the_evidence_rule(calibration) -> None:
    """Every isotonic knot of a block under ``EVIDENCE_ROWS`` leads lies within its
    evidence bound, so within (0.1%, 99%)."""
    for rows, p in zip(calibration.rows, calibration.y, strict=True):
        if rows > 0:
            assert evidence_bound(rows) <= p <= 1 - evidence_bound(rows)
        if 0 < rows < EVIDENCE_ROWS:
            assert 0.001 < p < 0.99


@pytest.mark.parametrize("n", [20, 60, 150, EVIDENCE_ROWS - 1])
def test_a_block_without_conversions_never_gives_a_probability_near_zero(n):
    """The lowest leads (``n`` of them, none converted) get at least the evidence bound of
    the block they fall in (above 0.1% under 200 leads), whatever the method."""
    rng = np.random.default_rng(n)
    bottom = rng.uniform(-9.0, -6.0, n)
    rest = rng.normal(0.0, 1.0, 600)
    raw = np.r_[bottom, rest]
    y = np.r_[np.zeros(n), (rng.random(600) < 1 / (1 + np.exp(-2 * rest))).astype(int)]
    exact = fit_isotonic(raw, y, min_rows=1)  # PAV alone: the n leads are one block
    assert exact.positives[1] == 0 and exact.rows[1] >= n
    assert exact(bottom).min() >= evidence_bound(exact.rows[1]) - 1e-6
    _blocks_respect_the_evidence_rule(exact)
    for method in ("isotonic", "platt", "beta", "auto"):
        chosen = choose_calibration(raw, y, method)
        p = chosen.calibration(np.r_[bottom, -1e3])
        assert p.min() >= evidence_bound(chosen.block_rows[0]) - 1e-6, method
        if chosen.block_rows[0] < EVIDENCE_ROWS:
            assert p.min() > 0.001, method
        if chosen.calibration.method == "isotonic":
            _blocks_respect_the_evidence_rule(chosen.calibration)


@pytest.mark.parametrize("n", [20, 150, EVIDENCE_ROWS - 1])
def test_a_block_of_conversions_only_never_gives_a_probability_near_one(n):
    rng = np.random.default_rng(n)
    top = rng.uniform(6.0, 9.0, n)
    rest = rng.normal(0.0, 1.0, 600)
    raw = np.r_[rest, top]
    y = np.r_[(rng.random(600) < 1 / (1 + np.exp(-2 * rest))).astype(int), np.ones(n)]
    exact = fit_isotonic(raw, y, min_rows=1)
    assert exact.positives[-2] == exact.rows[-2] >= n
    assert exact(top).max() <= 1 - evidence_bound(exact.rows[-2]) + 1e-6
    _blocks_respect_the_evidence_rule(exact)
    for method in ("isotonic", "platt", "beta", "auto"):
        chosen = choose_calibration(raw, y, method)
        p = chosen.calibration(np.r_[top, 1e3])
        assert p.max() <= 1 - evidence_bound(chosen.block_rows[-1]) + 1e-6, method
        if chosen.block_rows[-1] < EVIDENCE_ROWS:
            assert p.max() < 0.99, method
        if chosen.calibration.method == "isotonic":
            _blocks_respect_the_evidence_rule(chosen.calibration)


def test_a_large_block_may_support_an_extreme_probability():
    """Evidence, not a clamp: 5,000 leads without a conversion support well under 0.1%."""
    rng = np.random.default_rng(7)
    raw = np.r_[rng.uniform(-9, -6, 5000), rng.normal(0, 1, 2000)]
    y = np.r_[np.zeros(5000), (rng.random(2000) < 0.4)].astype(int)
    calibration = fit_isotonic(raw, y)
    assert calibration.rows[1] >= 5000 and calibration.positives[1] == 0
    assert calibration(np.array([-8.0]))[0] < 0.001
    assert calibration(np.array([-8.0]))[0] >= evidence_bound(calibration.rows[1])


def test_beyond_the_calibration_range_a_lead_gets_the_nearest_supported_value():
    raw = _margins(3000, seed=3)
    y = _labels(1 / (1 + np.exp(-(1.2 * raw - 0.5))), seed=3)
    for method in ("isotonic", "platt", "beta"):
        calibration = fit_calibration(raw, y, method)
        edge = calibration(np.array([raw.min(), raw.max()]))
        far = calibration(np.array([raw.min() - 30, raw.max() + 30]))
        assert far[0] == pytest.approx(edge[0], abs=1e-6) and far[0] < edge[0], method
        assert far[1] == pytest.approx(edge[1], abs=1e-6) and far[1] > edge[1], method
        assert far[0] > 0 and far[1] < 1


# --- intervals ------------------------------------------------------------------------


def test_the_isotonic_interval_holds_each_block_rate_and_its_probability():
    raw = _margins(4000, seed=4)
    y = _labels(1 / (1 + np.exp(-(1.2 * raw - 0.5))), seed=4)
    calibration = fit_isotonic(raw, y)
    x, p = np.array(calibration.x[1:-1]), np.array(calibration.y[1:-1])
    rows, positives = np.array(calibration.rows[1:-1]), np.array(calibration.positives[1:-1])
    low, high = calibration.interval(x)
    rate = positives / rows
    assert np.all((low <= rate) & (rate <= high))
    assert np.all((low <= p) & (p <= high))
    assert np.all(high - low > 0)
    assert low == pytest.approx(calibration.low[1:-1]) and high == pytest.approx(
        calibration.high[1:-1]
    )
    grid = np.linspace(raw.min() - 5, raw.max() + 5, 500)
    lo, hi = calibration.interval(grid)
    q = calibration(grid)
    assert np.all((lo <= q) & (q <= hi))


@pytest.mark.parametrize("method", ["platt", "beta"])
def test_the_delta_method_interval_holds_the_probability_and_narrows_with_evidence(method):
    truth_map = lambda raw: 1 / (1 + np.exp(-(1.2 * raw - 0.5)))  # noqa: E731
    grid = np.linspace(-4, 2, 50)
    widths = []
    for n in (500, 8000):
        raw = _margins(n, seed=5)
        calibration = fit_calibration(raw, _labels(truth_map(raw), seed=5), method)
        low, high = calibration.interval(grid)
        p = calibration(grid)
        assert np.all((low <= p) & (p <= high))
        assert np.all((low >= 0) & (high <= 1))
        widths.append(float(np.mean(high - low)))
        assert np.mean((low <= truth_map(grid)) & (truth_map(grid) <= high)) > 0.8
    assert widths[1] < widths[0] / 2


def test_a_map_without_evidence_gives_its_probability_as_both_ends():
    from runtime.bundle import Calibration

    raw = np.array([-1.0, 0.0, 2.0])
    for calibration in (Calibration(), Calibration("platt", a=1.0, b=0.0)):
        low, high = calibration.interval(raw)
        assert low.tolist() == high.tolist() == calibration(raw).tolist()


def test_fitted_maps_round_trip_through_json():
    import json

    from runtime.bundle import Calibration

    raw = _margins(2000, seed=6)
    y = _labels(1 / (1 + np.exp(-(1.2 * raw - 0.5))), seed=6)
    grid = np.linspace(-10, 10, 101)
    for method in ("isotonic", "platt", "beta"):
        calibration = fit_calibration(raw, y, method)
        again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
        assert again == calibration
        assert again(grid).tolist() == calibration(grid).tolist()
        assert [a.tolist() for a in again.interval(grid)] == [
            a.tolist() for a in calibration.interval(grid)
        ]


@pytest.mark.slow
def test_a_trained_bundle_backs_every_extreme_probability_with_200_validation_leads(
    training_set, tmp_path
):
    """On the test period of a real training run, no probability is below 0.1% or above
    99% unless the evidence block at that end holds at least 200 validation leads, and
    none is more extreme than its block's evidence bound; the choice, the CV log loss of
    each candidate and the block sizes are saved with the bundle."""
    import training.train as train
    from runtime.bundle import ModelBundle

    config = train.TrainConfig(num_boost_round=60, early_stopping_rounds=10, num_threads=1)
    fitted = train.fit_bundle(training_set, config)
    bundle = ModelBundle.load(fitted.bundle.save(tmp_path / "bundle"))
    metadata = bundle.metadata
    blocks = metadata.calibration_block_rows
    crossfit = metadata.model_choice.scheme == "crossfit"
    calibration_rows = len(fitted.split.valid) + (len(fitted.split.train) if crossfit else 0)
    assert sum(blocks) == calibration_rows  # out-of-fold rows when cross-fitted
    assert min(blocks) >= metadata.calibration_min_block_rows > 0
    assert metadata.calibration_requested == "auto"
    assert set(metadata.calibration_cv_log_loss) == {"platt", "beta", "isotonic"}
    best = min(metadata.calibration_cv_log_loss.values())
    assert metadata.calibration_cv_log_loss[metadata.calibration_method] <= best + 0.01
    for frame in (fitted.split.test, fitted.split.test_population):
        scores = bundle.score(frame)
        p = scores.probability
        assert p.min() >= evidence_bound(blocks[0]) - 1e-6
        assert p.max() <= 1 - evidence_bound(blocks[-1]) + 1e-6
        if (p < 0.001).any():
            assert blocks[0] >= EVIDENCE_ROWS
        if (p > 0.99).any():
            assert blocks[-1] >= EVIDENCE_ROWS
        low, high = bundle.calibration.interval(scores.raw)
        assert np.all((low <= p) & (p <= high))
    if bundle.calibration.method == "isotonic":
        _blocks_respect_the_evidence_rule(bundle.calibration)
