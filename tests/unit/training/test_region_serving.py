"""A model per region (``--per-region-model auto``): a region whose leads follow other rules
gets its own model, a small region keeps the pooled one, the bundle routes and explains
each lead by the margin that scored it, and the card says who serves whom."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import validate
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from features.simulate import simulate
from runtime.bundle import ModelBundle
from runtime.regional import RegionalMargin
from training import choice, regional
from training.baselines import PointsScore
from training.config import TrainConfigError, train_problems
from training.policy import capacity_threshold
from training.train import TrainConfig, fit_bundle

TINY = dict(num_boost_round=100, early_stopping_rounds=10, num_threads=1)


@pytest.fixture(scope="module")
def simulated() -> TrainingSet:
    """A few hundred simulated leads (about 1,400 monthly snapshots)."""
    return build_training_set(validate(simulate(400, seed=5).tables()), PipelineConfig())


@pytest.fixture(scope="module")
def two_rules(simulated) -> TrainingSet:
    """Simulated leads in three regions: NA and LATAM convert with web visits, EMEA
    against them; LATAM is too small for a model of its own."""
    frame = simulated.frame.copy()
    rng = np.random.default_rng(0)
    leads = frame["lead_id"].unique()
    draw = rng.choice(["NA", "EMEA", "LATAM"], len(leads), p=[0.45, 0.45, 0.10])
    region = frame["lead_id"].map(dict(zip(leads, draw, strict=True))).to_numpy()
    frame["region"] = pd.Categorical(region, categories=["EMEA", "LATAM", "NA"])
    web = np.log1p(frame["n_page_view_30d"].fillna(0).to_numpy())
    z = (web - web.mean()) / web.std()
    logit = np.where(region == "EMEA", -1.0 - 1.5 * z, -1.0 + 1.5 * z)
    frame["label"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return TrainingSet(frame, simulated.metadata)


@pytest.fixture(scope="module")
def served(two_rules):
    return fit_bundle(two_rules, TrainConfig(per_region_model="auto", **TINY))


def test_the_region_with_other_rules_gets_its_own_model(served):
    by_region = {s.region: s for s in served.serving}
    emea, latam = by_region["EMEA"], by_region["LATAM"]
    assert emea.served == regional.OWN and emea.pooled_score is not None
    best = min(s.log_loss for s in emea.own_scores.values())
    assert best < emea.pooled_score.log_loss * (1 - choice.TOLERANCE)
    assert latam.served in (regional.POOLED, regional.OFFSET)
    assert latam.conversions < choice.MIN_REGION_CONVERSIONS and not latam.own_scores
    margin = served.bundle.margin
    assert isinstance(margin, RegionalMargin)
    routes = {r.region: r for r in margin.routes}
    assert routes["EMEA"].source == "own" and routes["EMEA"].candidate == emea.candidate
    # the pooled choice itself is unchanged by serving per region
    assert served.bundle.metadata.model_choice.chosen == choice.choose(
        {
            c.name: choice.Score(c.valid_log_loss, c.valid_roc_auc, c.valid_brier)
            for c in served.bundle.metadata.model_choice.candidates
        }
    )


def test_the_card_says_which_model_serves_which_region(served):
    text = "\n".join(regional.card_lines(served.serving))
    assert "## Model by region" in text
    assert "(its own)" in text and "| EMEA |" in text
    assert "its own" in text and "beats the pooled" in text
    assert f"fewer than the {choice.MIN_REGION_CONVERSIONS} a model of its own needs" in text


def test_the_bundle_routes_explains_and_round_trips(served, two_rules, tmp_path):
    bundle = ModelBundle.load(served.bundle.save(tmp_path / "bundle"))
    margin = bundle.margin
    assert isinstance(margin, RegionalMargin)
    rows = two_rules.frame.tail(200).reset_index(drop=True)
    scores = bundle.score(rows)
    np.testing.assert_allclose(scores.shap.sum(1) + scores.base_value, scores.raw, atol=1e-8)
    np.testing.assert_allclose(scores.probability, served.bundle.score(rows).probability)
    X = bundle.spec.transform(rows)
    emea = (rows["region"] == "EMEA").to_numpy()
    route = next(r for r in margin.routes if r.region == "EMEA")
    assert route.margin is not None
    np.testing.assert_allclose(
        scores.raw[emea], route.shift + route.scale * route.margin.predict_raw(X[emea])
    )
    # a region never seen in training is scored by the pooled model
    unseen = rows.assign(region=pd.Categorical(["Mars"] * len(rows)))
    np.testing.assert_allclose(
        bundle.score(unseen).raw, margin.pooled.predict_raw(bundle.spec.transform(unseen))
    )


def test_off_is_the_default_and_serves_one_pooled_model(served):
    assert TrainConfig().per_region_model == "off"
    # what off registers is the pooled margin that auto's regional margin wraps
    assert (
        served.bundle.margin.pooled.kind == choice.KIND[served.bundle.metadata.model_choice.chosen]
    )


def test_per_region_needs_the_tournament():
    with pytest.raises(TrainConfigError, match="per_region_model"):
        TrainConfig(per_region_model="auto", model="lightgbm")


@pytest.fixture(scope="module")
def points_by_region(simulated) -> TrainingSet:
    """Outcomes that follow the default points, shifted by region: the points win the
    pooled choice, and, not reading the region, need an offset per region."""
    frame = simulated.frame.copy()
    shift = {"NA": 0.0, "EMEA": -1.2, "APAC": 1.0, "LATAM": -1.2}
    region = frame["region"].astype("string").fillna("")
    logit = 0.06 * (PointsScore().points(frame) - 50) + region.map(shift).fillna(0.0)
    p = 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))
    frame["label"] = (np.random.default_rng(3).random(len(frame)) < p).astype(np.int8)
    return TrainingSet(frame, simulated.metadata)


def test_the_points_get_a_region_offset_where_it_helps(points_by_region):
    fitted = fit_bundle(points_by_region, TrainConfig(per_region_model="auto", **TINY))
    assert fitted.bundle.metadata.model_choice.chosen == choice.POINTS
    offsets = {s.region: s for s in fitted.serving if s.served == regional.OFFSET}
    assert offsets, [s.reason for s in fitted.serving]
    for s in offsets.values():
        assert s.candidate == choice.POINTS and s.scale == 1.0 and s.shift != 0.0
        assert "with an offset of" in s.reason
    margin = fitted.bundle.margin
    assert isinstance(margin, RegionalMargin)
    rows = points_by_region.frame.tail(300).reset_index(drop=True)
    scores = fitted.bundle.score(rows)
    np.testing.assert_allclose(scores.shap.sum(1) + scores.base_value, scores.raw, atol=1e-8)
    X = fitted.bundle.spec.transform(rows)
    for route in margin.routes:
        if route.source == regional.OFFSET:
            mask = (rows["region"].astype("string") == route.region).to_numpy()
            np.testing.assert_allclose(
                scores.raw[mask], margin.pooled.predict_raw(X[mask]) + route.shift
            )
    text = "\n".join(regional.card_lines(fitted.serving))
    assert "(pooled, offset" in text


def test_on_the_holdout_scheme_the_population_is_scored_as_served(two_rules, monkeypatch):
    # a validation period of a few hundred rows: a lower bar lets EMEA earn its own model
    monkeypatch.setattr(choice, "MIN_REGION_CONVERSIONS", 20)
    config = TrainConfig(per_region_model="auto", crossfit="off", **TINY)
    fitted = fit_bundle(two_rules, config)
    assert fitted.bundle.metadata.model_choice.scheme == "holdout"
    assert any(s.served == regional.OWN for s in fitted.serving), [s.reason for s in fitted.serving]
    served = fitted.bundle.predict(fitted.split.valid_population).probability
    # the capacity threshold was chosen on the served model's own scores of this population
    assert fitted.bundle.policy.threshold == capacity_threshold(served, config.policy.target)


def test_a_dataset_config_may_ask_for_it():
    assert train_problems({"per_region_model": "auto"}) == []
    assert any("per_region_model" in p for p in train_problems({"per_region_model": "maybe"}))


def test_the_train_command_names_the_regions_served(served):
    from leadscore.cli import _regional_words

    words = _regional_words(served.bundle.margin)
    assert words.startswith(", per region: ") and "EMEA own " in words
    assert _regional_words(served.bundle.margin.pooled) == ""
