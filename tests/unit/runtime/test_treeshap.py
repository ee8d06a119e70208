"""TreeShapExplainer must reproduce shap.TreeExplainer / LightGBM pred_contrib exactly.

Every model is small (tens of trees, a few thousand rows) so the file stays fast;
the kernels are compiled once per process (and cached on disk across processes).
Each case checks both code paths: a few rows (scalar kernel) and a batch that is
not a multiple of the block size (SIMD block kernel, partial last block).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap

from runtime import treeshap
from runtime.treeshap import TreeShapExplainer

ATOL = 1e-6
N_ROWS = 2000


def _train(X: Any, y: np.ndarray, rounds: int = 30, **params: Any) -> lgb.Booster:
    base = {"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 7}
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds)


def _shap_reference(booster: lgb.Booster, X: np.ndarray) -> tuple[np.ndarray, float]:
    explainer = shap.TreeExplainer(booster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = explainer.shap_values(X)
    return np.asarray(values), float(np.ravel(explainer.expected_value)[0])


def _assert_matches(booster: lgb.Booster, X: np.ndarray) -> TreeShapExplainer:
    """Compare with shap, raw predictions and additivity on both kernel paths."""
    explainer = TreeShapExplainer(booster)
    ref, ref_base = _shap_reference(booster, X)
    raw_ref = booster.predict(X, raw_score=True)
    assert explainer.expected_value == pytest.approx(ref_base, abs=ATOL)
    for rows in (slice(0, 3), slice(0, 203), slice(0, len(X))):
        raw, phi = explainer.explain(X[rows])
        np.testing.assert_allclose(phi, ref[rows], rtol=0, atol=ATOL)
        np.testing.assert_allclose(raw, raw_ref[rows], rtol=0, atol=ATOL)
        np.testing.assert_allclose(
            phi.sum(axis=1) + explainer.expected_value, raw_ref[rows], rtol=0, atol=ATOL
        )
    # the per-row kernel serves single rows only when trees are too deep to pad: check it too
    phi_rows, raw_rows = np.empty((3, X.shape[1])), np.empty(3)
    treeshap._explain_rows(
        np.ascontiguousarray(X[:3]),
        phi_rows,
        raw_rows,
        explainer._model.max_nodes,
        explainer._model.nq,
        *explainer._kernel_arrays(),
    )
    np.testing.assert_allclose(phi_rows, ref[:3], rtol=0, atol=ATOL)
    np.testing.assert_allclose(raw_rows, raw_ref[:3], rtol=0, atol=ATOL)
    np.testing.assert_allclose(explainer.predict_raw(X), raw_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(explainer.shap_values(X[:5]), ref[:5], rtol=0, atol=ATOL)
    return explainer


def _split_kinds(booster: lgb.Booster) -> set[tuple[str, str]]:
    """(decision_type, missing_type) of every split, to prove a test exercises them."""
    kinds: set[tuple[str, str]] = set()
    stack = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            kinds.add((node["decision_type"], node["missing_type"]))
            stack += [node["left_child"], node["right_child"]]
    return kinds


def _numeric_data(seed: int = 0, n_features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, n_features))
    logit = 1.5 * X[:, 0] - X[:, 1] ** 2 + np.sin(3 * X[:, 2]) + X[:, 3] * X[:, 4]
    y = (logit + rng.normal(size=N_ROWS) > 0).astype(int)
    return X, y


def _eval_rows(X: np.ndarray, n: int = 203) -> np.ndarray:
    """First ``n`` rows.

    ``_assert_matches`` checks 3 rows (per-row kernels), 203 rows (serial block
    kernel, 3 full blocks and a partial one) and all of them (``n >= 512``: the
    threaded block kernel).
    """
    return np.ascontiguousarray(X[:n])


def test_numeric_only() -> None:
    X, y = _numeric_data()
    booster = _train(X, y)
    _assert_matches(booster, _eval_rows(X, 600))


def test_depth_limited() -> None:
    X, y = _numeric_data(seed=1)
    booster = _train(X, y, rounds=40, max_depth=3, num_leaves=8)
    _assert_matches(booster, _eval_rows(X))


def test_many_trees_span_several_lane_groups() -> None:
    """The single-row kernel takes trees 64 at a time: full groups plus a padded last one."""
    X, y = _numeric_data(seed=4)
    booster = _train(X, y, rounds=150, max_depth=4, num_leaves=12)
    explainer = _assert_matches(booster, _eval_rows(X))
    assert explainer._lanes is not None and explainer._lanes.n_groups == 3


def test_leaf_wise_deep_trees() -> None:
    """Unbounded depth: long paths with repeated features need more quadrature points."""
    X, y = _numeric_data(seed=2)
    booster = _train(X, y, rounds=20, num_leaves=31, max_depth=-1, min_data_in_leaf=3)
    explainer = _assert_matches(booster, _eval_rows(X, 600))
    assert explainer._model.nq >= 4  # at least 7 distinct features on some path
    assert explainer._lanes is None  # too deep to pad: single rows use the per-row kernel


def test_single_tree() -> None:
    X, y = _numeric_data(seed=3)
    booster = _train(X, y, rounds=1)
    assert booster.num_trees() == 1
    _assert_matches(booster, _eval_rows(X))


def test_nan_missing_values() -> None:
    """use_missing default: NaN seen in training gives missing_type NaN splits."""
    X, y = _numeric_data(seed=4)
    rng = np.random.default_rng(4)
    X[rng.random(X.shape) < 0.15] = np.nan
    X[:, 7] = rng.normal(size=N_ROWS)  # no NaN in training: missing_type None
    booster = _train(X, y)
    assert ("<=", "NaN") in _split_kinds(booster)
    rows = _eval_rows(X).copy()
    rows[::5, 7] = np.nan  # NaN where the model never saw one (treated as 0.0)
    rows[1] = np.nan  # an all-NaN row
    _assert_matches(booster, rows)


def test_zero_as_missing() -> None:
    X, y = _numeric_data(seed=5)
    rng = np.random.default_rng(5)
    X[rng.random(X.shape) < 0.3] = 0.0
    X[rng.random(X.shape) < 0.05] = np.nan
    booster = _train(X, y, zero_as_missing=True)
    assert ("<=", "Zero") in _split_kinds(booster)
    rows = _eval_rows(X).copy()
    rows[2] = np.nan
    rows[3] = 0.0
    rows[4, :4] = 1e-40  # below LightGBM's zero threshold: also missing
    _assert_matches(booster, rows)


def _categorical_frame(seed: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 3, N_ROWS)  # few categories: one-vs-rest splits
    large = rng.integers(0, 45, N_ROWS)  # many categories: multi-category bitsets
    num = rng.normal(size=(N_ROWS, 3))
    effect = np.sin(large) + (small == 1) + num[:, 0]
    y = (effect + 0.5 * rng.normal(size=N_ROWS) > 0.3).astype(int)
    frame = pd.DataFrame(
        {
            "small": pd.Categorical(small),
            "large": pd.Categorical(large.astype(float)),
            "x0": num[:, 0],
            "x1": num[:, 1],
            "x2": num[:, 2],
        }
    )
    frame.loc[rng.random(N_ROWS) < 0.1, "large"] = np.nan
    return frame, y


def _as_codes(frame: pd.DataFrame) -> np.ndarray:
    """Float matrix as LightGBM sees a pandas frame: category codes, NaN for missing."""
    columns = []
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.float64)
            columns.append(np.where(codes < 0, np.nan, codes))
        else:
            columns.append(col.to_numpy(dtype=np.float64))
    return np.column_stack(columns)


def test_categorical_features() -> None:
    frame, y = _categorical_frame()
    booster = _train(frame, y, min_data_per_group=5, cat_smooth=1.0, max_cat_to_onehot=4)
    assert any(kind[0] == "==" for kind in _split_kinds(booster))
    X = _as_codes(frame)
    np.testing.assert_allclose(
        booster.predict(X, raw_score=True), booster.predict(frame, raw_score=True)
    )
    rows = _eval_rows(X, 600).copy()
    rows[0, :2] = np.nan  # missing category: goes right
    rows[1, :2] = -3.0  # negative code: goes right
    rows[2, :2] = 1000.0  # unseen category beyond every bitset
    rows[3, :2] = [1.7, 12.9]  # fractional codes truncate toward zero
    rows[4, :2] = -0.5  # truncates to category 0
    rows[5] = np.nan
    _assert_matches(booster, rows)


def test_random_forest() -> None:
    """boosting="rf": raw_score (and pred_contrib) are the un-averaged sum of trees."""
    X, y = _numeric_data(seed=8)
    booster = _train(X, y, rounds=20, boosting="rf", bagging_fraction=0.6, bagging_freq=1)
    _assert_matches(booster, _eval_rows(X))


def test_single_row_vector_and_list_input() -> None:
    X, y = _numeric_data(seed=9)
    explainer = TreeShapExplainer(_train(X, y, rounds=10))
    raw, phi = explainer.explain(X[0])
    raw_list, phi_list = explainer.explain(X[0].tolist())
    assert phi.shape == (1, X.shape[1])
    np.testing.assert_array_equal(phi, phi_list)
    np.testing.assert_array_equal(raw, raw_list)
    np.testing.assert_allclose(phi, explainer.explain(X[:1])[1])


def test_wrong_width_is_rejected() -> None:
    X, y = _numeric_data(seed=10)
    explainer = TreeShapExplainer(_train(X, y, rounds=5))
    with pytest.raises(ValueError, match="matrix"):
        explainer.explain(X[:, :-1])


def test_categorical_frame_is_rejected() -> None:
    """Converting a categorical frame would give category values, not LightGBM's codes."""
    frame, y = _categorical_frame()
    explainer = TreeShapExplainer(_train(frame, y, rounds=3))
    with pytest.raises(TypeError, match="codes"):
        explainer.explain(frame.head(2))


