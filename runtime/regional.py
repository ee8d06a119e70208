"""A margin model that routes each lead to its region's model: one pooled margin, plus a
margin of its own for each region that earned one.

Training (``training.regional``) serves a region its own model only when that model's
cross-validated log loss beats the pooled model's on the region's rows; a region without
enough data of its own is served by the pooled model, shifted by a region offset fitted on
out-of-fold margins and shrunk toward 0 by the region's evidence. Both are one ``Route``:
``raw = shift + scale · margin(x)``, where ``margin`` is the region's own model (``scale``
and ``shift`` put it on the pooled model's margin scale, so the bundle's one calibration
reads every region's margins alike) or the pooled one (``scale`` 1, ``shift`` the offset).
A region with no route (too few rows, unseen at training, or missing) gets the pooled
margin unchanged.

The region is read from the encoded input itself (the policy's ``region_feature`` column,
a category code; ``runtime.encoding.InputSpec`` codes an unseen region as missing), so a
route can never disagree with the region the policy applies thresholds for.

Explanations stay exact, and each row is explained by the margin that scored it: its SHAP
values are ``scale`` times its route's SHAP values, and the difference between its route's
base value (``shift + scale · base``) and the pooled base value is credited to the region
column: being in that region is what moved the starting point. So for every row
``expected_value + Σ shap == raw``, with ``expected_value`` the pooled model's base value.

Saved as JSON: ``regional.json`` names the region column and, per route, the region, its
code, the folder of its own margin (``regions/<i>``, written by ``runtime.margin`` like any
bundle's margin) or none for an offset, ``scale`` and ``shift``; the pooled margin is in
``pooled/``. Nothing is pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from runtime.metadata import ModelArtifactError

FloatArray = npt.NDArray[np.float64]

REGIONAL_FILE = "regional.json"
POOLED_FOLDER = "pooled"
REGIONS_FOLDER = "regions"
OWN = "own"
OFFSET = "offset"


class InnerMargin(Protocol):
    """What a route needs from a margin model (``runtime.margin.MarginModel``)."""

    kind: str
    n_features: int

    @property
    def expected_value(self) -> float:
        """SHAP base value."""
        ...

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and SHAP values."""
        ...

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins."""
        ...

    def warmup(self) -> None:
        """Warm up."""
        ...


@dataclass(frozen=True)
class Route:
    """How one region's leads are scored.

    Attributes:
        region: The region (its text, as the input spec knows it).
        code: Its code in the encoded region column.
        source: ``own`` (the region's own model) or ``offset`` (the pooled model shifted).
        candidate: Which candidate the margin is (``lightgbm``, ``logistic``, ...).
        scale: Multiplies the margin (1 for an offset).
        shift: Added to it (the offset, or the alignment's intercept).
        margin: The region's own margin model (None for an offset: the pooled one).
    """

    region: str
    code: float
    source: str
    candidate: str
    scale: float = 1.0
    shift: float = 0.0
    margin: InnerMargin | None = None

    def __post_init__(self) -> None:
        if self.source not in (OWN, OFFSET):
            raise ValueError(f"route {self.region!r}: source must be own or offset")
        if (self.source == OWN) != (self.margin is not None):
            raise ValueError(f"route {self.region!r}: an own route needs a margin, an offset none")
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.shift)):
            raise ValueError(
                f"route {self.region!r}: scale must be a positive number and shift finite, "
                f"got scale {self.scale}, shift {self.shift}"
            )


class RegionalMargin:
    """The pooled margin, and each routed region's own margin or offset.

    Args:
        pooled: The model trained on every region.
        column: Position of the region feature in the encoded matrix.
        routes: One per region that does not get the pooled margin unchanged.
        region_feature: The region feature's name (recorded for the card and the loader).
    """

    kind = "regional"

    def __init__(
        self,
        pooled: InnerMargin,
        column: int,
        routes: Sequence[Route],
        region_feature: str = "region",
    ):
        if getattr(pooled, "kind", None) == self.kind:
            raise ValueError("a regional margin's pooled model cannot itself be regional")
        self.pooled = pooled
        self.n_features = int(pooled.n_features)
        if not 0 <= int(column) < self.n_features:
            raise ValueError(f"region column {column} is outside 0..{self.n_features - 1}")
        self.column = int(column)
        self.region_feature = region_feature
        self.routes = tuple(routes)
        codes = [r.code for r in self.routes]
        if len(set(codes)) != len(codes):
            raise ValueError(f"regional margin routes repeat a region code: {codes}")
        for r in self.routes:
            if r.margin is not None and (
                r.margin.n_features != self.n_features or r.margin.kind == self.kind
            ):
                raise ValueError(
                    f"route {r.region!r}: its margin must be a plain margin over the same "
                    f"{self.n_features} columns"
                )

    @property
    def expected_value(self) -> float:
        """The pooled model's base value (a route's own start is credited to the region)."""
        return float(self.pooled.expected_value)

    def route_of(self, X: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Each row's route: its index in ``routes``, or -1 for the pooled margin."""
        rows = self._check(X)
        codes = rows[:, self.column]
        out = np.full(len(rows), -1, dtype=np.int64)
        for i, r in enumerate(self.routes):
            out[codes == r.code] = i
        return out

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and exact SHAP values, each row from the margin that scored it."""
        rows = self._check(X)
        which = self.route_of(rows)
        raw, shap = self._pooled_part(rows, which, explain=True)
        base = self.expected_value
        for i, r in enumerate(self.routes):
            mask = which == i
            if r.margin is None or not mask.any():
                continue
            raw_r, shap_r = r.margin.explain(rows[mask])
            raw[mask] = r.shift + r.scale * raw_r
            shap[mask] = r.scale * shap_r
            shap[mask, self.column] += r.shift + r.scale * float(r.margin.expected_value) - base
        return raw, shap

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins only."""
        rows = self._check(X)
        which = self.route_of(rows)
        raw, _ = self._pooled_part(rows, which, explain=False)
        for i, r in enumerate(self.routes):
            mask = which == i
            if r.margin is not None and mask.any():
                raw[mask] = r.shift + r.scale * r.margin.predict_raw(rows[mask])
        return raw

    def _pooled_part(
        self, rows: FloatArray, which: npt.NDArray[np.int64], explain: bool
    ) -> tuple[FloatArray, FloatArray]:
        """Pooled margins (with offsets) for rows without an own model; zeros elsewhere."""
        raw = np.zeros(len(rows), dtype=np.float64)
        shap = np.zeros((len(rows), self.n_features), dtype=np.float64)
        own = np.array([r.margin is not None for r in self.routes] + [False], dtype=bool)
        pooled_rows = ~own[which]  # which == -1 reads the trailing False
        if pooled_rows.any():
            if explain:
                raw[pooled_rows], shap[pooled_rows] = self.pooled.explain(rows[pooled_rows])
            else:
                raw[pooled_rows] = self.pooled.predict_raw(rows[pooled_rows])
        for i, r in enumerate(self.routes):
            mask = which == i
            if r.margin is None and mask.any():
                raw[mask] += r.shift
                shap[mask, self.column] += r.shift
        return raw, shap

    def warmup(self) -> None:
        """Warm the pooled margin and every region's own one."""
        self.pooled.warmup()
        for r in self.routes:
            if r.margin is not None:
                r.margin.warmup()

    def _check(self, X: npt.ArrayLike) -> FloatArray:
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"the regional model expects {self.n_features} columns, got shape {rows.shape}"
            )
        return rows

    def manifest(self) -> dict[str, Any]:
        """``regional.json``: the region column and each route (own margins by folder)."""
        routes = []
        own = 0
        for r in self.routes:
            folder = None
            if r.margin is not None:
                folder = f"{REGIONS_FOLDER}/{own}"
                own += 1
            routes.append(
                {
                    "region": r.region,
                    "code": r.code,
                    "source": r.source,
                    "candidate": r.candidate,
                    "scale": r.scale,
                    "shift": r.shift,
                    "folder": folder,
                }
            )
        return {
            "kind": self.kind,
            "region_feature": self.region_feature,
            "column": self.column,
            "pooled": POOLED_FOLDER,
            "routes": routes,
        }


