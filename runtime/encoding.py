"""The model's input spec: which features, in which order, and how categories are coded.

Learned once on the training split and stored with the model as JSON, so the service
encodes a lead exactly as training did. A category never seen in training is coded
as missing, which LightGBM routes like any other missing value instead of crashing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE, FeatureSpec, SignalSpec, signals_for

MAX_CATEGORIES = 200
"""Rarer values beyond this many per feature are coded as missing."""


class InputSpec:
    """Learns categories on training data and turns feature frames into float matrices.

    Args:
        features: Features to use, in model column order (default: the catalogue).
        signals: Feature families a dataset config declared (the catalogue's own
            families and one signal per remaining feature are added: ``signals_for``).

    After ``fit`` (or ``from_dict``), ``features_`` holds the same definitions with the
    categories learned on the training data, and ``signals_`` every feature's signal;
    they are validated once there, so encoding and sentences per request are plain
    attribute reads.
    """

    def __init__(
        self, features: tuple[FeatureSpec, ...] = CATALOGUE, signals: Sequence[SignalSpec] = ()
    ):
        self.features = features
        self.signals = tuple(signals)

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
            learned.append(f.model_copy(update={"categories": cats}))
        self.features_ = tuple(learned)
        self.signals_ = signals_for(self.features_, self.signals)
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
        """Encode a feature frame as a float64 matrix (categories → codes, unseen → NaN).

        Categorical columns are coded through a cached dict over their categories (a
        frame from ``compute_features`` holds a handful), and plain NumPy numeric columns
        are copied as they are; anything else goes through the general conversion.
        """
        out = np.empty((len(frame), len(self.features_)), dtype=np.float64)
        lookups = self._lookups()
        for j, f in enumerate(self.features_):
            col = frame[f.name]
            if f.dtype == "category":
                out[:, j] = _category_codes(col, lookups[j] or {})
            elif col.dtype.kind in "biuf" and isinstance(col.dtype, np.dtype):
                out[:, j] = col.to_numpy()
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return out

    def encode(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode raw feature columns as ``transform`` encodes the frame made of them.

        ``values`` maps each feature name to a NumPy column as
        ``features.pipeline.feature_values`` returns it (text or None for categoricals,
        numbers otherwise). The service scores a lead through this, skipping the frame,
        which costs more than everything else for a single row.
        """
        n = len(next(iter(values.values()))) if values else 0
        out = np.empty((n, len(self.features_)), dtype=np.float64)
        lookups = self._lookups()
        nan = np.nan
        for j, f in enumerate(self.features_):
            col = values[f.name]
            lookup = lookups[j]
            if lookup is not None:
                out[:, j] = [lookup.get(v, nan) if isinstance(v, str) else nan for v in col]
            else:
                out[:, j] = col
        return out

    def _lookups(self) -> list[dict[str, float] | None]:
        """Per column: category → code for categoricals (built once per spec)."""
        cached = self.__dict__.get("_lookups_")
        if cached is None or cached[0] is not self.features_:
            lookups = [
                {c: float(i) for i, c in enumerate(f.categories)} if f.dtype == "category" else None
                for f in self.features_
            ]
            cached = (self.features_, lookups)
            self.__dict__["_lookups_"] = cached
        return cached[1]

    def decode(self, j: int, value: float) -> object:
        """Human value of column ``j`` for an encoded value (category code → label)."""
        f = self.features_[j]
        if value != value:
            return None
        if f.dtype == "category":
            code = int(value)
            return f.categories[code] if 0 <= code < len(f.categories) else None
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in the model artifact."""
        return {
            "features": [f.model_dump(mode="json") for f in self.features_],
            "signals": [s.model_dump(mode="json") for s in self.signals_],
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> InputSpec:
        """Rebuild a fitted spec from ``to_dict`` output.

        Raises:
            pydantic.ValidationError: a feature or signal entry is malformed
                (``ModelBundle.load`` turns it into ``ModelArtifactError``).
            features.catalogue.SignalError: the signals do not partition the features
                (a ``ValueError``, which ``ModelBundle.load`` turns into one as well).
        """
        spec = cls.__new__(cls)
        spec.features = ()
        spec.features_ = tuple(FeatureSpec.model_validate(f) for f in payload["features"])
        # A spec written before signals existed gets the catalogue's families.
        spec.signals = tuple(SignalSpec.model_validate(s) for s in payload.get("signals", ()))
        spec.signals_ = signals_for(spec.features_, spec.signals)
        return spec


def _category_codes(col: pd.Series, lookup: dict[str, float]) -> np.ndarray:
    """Codes of a column's values in ``lookup`` (by their text, as ``astype("string")``
    renders them); missing and unseen values become NaN."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        categories = col.cat.categories
        if isinstance(categories.dtype, pd.StringDtype) or categories.inferred_type == "string":
            texts = categories.tolist()
        else:
            texts = categories.astype("string").to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
        by_code = np.fromiter(
            (lookup.get(t, np.nan) for t in texts), dtype=np.float64, count=len(texts)
        )
        codes = col.cat.codes.to_numpy()
        return np.where(codes < 0, np.nan, by_code[codes] if len(by_code) else np.nan)
    texts = col.astype("string").to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    return np.fromiter(
        (np.nan if t is None else lookup.get(t, np.nan) for t in texts),
        dtype=np.float64,
        count=len(texts),
    )
