"""The points margin: hand-set rules scored and explained exactly, stored as JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.catalogue import FeatureSpec
from runtime.bundle import Calibration, ModelBundle, Policy
from runtime.encoding import InputSpec
from runtime.margin import load_margin, save_margin
from runtime.metadata import ModelArtifactError
from runtime.points import PointsMargin, PointsRuleError

FEATURES = (
    FeatureSpec(name="size", group="fit", dtype="float", template="{value}", description="s"),
    FeatureSpec(
        name="visits", group="engagement", dtype="float", template="{value}", description="v"
    ),
    FeatureSpec(
        name="idle", group="engagement", dtype="float", template="{value}", description="i"
    ),
    FeatureSpec(name="region", group="fit", dtype="category", template="{value}", description="r"),
)

RULES = [
    {"feature": "region", "values": {"NA": 10, "EMEA": 5, "APAC": -5}},
    {"feature": "visits", "per": 3, "cap": 15},
    {"feature": "size", "at_least": 200, "points": 8},
    {"feature": "idle", "above": 30, "points": -10, "if_missing": -10},
]


@pytest.fixture(scope="module")
def spec() -> InputSpec:
    frame = pd.DataFrame(
        {
            "size": [10.0, 500.0, np.nan],
            "visits": [0.0, 2.0, 9.0],
            "idle": [1.0, 40.0, np.nan],
            "region": pd.Categorical(["NA", "EMEA", "APAC"]),
        }
    )
    return InputSpec(FEATURES).fit(frame)


def _rows(spec: InputSpec) -> np.ndarray:
    frame = pd.DataFrame(
        {
            "size": [250.0, 10.0, np.nan, 199.0],
            "visits": [2.0, 0.0, 9.0, np.nan],
            "idle": [5.0, 31.0, np.nan, 30.0],
            "region": ["NA", "APAC", None, "LATAM"],  # LATAM: never seen in training
        }
    )
    return spec.transform(frame)


def _margin(spec: InputSpec) -> PointsMargin:
    return PointsMargin.from_rules(RULES, spec, scale=0.05, offset=-3.0, threshold=20)


def test_points_are_the_hand_set_rules(spec):
    margin = _margin(spec)
    # row 0: NA 10 + 2 visits 6 + size 250 ≥ 200: 8 + idle 5: 0 = 24
    # row 1: APAC -5 + 0 + 0 + idle 31 > 30: -10 = -15
    # row 2: missing region 0 + 9 visits capped 15 + missing size 0 + missing idle -10 = 5
    # row 3: unseen region 0 + missing visits 0 + 199 < 200: 0 + idle 30 is not above: 0
    np.testing.assert_array_equal(margin.points(_rows(spec)), [24.0, -15.0, 5.0, 0.0])
    np.testing.assert_allclose(
        margin.predict_raw(_rows(spec)), -3.0 + 0.05 * np.array([24, -15, 5, 0])
    )


def test_contributions_are_the_rules_that_fired_and_sum_to_the_margin(spec):
    margin = _margin(spec)
    X = _rows(spec)
    raw, shap = margin.explain(X)
    assert margin.expected_value == -3.0
    np.testing.assert_allclose(margin.expected_value + shap.sum(axis=1), raw, atol=1e-9, rtol=0)
    np.testing.assert_array_equal(raw, margin.predict_raw(X))
    # columns: size, visits, idle, region
    np.testing.assert_allclose(shap[0], 0.05 * np.array([8, 6, 0, 10]))
    np.testing.assert_allclose(shap[1], 0.05 * np.array([0, 0, -10, -5]))
    assert [(r.feature, p) for r, p in margin.fired(X[2])] == [("visits", 15.0), ("idle", -10.0)]


def test_a_points_bundle_round_trips_scores_and_reasons_name_the_fired_rules(spec, tmp_path):
    margin = _margin(spec)
    policy = Policy("capacity", 0.2, 0.5, (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), ())
    calibration = Calibration("platt", a=1.0, b=0.2, cov=(0.01, 0.0, 0.0, 0.02))
    bundle = ModelBundle(margin, spec, calibration, policy)
    folder = bundle.save(tmp_path / "points")
    assert json.loads((folder / "margin.json").read_text())["kind"] == "points"
    assert (folder / "points_model.json").exists()
    assert not (folder / "model.txt").exists() and not (folder / "linear_model.json").exists()
    assert not list(folder.glob("*.pkl"))
    again = ModelBundle.load(folder)
    assert again.kind == "points" and isinstance(again.margin, PointsMargin)
    assert again.margin.to_dict() == margin.to_dict()
    X = _rows(spec)
    got, want = again.predict_matrix(X), bundle.predict_matrix(X)
    np.testing.assert_array_equal(got.raw, want.raw)
    np.testing.assert_array_equal(got.shap, want.shap)
    np.testing.assert_allclose(got.base_value + got.shap.sum(axis=1), got.raw, atol=1e-9, rtol=0)
    low, high = again.calibration.interval(got.raw)
    assert np.all(low < got.probability) and np.all(got.probability < high)
    scores = again.score_matrix(X, np.array(["NA"] * 4, dtype=object), np.arange(4), np.arange(4))
    assert set(scores.grade) <= {f"{a}{d}" for a in "ABCD" for d in "1234"}
    reasons = scores.reasons(0, again.spec, top=5)
    assert [r["signal"] for r in reasons["positive"]] == ["region", "size", "visits"]
    assert reasons["negative"] == []  # idle 5 days: the inactivity rule did not fire
    assert sum(r["contribution"] for r in reasons["positive"]) == pytest.approx(0.05 * 24)
    reasons = scores.reasons(1, again.spec, top=5)
    assert reasons["positive"] == []
    assert [r["signal"] for r in reasons["negative"]] == ["idle", "region"]


def test_bad_rules_are_named(spec):
    with pytest.raises(PointsRuleError, match="'tenure': the model has no such feature"):
        PointsMargin.from_rules([{"feature": "tenure", "per": 1}], spec)
    with pytest.raises(PointsRuleError, match="'region': per needs a numeric feature"):
        PointsMargin.from_rules([{"feature": "region", "per": 1}], spec)
    with pytest.raises(PointsRuleError, match="exactly one of"):
        PointsMargin.from_rules([{"feature": "size", "per": 1, "at_least": 3, "points": 1}], spec)
    with pytest.raises(PointsRuleError, match="points must be a finite number"):
        PointsMargin.from_rules([{"feature": "size", "at_least": 3}], spec)
    with pytest.raises(PointsRuleError, match="at least one rule"):
        PointsMargin.from_rules([], spec)
    with pytest.raises(ValueError, match="positive"):
        PointsMargin.from_rules(RULES, spec, scale=-1.0)


def test_a_malformed_points_file_is_named(spec, tmp_path):
    save_margin(_margin(spec), tmp_path)
    assert isinstance(load_margin(tmp_path), PointsMargin)
    (tmp_path / "points_model.json").write_text(json.dumps({"rules": []}))
    with pytest.raises(ModelArtifactError, match=r"points_model\.json: malformed points model"):
        load_margin(tmp_path)
    (tmp_path / "points_model.json").unlink()
    with pytest.raises(ModelArtifactError, match=r"lacks points_model\.json"):
        load_margin(tmp_path)
