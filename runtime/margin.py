"""The model behind a bundle's raw margin: LightGBM trees, a logistic regression, or a blend.

Everything after the margin (calibration, policy, reasons, grades) only needs raw margins
and exact SHAP values on the encoded matrix, so the margin model is a small protocol
(``MarginModel``): ``explain(X) -> (raw, shap)``, ``predict_raw(X)``, ``expected_value``,
``warmup()``. Four kinds implement it:

* ``TreeMargin``: a LightGBM booster explained by exact TreeSHAP (``model.txt``);
* ``LinearMargin`` (``runtime.linear``): regularised logistic regression with exact linear
  SHAP (``linear_model.json``);
* ``BlendMargin``: ``w · tree + (1 − w) · linear`` on the margin scale; SHAP values and the
  base value are the same weighted sums, so they stay exact;
* ``PointsMargin`` (``runtime.points``): hand-set points rules scaled to log-odds, explained
  by the rules that fired (``points_model.json``);
* ``RegionalMargin`` (``runtime.regional``): a pooled margin of one of the kinds above, plus
  a margin of its own or an offset for each region that earned one, routed by the region
  column (``regional.json`` and one folder per margin).

A bundle records its kind in ``margin.json``; a bundle without that file is a tree model
(the format before other kinds existed). Nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from runtime.linear import FloatArray, LinearMargin
from runtime.metadata import ModelArtifactError
from runtime.points import PointsMargin
from runtime.regional import RegionalMargin, load_regional, save_regional
from runtime.treeshap import TreeShapExplainer

TREE_FILE = "model.txt"
LINEAR_FILE = "linear_model.json"
MARGIN_FILE = "margin.json"
POINTS_FILE = "points_model.json"
KINDS = ("tree", "linear", "blend", "points", "regional")


@runtime_checkable
class MarginModel(Protocol):
    """What scoring needs from a model: raw margins and exact SHAP values.

    Attributes:
        kind: ``tree``, ``linear``, ``blend``, ``points`` or ``regional``.
        n_features: Columns of the encoded matrix.
    """

    kind: str
    n_features: int

    @property
    def expected_value(self) -> float:
        """The SHAP base value: ``shap.sum(1) + expected_value == raw``."""
        ...

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and SHAP values (one column per input feature)."""
        ...

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins only."""
        ...

    def warmup(self) -> None:
        """Make the first request fast (compile kernels, build caches)."""
        ...


class TreeMargin:
    """A LightGBM booster explained by exact TreeSHAP (``runtime.treeshap``).

    Args:
        booster: Trained booster, binary objective.
    """

    kind = "tree"

    def __init__(self, booster: lgb.Booster):
        self.booster = booster
        self.n_features = int(booster.num_feature())
        self._explainer: TreeShapExplainer | None = None

    @property
    def explainer(self) -> TreeShapExplainer:
        """Exact TreeSHAP explainer, built on first use."""
        if self._explainer is None:
            self._explainer = TreeShapExplainer(self.booster)
        return self._explainer

    @property
    def expected_value(self) -> float:
        """Cover-weighted mean raw score."""
        return float(self.explainer.expected_value)

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and TreeSHAP values in one pass."""
        return self.explainer.explain(np.ascontiguousarray(X, dtype=np.float64))

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins from LightGBM itself (no explanation)."""
        return np.asarray(
            self.booster.predict(np.asarray(X, dtype=np.float64), raw_score=True),
            dtype=np.float64,
        )

    def warmup(self) -> None:
        """Compile the TreeSHAP kernels."""
        self.explainer.warmup()


class BlendMargin:
    """``weight · tree + (1 − weight) · linear`` on the margin scale.

    Args:
        tree: The tree part.
        linear: The linear part.
        weight: Weight of the tree part, in [0, 1].
    """

    kind = "blend"

    def __init__(self, tree: TreeMargin, linear: LinearMargin, weight: float):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"blend weight must be in [0, 1], got {weight}")
        if tree.n_features != linear.n_features:
            raise ValueError(
                f"blend parts disagree on columns: trees {tree.n_features}, "
                f"linear {linear.n_features}"
            )
        self.tree = tree
        self.linear = linear
        self.weight = float(weight)
        self.n_features = tree.n_features

    @property
    def expected_value(self) -> float:
        """The weighted base values."""
        w = self.weight
        return w * self.tree.expected_value + (1.0 - w) * self.linear.expected_value

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Weighted raw margins and weighted SHAP values (still exact)."""
        w = self.weight
        raw_t, shap_t = self.tree.explain(X)
        raw_l, shap_l = self.linear.explain(X)
        return w * raw_t + (1.0 - w) * raw_l, w * shap_t + (1.0 - w) * shap_l

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Weighted raw margins."""
        w = self.weight
        return np.asarray(
            w * self.tree.predict_raw(X) + (1.0 - w) * self.linear.predict_raw(X),
            dtype=np.float64,
        )

    def warmup(self) -> None:
        """Warm both parts."""
        self.tree.warmup()
        self.linear.warmup()


AnyMargin = TreeMargin | LinearMargin | BlendMargin | PointsMargin | RegionalMargin


def as_margin(model: lgb.Booster | AnyMargin) -> AnyMargin:
    """A margin model from a margin model or a bare booster (wrapped as ``TreeMargin``)."""
    if isinstance(model, lgb.Booster):
        return TreeMargin(model)
    if isinstance(model, TreeMargin | LinearMargin | BlendMargin | PointsMargin | RegionalMargin):
        return model
    raise TypeError(f"expected a LightGBM booster or a margin model, got {type(model).__name__}")


def tree_booster(model: AnyMargin) -> lgb.Booster | None:
    """The LightGBM booster inside a margin model (None for a linear or points one)."""
    if isinstance(model, TreeMargin):
        return model.booster
    if isinstance(model, BlendMargin):
        return model.tree.booster
    return None


def save_margin(model: AnyMargin, folder: Path) -> None:
    """Write the margin model's files into a bundle folder (text and JSON only)."""
    description: dict[str, Any] = {"kind": model.kind}
    if isinstance(model, RegionalMargin):
        save_regional(model, folder, save_margin)  # type: ignore[arg-type]
        (folder / MARGIN_FILE).write_text(json.dumps(description, indent=2))
        return
    booster = tree_booster(model)
    if booster is not None:
        booster.save_model(str(folder / TREE_FILE))
    linear = model if isinstance(model, LinearMargin) else getattr(model, "linear", None)
    if isinstance(linear, LinearMargin):
        (folder / LINEAR_FILE).write_text(json.dumps(linear.to_dict(), indent=2))
    if isinstance(model, BlendMargin):
        description["weight"] = model.weight
    if isinstance(model, PointsMargin):
        (folder / POINTS_FILE).write_text(json.dumps(model.to_dict(), indent=2))
    (folder / MARGIN_FILE).write_text(json.dumps(description, indent=2))


