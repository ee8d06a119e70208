"""Exact behaviour of the bundle's scoring: calibration, policy, scores, grades and reasons.

A three-feature model trained in a fraction of a second stands in for a real one, so
every number the scoring path produces can be checked against what it is defined to be
(these are fast tests ``make mutation`` runs against ``runtime/bundle.py``).
"""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import FeatureSpec
from runtime.bundle import (
    GRADE_LETTERS,
    CalibratedModel,
    Calibration,
    ModelBundle,
    Policy,
    Predictions,
    Scores,
)
from runtime.encoding import InputSpec
from runtime.metadata import BundleMetadata

FEATURES = (
    FeatureSpec(
        name="size",
        group="fit",
        dtype="float",
        template="Company of {value:.0f} people",
        description="Company size",
    ),
    FeatureSpec(
        name="visits",
        group="engagement",
        dtype="float",
        template="Visited {value:.0f} times",
        description="Visits",
        zero_template="Never visited",
    ),
    FeatureSpec(
        name="region",
        group="fit",
        dtype="category",
        template="Based in {value}",
        description="Region",
    ),
)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "as_of": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="D"),
            "size": rng.integers(1, 1000, n).astype(float),
            "visits": rng.integers(0, 20, n).astype(float),
            "region": pd.Categorical(rng.choice(["NA", "EMEA", "APAC"], n, p=[0.5, 0.3, 0.2])),
        }
    )


