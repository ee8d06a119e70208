"""Exact, fast path-dependent TreeSHAP for single-output LightGBM boosters.

Why this exists: the scoring service returns a score *and* its per-feature
explanation for every request. ``shap.TreeExplainer`` (which for LightGBM simply
calls ``booster.predict(pred_contrib=True)``) runs the classic recursive
TreeSHAP, whose per-row cost is ``O(trees * leaves * depth**2)`` plus heavy
per-call overhead, which made explanations the dominant cost of a request.

Algorithm (a "Fast TreeSHAP v2" style reformulation):

For one leaf ``l`` with value ``v`` and the set ``P`` of distinct features on
its root path (``d = |P|``), path-dependent TreeSHAP reduces to a game over
``P`` only. For a row, feature ``k`` in ``P`` is *hot* when the row satisfies
every split on ``k`` along the path and *cold* otherwise; ``z_k`` is the
product of cover ratios ``cover(child) / cover(node)`` of the splits on ``k``.
With ``H`` the hot set, ``w(s, d) = s! (d - s - 1)! / d!``,
``W(M) = sum_{S <= M} w(|S|, d) prod_{k in M \\ S} z_k`` and
``G(M) = v * W(M) * prod_{k in P \\ M} z_k`` the leaf adds

* ``-G(H)`` to every cold feature, and
* ``(1 - z_i) / z_i * G(H \\ {i})`` to every hot feature ``i``.

``G`` does not depend on the row, so it is tabulated once per leaf for all
``2**d`` subsets when the explainer is built. Explaining a row is then one
pass over each tree's nodes to find every leaf's cold set as a bitmask,
followed by ``d`` table look-ups per leaf: ``O(trees * leaves * depth)`` with
tiny constants. The leaf whose cold set is empty is the leaf the row lands in,
so the raw score falls out of the same pass for free.

Leaves with many distinct path features (where ``2**d`` would be too big) or a
zero cover ratio (where ``1 / z_i`` is undefined) instead evaluate the same
formula directly with an ``O(d**2)`` polynomial product / division.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from numba import get_num_threads, njit, prange

__all__ = ["TreeShapExplainer"]

FloatArray = npt.NDArray[np.float64]

# --- node "kind" codes (how a split routes a value) -----------------------------------
_NUM_NONE = 0  # numerical split, missing_type None: NaN is treated as 0.0
_NUM_ZERO = 1  # numerical split, missing_type Zero: NaN and |x| <= 1e-35 go default way
_NUM_NAN = 2  # numerical split, missing_type NaN: NaN goes the default way
_CATEGORICAL = 3  # categorical split: left iff int(x) is in the category set

# LightGBM's kZeroThreshold is the float literal 1e-35f, compared after promotion.
_ZERO_THRESHOLD = float(np.float32(1e-35))

# --- column layout of the packed integer node table -------------------------------------
_N_FEAT = 0  # split feature index
_N_KIND = 1  # one of the kind codes above
_N_DEFAULT_LEFT = 2  # 1 when missing values go left
_N_CAT_OFF = 3  # first uint32 word of the category bitset (categorical only)
_N_CAT_LEN = 4  # number of uint32 words in the bitset
_N_LEFT = 5  # left child, tree-local: internal j -> j, leaf k -> n_internal + k
_N_RIGHT = 6  # right child, same encoding
_N_BIT = 7  # 1 << slot of the split feature in the path's distinct-feature list
_N_COLS = 8

# --- column layout of the packed per-tree table --------------------------------------
_T_NODE_OFF = 0  # first row of the tree in the node table
_T_N_INTERNAL = 1
_T_LEAF_OFF = 2  # first row of the tree in the leaf table
_T_N_LEAVES = 3
_T_COLS = 4

# --- column layout of the packed per-leaf table ----------------------------------------
_L_FULL = 0  # (1 << d) - 1
_L_DEPTH = 1  # d, number of distinct features on the path
_L_TABLE_OFF = 2  # offset of the 2**d G-table, or -1 for the direct O(d^2) path
_L_SLOT_OFF = 3  # first row of the leaf's slots (one per distinct path feature)
_L_COLS = 4

_MAX_PATH_FEATURES = 62  # cold sets are int64 bitmasks
_DEFAULT_MAX_TABLE_DEPTH = 10  # 2**10 doubles = 8 KiB per leaf at most
_PARALLEL_MIN_ROWS = 4  # below this the thread pool start-up costs more than it saves


# ====================================================================================
# Model extraction (pure Python, runs once per explainer)
# ====================================================================================


@dataclass(frozen=True)
class _FlatModel:
    """Contiguous arrays describing the whole ensemble, built once.

    Attributes:
        nodes: ``(n_internal_total, _N_COLS)`` int64 packed split description.
        thresholds: ``(n_internal_total,)`` float64 numerical thresholds.
        cat_bits: uint32 words of all categorical bitsets.
        trees: ``(n_trees, _T_COLS)`` int64 offsets/counts per tree.
        leaves: ``(n_leaves_total, _L_COLS)`` int64 per-leaf layout.
        leaf_values: ``(n_leaves_total,)`` float64 raw leaf outputs.
        slot_features: ``(n_slots,)`` int64 feature of each (leaf, path-feature) slot.
        slot_z: ``(n_slots,)`` float64 zero fraction ``z`` of each slot.
        slot_q: ``(n_slots,)`` float64 ``(1 - z) / z`` (0 where unused).
        tables: float64 concatenation of every tabulated leaf's ``G`` table.
        weights: ``(_MAX_PATH_FEATURES + 1, _MAX_PATH_FEATURES + 2)`` Shapley
            weights ``w(s, d)``.
        expected_value: cover-weighted mean raw output (the SHAP base value).
        max_nodes: largest ``n_internal + n_leaves`` of any tree (scratch size).
    """

    nodes: npt.NDArray[np.int64]
    thresholds: FloatArray
    cat_bits: npt.NDArray[np.uint32]
    trees: npt.NDArray[np.int64]
    leaves: npt.NDArray[np.int64]
    leaf_values: FloatArray
    slot_features: npt.NDArray[np.int64]
    slot_z: FloatArray
    slot_q: FloatArray
    tables: FloatArray
    weights: FloatArray
    expected_value: float
    max_nodes: int


class _Collector:
    """Accumulates flat rows while walking the dumped trees (keeps functions small)."""

    def __init__(self, max_table_depth: int, leaf_scale: float) -> None:
        self.max_table_depth = max_table_depth
        self.leaf_scale = leaf_scale
        self.nodes: list[list[int]] = []
        self.thresholds: list[float] = []
        self.cat_bits: list[int] = []
        self.trees: list[list[int]] = []
        self.leaves: list[list[int]] = []
        self.leaf_values: list[float] = []
        self.slot_features: list[int] = []
        self.slot_z: list[float] = []
        self.table_size = 0
        self.edge_z: dict[int, tuple[float, float]] = {}
        self.expected_terms: list[float] = []

    def add_categories(self, threshold: str) -> tuple[int, int]:
        """Store a ``"1||3||7"`` category set as a uint32 bitset (LightGBM's layout)."""
        cats = [int(c) for c in threshold.split("||")]
        words = [0] * (max(cats) // 32 + 1)
        for cat in cats:
            words[cat // 32] |= 1 << (cat % 32)
        offset = len(self.cat_bits)
        self.cat_bits.extend(words)
        return offset, len(words)

    def add_leaf(self, value: float, features: list[int], zs: list[float]) -> None:
        """Register a leaf, its distinct path features and their zero fractions."""
        d = len(features)
        if d > _MAX_PATH_FEATURES:
            raise ValueError(
                f"a leaf has {d} distinct features on its path; at most "
                f"{_MAX_PATH_FEATURES} are supported"
            )
        tabulate = d <= self.max_table_depth and all(z > 0.0 for z in zs)
        table_off = self.table_size if tabulate else -1
        if tabulate:
            self.table_size += 1 << d
        self.leaves.append([(1 << d) - 1, d, table_off, len(self.slot_features)])
        value *= self.leaf_scale
        self.leaf_values.append(value)
        self.slot_features.extend(features)
        self.slot_z.extend(zs)
        self.expected_terms.append(value * math.prod(zs))


def _node_kind(node: dict[str, Any]) -> int:
    """Map a dumped split's ``decision_type``/``missing_type`` to a kind code."""
    if node["decision_type"] == "==":
        return _CATEGORICAL
    if node["decision_type"] != "<=":
        raise ValueError(f"unsupported decision_type {node['decision_type']!r}")
    kinds = {"None": _NUM_NONE, "Zero": _NUM_ZERO, "NaN": _NUM_NAN}
    try:
        return kinds[node["missing_type"]]
    except KeyError:
        raise ValueError(f"unsupported missing_type {node['missing_type']!r}") from None


def _flatten_tree(structure: dict[str, Any], n_leaves: int, out: _Collector) -> None:
    """Append one dumped tree to ``out``, numbering internal nodes in preorder.

    Preorder guarantees a parent is processed before its children, which the
    kernels rely on to propagate cold-set bitmasks in one forward loop.
    """
    n_internal = n_leaves - 1
    node_off, leaf_off = len(out.nodes), len(out.leaves)
    # stack items: (node, parent row or -1, parent column, path features, path z)
    stack: list[tuple[dict[str, Any], int, int, list[int], list[float]]] = [
        (structure, -1, 0, [], [])
    ]
    n_int_seen = n_leaf_seen = 0
    while stack:
        node, parent_row, parent_col, feats, zs = stack.pop()
        if "split_index" not in node:
            if "leaf_coeff" in node:
                raise ValueError("linear_tree models are not supported")
            local = n_internal + n_leaf_seen
            n_leaf_seen += 1
            out.add_leaf(float(node["leaf_value"]), feats, zs)
        else:
            local = n_int_seen
            n_int_seen += 1
            _push_children(node, len(out.nodes), feats, zs, stack, out)
        if parent_row >= 0:
            out.nodes[parent_row][parent_col] = local
    if n_int_seen != n_internal or n_leaf_seen != n_leaves:
        raise ValueError("inconsistent tree dump: num_leaves does not match structure")
    out.trees.append([node_off, n_internal, leaf_off, n_leaves])


def _push_children(
    node: dict[str, Any],
    row: int,
    feats: list[int],
    zs: list[float],
    stack: list[tuple[dict[str, Any], int, int, list[int], list[float]]],
    out: _Collector,
) -> None:
    """Emit one internal node and push its children with their extended paths."""
    feature = int(node["split_feature"])
    kind = _node_kind(node)
    cat_off = cat_len = 0
    threshold = 0.0
    if kind == _CATEGORICAL:
        cat_off, cat_len = out.add_categories(str(node["threshold"]))
    else:
        threshold = float(node["threshold"])
    slot = feats.index(feature) if feature in feats else len(feats)
    out.nodes.append(
        [feature, kind, int(bool(node["default_left"])), cat_off, cat_len, -1, -1, 1 << slot]
    )
    out.thresholds.append(threshold)
    cover = float(node["internal_count"])
    for child, col in ((node["right_child"], _N_RIGHT), (node["left_child"], _N_LEFT)):
        child_cover = float(child.get("internal_count", child.get("leaf_count", 0.0)))
        ratio = child_cover / cover if cover > 0.0 else 0.0
        if slot < len(feats):
            child_zs = zs.copy()
            child_zs[slot] *= ratio
            child_feats = feats
            out.edge_z[2 * row + (col == _N_RIGHT)] = (child_zs[slot], zs[slot])
        else:
            child_zs = [*zs, ratio]
            child_feats = [*feats, feature]
            out.edge_z[2 * row + (col == _N_RIGHT)] = (ratio, 1.0)
        stack.append((child, row, col, child_feats, child_zs))


def _shapley_weights() -> FloatArray:
    """``w[d, s] = s! (d - s - 1)! / d!`` for ``s < d``; zero elsewhere."""
    w = np.zeros((_MAX_PATH_FEATURES + 1, _MAX_PATH_FEATURES + 2))
    for d in range(1, _MAX_PATH_FEATURES + 1):
        for s in range(d):
            w[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return w


def _flatten_model(
    tree_info: list[dict[str, Any]], max_table_depth: int, leaf_scale: float
) -> _FlatModel:
    """Convert ``dump_model()["tree_info"]`` into packed arrays plus leaf tables."""
    out = _Collector(max_table_depth, leaf_scale)
    for tree in tree_info:
        _flatten_tree(tree["tree_structure"], int(tree["num_leaves"]), out)
    nodes = np.asarray(out.nodes, dtype=np.int64).reshape(-1, _N_COLS)
    leaves = np.asarray(out.leaves, dtype=np.int64).reshape(-1, _L_COLS)
    leaf_values = np.asarray(out.leaf_values, dtype=np.float64)
    slot_z = np.asarray(out.slot_z, dtype=np.float64)
    weights = _shapley_weights()
    tables = np.zeros(out.table_size, dtype=np.float64)
    _fill_tables(leaves, leaf_values, slot_z, weights, tables, max_table_depth)
    safe_z = np.where(slot_z > 0.0, slot_z, 1.0)
    trees = np.asarray(out.trees, dtype=np.int64).reshape(-1, _T_COLS)
    return _FlatModel(
        nodes=np.ascontiguousarray(nodes),
        thresholds=np.asarray(out.thresholds, dtype=np.float64),
        cat_bits=np.asarray(out.cat_bits, dtype=np.uint32),
        trees=trees,
        leaves=leaves,
        leaf_values=leaf_values,
        slot_features=np.asarray(out.slot_features, dtype=np.int64),
        slot_z=slot_z,
        slot_q=np.where(slot_z > 0.0, (1.0 - slot_z) / safe_z, 0.0),
        tables=tables,
        weights=weights,
        expected_value=math.fsum(out.expected_terms),
        max_nodes=int((trees[:, _T_N_INTERNAL] + trees[:, _T_N_LEAVES]).max()),
    )


# ====================================================================================
# Numba kernels
# ====================================================================================


@njit(cache=True, nogil=True)
def _fill_tables(
    leaves: npt.NDArray[np.int64],
    leaf_values: FloatArray,
    slot_z: FloatArray,
    weights: FloatArray,
    tables: FloatArray,
    max_depth: int,
) -> None:
    """Tabulate ``G(M) = v * W(M) * prod_{k not in M} z_k`` for every tabulated leaf.

    Subsets are built incrementally (``M`` from ``M`` minus its lowest bit), so
    each leaf costs ``O(2**d * d)`` and no table entry is computed twice.
    """
    size = 1 << max(max_depth, 0)
    poly = np.zeros((size, max_depth + 2))
    zprod = np.ones(size)
    for leaf in range(leaves.shape[0]):
        off = leaves[leaf, _L_TABLE_OFF]
        if off < 0:
            continue
        d = leaves[leaf, _L_DEPTH]
        z = slot_z[leaves[leaf, _L_SLOT_OFF] : leaves[leaf, _L_SLOT_OFF] + d]
        full = leaves[leaf, _L_FULL]
        poly[0, 0] = 1.0
        for m in range(1, 1 << d):
            low = m & -m
            prev = m ^ low
            s = 0
            while (low >> s) != 1:
                s += 1
            zprod[m] = zprod[prev] * z[s]
            deg = _popcount(prev)
            poly[m, deg + 1] = poly[prev, deg]
            for k in range(deg, 0, -1):
                poly[m, k] = poly[prev, k] * z[s] + poly[prev, k - 1]
            poly[m, 0] = poly[prev, 0] * z[s]
        for m in range(1 << d):
            acc = 0.0
            for k in range(_popcount(m) + 1):
                acc += weights[d, k] * poly[m, k]
            tables[off + m] = leaf_values[leaf] * acc * zprod[full ^ m]


@njit(cache=True, nogil=True)
def _popcount(m: int) -> int:
    """Number of set bits (only used while tabulating)."""
    count = 0
    while m:
        m &= m - 1
        count += 1
    return count


@njit(cache=True, nogil=True)
def _goes_left(
    fval: float, nodes: npt.NDArray[np.int64], g: int, threshold: float,
    cat_bits: npt.NDArray[np.uint32],
) -> bool:
    """Replicate LightGBM 4.x ``Tree::Decision`` for one split and one value."""
    kind = nodes[g, _N_KIND]
    if kind == _CATEGORICAL:
        # NaN, negatives (after truncation toward zero) and values that overflow
        # LightGBM's static_cast<int> (INT_MIN on x86) all go right.
        if not (fval > -1.0) or fval >= 2147483648.0:
            return False
        cat = np.int64(fval)
        word = cat >> 5
        if word >= nodes[g, _N_CAT_LEN]:
            return False
        return (cat_bits[nodes[g, _N_CAT_OFF] + word] >> (cat & 31)) & 1 == 1
    if math.isnan(fval):
        if kind == _NUM_NAN:
            return nodes[g, _N_DEFAULT_LEFT] == 1
        fval = 0.0
    if kind == _NUM_ZERO and -_ZERO_THRESHOLD <= fval <= _ZERO_THRESHOLD:
        return nodes[g, _N_DEFAULT_LEFT] == 1
    return fval <= threshold


@njit(cache=True, nogil=True)
def _cold_masks(
    x: FloatArray, t: int, trees: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64],
    thresholds: FloatArray, cat_bits: npt.NDArray[np.uint32], mask: npt.NDArray[np.int64],
) -> None:
    """Fill ``mask[n_internal + k]`` with leaf ``k``'s cold-feature bitmask for row ``x``.

    A path feature is cold for a leaf when the row disagrees with any split on
    that feature on the way to the leaf. One preorder sweep suffices because a
    child's mask is its parent's plus (maybe) the split's own bit.
    """
    node_off = trees[t, _T_NODE_OFF]
    mask[0] = 0
    for j in range(trees[t, _T_N_INTERNAL]):
        g = node_off + j
        c = mask[j]
        b = nodes[g, _N_BIT]
        # Branch-free: the direction is data dependent and mispredicts half the time.
        left = np.int64(_goes_left(x[nodes[g, _N_FEAT]], nodes, g, thresholds[g], cat_bits))
        mask[nodes[g, _N_LEFT]] = c | (b & (left - 1))
        mask[nodes[g, _N_RIGHT]] = c | (b & -left)


@njit(cache=True, nogil=True)
def _add_table_leaf(
    phi: FloatArray, cold: int, full: int, d: int, table_off: int, slot_off: int,
    tables: FloatArray, slot_features: npt.NDArray[np.int64], slot_q: FloatArray,
) -> None:
    """Add one leaf's contribution using its precomputed ``G`` table: ``O(d)``."""
    hot = full ^ cold
    cold_value = tables[table_off + hot]
    for s in range(d):
        # Both branches are evaluated and blended: whether a slot is hot is data
        # dependent, and a mispredicted branch costs more than the extra load.
        is_hot = (hot >> s) & 1
        hot_value = slot_q[slot_off + s] * tables[table_off + (hot ^ (np.int64(1) << s))]
        phi[slot_features[slot_off + s]] += hot_value if is_hot else -cold_value


@njit(cache=True, nogil=True)
def _add_direct_leaf(
    phi: FloatArray, cold: int, d: int, slot_off: int, value: float,
    slot_features: npt.NDArray[np.int64], slot_z: FloatArray, weights: FloatArray,
    scratch: FloatArray,
) -> None:
    """Add one leaf's contribution without a table: ``O(d**2)``.

    Builds the coefficients of ``prod_{k hot} (z_k + t)`` and, for each hot
    feature, divides ``(z_i + t)`` back out (stable since ``0 <= z_i <= 1``).
    """
    poly = scratch[: d + 1]
    zp = 1.0
    h = 0
    poly[0] = 1.0
    for s in range(d):
        z = slot_z[slot_off + s]
        if (cold >> s) & 1:
            zp *= z
        else:
            poly[h + 1] = poly[h]
            for k in range(h, 0, -1):
                poly[k] = poly[k] * z + poly[k - 1]
            poly[0] *= z
            h += 1
    scale = value * zp
    if h < d:
        acc = 0.0
        for k in range(h + 1):
            acc += weights[d, k] * poly[k]
        for s in range(d):
            if (cold >> s) & 1:
                phi[slot_features[slot_off + s]] -= scale * acc
    for s in range(d):
        if (cold >> s) & 1:
            continue
        z = slot_z[slot_off + s]
        q = poly[h]
        acc = weights[d, h - 1] * q
        for k in range(h - 1, 0, -1):
            q = poly[k] - z * q
            acc += weights[d, k - 1] * q
        phi[slot_features[slot_off + s]] += scale * (1.0 - z) * acc


@njit(cache=True, nogil=True)
def _explain_row(
    x: FloatArray, phi: FloatArray, mask: npt.NDArray[np.int64], scratch: FloatArray,
    trees: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64], thresholds: FloatArray,
    cat_bits: npt.NDArray[np.uint32], leaves: npt.NDArray[np.int64], leaf_values: FloatArray,
    slot_features: npt.NDArray[np.int64], slot_z: FloatArray, slot_q: FloatArray,
    tables: FloatArray, weights: FloatArray,
) -> float:
    """Accumulate SHAP values of one row into ``phi``; return its raw score."""
    raw = 0.0
    for t in range(trees.shape[0]):
        _cold_masks(x, t, trees, nodes, thresholds, cat_bits, mask)
        n_internal = trees[t, _T_N_INTERNAL]
        leaf_off = trees[t, _T_LEAF_OFF]
        for k in range(trees[t, _T_N_LEAVES]):
            leaf = leaf_off + k
            cold = mask[n_internal + k]
            if cold == 0:
                raw += leaf_values[leaf]
            table_off = leaves[leaf, _L_TABLE_OFF]
            if table_off >= 0:
                _add_table_leaf(
                    phi, cold, leaves[leaf, _L_FULL], leaves[leaf, _L_DEPTH], table_off,
                    leaves[leaf, _L_SLOT_OFF], tables, slot_features, slot_q,
                )
            else:
                _add_direct_leaf(
                    phi, cold, leaves[leaf, _L_DEPTH], leaves[leaf, _L_SLOT_OFF],
                    leaf_values[leaf], slot_features, slot_z, weights, scratch,
                )
    return raw


@njit(cache=True, nogil=True)
def _explain_rows(
    X: FloatArray, phi: FloatArray, raw: FloatArray, start: int, stop: int, max_nodes: int,
    trees: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64], thresholds: FloatArray,
    cat_bits: npt.NDArray[np.uint32], leaves: npt.NDArray[np.int64], leaf_values: FloatArray,
    slot_features: npt.NDArray[np.int64], slot_z: FloatArray, slot_q: FloatArray,
    tables: FloatArray, weights: FloatArray,
) -> None:
    """Explain rows ``start:stop`` sequentially with one set of scratch buffers."""
    mask = np.empty(max_nodes, dtype=np.int64)
    scratch = np.empty(_MAX_PATH_FEATURES + 2)
    for r in range(start, stop):
        raw[r] = _explain_row(
            X[r], phi[r], mask, scratch, trees, nodes, thresholds, cat_bits, leaves,
            leaf_values, slot_features, slot_z, slot_q, tables, weights,
        )


@njit(cache=True, nogil=True, parallel=True)
def _explain_rows_parallel(
    X: FloatArray, phi: FloatArray, raw: FloatArray, n_chunks: int, max_nodes: int,
    trees: npt.NDArray[np.int64], nodes: npt.NDArray[np.int64], thresholds: FloatArray,
    cat_bits: npt.NDArray[np.uint32], leaves: npt.NDArray[np.int64], leaf_values: FloatArray,
    slot_features: npt.NDArray[np.int64], slot_z: FloatArray, slot_q: FloatArray,
    tables: FloatArray, weights: FloatArray,
) -> None:
    """Split the rows into ``n_chunks`` contiguous blocks explained in parallel."""
    n = X.shape[0]
    for c in prange(n_chunks):
        _explain_rows(
            X, phi, raw, c * n // n_chunks, (c + 1) * n // n_chunks, max_nodes, trees,
            nodes, thresholds, cat_bits, leaves, leaf_values, slot_features, slot_z,
            slot_q, tables, weights,
        )


@njit(cache=True, nogil=True)
def _predict_rows(
    X: FloatArray, raw: FloatArray, trees: npt.NDArray[np.int64],
    nodes: npt.NDArray[np.int64], thresholds: FloatArray, cat_bits: npt.NDArray[np.uint32],
    leaf_values: FloatArray,
) -> None:
    """Plain root-to-leaf walk per tree (no SHAP), summing leaf values in tree order."""
    for r in range(X.shape[0]):
        x = X[r]
        acc = 0.0
        for t in range(trees.shape[0]):
            n_internal = trees[t, _T_N_INTERNAL]
            node_off = trees[t, _T_NODE_OFF]
            local = 0
            while local < n_internal:
                g = node_off + local
                if _goes_left(x[nodes[g, _N_FEAT]], nodes, g, thresholds[g], cat_bits):
                    local = nodes[g, _N_LEFT]
                else:
                    local = nodes[g, _N_RIGHT]
            acc += leaf_values[trees[t, _T_LEAF_OFF] + local - n_internal]
        raw[r] = acc


# ====================================================================================
# Public API
# ====================================================================================


def _check_supported(dump: dict[str, Any]) -> None:
    """Reject models whose raw output is not a single sum of piecewise-constant trees."""
    if int(dump.get("num_class", 1)) != 1 or int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise ValueError(
            "TreeShapExplainer supports single-output models (e.g. objective='binary') "
            f"only; got num_class={dump.get('num_class')}, "
            f"num_tree_per_iteration={dump.get('num_tree_per_iteration')}"
        )
    if not dump.get("tree_info"):
        raise ValueError("the booster has no trees")


class TreeShapExplainer:
    """Exact path-dependent TreeSHAP for a fitted single-output LightGBM booster.

    Produces the same numbers as ``shap.TreeExplainer(booster).shap_values(X)``
    (``feature_perturbation="tree_path_dependent"``, covers = training counts)
    and LightGBM's ``pred_contrib``, on the raw-margin (log-odds) scale, but an
    order of magnitude faster. Everything the kernels need is packed into
    contiguous arrays here, once, so a request pays only for the tree walk.

    Inputs are float matrices laid out like LightGBM's training matrix:
    categorical features as their integer codes (NaN for missing), exactly as
    ``booster.predict`` receives them from a numpy array.

    Numba compiles the kernels lazily and caches them on disk; call
    :meth:`warmup` at service start so the first request does not pay for it.

    Args:
        booster: Fitted booster with a single output per row.
        num_iteration: Number of boosting iterations to explain; ``None`` uses
            the best iteration if one was recorded, else all (like ``predict``).
        max_table_depth: Leaves with at most this many distinct path features
            get a ``2**d`` lookup table; deeper leaves use the ``O(d**2)``
            direct formula instead. Trades memory for speed.

    Raises:
        ValueError: For multiclass/multi-output models, linear trees, unknown
            split types, or paths with more than 62 distinct features.
    """

    def __init__(
        self,
        booster: lgb.Booster,
        *,
        num_iteration: int | None = None,
        max_table_depth: int = _DEFAULT_MAX_TABLE_DEPTH,
    ) -> None:
        if not 0 <= max_table_depth <= 20:
            raise ValueError("max_table_depth must be in [0, 20]")
        dump = booster.dump_model(num_iteration=num_iteration)
        _check_supported(dump)
        tree_info = dump["tree_info"]
        # boosting="rf" averages the trees instead of summing them.
        leaf_scale = 1.0 / len(tree_info) if dump.get("average_output", False) else 1.0
        self._n_features = int(dump["max_feature_idx"]) + 1
        self._model = _flatten_model(tree_info, max_table_depth, leaf_scale)

    @property
    def expected_value(self) -> float:
        """Cover-weighted mean raw score: ``shap_values(X).sum(1) + this == raw``."""
        return self._model.expected_value

    @property
    def n_features(self) -> int:
        """Number of input columns the booster was trained on."""
        return self._n_features

    def shap_values(self, X: npt.ArrayLike) -> FloatArray:
        """Raw-margin SHAP values, shape ``(n_rows, n_features)``."""
        return self.explain(X)[1]

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw score (``booster.predict(X, raw_score=True)``) by a plain tree walk."""
        rows = self._as_rows(X)
        raw = np.empty(rows.shape[0])
        m = self._model
        _predict_rows(
            rows, raw, m.trees, m.nodes, m.thresholds, m.cat_bits, m.leaf_values
        )
        return raw

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw scores and SHAP values from a single pass over the trees.

        Args:
            X: ``(n_rows, n_features)`` (or one ``(n_features,)`` row) of floats.

        Returns:
            ``(raw, shap)`` with shapes ``(n_rows,)`` and ``(n_rows, n_features)``.
        """
        rows = self._as_rows(X)
        n = rows.shape[0]
        raw = np.empty(n)
        phi = np.zeros((n, self._n_features))
        m = self._model
        arrays = (
            m.trees, m.nodes, m.thresholds, m.cat_bits, m.leaves, m.leaf_values,
            m.slot_features, m.slot_z, m.slot_q, m.tables, m.weights,
        )
        threads = get_num_threads()
        if n < _PARALLEL_MIN_ROWS or threads == 1:
            _explain_rows(rows, phi, raw, 0, n, m.max_nodes, *arrays)
        else:
            n_chunks = min(n, threads * 8)
            _explain_rows_parallel(rows, phi, raw, n_chunks, m.max_nodes, *arrays)
        return raw, phi

    def warmup(self) -> None:
        """Compile (or load from numba's on-disk cache) every kernel on tiny inputs.

        Without this the first request pays JIT compilation (seconds); with the
        on-disk cache already populated it takes milliseconds.
        """
        rows = np.zeros((_PARALLEL_MIN_ROWS, self._n_features))
        self.explain(rows[:1])
        self.explain(rows)
        self.predict_raw(rows[:1])

    def _as_rows(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``X`` as a C-contiguous float64 2-D array, validating its width."""
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self._n_features:
            raise ValueError(
                f"expected a (n_rows, {self._n_features}) matrix, got shape {rows.shape}"
            )
        return rows