def load_margin(folder: Path) -> AnyMargin:
    """Read a bundle folder's margin model (a tree model when ``margin.json`` is absent).

    Raises:
        ModelArtifactError: naming the missing, unreadable or malformed file.
    """
    description = _read_json(folder / MARGIN_FILE) if (folder / MARGIN_FILE).exists() else None
    if description is None:
        kind, weight = "tree", None
    else:
        if not isinstance(description, Mapping) or description.get("kind") not in KINDS:
            raise ModelArtifactError(
                f"{folder / MARGIN_FILE}: kind must be one of {', '.join(KINDS)}, "
                f"got {description.get('kind') if isinstance(description, Mapping) else None!r}"
            )
        kind, weight = str(description["kind"]), description.get("weight")
    if kind == "points":
        return _load_points(folder / POINTS_FILE)
    if kind == "regional":
        return load_regional(folder, _load_plain)
    tree = TreeMargin(load_booster_text(folder / TREE_FILE)) if kind != "linear" else None
    linear = _load_linear(folder / LINEAR_FILE) if kind != "tree" else None
    if kind == "tree" and tree is not None:
        return tree
    if kind == "linear" and linear is not None:
        return linear
    assert tree is not None and linear is not None
    try:
        return BlendMargin(tree, linear, float(weight))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ModelArtifactError(f"{folder / MARGIN_FILE}: malformed blend: {exc}") from exc


def _load_plain(folder: Path) -> AnyMargin:
    """A regional model's part: any margin but another regional one."""
    margin = load_margin(folder)
    if isinstance(margin, RegionalMargin):
        raise ModelArtifactError(f"{folder}: a regional model's part cannot itself be regional")
    return margin


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact lacks {path.name} in {path.parent}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path} is not valid JSON: {exc}") from exc


def _load_linear(path: Path) -> LinearMargin:
    payload = _read_json(path)
    try:
        return LinearMargin.from_dict(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelArtifactError(f"{path}: malformed linear model: {exc!r}") from exc


def _load_points(path: Path) -> PointsMargin:
    payload = _read_json(path)
    try:
        return PointsMargin.from_dict(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelArtifactError(f"{path}: malformed points model: {exc!r}") from exc


def load_booster_text(path: Path) -> lgb.Booster:
    """Load LightGBM's text format only; a pickle or binary file is refused."""
    try:
        head = path.read_bytes()[:64]
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact lacks {path.name} in {path.parent}") from exc
    if not head.startswith(b"tree\n"):
        raise ModelArtifactError(
            f"{path} is not a LightGBM text model (refusing to load it: it may be a pickle "
            "or another binary format)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelArtifactError(f"{path} is a corrupted LightGBM model: {exc}") from exc
    if "\nend of trees" not in text:
        # LightGBM aborts the whole process on a model cut mid-tree instead of raising.
        raise ModelArtifactError(
            f"{path} is a corrupted LightGBM model: it is truncated (no 'end of trees' line)"
        )
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ModelArtifactError(f"{path} is a corrupted LightGBM model: {exc}") from exc
