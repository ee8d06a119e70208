"""The points score as a candidate: the default rules, the tie-break, and a tiny data set
where the hand-set points are the best model and get registered, scored and explained."""

from __future__ import annotations

import numpy as np
import pytest

from features.contract import validate
from features.metadata import PointsRules
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from features.simulate import simulate
from runtime.bundle import ModelBundle
from runtime.encoding import InputSpec
from runtime.points import PointsMargin
from training import choice
from training.baselines import PointsScore, RulePoints, fit_points_margin, points_rules
from training.card import render_card
from training.train import TrainConfig, fit_bundle

TINY = TrainConfig(num_boost_round=100, early_stopping_rounds=10, num_threads=1)


@pytest.fixture(scope="module")
def simulated() -> TrainingSet:
    """A few hundred simulated leads (about 1,500 monthly snapshots)."""
    return build_training_set(validate(simulate(400, seed=5).tables()), PipelineConfig())


@pytest.fixture(scope="module")
def points_world(simulated) -> TrainingSet:
    """The same snapshots with outcomes drawn from the default points themselves: the
    hand-set score is the true model, and the learned ones only have a few hundred
    conversions to find that out."""
    frame = simulated.frame.copy()
    pts = PointsScore().points(frame)
    p = 1 / (1 + np.exp(-0.06 * (pts - 50)))
    frame["label"] = (np.random.default_rng(0).random(len(frame)) < p).astype(np.int8)
    return TrainingSet(frame, simulated.metadata)


def test_the_default_rules_give_the_default_points_exactly(simulated):
    frame = simulated.frame
    spec = InputSpec().fit(frame)
    rules, threshold, source = points_rules(None, spec)
    assert source == "default" and threshold == PointsScore().threshold
    margin = fit_points_margin(rules, spec, spec.transform(frame), frame["label"].to_numpy())
    np.testing.assert_array_equal(margin.points(spec.transform(frame)), PointsScore().points(frame))
    assert margin.scale > 0  # more points, more conversions in the simulator
    # the frame-based baseline reads the same rules the same way
    np.testing.assert_array_equal(
        RulePoints(tuple(rules)).points(frame), PointsScore().points(frame)
    )


def test_a_dataset_configs_rules_come_first():
    spec = InputSpec().fit(build_training_set_frame())
    config = PointsRules(threshold=30, rules=({"feature": "seniority", "values": {"VP": 20}},))
    rules, threshold, source = points_rules(config, spec)
    assert (rules, threshold, source) == (
        [{"feature": "seniority", "values": {"VP": 20}}],
        30,
        "config",
    )


def build_training_set_frame():
    return build_training_set(validate(simulate(60, seed=1).tables()), PipelineConfig()).frame


def test_ties_go_to_the_points_the_simplest_candidate():
    s = {
        choice.POINTS: choice.Score(0.2000, 0.80, 0.05),
        choice.LOGISTIC: choice.Score(0.1999, 0.81, 0.05),
        choice.LIGHTGBM: choice.Score(0.19985, 0.81, 0.05),
    }
    assert choice.choose(s) == choice.POINTS
    s[choice.LOGISTIC] = choice.Score(0.1990, 0.81, 0.05)
    assert choice.choose(s) == choice.LOGISTIC
    assert choice.SIMPLICITY[0] == choice.POINTS and choice.KIND[choice.POINTS] == "points"


def test_the_points_win_where_they_are_the_best_model_and_serve_with_the_same_card(
    points_world, tmp_path
):
    fitted = fit_bundle(points_world, TINY)
    made = fitted.bundle.metadata.model_choice
    assert made.candidates[0].name == "points"
    assert {c.name for c in made.candidates} == {"points", "lightgbm", "logistic", "blend"}
    by_name = {c.name: c for c in made.candidates}
    assert made.chosen == "points", made.reason
    assert all(
        by_name["points"].valid_log_loss <= by_name[n].valid_log_loss * (1 + choice.TOLERANCE)
        for n in by_name
    )
    assert made.kind == "points" and fitted.bundle.kind == "points"
    assert "No model learned from these outcomes beats the hand-set points" in made.reason

    bundle = ModelBundle.load(fitted.bundle.save(tmp_path / "points"))
    assert isinstance(bundle.margin, PointsMargin) and bundle.margin.source == "default"
    test = fitted.split.test
    scores = bundle.score(test)
    np.testing.assert_allclose(
        scores.base_value + scores.shap.sum(axis=1), scores.raw, atol=1e-9, rtol=0
    )
    low, high = bundle.calibration.interval(scores.raw)
    assert np.all(low <= scores.probability) and np.all(scores.probability <= high)
    assert np.any(high > low)  # the calibration carries its evidence
    assert scores.mql.any() and not scores.mql.all()
    # reasons: exactly the rules that fired, summed per signal
    margin = bundle.margin
    X = bundle.spec.transform(test)
    for i in range(20):
        fired = {rule.feature for rule, _ in margin.fired(X[i])}
        reasons = scores.reasons(i, bundle.spec, top=50)
        told = {
            f["feature"]
            for r in reasons["positive"] + reasons["negative"]
            for f in r["features"]
            if f["contribution"] != 0
        }
        assert told == fired
    card = render_card(bundle.metadata, {"model": {"roc_auc": 0.8}}, {}, bundle.policy)
    assert "| Points score **(registered)** | 19 hand-set rules (the default points)" in card
    assert "A hand-set points score" in card


@pytest.mark.slow
def test_points_can_be_asked_for_and_lose_where_outcomes_follow_more_than_points(simulated):
    forced = fit_bundle(simulated, TINY.model_copy(update={"model": "points"}))
    assert (
        forced.bundle.kind == "points"
        and "was asked for" in forced.bundle.metadata.model_choice.reason
    )
    made = forced.bundle.metadata.model_choice
    scores = {c.name: c.valid_log_loss for c in made.candidates}
    assert scores["points"] > min(scores.values())  # the simulator's outcomes are learnable
