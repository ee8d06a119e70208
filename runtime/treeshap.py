"""Exact, fast path-dependent TreeSHAP for single-output LightGBM boosters.

Why this exists: the scoring service returns a score *and* its per-feature
explanation for every request. ``shap.TreeExplainer`` (which for LightGBM just
calls ``booster.predict(pred_contrib=True)``) runs the classic recursive
TreeSHAP, ``O(leaves * depth**2)`` per tree and row, which made explanations the
dominant cost of a request and of batch scoring.

Algorithm (a quadrature form of Linear TreeSHAP, Yu et al. 2022):

For one leaf with value ``v`` and the set ``P`` of distinct features on its
root path (``d = |P|``), path-dependent TreeSHAP is a game over ``P`` only.
For a row, feature ``k`` is *hot* (``o_k = 1``) when the row satisfies every
split on ``k`` along the path and *cold* (``o_k = 0``) otherwise; ``z_k`` is
the product of cover ratios ``cover(child) / cover(node)`` of those splits.
Because the Shapley weight is a Beta integral,
``s! (d - s - 1)! / d! = integral_0^1 t**s (1 - t)**(d - s - 1) dt``, the
leaf's contribution to feature ``i`` is

    phi_i = v * (o_i - z_i) * integral_0^1 prod_{k in P, k != i} a_k(t) dt,
    a_k(t) = z_k * (1 - t) + o_k * t.

The integrand is a polynomial of degree ``d - 1``, so Gauss-Legendre
quadrature with ``ceil(d / 2)`` nodes is exact. Writing it as
``sum_j w_j * F(t_j) * (o_i - z_i) / a_i(t_j)`` with ``F = v * prod_k a_k``
makes it separable along the tree: ``F`` at every node is the parent's value
times one per-edge factor (top-down pass), the sums of ``F`` over each
subtree come from a bottom-up pass, and every edge adds one dot product to
its split feature. A feature repeated on a path is handled by telescoping
(the deeper edge adds its term minus the shallower edge's term). All the
per-edge factors depend on the row only through one of three cases
(hot -> hot, hot -> cold, cold -> cold), so they are precomputed once.
The cost per row is ``O(nodes * n_points)`` with no per-row division, no
exponential tables and no recursion; the leaf with no cold feature is the
leaf the row lands in, so the raw score falls out of the same pass.

(Measured on the 300-tree / depth-6 benchmark model, this beat both a
Fast-TreeSHAP-v2 style ``2**d`` table per leaf, which is memory bound, and
the classic recursion.)

Three kernels, picked by ``explain`` from the number of rows:

* batches: blocks of 64 rows with rows as the innermost (SIMD) axis, so the
  precomputed per-node factors are loaded once per block; from 512 rows the
  blocks are spread over threads (below that a fork/join costs more than it
  saves);
* single rows / a few rows: every tree padded to one complete-tree shape
  (:class:`_LaneModel`), so groups of 64 *trees* become the SIMD axis; no
  threads. One row cannot amortise loading 36 precomputed factors per node
  (5.4 MB for 300 depth-6 trees: the kernel was bound by that traffic), so
  this kernel recomputes the factors from ``4 + nq`` numbers per node (7 at
  depth 6), using the equivalent ``Q``/``B`` form (products down to a node,
  sums below it) in which no division is left per row;
* a scalar per-row kernel for models too deep to pad (and for small or
  leaf-wise models where padding costs more than it saves: ``warmup`` times
  both single-row kernels and keeps the faster).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from numba import njit, prange

__all__ = ["TreeShapExplainer"]

FloatArray = npt.NDArray[np.float64]
U64Array = npt.NDArray[np.uint64]
U32Array = npt.NDArray[np.uint32]

# LightGBM's kZeroThreshold is the float literal 1e-35f, compared after promotion.
_ZERO_THRESHOLD = float(np.float32(1e-35))

# Split kinds needing the slow decision path (others: "fval <= threshold", NaN per flag).
_KIND_ZERO = 1  # numerical, missing_type Zero: NaN and |x| <= 1e-35 go the default way
_KIND_CATEGORICAL = 2  # categorical: left iff int(x) is in the category bitset

# Packed node flags (uint32): slot of the split feature in the path's feature list,
# where a NaN goes for plain numerical splits, and whether the split is "special".
_FLAG_SLOT = np.uint64(63)
_FLAG_NAN_LEFT_SHIFT = np.uint64(6)
_FLAG_SPECIAL = np.uint64(1 << 7)

_MAX_PATH_FEATURES = 64  # cold sets are uint64 bitmasks
_CASES = 3  # per-edge cases: hot -> hot, hot -> cold, cold -> cold
_SMALL_BATCH = 16  # below this many rows the per-row kernels beat the block kernel
_PARALLEL_MIN_ROWS = 512  # below this a thread fork/join costs more than it saves
_BLOCK_ROWS = 64  # rows per SIMD block in the batch kernel
_LANES = 64  # trees per SIMD group in the single-row kernel
_ULANES = np.uint64(_LANES)
_LANE_FIELDS = 4  # per-node numbers before the per-point 1 / H(zp) in _LaneModel.node_data
_MAX_LANE_DEPTH = 8  # deeper models skip the padded single-row layout...
_MAX_LANE_BYTES = 256 * 2**20  # ...as do models whose padded layout would exceed this

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)


# ====================================================================================
# Model extraction (pure Python, runs once per explainer)
# ====================================================================================


@dataclass(frozen=True)
class _FlatModel:
    """Contiguous arrays describing the whole ensemble, built once.

    Internal nodes are numbered per tree in preorder (parents before children);
    children are tree-local: internal ``j`` is ``j``, leaf ``k`` is
    ``n_internal + k``. Edge ``e = 2 * node + side`` (side 0 = left).

    Attributes:
        trees: ``(n_trees, 4)`` uint64: node offset, n_internal, leaf offset, n_leaves.
        nodes: ``(n_nodes, 4)`` uint32: feature, left, right, flags.
        special: ``(n_nodes, 4)`` int64: kind, default_left, bitset offset, bitset
            words; only read for zero-as-missing and categorical splits.
        thresholds: ``(n_nodes,)`` numerical thresholds.
        cat_bits: uint32 words of all categorical bitsets (LightGBM's layout).
        leaf_values: ``(n_leaves,)`` raw leaf outputs.
        edges: flat per-edge factors: for edge ``e`` and case ``c`` the ``nq``
            top-down factors start at ``(e * 3 + c) * 2 * nq`` and the ``nq``
            bottom-up (quadrature-weighted) factors follow them.
        nq: number of quadrature points.
        expected_value: cover-weighted mean raw score (the SHAP base value).
        max_nodes: largest ``n_internal + n_leaves`` of any tree.
    """

    trees: U64Array
    nodes: U32Array
    special: npt.NDArray[np.int64]
    thresholds: FloatArray
    cat_bits: U32Array
    leaf_values: FloatArray
    edges: FloatArray
    nq: int
    expected_value: float
    max_nodes: int


class _Collector:
    """Accumulates flat rows while walking the dumped trees (keeps functions small)."""

    def __init__(self) -> None:
        self.nodes: list[list[int]] = []
        self.special: list[list[int]] = []
        self.thresholds: list[float] = []
        self.cat_bits: list[int] = []
        self.trees: list[list[int]] = []
        self.leaf_values: list[float] = []
        # per edge: (zero fraction at the child, at the previous same-feature edge,
        # value of the leaf the edge leads to or 1.0 for internal children)
        self.edge_z: list[float] = []
        self.edge_z_prev: list[float] = []
        self.edge_leaf_value: list[float] = []
        self.max_path_features = 0
        self.expected_terms: list[float] = []

    def add_categories(self, threshold: str) -> tuple[int, int]:
        """Store a ``"1||3||7"`` category set as a uint32 bitset."""
        cats = [int(c) for c in threshold.split("||")]
        words = [0] * (max(cats) // 32 + 1)
        for cat in cats:
            words[cat // 32] |= 1 << (cat % 32)
        offset = len(self.cat_bits)
        self.cat_bits.extend(words)
        return offset, len(words)

    def add_leaf(self, value: float, zs: list[float]) -> float:
        """Register a leaf and its contribution to the base value; returns the value."""
        self.leaf_values.append(value)
        self.max_path_features = max(self.max_path_features, len(zs))
        self.expected_terms.append(value * math.prod(zs))
        return value


_Pending = tuple[dict[str, Any], int, list[int], list[float]]


def _flatten_tree(structure: dict[str, Any], n_leaves: int, out: _Collector) -> None:
    """Append one dumped tree to ``out``, numbering internal nodes in preorder.

    Preorder guarantees a parent is processed before its children, which the
    kernels rely on to propagate state in one forward loop.
    """
    n_internal = n_leaves - 1
    node_off, leaf_off = len(out.nodes), len(out.leaf_values)
    out.edge_z.extend([0.0] * (2 * n_internal))
    out.edge_z_prev.extend([1.0] * (2 * n_internal))
    out.edge_leaf_value.extend([1.0] * (2 * n_internal))
    # stack items: (node, global edge leading to it or -1, path features, path z)
    stack: list[_Pending] = [(structure, -1, [], [])]
    n_int_seen = n_leaf_seen = 0
    while stack:
        node, edge, feats, zs = stack.pop()
        if "split_index" in node:
            local = n_int_seen
            n_int_seen += 1
            _add_internal(node, feats, zs, stack, out)
        else:
            if "leaf_coeff" in node:
                raise ValueError("linear_tree models are not supported")
            local = n_internal + n_leaf_seen
            n_leaf_seen += 1
            value = out.add_leaf(float(node["leaf_value"]), zs)
            if edge >= 0:
                out.edge_leaf_value[edge] = value
        if edge >= 0:
            out.nodes[edge // 2][1 + edge % 2] = local
    if n_int_seen != n_internal or n_leaf_seen != n_leaves:
        raise ValueError("inconsistent tree dump: num_leaves does not match structure")
    out.trees.append([node_off, n_internal, leaf_off, n_leaves])


def _node_kind(node: dict[str, Any]) -> int:
    """Map a dumped split's ``decision_type``/``missing_type`` to a kind (0 = plain)."""
    if node["decision_type"] == "==":
        return _KIND_CATEGORICAL
    if node["decision_type"] != "<=":
        raise ValueError(f"unsupported decision_type {node['decision_type']!r}")
    kinds = {"None": 0, "NaN": 0, "Zero": _KIND_ZERO}
    try:
        return kinds[node["missing_type"]]
    except KeyError:
        raise ValueError(f"unsupported missing_type {node['missing_type']!r}") from None


def _nan_goes_left(node: dict[str, Any], threshold: float) -> bool:
    """Where LightGBM sends NaN on a plain numerical split.

    With missing_type NaN it follows ``default_left``; with None the NaN is
    replaced by 0.0 and compared with the threshold.
    """
    if node["missing_type"] == "NaN":
        return bool(node["default_left"])
    return threshold >= 0.0


def _add_internal(
    node: dict[str, Any],
    feats: list[int],
    zs: list[float],
    stack: list[_Pending],
    out: _Collector,
) -> None:
    """Emit one internal node and push its children with their extended paths."""
    row = len(out.nodes)
    feature = int(node["split_feature"])
    kind = _node_kind(node)
    cat_off = cat_len = 0
    threshold = 0.0
    if kind == _KIND_CATEGORICAL:
        cat_off, cat_len = out.add_categories(str(node["threshold"]))
    else:
        threshold = float(node["threshold"])
    slot = feats.index(feature) if feature in feats else len(feats)
    if slot >= _MAX_PATH_FEATURES:
        raise ValueError(
            f"a path uses more than {_MAX_PATH_FEATURES} distinct features; not supported"
        )
    flags = slot | (int(_nan_goes_left(node, threshold)) << 6) | ((kind != 0) << 7)
    out.nodes.append([feature, 0, 0, flags])
    out.special.append([kind, int(bool(node["default_left"])), cat_off, cat_len])
    out.thresholds.append(threshold)
    cover = float(node["internal_count"])
    for side, child in ((1, node["right_child"]), (0, node["left_child"])):
        child_cover = float(child.get("internal_count", child.get("leaf_count", 0.0)))
        ratio = child_cover / cover if cover > 0.0 else 0.0
        edge = 2 * row + side
        if slot < len(feats):
            child_feats, child_zs = feats, zs.copy()
            out.edge_z_prev[edge] = zs[slot]
            child_zs[slot] *= ratio
        else:
            child_feats, child_zs = [*feats, feature], [*zs, ratio]
        out.edge_z[edge] = child_zs[slot]
        stack.append((child, edge, child_feats, child_zs))


def _quadrature(max_path_features: int) -> tuple[int, FloatArray, FloatArray]:
    """Gauss-Legendre nodes/weights on [0, 1], exact for degree < max_path_features."""
    nq = max(1, math.ceil(max_path_features / 2))
    x, w = np.polynomial.legendre.leggauss(nq)
    return nq, (x + 1.0) / 2.0, w / 2.0


def _edge_factors(
    z: FloatArray, zp: FloatArray, value: FloatArray, t: FloatArray, w: FloatArray
) -> FloatArray:
    """Precompute the top-down factor ``R`` and bottom-up factor ``D`` per edge and case.

    With ``z`` the feature's combined zero fraction at the child, ``zp`` the
    one at the previous edge on the same feature (1 for a new feature),
    ``H(z) = z + (1 - z) t`` (the factor of a hot feature) and ``z (1 - t)``
    (a cold one)::

        hot -> hot:   R = H(z) / H(zp)          D = w ((1 - z) / H(z) - (1 - zp) / H(zp))
        hot -> cold:  R = z (1 - t) / H(zp)     D = w (-1 / (1 - t) - (1 - zp) / H(zp))
        cold -> cold: R = z / zp                D = 0

    ``R`` of an edge into a leaf also carries the leaf value, so leaves need no
    pass of their own. Returns an ``(n_edges, 3, 2, nq)`` array.
    """
    z, zp, value = z[:, None], zp[:, None], value[:, None]
    h = z + (1.0 - z) * t
    hp = zp + (1.0 - zp) * t
    prev_term = (1.0 - zp) / hp
    factors = np.zeros((len(z), _CASES, 2, len(t)))
    factors[:, 0, 0] = h / hp * value
    factors[:, 0, 1] = w * ((1.0 - z) / h - prev_term)
    factors[:, 1, 0] = z * (1.0 - t) / hp * value
    factors[:, 1, 1] = w * (-1.0 / (1.0 - t) - prev_term)
    safe_zp = np.where(zp > 0.0, zp, 1.0)
    factors[:, 2, 0] = np.where(zp > 0.0, z / safe_zp, 0.0) * value
    return factors


def _flatten_model(
    tree_info: list[dict[str, Any]],
) -> tuple[_FlatModel, _LaneModel | None]:
    """Convert ``dump_model()["tree_info"]`` into packed arrays and edge factors."""
    out = _Collector()
    for tree in tree_info:
        _flatten_tree(tree["tree_structure"], int(tree["num_leaves"]), out)
    nq, t, w = _quadrature(out.max_path_features)
    trees = np.asarray(out.trees, dtype=np.uint64).reshape(-1, 4)
    flat = _FlatModel(
        trees=trees,
        nodes=np.asarray(out.nodes, dtype=np.uint32).reshape(-1, 4),
        special=np.asarray(out.special, dtype=np.int64).reshape(-1, 4),
        thresholds=np.asarray(out.thresholds, dtype=np.float64),
        cat_bits=np.asarray(out.cat_bits, dtype=np.uint32),
        leaf_values=np.asarray(out.leaf_values, dtype=np.float64),
        edges=_edge_factors(
            np.asarray(out.edge_z),
            np.asarray(out.edge_z_prev),
            np.asarray(out.edge_leaf_value),
            t,
            w,
        ).ravel(),
        nq=nq,
        expected_value=math.fsum(out.expected_terms),
        max_nodes=int((trees[:, 1] + trees[:, 3]).max()),
    )
    return flat, _build_lanes(out, t, w)


@dataclass(frozen=True)
class _LaneModel:
    """Every tree padded to one complete binary tree; trees in groups of 64 SIMD lanes.

    A single row offers no row axis to vectorise over, so the trees become
    that axis: all trees share the heap layout of a complete tree of the
    ensemble's depth ``D`` (internal position ``p`` has children ``2p + 1``
    and ``2p + 2``; leaf position ``k`` is node ``P + k`` with
    ``P = 2**D - 1``), and the trees are cut into groups of :data:`_LANES`.
    Every array is group-major, ``[group, position, (field,) lane]``, so one
    group's data is contiguous and stays in the L2 cache between the kernel's
    top-down and bottom-up passes; the per-node arrays are stored flattened
    (the kernel computes offsets itself).

    A leaf shallower than ``D`` becomes a chain of dummy splits that always
    go left and carry all the cover to the left (``z = 1``: factors exactly 1
    and contributions exactly 0), with the leaf value at the bottom of the
    chain; the empty right subtrees have zero cover and contribute exact zeros.
    The last group is padded with all-dummy trees whose leaves are 0.

    Unlike the per-row and block kernels, which read the three per-case edge
    factors precomputed in ``_FlatModel.edges`` (36 numbers per node), the
    lane kernel computes the factors on the fly from ``4 + nq`` numbers per
    node: a quarter of the memory, which is what a single row pays for.

    Attributes:
        n_groups, n_pos: Number of 64-tree groups and internal positions ``P``.
        t, w: Gauss-Legendre points and weights on [0, 1].
        features, thresholds, flags, special_rows: ``(G, P, L)`` split
            description (``special_rows`` indexes ``_FlatModel.special``).
        any_special: ``(G, P)`` 1 where some tree of the group has a special split.
        node_data: ``(G, P, 4 + nq, L)``: ``z`` of the left and right edge
            (the feature's combined zero fraction at the child), ``1 - zp``,
            ``1 / zp`` (0 if ``zp = 0``) and ``1 / H(zp)`` at each quadrature
            point, where ``zp`` is the combined zero fraction of the split's
            feature above the node (1 for a new feature).
        leaf_values: ``(G, P + 1, L)`` values at the leaf positions.
    """

    n_groups: int
    n_pos: int
    t: FloatArray
    w: FloatArray
    features: npt.NDArray[np.int64]
    thresholds: FloatArray
    flags: U64Array
    special_rows: npt.NDArray[np.int64]
    any_special: npt.NDArray[np.uint8]
    node_data: FloatArray
    leaf_values: FloatArray


def _tree_depth(nodes: list[list[int]], node_off: int, n_internal: int) -> int:
    """Longest root-to-leaf path (in edges) of one flattened tree."""
    depth = 0
    stack = [(0, 0)] if n_internal else []
    while stack:
        local, level = stack.pop()
        depth = max(depth, level + 1)
        for child in nodes[node_off + local][1:3]:
            if child < n_internal:
                stack.append((child, level + 1))
    return depth


def _build_lanes(out: _Collector, t: FloatArray, w: FloatArray) -> _LaneModel | None:
    """Pad all trees to a complete tree of the ensemble's depth (None if too large)."""
    depth = max(_tree_depth(out.nodes, off, ni) for off, ni, _, _ in out.trees)
    n_trees, n_pos, nq = len(out.trees), 2**depth - 1, len(t)
    n_groups = -(-n_trees // _LANES)
    shape = (n_groups, n_pos, _LANES)
    if depth > _MAX_LANE_DEPTH or math.prod(shape) * (_LANE_FIELDS + nq + 4) * 8 > _MAX_LANE_BYTES:
        return None
    features = np.zeros(shape, dtype=np.int64)
    thresholds = np.full(shape, np.inf)
    flags = np.full(shape, 63 | (1 << 6), dtype=np.uint64)  # dummy: slot 63, NaN left
    special_rows = np.full(shape, -1, dtype=np.int64)
    z = np.zeros((n_groups, n_pos, 2, _LANES))
    z[:, :, 0] = 1.0  # dummy splits send all the cover left
    zp = np.ones(shape)
    leaf_values = np.zeros((n_groups, n_pos + 1, _LANES))
    for tree, (node_off, n_internal, leaf_off, _) in enumerate(out.trees):
        group, lane = divmod(tree, _LANES)
        stack = [(0, 0)]
        while stack:
            local, pos = stack.pop()
            if local >= n_internal:  # a real leaf: walk its dummy chain down to the bottom
                while pos < n_pos:
                    pos = 2 * pos + 1
                leaf_values[group, pos - n_pos, lane] = out.leaf_values[
                    leaf_off + local - n_internal
                ]
                continue
            g = node_off + local
            at = (group, pos, lane)
            features[at] = out.nodes[g][0]
            thresholds[at] = out.thresholds[g]
            flags[at] = out.nodes[g][3]
            special_rows[at] = g
            zp[at] = out.edge_z_prev[2 * g]  # the same for both edges of a node
            for side in (0, 1):
                z[group, pos, side, lane] = out.edge_z[2 * g + side]
                stack.append((out.nodes[g][1 + side], 2 * pos + 1 + side))
    node_data = np.empty((n_groups, n_pos, _LANE_FIELDS + nq, _LANES))
    node_data[:, :, 0] = z[:, :, 0]
    node_data[:, :, 1] = z[:, :, 1]
    node_data[:, :, 2] = 1.0 - zp
    node_data[:, :, 3] = np.where(zp > 0.0, 1.0 / np.where(zp > 0.0, zp, 1.0), 0.0)
    node_data[:, :, _LANE_FIELDS:] = 1.0 / (zp[:, :, None] + (1.0 - zp[:, :, None]) * t[:, None])
    return _LaneModel(
        n_groups=n_groups,
        n_pos=n_pos,
        t=t,
        w=w,
        features=features.ravel(),
        thresholds=thresholds.ravel(),
        flags=flags.ravel(),
        special_rows=special_rows.ravel(),
        any_special=((flags & _FLAG_SPECIAL) != 0).any(axis=2).astype(np.uint8),
        node_data=node_data.ravel(),
        leaf_values=leaf_values,
    )


# ====================================================================================
# Numba kernels
# ====================================================================================


@njit(cache=True, nogil=True)
def _special_goes_left(
    fval: float,
    threshold: float,
    special: npt.NDArray[np.int64],
    g: int | np.integer[Any],
    cat_bits: U32Array,
) -> bool:
    """LightGBM 4.x ``Tree::Decision`` for categorical and zero-as-missing splits."""
    if special[g, 0] == _KIND_CATEGORICAL:
        # NaN, negatives (after truncation toward zero) and values that overflow
        # LightGBM's static_cast<int> (INT_MIN on x86) all go right.
        if not (fval > -1.0) or fval >= 2147483648.0:
            return False
        cat = np.int64(fval)
        word = cat >> 5
        if word >= special[g, 3]:
            return False
        return bool((cat_bits[special[g, 2] + word] >> (cat & 31)) & 1 == 1)
    if fval != fval or (-_ZERO_THRESHOLD <= fval <= _ZERO_THRESHOLD):
        return bool(special[g, 1] == 1)
    return fval <= threshold


@njit(cache=True, nogil=True)
def _directions(
    x: FloatArray,
    off: np.uint64,
    n_internal: np.uint64,
    nodes: U32Array,
    thresholds: FloatArray,
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
    left: U64Array,
) -> None:
    """``left[j]`` = 1 if row ``x`` goes left at the tree's internal node ``j``, else 0.

    Kept out of the main loops: the rare slow path (categorical and
    zero-as-missing splits) would otherwise cost register spills on every node.
    """
    for j in range(n_internal):
        g = off + j
        flags = np.uint64(nodes[g, 3])
        fval = x[nodes[g, 0]]
        if flags & _FLAG_SPECIAL:
            left[j] = np.uint64(_special_goes_left(fval, thresholds[g], special, g, cat_bits))
        else:
            nan_left = (flags >> _FLAG_NAN_LEFT_SHIFT) & _U1
            left[j] = np.uint64(fval <= thresholds[g]) | (np.uint64(fval != fval) & nan_left)


@njit(cache=True, nogil=True, inline="always")
def _scale(
    buf: FloatArray,
    src: np.uint64,
    dst: np.uint64,
    edges: FloatArray,
    e: np.uint64,
    nq: np.uint64,
) -> None:
    """``buf[dst:dst+nq] = buf[src:src+nq] * edges[e:e+nq]`` (unrolled by 4)."""
    q = _U0
    while q + _U4 <= nq:
        p0 = buf[src + q]
        p1 = buf[src + q + _U1]
        p2 = buf[src + q + _U2]
        p3 = buf[src + q + _U3]
        f0 = edges[e + q]
        f1 = edges[e + q + _U1]
        f2 = edges[e + q + _U2]
        f3 = edges[e + q + _U3]
        buf[dst + q] = p0 * f0
        buf[dst + q + _U1] = p1 * f1
        buf[dst + q + _U2] = p2 * f2
        buf[dst + q + _U3] = p3 * f3
        q += _U4
    while q < nq:
        buf[dst + q] = buf[src + q] * edges[e + q]
        q += _U1


@njit(cache=True, nogil=True, inline="always")
def _gather(
    acc: FloatArray,
    a: np.uint64,
    buf: FloatArray,
    parent: np.uint64,
    left: np.uint64,
    right: np.uint64,
    edges: FloatArray,
    el: np.uint64,
    er: np.uint64,
    nq: np.uint64,
) -> None:
    """Add both child edges' dot products to ``acc`` and sum the children into the parent."""
    for q in range(nq):
        s_left = buf[left + q]
        s_right = buf[right + q]
        acc[a + q] += s_left * edges[el + q] + s_right * edges[er + q]
        buf[parent + q] = s_left + s_right


@njit(cache=True, nogil=True)
def _explain_one(
    x: FloatArray,
    acc: FloatArray,
    mask: U64Array,
    buf: FloatArray,
    eidx: U64Array,
    left_of: U64Array,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
    nq: int,
) -> float:
    """Accumulate one row's per-point contributions into ``acc``; return its raw score.

    ``acc[f * nq + j]`` collects feature ``f``'s contribution at quadrature
    point ``j``; ``mask`` holds each node's cold-feature bitmask, ``buf`` the
    running products (top-down) and then the subtree sums (bottom-up).
    """
    unq = np.uint64(nq)
    case_stride = np.uint64(2) * unq
    raw = 0.0
    for t in range(trees.shape[0]):
        off = trees[t, 0]
        n_internal = trees[t, 1]
        _directions(x, off, n_internal, nodes, thresholds, special, cat_bits, left_of)
        mask[0] = _U0
        for q in range(nq):
            buf[q] = 1.0
        for j in range(n_internal):
            g = off + j
            flags = np.uint64(nodes[g, 3])
            lc = np.uint64(nodes[g, 1])
            rc = np.uint64(nodes[g, 2])
            left = left_of[j]
            cold = mask[j]
            bit = _U1 << (flags & _FLAG_SLOT)
            m_left = cold | (bit & (left - _U1))
            m_right = cold | (bit & (_U0 - left))
            prev = np.uint64((cold & bit) != _U0)
            el = (np.uint64(6) * g + prev + np.uint64((m_left & bit) != _U0)) * case_stride
            er = (np.uint64(6) * g + _U3 + prev + np.uint64((m_right & bit) != _U0)) * case_stride
            _scale(buf, j * unq, lc * unq, edges, el, unq)
            _scale(buf, j * unq, rc * unq, edges, er, unq)
            mask[lc] = m_left
            mask[rc] = m_right
            eidx[lc] = el + unq
            eidx[rc] = er + unq
        leaf_off = trees[t, 2]
        for k in range(trees[t, 3]):
            if mask[n_internal + k] == _U0:
                raw += leaf_values[leaf_off + k]
        for jj in range(n_internal):
            j = n_internal - _U1 - jj
            g = off + j
            lc = np.uint64(nodes[g, 1])
            rc = np.uint64(nodes[g, 2])
            _gather(
                acc,
                np.uint64(nodes[g, 0]) * unq,
                buf,
                j * unq,
                lc * unq,
                rc * unq,
                edges,
                eidx[lc],
                eidx[rc],
                unq,
            )
    return raw


@njit(cache=True, nogil=True, inline="always")
def _sum_runs(acc: FloatArray, width: int, out: FloatArray) -> None:
    """``out[f] = sum(acc[f * width:(f + 1) * width])``, added in order (per-feature totals
    of the per-point or per-lane partial sums)."""
    for f in range(out.shape[0]):
        total = 0.0
        for j in range(width):
            total += acc[f * width + j]
        out[f] = total


@njit(cache=True, nogil=True)
def _explain_rows(
    X: FloatArray,
    phi: FloatArray,
    raw: FloatArray,
    max_nodes: int,
    nq: int,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
) -> None:
    """Explain rows one at a time (small requests: no threads, no blocking)."""
    n_features = X.shape[1]
    mask = np.empty(max_nodes, dtype=np.uint64)
    buf = np.empty(max_nodes * nq)
    eidx = np.empty(max_nodes, dtype=np.uint64)
    left_of = np.empty(max_nodes, dtype=np.uint64)
    acc = np.empty(n_features * nq)
    for r in range(X.shape[0]):
        acc[:] = 0.0
        raw[r] = _explain_one(
            X[r],
            acc,
            mask,
            buf,
            eidx,
            left_of,
            trees,
            nodes,
            special,
            thresholds,
            cat_bits,
            leaf_values,
            edges,
            nq,
        )
        _sum_runs(acc, nq, phi[r])


@njit(cache=True, nogil=True, inline="always")
def _block_decide(
    xs: FloatArray,
    g: int | np.integer[Any],
    flags: np.uint64,
    thresholds: FloatArray,
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
    left: U64Array,
    nb: int,
) -> None:
    """Directions of ``nb`` rows at node ``g`` (vectorised unless the split is special)."""
    if flags & _FLAG_SPECIAL:
        _block_decide_special(xs, g, thresholds, special, cat_bits, left, nb)
        return
    threshold = thresholds[g]
    nan_left = (flags >> _FLAG_NAN_LEFT_SHIFT) & _U1
    for r in range(nb):
        v = xs[r]
        left[r] = np.uint64(v <= threshold) | (np.uint64(v != v) & nan_left)


@njit(cache=True, nogil=True)
def _block_decide_special(
    xs: FloatArray,
    g: int | np.integer[Any],
    thresholds: FloatArray,
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
    left: U64Array,
    nb: int,
) -> None:
    """Slow-path directions (categorical / zero-as-missing), out of line."""
    for r in range(nb):
        left[r] = np.uint64(_special_goes_left(xs[r], thresholds[g], special, g, cat_bits))


@njit(cache=True, nogil=True, inline="always")
def _block_masks(
    left: U64Array,
    bit: np.uint64,
    parent: U64Array,
    m_left: U64Array,
    m_right: U64Array,
    nb: int,
) -> None:
    """Children's cold-feature bitmasks from the parent's and the directions."""
    for r in range(nb):
        cold = parent[r]
        m_left[r] = cold | (bit & (left[r] - _U1))
        m_right[r] = cold | (bit & (_U0 - left[r]))


@njit(cache=True, nogil=True, inline="always")
def _block_cases(
    bit: np.uint64, parent: U64Array, child: U64Array, case: FloatArray, nb: int
) -> None:
    """Edge case per row as a float (0 hot->hot, 1 hot->cold, 2 cold->cold)."""
    for r in range(nb):
        case[r] = np.float64((parent[r] & bit) != _U0) + np.float64((child[r] & bit) != _U0)


@njit(cache=True, nogil=True, inline="always")
def _block_scale(
    src: FloatArray,
    dst: FloatArray,
    case: FloatArray,
    f0: float,
    f1: float,
    f2: float,
    nb: int,
) -> None:
    """``dst = src * factor[case]`` per row; the 0/1 weights keep the selection exact."""
    for r in range(nb):
        c = case[r]
        dst[r] = src[r] * (
            f0 * np.float64(c == 0.0) + f1 * np.float64(c == 1.0) + f2 * np.float64(c == 2.0)
        )


@njit(cache=True, nogil=True, inline="always")
def _block_dot(
    acc: FloatArray,
    s_left: FloatArray,
    c_left: FloatArray,
    dl0: float,
    dl1: float,
    s_right: FloatArray,
    c_right: FloatArray,
    dr0: float,
    dr1: float,
    nb: int,
) -> None:
    """``acc += S_left * D_left[case] + S_right * D_right[case]`` (case 2 has D = 0)."""
    for r in range(nb):
        cl = c_left[r]
        cr = c_right[r]
        d_left = dl0 * np.float64(cl == 0.0) + dl1 * np.float64(cl == 1.0)
        d_right = dr0 * np.float64(cr == 0.0) + dr1 * np.float64(cr == 1.0)
        acc[r] += s_left[r] * d_left + s_right[r] * d_right


@njit(cache=True, nogil=True, inline="always")
def _block_sum(dst: FloatArray, a: FloatArray, b: FloatArray, nb: int) -> None:
    """``dst = a + b`` over the block's rows."""
    for r in range(nb):
        dst[r] = a[r] + b[r]


@njit(cache=True, nogil=True)
def _block_top_down(
    xb: FloatArray,
    nb: int,
    t: int,
    mask: U64Array,
    buf: FloatArray,
    case: FloatArray,
    left: U64Array,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    edges: FloatArray,
    nq: int,
) -> None:
    """Cold masks, edge cases and running products of tree ``t`` for a block of rows."""
    case_stride = 2 * nq
    off = np.int64(trees[t, 0])
    mask[0, :nb] = _U0
    buf[:nq, :nb] = 1.0
    for j in range(np.int64(trees[t, 1])):
        g = off + j
        lc = np.int64(nodes[g, 1])
        rc = np.int64(nodes[g, 2])
        flags = np.uint64(nodes[g, 3])
        bit = _U1 << (flags & _FLAG_SLOT)
        _block_decide(xb[nodes[g, 0]], g, flags, thresholds, special, cat_bits, left, nb)
        _block_masks(left, bit, mask[j], mask[lc], mask[rc], nb)
        _block_cases(bit, mask[j], mask[lc], case[lc], nb)
        _block_cases(bit, mask[j], mask[rc], case[rc], nb)
        el = 6 * g * case_stride
        er = el + 3 * case_stride
        for q in range(nq):
            src = buf[j * nq + q]
            _block_scale(
                src,
                buf[lc * nq + q],
                case[lc],
                edges[el + q],
                edges[el + case_stride + q],
                edges[el + 2 * case_stride + q],
                nb,
            )
            _block_scale(
                src,
                buf[rc * nq + q],
                case[rc],
                edges[er + q],
                edges[er + case_stride + q],
                edges[er + 2 * case_stride + q],
                nb,
            )


@njit(cache=True, nogil=True)
def _block_bottom_up(
    acc: FloatArray,
    nb: int,
    t: int,
    buf: FloatArray,
    case: FloatArray,
    trees: U64Array,
    nodes: U32Array,
    edges: FloatArray,
    nq: int,
) -> None:
    """Subtree sums of tree ``t`` and every edge's contribution to its split feature."""
    case_stride = 2 * nq
    off = np.int64(trees[t, 0])
    n_internal = np.int64(trees[t, 1])
    for jj in range(n_internal):
        j = n_internal - 1 - jj
        g = off + j
        lc = np.int64(nodes[g, 1])
        rc = np.int64(nodes[g, 2])
        el = 6 * g * case_stride + nq
        er = el + 3 * case_stride
        target = acc[nodes[g, 0]]
        for q in range(nq):
            s_left = buf[lc * nq + q]
            s_right = buf[rc * nq + q]
            _block_dot(
                target,
                s_left,
                case[lc],
                edges[el + q],
                edges[el + case_stride + q],
                s_right,
                case[rc],
                edges[er + q],
                edges[er + case_stride + q],
                nb,
            )
            _block_sum(buf[j * nq + q], s_left, s_right, nb)


@njit(cache=True, nogil=True)
def _explain_block(
    xb: FloatArray,
    acc: FloatArray,
    raw: FloatArray,
    nb: int,
    mask: U64Array,
    buf: FloatArray,
    case: FloatArray,
    left: U64Array,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
    nq: int,
) -> None:
    """Same computation as :func:`_explain_one` for a block of rows at once.

    Every array has the block's rows as its last (contiguous) axis, so each
    per-node step is a short loop over rows that LLVM vectorises; the tree's
    data is read once per block instead of once per row.
    """
    for t in range(trees.shape[0]):
        _block_top_down(
            xb,
            nb,
            t,
            mask,
            buf,
            case,
            left,
            trees,
            nodes,
            special,
            thresholds,
            cat_bits,
            edges,
            nq,
        )
        n_internal = np.int64(trees[t, 1])
        leaf_off = np.int64(trees[t, 2])
        for k in range(np.int64(trees[t, 3])):
            reached = mask[n_internal + k]
            value = leaf_values[leaf_off + k]
            for r in range(nb):
                raw[r] += value * np.float64(reached[r] == _U0)
        _block_bottom_up(acc, nb, t, buf, case, trees, nodes, edges, nq)


@njit(cache=True, nogil=True)
def _explain_one_block(
    X: FloatArray,
    phi: FloatArray,
    raw: FloatArray,
    start: int,
    max_nodes: int,
    nq: int,
    block_rows: int,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
) -> None:
    """Explain rows ``start:start + block_rows`` (fewer at the end) with the block kernel."""
    n_features = X.shape[1]
    nb = min(block_rows, X.shape[0] - start)
    xb = np.empty((n_features, block_rows))
    for f in range(n_features):
        for r in range(nb):
            xb[f, r] = X[start + r, f]
    acc = np.zeros((n_features, block_rows))
    raw_b = np.zeros(block_rows)
    _explain_block(
        xb,
        acc,
        raw_b,
        nb,
        np.empty((max_nodes, block_rows), dtype=np.uint64),
        np.empty((max_nodes * nq, block_rows)),
        np.empty((max_nodes, block_rows)),
        np.empty(block_rows, dtype=np.uint64),
        trees,
        nodes,
        special,
        thresholds,
        cat_bits,
        leaf_values,
        edges,
        nq,
    )
    for r in range(nb):
        raw[start + r] = raw_b[r]
        for f in range(n_features):
            phi[start + r, f] = acc[f, r]


@njit(cache=True, nogil=True, parallel=True)
def _explain_blocks(
    X: FloatArray,
    phi: FloatArray,
    raw: FloatArray,
    max_nodes: int,
    nq: int,
    block_rows: int,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
) -> None:
    """Explain ``X`` in blocks of ``block_rows`` rows, blocks spread over threads."""
    n_blocks = (X.shape[0] + block_rows - 1) // block_rows
    for blk in prange(n_blocks):
        _explain_one_block(
            X,
            phi,
            raw,
            blk * block_rows,
            max_nodes,
            nq,
            block_rows,
            trees,
            nodes,
            special,
            thresholds,
            cat_bits,
            leaf_values,
            edges,
        )


@njit(cache=True, nogil=True)
def _explain_blocks_serial(
    X: FloatArray,
    phi: FloatArray,
    raw: FloatArray,
    max_nodes: int,
    nq: int,
    block_rows: int,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
    edges: FloatArray,
) -> None:
    """:func:`_explain_blocks` on the calling thread only (no fork/join barrier)."""
    for start in range(0, X.shape[0], block_rows):
        _explain_one_block(
            X,
            phi,
            raw,
            start,
            max_nodes,
            nq,
            block_rows,
            trees,
            nodes,
            special,
            thresholds,
            cat_bits,
            leaf_values,
            edges,
        )


@njit(cache=True, nogil=True)
def _lanes_decide_special(
    x: FloatArray,
    o: np.uint64,
    features: npt.NDArray[np.int64],
    thresholds: FloatArray,
    flags: U64Array,
    special_rows: npt.NDArray[np.int64],
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
    wk: FloatArray,
    dst: np.uint64,
) -> None:
    """Directions at one position of a group where some split is special (out of line)."""
    for r in range(_ULANES):
        v = x[features[o + r]]
        fl = flags[o + r]
        if fl & _FLAG_SPECIAL:
            left = _special_goes_left(v, thresholds[o + r], special, special_rows[o + r], cat_bits)
        else:
            left = v <= thresholds[o + r] or (v != v and (fl >> _FLAG_NAN_LEFT_SHIFT) & _U1 == _U1)
        wk[dst + r] = np.float64(left)


@njit(cache=True, nogil=True)
def _lanes_top_down(
    x: FloatArray,
    group: int,
    nq: int,
    n_pos: int,
    features: npt.NDArray[np.int64],
    thresholds: FloatArray,
    flags: U64Array,
    special_rows: npt.NDArray[np.int64],
    any_special: npt.NDArray[np.uint8],
    node_data: FloatArray,
    t: FloatArray,
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
    mask: U64Array,
    xv: FloatArray,
    wk: FloatArray,
    o_left: np.uint64,
    o_cold: np.uint64,
) -> None:
    """Directions, cold masks and running products ``Q`` of one group of trees.

    ``wk`` holds ``Q`` (position-major, ``nq`` points per position) from 0, and
    per position the 0/1 direction (left) at ``o_left`` and whether the split's
    feature is already cold above the node at ``o_cold``.

    All offsets are unsigned so that numba emits plain vector loads (a signed
    index gets a negative-index fix-up that LLVM turns into gathers).
    """
    n_fields = np.uint64(_LANE_FIELDS + nq)
    for r in range(_ULANES):
        mask[r] = _U0
    for i in range(nq * _LANES):
        wk[i] = 1.0
    for p in range(n_pos):
        lc = 2 * p + 1
        rc = lc + 1
        o = np.uint64((group * n_pos + p) * _LANES)
        lo = np.uint64(p * _LANES)
        if any_special[group, p]:
            _lanes_decide_special(
                x,
                o,
                features,
                thresholds,
                flags,
                special_rows,
                special,
                cat_bits,
                wk,
                o_left + lo,
            )
        else:
            for r in range(_ULANES):
                xv[r] = x[features[o + r]]
            for r in range(_ULANES):
                v = xv[r]
                nan_left = (flags[o + r] >> _FLAG_NAN_LEFT_SHIFT) & _U1
                wk[o_left + lo + r] = np.float64(
                    np.uint64(v <= thresholds[o + r]) | (np.uint64(v != v) & nan_left)
                )
        ml = np.uint64(lc * _LANES)
        mr = np.uint64(rc * _LANES)
        for r in range(_ULANES):
            bit = _U1 << (flags[o + r] & _FLAG_SLOT)
            cold = mask[lo + r]
            took_left = np.uint64(wk[o_left + lo + r] == 1.0)
            mask[ml + r] = cold | (bit & (took_left - _U1))
            mask[mr + r] = cold | (bit & (_U0 - took_left))
            wk[o_cold + lo + r] = np.float64((cold & bit) != _U0)
        if lc >= n_pos:
            continue
        base = np.uint64(group * n_pos + p) * n_fields * _ULANES
        for q in range(nq):
            tq = t[q]
            o_inv = base + np.uint64(_LANE_FIELDS + q) * _ULANES
            qp = np.uint64((p * nq + q) * _LANES)
            ql = np.uint64((lc * nq + q) * _LANES)
            qr = np.uint64((rc * nq + q) * _LANES)
            for r in range(_ULANES):
                hot_left = wk[o_left + lo + r]
                cold = wk[o_cold + lo + r] == 1.0
                inv = node_data[o_inv + r]
                inv_zp = node_data[base + _U3 * _ULANES + r]
                z_left = node_data[base + r]
                z_right = node_data[base + _ULANES + r]
                r_left = (z_left * (1.0 - tq) + hot_left * tq) * inv
                r_right = (z_right * (1.0 - tq) + (1.0 - hot_left) * tq) * inv
                q_parent = wk[qp + r]
                wk[ql + r] = q_parent * (z_left * inv_zp if cold else r_left)
                wk[qr + r] = q_parent * (z_right * inv_zp if cold else r_right)


@njit(cache=True, nogil=True)
def _lanes_bottom_up(
    group: int,
    nq: int,
    n_pos: int,
    t: FloatArray,
    w: FloatArray,
    features: npt.NDArray[np.int64],
    node_data: FloatArray,
    wk: FloatArray,
    o_left: np.uint64,
    o_cold: np.uint64,
    o_sums: np.uint64,
    o_leaves: np.uint64,
    contrib: FloatArray,
    acc: FloatArray,
) -> None:
    """Subtree sums ``B`` and every node's contribution, added to ``acc[feature, lane]``.

    With ``h`` = 1 on the edge the row took, the edge factors are
    ``R = (z (1 - t) + h t) / H(zp)`` and the contribution weights
    ``G = w / H(zp) * (h - z - (1 - zp) R)`` (``R = z / zp`` and ``G = 0`` when
    the feature is already cold above); the node adds
    ``sum_q Q_q * (G_left B_left + G_right B_right)`` to its feature.
    Accumulating per lane keeps the scatter free of store-to-load chains
    (neighbouring trees often split on the same feature).
    """
    n_fields = np.uint64(_LANE_FIELDS + nq)
    for pp in range(n_pos):
        p = n_pos - 1 - pp
        lc = 2 * p + 1
        rc = lc + 1
        lo = np.uint64(p * _LANES)
        base = np.uint64(group * n_pos + p) * n_fields * _ULANES
        for r in range(_ULANES):
            contrib[r] = 0.0
        for q in range(nq):
            tq = t[q]
            wq = w[q]
            o_inv = base + np.uint64(_LANE_FIELDS + q) * _ULANES
            if lc < n_pos:
                bl = o_sums + np.uint64((lc * nq + q) * _LANES)
                br = o_sums + np.uint64((rc * nq + q) * _LANES)
            else:  # leaf values do not depend on the quadrature point
                bl = o_leaves + np.uint64((lc - n_pos) * _LANES)
                br = bl + _ULANES
            bp = o_sums + np.uint64((p * nq + q) * _LANES)
            qp = np.uint64((p * nq + q) * _LANES)
            for r in range(_ULANES):
                hot_left = wk[o_left + lo + r]
                cold = wk[o_cold + lo + r] == 1.0
                inv = node_data[o_inv + r]
                cold_zp = node_data[base + _U2 * _ULANES + r]
                inv_zp = node_data[base + _U3 * _ULANES + r]
                z_left = node_data[base + r]
                z_right = node_data[base + _ULANES + r]
                r_left = (z_left * (1.0 - tq) + hot_left * tq) * inv
                r_right = (z_right * (1.0 - tq) + (1.0 - hot_left) * tq) * inv
                g_left = wq * inv * (hot_left - z_left - cold_zp * r_left)
                g_right = wq * inv * ((1.0 - hot_left) - z_right - cold_zp * r_right)
                s_left = wk[bl + r]
                s_right = wk[br + r]
                wk[bp + r] = (z_left * inv_zp if cold else r_left) * s_left + (
                    z_right * inv_zp if cold else r_right
                ) * s_right
                contrib[r] += 0.0 if cold else wk[qp + r] * (g_left * s_left + g_right * s_right)
        o = np.uint64((group * n_pos + p) * _LANES)
        for r in range(_ULANES):
            acc[np.uint64(features[o + r]) * _ULANES + r] += contrib[r]


@njit(cache=True, nogil=True)
def _explain_lanes(
    X: FloatArray,
    phi: FloatArray,
    raw: FloatArray,
    nq: int,
    t: FloatArray,
    w: FloatArray,
    n_groups: int,
    n_pos: int,
    features: npt.NDArray[np.int64],
    thresholds: FloatArray,
    flags: U64Array,
    special_rows: npt.NDArray[np.int64],
    any_special: npt.NDArray[np.uint8],
    node_data: FloatArray,
    leaf_values: FloatArray,
    special: npt.NDArray[np.int64],
    cat_bits: U32Array,
) -> None:
    """Explain rows one at a time, vectorising over trees (see :class:`_LaneModel`).

    Same quantities as :func:`_explain_one` in the ``Q``/``B`` form: ``Q`` is
    the product of edge factors from the root down to a node, ``B`` the sum
    over the node's leaves of their value times the factors below the node.
    """
    n_slots = 2 * n_pos + 1
    n_features = X.shape[1]
    # scratch: Q | left | cold | B (internal positions) | leaf values
    o_left = np.uint64(n_pos * nq * _LANES)
    o_cold = o_left + np.uint64(n_pos * _LANES)
    o_sums = o_cold + np.uint64(n_pos * _LANES)
    o_leaves = o_sums + np.uint64(n_pos * nq * _LANES)
    wk = np.empty(int(o_leaves) + (n_pos + 1) * _LANES)
    mask = np.empty(n_slots * _LANES, dtype=np.uint64)
    xv = np.empty(_LANES)
    contrib = np.empty(_LANES)
    reached = np.empty(_LANES)
    acc = np.empty(n_features * _LANES)
    for row in range(X.shape[0]):
        x = X[row]
        acc[:] = 0.0
        reached[:] = 0.0
        for group in range(n_groups):
            _lanes_top_down(
                x,
                group,
                nq,
                n_pos,
                features,
                thresholds,
                flags,
                special_rows,
                any_special,
                node_data,
                t,
                special,
                cat_bits,
                mask,
                xv,
                wk,
                o_left,
                o_cold,
            )
            for k in range(n_pos + 1):
                lv = leaf_values[group, k]
                mo = np.uint64((n_pos + k) * _LANES)
                ol = o_leaves + np.uint64(k * _LANES)
                for r in range(_ULANES):
                    v = lv[r]
                    reached[r] += v * np.float64(mask[mo + r] == _U0)
                    wk[ol + r] = v
            _lanes_bottom_up(
                group,
                nq,
                n_pos,
                t,
                w,
                features,
                node_data,
                wk,
                o_left,
                o_cold,
                o_sums,
                o_leaves,
                contrib,
                acc,
            )
        _sum_runs(acc, _LANES, phi[row])
        total = 0.0
        for r in range(_LANES):
            total += reached[r]
        raw[row] = total


@njit(cache=True, nogil=True)
def _predict_rows(
    X: FloatArray,
    raw: FloatArray,
    trees: U64Array,
    nodes: U32Array,
    special: npt.NDArray[np.int64],
    thresholds: FloatArray,
    cat_bits: U32Array,
    leaf_values: FloatArray,
) -> None:
    """Plain root-to-leaf walk per tree, summing leaf values in tree order like LightGBM."""
    for r in range(X.shape[0]):
        x = X[r]
        total = 0.0
        for t in range(trees.shape[0]):
            off = trees[t, 0]
            n_internal = trees[t, 1]
            local = _U0
            while local < n_internal:
                g = off + local
                flags = np.uint64(nodes[g, 3])
                fval = x[nodes[g, 0]]
                if flags & _FLAG_SPECIAL:
                    go_left = _special_goes_left(fval, thresholds[g], special, g, cat_bits)
                else:
                    go_left = fval <= thresholds[g] or (
                        fval != fval and (flags >> _FLAG_NAN_LEFT_SHIFT) & _U1 == _U1
                    )
                local = np.uint64(nodes[g, 1]) if go_left else np.uint64(nodes[g, 2])
            total += leaf_values[trees[t, 2] + local - n_internal]
        raw[r] = total


# ====================================================================================
# Public API
# ====================================================================================


def _check_supported(dump: dict[str, Any]) -> None:
    """Reject models whose raw output is not one sum of piecewise-constant trees."""
    n_class = int(dump.get("num_class", 1))
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    if n_class != 1 or per_iteration != 1:
        raise ValueError(
            "TreeShapExplainer supports single-output models (e.g. objective='binary') "
            f"only; got num_class={n_class}, num_tree_per_iteration={per_iteration} "
            "(multiclass/multi-output boosters are not supported)"
        )
    if not dump.get("tree_info"):
        raise ValueError("the booster has no trees")


def _best_seconds(call: Callable[[], object], repeats: int = 5, number: int = 20) -> float:
    """Fastest of ``repeats`` timings of ``number`` calls (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, time.perf_counter() - t0)
    return best / number


class TreeShapExplainer:
    """Exact path-dependent TreeSHAP for a fitted single-output LightGBM booster.

    Produces the same numbers as ``shap.TreeExplainer(booster).shap_values(X)``
    (``feature_perturbation="tree_path_dependent"``, covers = training counts)
    and LightGBM's ``pred_contrib``, on the raw-margin (log-odds) scale, about
    an order of magnitude faster. Everything the kernels need is packed into
    contiguous arrays here, once, so a request pays only for the tree walk.

    Inputs are float matrices laid out like LightGBM's training matrix:
    categorical features as their integer codes (NaN for missing), exactly as
    ``booster.predict`` receives them from a numpy array.

    Numba compiles the kernels on first use and caches them on disk
    (``__pycache__``); call :meth:`warmup` at service start so that the first
    request does not pay for compilation or cache loading.

    Args:
        booster: Fitted booster with a single output per row.
        num_iteration: Iterations to explain; ``None`` uses the best iteration
            if one was recorded, else all (the same default as ``predict``).

    Raises:
        ValueError: For multiclass/multi-output models, linear trees, unknown
            split types, or paths with more than 64 distinct features.
    """

    def __init__(self, booster: lgb.Booster, *, num_iteration: int | None = None) -> None:
        dump = booster.dump_model(num_iteration=num_iteration)
        _check_supported(dump)
        self._n_features = int(dump["max_feature_idx"]) + 1
        self._model, self._lanes = _flatten_model(dump["tree_info"])

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
        """Raw score, equal to ``booster.predict(X, raw_score=True)``, by a tree walk."""
        rows = self._as_rows(X)
        raw = np.empty(rows.shape[0])
        m = self._model
        _predict_rows(
            rows, raw, m.trees, m.nodes, m.special, m.thresholds, m.cat_bits, m.leaf_values
        )
        return raw

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw scores and SHAP values from a single pass over the trees.

        Fewer than 16 rows use the per-row kernels (no threads, lowest latency),
        up to 511 rows the block kernel on the calling thread, and larger
        batches the block kernel on numba's thread pool.

        Args:
            X: ``(n_rows, n_features)`` (or one ``(n_features,)`` row) of floats.

        Returns:
            ``(raw, shap)`` with shapes ``(n_rows,)`` and ``(n_rows, n_features)``;
            ``shap.sum(1) + expected_value`` equals ``raw`` up to rounding.

        Raises:
            ValueError: If ``X`` does not have ``n_features`` columns.
            TypeError: If ``X`` is a frame with pandas categorical columns.
        """
        rows = self._as_rows(X)
        n = rows.shape[0]
        raw = np.empty(n)
        phi = np.empty((n, self._n_features))
        m = self._model
        arrays = self._kernel_arrays()
        lanes = self._lanes
        if n >= _PARALLEL_MIN_ROWS:
            _explain_blocks(rows, phi, raw, m.max_nodes, m.nq, _BLOCK_ROWS, *arrays)
        elif n >= _SMALL_BATCH:
            _explain_blocks_serial(rows, phi, raw, m.max_nodes, m.nq, _BLOCK_ROWS, *arrays)
        elif lanes is not None:
            _explain_lanes(
                rows,
                phi,
                raw,
                m.nq,
                lanes.t,
                lanes.w,
                lanes.n_groups,
                lanes.n_pos,
                lanes.features,
                lanes.thresholds,
                lanes.flags,
                lanes.special_rows,
                lanes.any_special,
                lanes.node_data,
                lanes.leaf_values,
                m.special,
                m.cat_bits,
            )
        else:
            _explain_rows(rows, phi, raw, m.max_nodes, m.nq, *arrays)
        return raw, phi

    def warmup(self) -> None:
        """Compile (or load from numba's on-disk cache) every kernel on tiny inputs.

        Without this the first request pays JIT compilation (seconds); with a
        populated on-disk cache it costs milliseconds.
        """
        rows = np.zeros((_PARALLEL_MIN_ROWS, self._n_features))
        for n in (1, _SMALL_BATCH, _PARALLEL_MIN_ROWS):  # every explain() code path
            self.explain(rows[:n])
        self.predict_raw(rows[:1])
        self._pick_row_kernel(rows[:1])

    def _pick_row_kernel(self, row: FloatArray) -> None:
        """Keep whichever single-row kernel is faster for this model.

        The padded layout wins on wide, balanced trees (hundreds of depth-6 trees) but
        pads every tree to its maximum depth, so on leaf-wise trees with a few deep
        branches it can cost ten times the per-row kernel. Both give the same values;
        the cost depends on the trees' shapes, not on the row, so one timing decides.
        """
        if self._lanes is None:
            return
        lanes = self._lanes
        self._lanes = None
        self.explain(row)  # compile the per-row kernel if it never ran
        per_row = _best_seconds(lambda: self.explain(row))
        self._lanes = lanes
        padded = _best_seconds(lambda: self.explain(row))
        if per_row < padded:
            self._lanes = None

    def _kernel_arrays(self) -> tuple[np.ndarray, ...]:
        """The flat model arrays in the order the per-row and block kernels take them."""
        m = self._model
        return (m.trees, m.nodes, m.special, m.thresholds, m.cat_bits, m.leaf_values, m.edges)

    def _as_rows(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``X`` as a C-contiguous float64 2-D array, validating its width.

        A frame with categorical columns is refused: converting it would give
        the category *values*, while the model splits on the category *codes*.
        """
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None and any(str(d) == "category" for d in np.atleast_1d(dtypes)):
            raise TypeError(
                "pass categorical columns as float codes (col.cat.codes, NaN for missing), "
                "not as a pandas categorical frame"
            )
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self._n_features:
            raise ValueError(
                f"expected a (n_rows, {self._n_features}) matrix, got shape {rows.shape}"
            )
        return rows