@pytest.fixture(scope="module")
def trained() -> tuple[lgb.Booster, InputSpec, pd.DataFrame]:
    frame = _frame(600, 0)
    logit = -2 + frame["size"] / 400 + frame["visits"] / 5 + (frame["region"] == "NA") * 0.5
    y = (np.random.default_rng(1).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = InputSpec(FEATURES).fit(frame)
    params = {
        "objective": "binary",
        "num_leaves": 4,
        "min_data_in_leaf": 10,
        "learning_rate": 0.3,
        "verbose": -1,
        "deterministic": True,
        "num_threads": 1,
    }
    data = lgb.Dataset(spec.transform(frame), y, categorical_feature=spec.categorical_indices)
    booster = lgb.train(params, data, num_boost_round=8)
    return booster, spec, _frame(40, 2)


def _policy(**changes) -> Policy:
    fields = {
        "rule": "capacity",
        "target": 0.2,
        "threshold": 0.5,
        "fit_cuts": (-1.0, 0.0, 1.0),
        "engagement_cuts": (-1.0, 0.0, 1.0),
        "score_knots": tuple(np.linspace(0.0, 1.0, 101)),
    }
    fields.update(changes)
    return Policy(**fields)


# --- calibration -------------------------------------------------------------------------


def test_isotonic_calibration_interpolates_its_knots_and_clamps_outside():
    calibration = Calibration("isotonic", x=(-1.0, 0.0, 2.0), y=(0.1, 0.2, 0.6))
    p = calibration(np.array([-5.0, -1.0, -0.5, 0.0, 1.0, 2.0, 9.0]))
    assert p == pytest.approx([0.1, 0.1, 0.15, 0.2, 0.4, 0.6, 0.6], abs=1e-15)
    assert p.dtype == np.float64
    assert calibration([1]) == pytest.approx([0.4])  # lists and integers are accepted


def test_platt_calibration_is_the_sigmoid_of_a_raw_plus_b():
    calibration = Calibration("platt", a=2.0, b=-1.0)
    raw = np.array([-1.0, 0.0, 0.5, 3.0])
    assert calibration(raw) == pytest.approx(1 / (1 + np.exp(-(2 * raw - 1))), abs=1e-15)
    assert calibration(np.array([0.5])) == pytest.approx([0.5])


def test_no_calibration_is_the_plain_sigmoid_whatever_a_and_b_say():
    raw = np.array([-2.0, 0.0, 1.0])
    expected = 1 / (1 + np.exp(-raw))
    assert Calibration()(raw) == pytest.approx(expected, abs=1e-15)
    assert Calibration("none", a=5.0, b=3.0)(raw) == pytest.approx(expected, abs=1e-15)
    assert Calibration("none", x=(0.0, 1.0), y=(0.9, 0.9))(raw) == pytest.approx(expected)


def test_calibration_round_trips_through_json_and_has_defaults():
    for calibration in (
        Calibration("isotonic", x=(-1.0, 0.0), y=(0.1, 0.2)),
        Calibration("platt", a=1.5, b=-0.25),
        Calibration(),
    ):
        assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert Calibration("platt", a=1.5, b=-0.25).to_dict() == {
        "method": "platt",
        "x": [],
        "y": [],
        "a": 1.5,
        "b": -0.25,
    }
    assert Calibration.from_dict({"method": "none"}) == Calibration("none", (), (), 1.0, 0.0)
    loaded = Calibration.from_dict({"method": "platt", "a": "2", "b": 1})
    assert (loaded.a, loaded.b) == (2.0, 1.0) and type(loaded.b) is float
    assert Calibration.from_dict({"method": "isotonic", "x": [0, 1], "y": [0.2, 0.4]}).x == (0, 1)


# --- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fit_cuts", "engagement_cuts"])
@pytest.mark.parametrize("cuts", [(0.0, 1.0), (0.0, 1.0, 2.0, 3.0), ()])
def test_policy_refuses_cut_lists_that_are_not_quartiles(name, cuts):
    message = f"policy {name} must hold 3 cut points (quartiles), got {len(cuts)}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _policy(**{name: cuts})


def test_threshold_for_uses_each_regions_own_threshold():
    policy = _policy(region_thresholds={"NA": 0.3, "EMEA": 0.7})
    regions = np.array(["NA", "EMEA", "", "APAC", "NA"], dtype=object)
    assert policy.threshold_for(regions).tolist() == [0.3, 0.7, 0.5, 0.5, 0.3]
    assert policy.threshold_for(regions).dtype == np.float64
    assert _policy().threshold_for(regions).tolist() == [0.5] * 5


def test_score_is_the_percentile_with_values_on_a_knot_scoring_that_knot():
    policy = _policy()
    p = np.array([-0.1, 0.0, 0.004, 0.01, 0.015, 0.5, 0.995, 1.0, 1.5])
    assert policy.scores(p).tolist() == [0, 0, 0, 1, 1, 50, 99, 100, 100]
    assert policy.scores(p).dtype == np.int64


def test_score_of_tied_knots_is_the_highest_percentile_they_share():
    policy = _policy(score_knots=(0.0, 0.2, 0.2, 0.2, 0.5))
    assert policy.scores(np.array([0.1, 0.2, 0.3, 0.5, 0.6])).tolist() == [0, 3, 3, 4, 4]


def test_score_never_exceeds_100_even_with_finer_knots():
    policy = _policy(score_knots=tuple(np.linspace(0.0, 1.0, 201)))
    assert policy.scores(np.array([0.25, 1.0, 2.0])).tolist() == [50, 100, 100]


def test_score_without_knots_is_the_probability_in_percent():
    for knots in ((), (0.5,)):
        policy = _policy(score_knots=knots)
        scores = policy.scores(np.array([0.0, 0.126, 0.5, 1.0]))
        assert scores.tolist() == [0, 13, 50, 100]
        assert scores.dtype == np.int64
    two = _policy(score_knots=(0.0, 1.0))
    assert two.scores(np.array([0.5, 1.0])).tolist() == [0, 1]


def test_grades_A_is_at_or_above_the_top_fit_cut_and_1_the_most_engaged():
    policy = _policy()
    values = np.array([1.0, 2.0, 0.99, 0.0, -0.5, -1.0, -1.01, -3.0])
    letters = ["A", "A", "B", "B", "C", "C", "D", "D"]
    digits = ["1", "1", "2", "2", "3", "3", "4", "4"]
    grades = policy.grades(values, np.zeros(len(values)))
    assert grades.tolist() == [f"{letter}2" for letter in letters]
    grades = policy.grades(np.zeros(len(values)), values)
    assert grades.tolist() == [f"B{digit}" for digit in digits]
    assert policy.grades(np.array([5.0, -5.0]), np.array([-5.0, 5.0])).tolist() == ["A4", "D1"]
    assert GRADE_LETTERS == "ABCD"


def test_grades_use_the_policys_own_cuts_per_group():
    policy = _policy(fit_cuts=(10.0, 20.0, 30.0), engagement_cuts=(-3.0, -2.0, -1.0))
    grades = policy.grades(np.array([5.0, 10.0, 25.0, 30.0]), np.array([-1.0, -2.0, -2.5, -9]))
    assert grades.tolist() == ["D1", "C2", "B3", "A4"]


def _predictions(probability: np.ndarray) -> Predictions:
    n = len(probability)
    return Predictions(
        raw=np.arange(n, dtype=float),
        probability=probability,
        shap=np.ones((n, 2)),
        fit_sum=np.linspace(-2, 2, n),
        engagement_sum=np.linspace(2, -2, n),
        X=np.zeros((n, 2)),
        base_value=0.25,
    )


def test_apply_flags_mqls_at_or_above_their_threshold_and_passes_the_rest_through():
    policy = _policy(threshold=0.5, region_thresholds={"NA": 0.2})
    predictions = _predictions(np.array([0.5, 0.49, 0.2, 0.19, 0.9]))
    regions = np.array(["", "EMEA", "NA", "NA", "NA"], dtype=object)
    lead_id = np.array(["a", "b", "c", "d", "e"], dtype=object)
    as_of = np.array(["t"] * 5, dtype=object)
    scores = policy.apply(predictions, regions, lead_id, as_of)
    assert scores.mql.tolist() == [True, False, True, False, True]
    assert scores.threshold.tolist() == [0.5, 0.5, 0.2, 0.2, 0.2]
    assert scores.score.tolist() == policy.scores(predictions.probability).tolist()
    assert scores.score.tolist() == [50, 49, 20, 19, 90]
    assert scores.grade.tolist() == ["D1", "C1", "B2", "A3", "A4"]
    for name in ("raw", "probability", "shap", "fit_sum", "engagement_sum", "X"):
        assert getattr(scores, name) is getattr(predictions, name)
    assert scores.base_value == 0.25
    assert scores.lead_id is lead_id and scores.as_of is as_of


def test_policy_round_trips_through_json_with_defaults_for_old_files():
    policy = _policy(region_thresholds={"NA": 0.3}, region_feature="country")
    payload = policy.to_dict()
    assert payload == {
        "rule": "capacity",
        "target": 0.2,
        "threshold": 0.5,
        "region_thresholds": {"NA": 0.3},
        "region_feature": "country",
        "fit_cuts": [-1.0, 0.0, 1.0],
        "engagement_cuts": [-1.0, 0.0, 1.0],
        "score_knots": list(policy.score_knots),
    }
    assert Policy.from_dict(payload) == policy
    old = {
        "rule": "precision",
        "target": "0.5",
        "threshold": 1,
        "fit_cuts": [1, 2, 3],
        "engagement_cuts": [4, 5, 6],
    }
    loaded = Policy.from_dict(old)
    assert loaded == Policy("precision", 0.5, 1.0, (1, 2, 3), (4, 5, 6), ())
    assert type(loaded.target) is float and type(loaded.threshold) is float
    assert loaded.region_thresholds == {} and loaded.region_feature == "region"
    typed = Policy.from_dict({**old, "region_thresholds": {"NA": "0.25"}})
    assert typed.region_thresholds == {"NA": 0.25}


# --- the model and the bundle ------------------------------------------------------------


def test_predict_matrix_gives_margins_calibrated_probabilities_and_group_sums(trained):
    booster, spec, frame = trained
    calibration = Calibration("platt", a=0.5, b=-0.5)
    model = CalibratedModel(booster, spec, calibration)
    X = spec.transform(frame)
    predictions = model.predict_matrix(X)
    raw = booster.predict(X, raw_score=True)
    assert predictions.raw == pytest.approx(raw, abs=1e-9)
    assert predictions.probability == pytest.approx(calibration(raw), abs=1e-9)
    shap = predictions.shap
    assert shap.shape == (len(frame), 3)
    assert shap.sum(axis=1) + predictions.base_value == pytest.approx(raw, abs=1e-9)
    assert predictions.fit_sum == pytest.approx(shap[:, 0] + shap[:, 2], abs=1e-12)
    assert predictions.engagement_sum == pytest.approx(shap[:, 1], abs=1e-12)
    assert predictions.X is X
    assert type(predictions.base_value) is float
    assert np.abs(shap[:, [0, 1, 2]]).sum(axis=0).min() > 0  # every feature is used
    assert model.explainer is model.explainer


def test_predict_and_predict_proba_encode_the_frame_as_the_spec_says(trained):
    booster, spec, frame = trained
    model = CalibratedModel(booster, spec, Calibration("platt", a=0.5, b=-0.5))
    expected = model.predict_matrix(spec.transform(frame))
    predictions = model.predict(frame)
    assert predictions.probability == pytest.approx(expected.probability, abs=1e-12)
    np.testing.assert_array_equal(predictions.X, expected.X)
    assert model.predict_proba(frame) == pytest.approx(expected.probability, abs=1e-9)
    raw, shap = model.explain_matrix(spec.transform(frame).astype(np.float32))
    assert raw == pytest.approx(expected.raw, abs=1e-9)
    assert shap == pytest.approx(expected.shap, abs=1e-9)


def test_bundle_score_applies_each_regions_threshold_to_its_leads(trained):
    booster, spec, frame = trained
    frame = frame.copy()
    frame.loc[0, "region"] = np.nan
    policy = _policy(threshold=0.5, region_thresholds={"NA": 0.0, "EMEA": 1.01})
    bundle = ModelBundle(booster, spec, Calibration(), policy)
    scores = bundle.score(frame)
    region = frame["region"].astype("string").fillna("").to_numpy(dtype=object)
    expected_threshold = np.where(region == "NA", 0.0, np.where(region == "EMEA", 1.01, 0.5))
    assert scores.threshold.tolist() == expected_threshold.tolist()
    assert scores.threshold[0] == 0.5  # unknown region: the global threshold
    assert scores.mql.tolist() == (scores.probability >= expected_threshold).tolist()
    assert scores.mql[region == "NA"].all() and not scores.mql[region == "EMEA"].any()
    assert scores.lead_id.tolist() == frame["lead_id"].tolist()
    assert scores.as_of.tolist() == frame["as_of"].to_numpy().tolist()
    predictions = bundle.predict(frame)
    assert scores.probability == pytest.approx(predictions.probability, abs=1e-12)
    assert (
        scores.grade.tolist()
        == policy.grades(predictions.fit_sum, predictions.engagement_sum).tolist()
    )
    assert scores.score.tolist() == policy.scores(predictions.probability).tolist()
    assert bundle.metadata is not None and bundle.policy is policy


def test_bundle_score_without_ids_or_region_column(trained):
    booster, spec, frame = trained
    bare = frame.drop(columns=["lead_id", "as_of"])
    policy = _policy(threshold=0.5, region_thresholds={"NA": 0.0}, region_feature="country")
    scores = ModelBundle(booster, spec, Calibration(), policy).score(bare)
    assert scores.lead_id.tolist() == list(range(len(frame)))
    assert scores.as_of.tolist() == [None] * len(frame)
    assert scores.threshold.tolist() == [0.5] * len(frame)  # no "country" feature: global


def test_score_matrix_is_predict_matrix_then_the_policy(trained):
    booster, spec, frame = trained
    policy = _policy(threshold=0.3)
    bundle = ModelBundle(booster, spec, Calibration("platt", a=1.0, b=0.5), policy)
    X = spec.transform(frame)
    regions = np.full(len(frame), "", dtype=object)
    ids = frame["lead_id"].to_numpy()
    scores = bundle.score_matrix(X, regions, ids, ids)
    predictions = bundle.predict_matrix(X)
    assert scores.probability == pytest.approx(predictions.probability, abs=1e-12)
    assert scores.mql.tolist() == (predictions.probability >= 0.3).tolist()
    assert scores.X is X


# --- reasons -----------------------------------------------------------------------------


def _scores(spec: InputSpec, shap: np.ndarray, X: np.ndarray) -> Scores:
    n = len(shap)
    zeros = np.zeros(n)
    return Scores(
        raw=zeros,
        probability=np.full(n, 0.25),
        shap=shap,
        fit_sum=zeros,
        engagement_sum=zeros,
        X=X,
        base_value=0.0,
        lead_id=np.array([f"L{i}" for i in range(n)], dtype=object),
        as_of=np.array(["2024-01-01"] * n, dtype=object),
        score=np.full(n, 25),
        mql=np.array([True] * n),
        threshold=np.full(n, 0.2),
        grade=np.array(["B2"] * n, dtype=object),
    )


def test_reasons_rank_contributions_and_decode_values(trained):
    _, spec, _ = trained
    code = float(spec.features_[2].categories.index("EMEA"))
    shap = np.array([[0.3, -0.1, -0.4], [0.0, 0.2, 0.1], [-0.2, 0.0, 0.0]])
    X = np.array([[120.0, 0.0, code], [5.0, 3.0, np.nan], [7.0, 1.0, code]])
    scores = _scores(spec, shap, X)
    reasons = scores.reasons(0, spec)
    assert reasons["positive"] == [
        {
            "feature": "size",
            "signal": "size",
            "group": "fit",
            "value": 120.0,
            "contribution": 0.3,
            "sentence": "Company of 120 people",
            "features": [{"feature": "size", "value": 120.0, "contribution": 0.3}],
        }
    ]
    assert [r["feature"] for r in reasons["negative"]] == ["region", "visits"]  # most negative
    assert reasons["negative"][0] == {
        "feature": "region",
        "signal": "region",
        "group": "fit",
        "value": "EMEA",
        "contribution": -0.4,
        "sentence": "Based in EMEA",
        "features": [{"feature": "region", "value": "EMEA", "contribution": -0.4}],
    }
    assert reasons["negative"][1]["sentence"] == "Never visited"
    assert reasons["negative"][1]["group"] == "engagement"
    assert type(reasons["negative"][1]["contribution"]) is float
    second = scores.reasons(1, spec)
    assert [r["feature"] for r in second["positive"]] == ["visits", "region"]  # 0 is no reason
    assert second["negative"] == []
    assert second["positive"][1]["value"] is None
    assert second["positive"][1]["sentence"] == "Region: not known"
    third = scores.reasons(2, spec)
    assert third["positive"] == [] and [r["feature"] for r in third["negative"]] == ["size"]


def test_reasons_keep_the_top_n_of_each_side(trained):
    _, spec, _ = trained
    shap = np.array([[0.3, 0.5, 0.1], [-0.3, -0.5, -0.1]])
    X = np.array([[1.0, 2.0, np.nan], [1.0, 2.0, np.nan]])
    scores = _scores(spec, shap, X)
    assert [r["feature"] for r in scores.reasons(0, spec)["positive"]] == [
        "visits",
        "size",
        "region",
    ]
    assert [r["feature"] for r in scores.reasons(0, spec, top=2)["positive"]] == [
        "visits",
        "size",
    ]
    assert [r["feature"] for r in scores.reasons(1, spec, top=1)["negative"]] == ["visits"]
    assert [r["feature"] for r in scores.reasons(1, spec, top=2)["negative"]] == [
        "visits",
        "size",
    ]
    assert scores.reasons(1, spec, top=2)["positive"] == []


def test_frame_has_one_row_per_lead_with_reasons_as_sentences(trained):
    _, spec, _ = trained
    code = float(spec.features_[2].categories.index("NA"))
    shap = np.array([[0.3, 0.2, -0.4], [0.1, 0.2, 0.3]])
    X = np.array([[12.0, 4.0, code], [5.0, 3.0, code]])
    out = _scores(spec, shap, X).frame(spec)
    assert list(out.columns) == [
        "lead_id",
        "as_of",
        "probability",
        "score",
        "mql",
        "threshold",
        "grade",
        "top_positive_reasons",
        "top_negative_reasons",
        "top_positive_signal",
        "top_negative_signal",
    ]
    assert out["top_positive_signal"].tolist() == ["size", "region"]
    assert out["top_negative_signal"].tolist() == ["region", ""]
    assert out["lead_id"].tolist() == ["L0", "L1"]
    assert out["probability"].tolist() == [0.25, 0.25]
    assert out["score"].tolist() == [25, 25] and out["mql"].tolist() == [True, True]
    assert out["threshold"].tolist() == [0.2, 0.2] and out["grade"].tolist() == ["B2", "B2"]
    assert out["as_of"].tolist() == ["2024-01-01"] * 2
    assert out.loc[0, "top_positive_reasons"] == "Company of 12 people | Visited 4 times"
    assert out.loc[0, "top_negative_reasons"] == "Based in NA"
    assert out.loc[1, "top_positive_reasons"] == (
        "Based in NA | Visited 3 times | Company of 5 people"
    )
    assert out.loc[1, "top_negative_reasons"] == ""
    one = _scores(spec, shap, X).frame(spec, top=1)
    assert one["top_positive_reasons"].tolist() == ["Company of 12 people", "Based in NA"]


def test_bundle_keeps_the_metadata_it_is_given(trained):
    booster, spec, _ = trained
    metadata = BundleMetadata(model_name="exact-test")
    bundle = ModelBundle(booster, spec, Calibration(), _policy(), metadata)
    assert bundle.metadata is metadata
    assert ModelBundle(booster, spec, Calibration(), _policy()).metadata == BundleMetadata()


SEVEN = tuple(
    FeatureSpec(
        name=f"f{j}",
        group="fit",
        dtype="float",
        template=f"F{j} is {{value:.0f}}",
        description=f"F{j}",
    )
    for j in range(7)
)


def test_reasons_default_to_the_top_five_and_the_frame_to_the_top_three():
    spec = InputSpec(SEVEN).fit(pd.DataFrame({f.name: [1.0] for f in SEVEN}))
    shap = np.array(
        [[0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [-0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1]]
    )
    scores = _scores(spec, shap, np.arange(14, dtype=float).reshape(2, 7))
    assert [r["feature"] for r in scores.reasons(0, spec)["positive"]] == [
        f"f{j}" for j in range(5)
    ]
    assert [r["feature"] for r in scores.reasons(1, spec)["negative"]] == [
        f"f{j}" for j in range(5)
    ]
    out = scores.frame(spec)
    assert out.loc[0, "top_positive_reasons"] == "F0 is 0 | F1 is 1 | F2 is 2"
    assert out.loc[1, "top_negative_reasons"] == "F0 is 7 | F1 is 8 | F2 is 9"
