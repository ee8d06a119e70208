"""Calibration never inverts the model's ranking: every map rises (or stays) with the margin.

A Platt fit on a small validation period whose margin is anti-correlated with the labels
gets a negative slope; asked for explicitly it is refused, and ``auto`` falls back to
isotonic, saying so in the model's metadata and card.
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
    MIN_POSITIVES_FOR_ISOTONIC,
    CalibrationError,
    choose_calibration,
    fit_calibration,
)
from training.card import render_card

METHODS = ("auto", "isotonic", "platt", "none")
GRID = np.linspace(-80.0, 80.0, 4001)


def _anti_correlated(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose conversions sit at the *low* margins, with fewer than 100 of them."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(2.0 * raw + 5.3))).astype(int)
    return raw, y


def _non_decreasing(calibration, raw: np.ndarray) -> bool:
    margins = np.sort(np.r_[GRID, raw])
    return bool(np.all(np.diff(calibration(margins)) >= 0))


def test_the_anti_correlated_sample_is_the_one_the_issue_describes():
    raw, y = _anti_correlated()
    assert 20 <= y.sum() < MIN_POSITIVES_FOR_ISOTONIC  # auto picks Platt here
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
    assert "isotonic" in chosen.fallback
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


def test_one_distinct_margin_gives_a_rising_isotonic_map_not_a_platt_fit():
    raw, y = np.zeros(50), np.r_[np.ones(5), np.zeros(45)].astype(int)
    calibration = fit_calibration(raw, y, "isotonic")
    assert calibration.method == "isotonic"
    assert calibration(np.zeros(1))[0] == pytest.approx(0.1, abs=1e-5)
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
            assert method == "platt" and "slope" in str(exc)
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
        f"auto chose platt ({int(y.sum())} validation conversions, under "
        f"{MIN_POSITIVES_FOR_ISOTONIC}), but its fitted slope was "
        f"{_platt(raw, y).a:.3g}: the probability would "
        "not rise with the model's margin, so isotonic (never decreasing) was fitted instead"
    )
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