def save_regional(
    model: RegionalMargin, folder: Path, save: Callable[[InnerMargin, Path], None]
) -> None:
    """Write ``regional.json`` and each margin's folder (with ``save``: ``save_margin``)."""
    manifest = model.manifest()
    (folder / POOLED_FOLDER).mkdir()
    save(model.pooled, folder / POOLED_FOLDER)
    for entry, route in zip(manifest["routes"], model.routes, strict=True):
        if route.margin is not None:
            sub = folder / entry["folder"]
            sub.mkdir(parents=True)
            save(route.margin, sub)
    (folder / REGIONAL_FILE).write_text(json.dumps(manifest, indent=2))


def load_regional(folder: Path, load: Callable[[Path], InnerMargin]) -> RegionalMargin:
    """Read ``regional.json`` and the margins it names (with ``load``: ``load_margin``).

    Raises:
        ModelArtifactError: naming the missing or malformed file or folder.
    """
    path = folder / REGIONAL_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact lacks {path.name} in {folder}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path} is not valid JSON: {exc}") from exc
    try:
        if not isinstance(manifest, Mapping):
            raise TypeError("the manifest is not an object")
        pooled = load(_inside(folder, str(manifest["pooled"])))
        routes = []
        for entry in manifest["routes"]:
            sub = entry.get("folder")
            routes.append(
                Route(
                    region=str(entry["region"]),
                    code=float(entry["code"]),
                    source=str(entry["source"]),
                    candidate=str(entry["candidate"]),
                    scale=float(entry["scale"]),
                    shift=float(entry["shift"]),
                    margin=None if sub is None else load(_inside(folder, str(sub))),
                )
            )
        return RegionalMargin(
            pooled, int(manifest["column"]), routes, str(manifest.get("region_feature", "region"))
        )
    except ModelArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelArtifactError(f"{path}: malformed regional model: {exc!r}") from exc


def _inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing a path that leaves the bundle."""
    target = (folder / relative).resolve()
    if folder.resolve() not in target.parents or not target.is_dir():
        raise ModelArtifactError(f"{folder / REGIONAL_FILE}: no margin folder {relative!r}")
    return target