def test_multiclass_is_rejected() -> None:
    X, _ = _numeric_data(seed=11)
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    booster = _train(X, y, rounds=5, objective="multiclass", num_class=3)
    with pytest.raises(ValueError, match="single-output"):
        TreeShapExplainer(booster)


def test_linear_tree_is_rejected() -> None:
    X, y = _numeric_data(seed=12)
    booster = _train(X, y, rounds=3, linear_tree=True)
    with pytest.raises(ValueError, match="linear_tree"):
        TreeShapExplainer(booster)


def test_second_process_loads_kernels_from_cache() -> None:
    """cache=True: after this process compiled the kernels, a new one must not recompile."""
    X, y = _numeric_data(seed=13)
    TreeShapExplainer(_train(X, y, rounds=3)).warmup()
    script = textwrap.dedent(
        """
        import lightgbm as lgb, numpy as np
        from runtime import treeshap
        rng = np.random.default_rng(0)
        X = rng.normal(size=(500, 8)); y = (X[:, 0] > 0).astype(int)
        params = {"objective": "binary", "verbose": -1, "num_leaves": 15}
        treeshap.TreeShapExplainer(lgb.train(params, lgb.Dataset(X, y), 3)).warmup()
        kernels = [treeshap._explain_lanes, treeshap._explain_blocks_serial,
                   treeshap._explain_blocks, treeshap._predict_rows]
        print(sum(sum(k.stats.cache_misses.values()) for k in kernels),
              sum(sum(k.stats.cache_hits.values()) for k in kernels))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    misses, hits = (int(v) for v in out.stdout.split())
    assert misses == 0
    assert hits >= 4
