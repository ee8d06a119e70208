"""The margin models of a bundle: exact linear SHAP, the blend, and text/JSON round trips."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import FeatureSpec
from runtime.bundle import Calibration, ModelBundle, Policy
from runtime.encoding import InputSpec
from runtime.linear import CategoricalTerm, LinearMargin, NumericTerm
from runtime.margin import BlendMargin, TreeMargin, load_margin, save_margin
from runtime.metadata import ModelArtifactError
from training.linear import fit_linear

FEATURES = (
    FeatureSpec(name="size", group="fit", dtype="float", template="{value}", description="s"),
    FeatureSpec(
        name="visits", group="engagement", dtype="float", template="{value}", description="v"
    ),
    FeatureSpec(name="region", group="fit", dtype="category", template="{value}", description="r"),
)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 1000, n).astype(float)
    size[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "size": size,
            "visits": rng.integers(0, 20, n).astype(float),
            "region": pd.Categorical(
                rng.choice(["NA", "EMEA", "APAC", "LATAM"], n, p=[0.5, 0.3, 0.17, 0.03])
            ),
        }
    )


@pytest.fixture(scope="module")
def fitted():
    frame = _frame(800, 0)
    logit = -2 + np.nan_to_num(frame["size"]) / 400 + frame["visits"] / 5
    y = (np.random.default_rng(1).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = InputSpec(FEATURES).fit(frame)
    X = spec.transform(frame)
    linear = fit_linear(X, y, spec, C=1.0)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=spec.categorical_indices), 10)
    test = spec.transform(_frame(60, 2))
    test[0, 2] = np.nan  # a missing region
    test[1, 2] = 99.0  # a code never seen in training
    return spec, X, linear, TreeMargin(booster), test


def test_linear_shap_sums_to_raw_minus_base_exactly(fitted):
    _, _, linear, _, test = fitted
    raw, shap = linear.explain(test)
    assert shap.shape == test.shape
    np.testing.assert_allclose(shap.sum(axis=1) + linear.expected_value, raw, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(linear.predict_raw(test), raw)


def test_linear_shap_is_coefficient_times_deviation_from_the_mean(fitted):
    _, X, linear, _, test = fitted
    size = linear.terms[0]
    assert isinstance(size, NumericTerm)
    row = test[5]
    value = (np.sign(row[0]) * np.log1p(abs(row[0])) - size.center) / size.scale
    value = np.clip(value, size.low, size.high)
    want = size.coef * (value - size.mean) + size.missing_coef * (0.0 - size.missing_mean)
    assert linear.explain(test[5:6])[1][0, 0] == pytest.approx(want, abs=1e-12)
    # On the training rows every feature's SHAP averages to zero (means are training means).
    np.testing.assert_allclose(linear.explain(X)[1].mean(axis=0), 0.0, atol=1e-12)


def test_rare_and_unseen_categories_share_the_reference(fitted):
    _, _, linear, _, test = fitted
    region = linear.terms[2]
    assert isinstance(region, CategoricalTerm)
    assert len(region.codes) == 4 or all(c in range(4) for c in region.codes)
    unseen = test[1:2].copy()
    other = test[1:2].copy()
    other[0, 2] = 1e6
    assert linear.predict_raw(unseen) == pytest.approx(linear.predict_raw(other))


def test_linear_json_round_trip_is_identical(fitted, tmp_path):
    _, _, linear, _, test = fitted
    payload = json.loads(json.dumps(linear.to_dict()))
    again = LinearMargin.from_dict(payload)
    raw, shap = linear.explain(test)
    raw2, shap2 = again.explain(test)
    np.testing.assert_array_equal(raw, raw2)
    np.testing.assert_array_equal(shap, shap2)
    assert again.C == linear.C


def test_blend_is_the_weighted_sum_of_its_parts(fitted):
    _, _, linear, tree, test = fitted
    blend = BlendMargin(tree, linear, 0.3)
    raw, shap = blend.explain(test)
    raw_t, shap_t = tree.explain(test)
    raw_l, shap_l = linear.explain(test)
    np.testing.assert_allclose(raw, 0.3 * raw_t + 0.7 * raw_l, atol=1e-12)
    np.testing.assert_allclose(shap, 0.3 * shap_t + 0.7 * shap_l, atol=1e-12)
    np.testing.assert_allclose(shap.sum(axis=1) + blend.expected_value, raw, atol=1e-9)
    np.testing.assert_allclose(blend.predict_raw(test), raw, atol=1e-9)
    with pytest.raises(ValueError, match="weight"):
        BlendMargin(tree, linear, 1.5)


def _policy() -> Policy:
    return Policy("capacity", 0.2, 0.5, (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), ())


@pytest.mark.parametrize("kind", ["tree", "linear", "blend"])
def test_bundle_round_trip_of_every_kind(fitted, tmp_path, kind):
    spec, _, linear, tree, test = fitted
    margin = {"tree": tree, "linear": linear, "blend": BlendMargin(tree, linear, 0.6)}[kind]
    bundle = ModelBundle(margin, spec, Calibration("platt", a=0.9, b=0.1), _policy())
    folder = bundle.save(tmp_path / kind)
    assert json.loads((folder / "margin.json").read_text())["kind"] == kind
    assert (folder / "model.txt").exists() == (kind != "linear")
    assert (folder / "linear_model.json").exists() == (kind != "tree")
    assert not list(folder.glob("*.pkl"))
    again = ModelBundle.load(folder)
    assert again.kind == kind
    got, want = again.predict_matrix(test), bundle.predict_matrix(test)
    np.testing.assert_allclose(got.raw, want.raw, atol=1e-12)
    np.testing.assert_allclose(got.shap, want.shap, atol=1e-12)
    assert got.base_value == pytest.approx(want.base_value, abs=1e-12)
    np.testing.assert_allclose(
        got.fit_sum, got.shap[:, [0, 2]].sum(axis=1), atol=1e-12
    )  # grades read linear SHAP group sums too
    if kind == "linear":
        with pytest.raises(ModelArtifactError, match="no LightGBM booster"):
            _ = again.booster
    else:
        assert again.booster.num_trees() == tree.booster.num_trees()


def test_a_bundle_without_margin_json_is_a_tree_model(fitted, tmp_path):
    spec, _, _, tree, _ = fitted
    folder = ModelBundle(tree.booster, spec, Calibration(), _policy()).save(tmp_path / "old")
    (folder / "margin.json").unlink()
    assert ModelBundle.load(folder).kind == "tree"


def test_malformed_margin_files_are_named(fitted, tmp_path):
    spec, _, linear, _, _ = fitted
    folder = ModelBundle(linear, spec, Calibration(), _policy()).save(tmp_path / "lin")
    (folder / "linear_model.json").write_text('{"terms": 3}')
    with pytest.raises(ModelArtifactError, match=r"linear_model\.json"):
        ModelBundle.load(folder)
    (folder / "margin.json").write_text('{"kind": "forest"}')
    with pytest.raises(ModelArtifactError, match="kind must be one of"):
        load_margin(folder)
    save_margin(linear, folder)
    (folder / "linear_model.json").unlink()
    with pytest.raises(ModelArtifactError, match=r"lacks linear_model\.json"):
        load_margin(folder)


def test_missing_gets_an_indicator_only_when_training_had_enough_gaps():
    frame = _frame(400, 5)
    spec = InputSpec(FEATURES).fit(frame)
    X = spec.transform(frame)
    y = (np.random.default_rng(2).random(len(X)) < 0.3).astype(int)
    X[:3, 2] = np.nan  # three gaps in region: too few to learn what "missing" says
    few = fit_linear(X, y, spec, C=1.0)
    region, size = few.terms[2], few.terms[0]
    assert isinstance(region, CategoricalTerm) and not region.has_missing
    assert region.missing_coef == 0.0
    assert isinstance(size, NumericTerm) and size.has_missing  # ~10% of sizes are missing
    # An unseen category (coded missing by InputSpec) is scored like a rare one: reference.
    unseen, rare = X[3:4].copy(), X[3:4].copy()
    unseen[0, 2], rare[0, 2] = np.nan, 1e6
    assert few.predict_raw(unseen) == pytest.approx(few.predict_raw(rare))
    X[:40, 2] = np.nan
    assert fit_linear(X, y, spec, C=1.0).terms[2].has_missing


def test_numbers_beyond_the_training_range_are_clipped_not_extrapolated(fitted):
    _, X, linear, _, test = fitted
    size = linear.terms[0]
    assert isinstance(size, NumericTerm) and size.low is not None and size.high is not None
    top, far = test[5:6].copy(), test[5:6].copy()
    top[0, 0], far[0, 0] = np.nanmax(X[:, 0]), 1e9
    assert linear.predict_raw(far) == pytest.approx(linear.predict_raw(top), abs=1e-12)
    raw, shap = linear.explain(far)
    assert shap.sum() + linear.expected_value == pytest.approx(raw[0], abs=1e-12)
