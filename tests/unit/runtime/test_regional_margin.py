"""A margin per region: each row scored and explained by its region's margin, offsets on
the pooled one, unseen regions on the pooled one, and a JSON round trip."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import FeatureSpec
from runtime.bundle import Calibration, ModelBundle, Policy
from runtime.encoding import InputSpec
from runtime.margin import TreeMargin, load_margin, save_margin
from runtime.metadata import ModelArtifactError
from runtime.regional import REGIONAL_FILE, RegionalMargin, Route
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
    return pd.DataFrame(
        {
            "size": rng.integers(1, 1000, n).astype(float),
            "visits": rng.integers(0, 20, n).astype(float),
            "region": pd.Categorical(rng.choice(["NA", "EMEA", "APAC"], n, p=[0.5, 0.3, 0.2])),
        }
    )


@pytest.fixture(scope="module")
def world():
    frame = _frame(600, 0)
    y = np.random.default_rng(1).random(len(frame)) < 1 / (1 + np.exp(2 - frame["visits"] / 5))
    y = y.astype(int).to_numpy()
    spec = InputSpec(FEATURES).fit(frame)
    X = spec.transform(frame)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1}
    pooled = TreeMargin(lgb.train(params, lgb.Dataset(X, y), 10))
    code = {c: float(i) for i, c in enumerate(spec.features_[2].categories)}
    own = fit_linear(X, y, spec, C=1.0)  # EMEA's own model: another kind, another scale
    routes = [
        Route("EMEA", code["EMEA"], "own", "logistic", scale=0.7, shift=-0.3, margin=own),
        Route("APAC", code["APAC"], "offset", "lightgbm", shift=0.25),
    ]
    regional = RegionalMargin(pooled, 2, routes, "region")
    test = spec.transform(_frame(80, 2))
    test[0, 2] = np.nan  # missing region: pooled
    test[1, 2] = 99.0  # a region never seen in training: pooled
    return spec, regional, pooled, own, code, test


def test_each_row_is_scored_by_its_regions_margin(world):
    _spec, regional, pooled, own, code, X = world
    raw = regional.predict_raw(X)
    region = X[:, 2]
    emea, apac = region == code["EMEA"], region == code["APAC"]
    rest = ~(emea | apac)
    assert emea.any() and apac.any() and rest.sum() >= 2
    np.testing.assert_allclose(raw[emea], -0.3 + 0.7 * own.predict_raw(X[emea]))
    np.testing.assert_allclose(raw[apac], pooled.predict_raw(X[apac]) + 0.25)
    np.testing.assert_allclose(raw[rest], pooled.predict_raw(X[rest]))
    assert list(regional.route_of(X[:2])) == [-1, -1]  # missing and unseen: pooled


def test_explanations_are_exact_and_come_from_the_margin_that_scored(world):
    _spec, regional, pooled, own, code, X = world
    raw, shap = regional.explain(X)
    np.testing.assert_allclose(raw, regional.predict_raw(X), atol=1e-12)
    np.testing.assert_allclose(shap.sum(1) + regional.expected_value, raw, atol=1e-9)
    assert regional.expected_value == pytest.approx(pooled.expected_value)
    emea = X[:, 2] == code["EMEA"]
    _, own_shap = own.explain(X[emea])
    # the features other than the region: the own model's SHAP, scaled
    np.testing.assert_allclose(shap[emea][:, :2], 0.7 * own_shap[:, :2], atol=1e-12)
    apac = X[:, 2] == code["APAC"]
    _, pooled_shap = pooled.explain(X[apac])
    np.testing.assert_allclose(shap[apac][:, :2], pooled_shap[:, :2], atol=1e-12)
    np.testing.assert_allclose(shap[apac][:, 2], pooled_shap[:, 2] + 0.25, atol=1e-12)


def test_round_trip_through_a_bundle(world, tmp_path):
    spec, regional, _pooled, _own, _code, X = world
    save_margin(regional, tmp_path)
    manifest = json.loads((tmp_path / REGIONAL_FILE).read_text())
    assert [r["region"] for r in manifest["routes"]] == ["EMEA", "APAC"]
    assert (
        manifest["routes"][0]["folder"] == "regions/0" and manifest["routes"][1]["folder"] is None
    )
    assert not list(tmp_path.rglob("*.pkl"))
    loaded = load_margin(tmp_path)
    assert isinstance(loaded, RegionalMargin) and loaded.kind == "regional"
    for a, b in zip(loaded.explain(X), regional.explain(X), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    policy = Policy("capacity", 0.2, 0.5, (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), ())
    bundle = ModelBundle(regional, spec, Calibration("platt", a=0.9, b=0.1), policy)
    bundle.save(tmp_path / "bundle")
    again = ModelBundle.load(tmp_path / "bundle")
    frame = _frame(30, 3)
    np.testing.assert_allclose(again.predict_proba(frame), bundle.predict_proba(frame))
    scores = again.score(frame.assign(lead_id=range(30)))
    np.testing.assert_allclose(scores.shap.sum(1) + scores.base_value, scores.raw, atol=1e-9)


def test_a_broken_manifest_is_named(world, tmp_path):
    _spec, regional, *_ = world
    save_margin(regional, tmp_path)
    manifest = json.loads((tmp_path / REGIONAL_FILE).read_text())
    manifest["routes"][0]["folder"] = "../../etc"
    (tmp_path / REGIONAL_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match=r"regional\.json"):
        load_margin(tmp_path)
    (tmp_path / REGIONAL_FILE).write_text("{}")
    with pytest.raises(ModelArtifactError, match="malformed regional model"):
        load_margin(tmp_path)


def test_routes_are_checked(world):
    _spec, regional, pooled, own, _code, _X = world
    with pytest.raises(ValueError, match="positive"):
        Route("EMEA", 1.0, "own", "logistic", scale=0.0, margin=own)
    with pytest.raises(ValueError, match="needs a margin"):
        Route("EMEA", 1.0, "own", "logistic")
    with pytest.raises(ValueError, match="repeat"):
        RegionalMargin(pooled, 2, [Route("A", 1.0, "offset", "x"), Route("B", 1.0, "offset", "x")])
    with pytest.raises(ValueError, match="cannot itself be regional"):
        RegionalMargin(regional, 2, [])  # type: ignore[arg-type]
