"""The model's input spec: which features, in which order, and how categories are coded.

Learned once on the training split and stored with the model as JSON, so the service
encodes a lead exactly as training did. A category never seen in training is coded
as missing, which LightGBM routes like any other missing value instead of crashing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE, FeatureSpec

MAX_CATEGORIES = 200
"""Rarer values beyond this many per feature are coded as missing."""


@dataclass(frozen=True)
class InputFeature:
    """One model column as stored in the artifact (a serialisable ``FeatureSpec``)."""

    name: str
    group: str
    dtype: str
    template: str
    description: str
    categories: tuple[str, ...] = field(default=())

    def sentence(self, value: object) -> str:
        """Plain-language reason for one value (delegates to the catalogue's rendering)."""
        return FeatureSpec(self.name, self.group, self.dtype, self.template,  # type: ignore[arg-type]
                           self.description).sentence(value)


class InputSpec:
    """Learns categories on training data and turns feature frames into float matrices.

    Args:
        features: Features to use, in model column order (default: the catalogue).
    """

    def __init__(self, features: tuple[FeatureSpec, ...] = CATALOGUE):
        self.features = features

    def fit(self, frame: pd.DataFrame) -> InputSpec:
        """Record the categories seen in ``frame`` (most frequent first)."""
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise KeyError(f"training data lacks feature columns: {missing}")
        learned = []
        for f in self.features:
            cats: tuple[str, ...] = ()
            if f.dtype == "category":
                counts = frame[f.name].astype("string").value_counts(dropna=True)
                cats = tuple(str(c) for c in counts.index[:MAX_CATEGORIES])
            learned.append(InputFeature(f.name, f.group, f.dtype, f.template, f.description,
                                        cats))
        self.features_ = tuple(learned)
        return self

    @property
    def names(self) -> list[str]:
        """Model column order."""
        return [f.name for f in self.features_]

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of categorical columns, for LightGBM's ``categorical_feature``."""
        return [i for i, f in enumerate(self.features_) if f.dtype == "category"]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode a feature frame as a float64 matrix (categories → codes, unseen → NaN)."""
        out = np.empty((len(frame), len(self.features_)), dtype=np.float64)
        for j, f in enumerate(self.features_):
            col = frame[f.name]
            if f.dtype == "category":
                codes = pd.Categorical(col.astype("string").astype(object),
                                       categories=list(f.categories)).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan)
        return out

    def decode(self, j: int, value: float) -> object:
        """Human value of column ``j`` for an encoded value (category code → label)."""
        f = self.features_[j]
        if value != value:
            return None
        if f.dtype == "category":
            code = int(value)
            return f.categories[code] if 0 <= code < len(f.categories) else None
        return float(value)

    def to_dict(self) -> dict:
        """JSON-ready form stored in the model artifact."""
        return {"features": [asdict(f) for f in self.features_]}

    @classmethod
    def from_dict(cls, payload: dict) -> InputSpec:
        """Rebuild a fitted spec from ``to_dict`` output."""
        spec = cls.__new__(cls)
        spec.features = ()
        spec.features_ = tuple(
            InputFeature(**{**f, "categories": tuple(f.get("categories", ()))})
            for f in payload["features"]
        )
        return spec
