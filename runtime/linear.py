"""A regularised logistic regression on the encoded matrix, with exact linear SHAP.

The model reads the same float matrix as the trees (``runtime.encoding.InputSpec``: numbers
as they are, NaN when unknown; categories as codes, NaN when missing or unseen) and turns
it into its own design columns, all of which are part of the JSON model:

* a number is signed-``log1p``'d (counts and durations are heavy-tailed), imputed with its
  training median when missing, standardised, and paired with a missing indicator;
* a category becomes one indicator per category frequent enough in training, plus one for
  "missing"; rare and unseen categories share the all-zero reference.

The margin is ``intercept + Σ coef_k · d_k(x)``. Its SHAP value for an input feature is
``Σ coef_k · (d_k(x) − mean_k)`` over that feature's design columns, where ``mean_k`` is
the column's mean on the training rows: the exact Shapley value of a linear model with
independent features. The base value is ``intercept + Σ coef_k · mean_k``, so every row's
SHAP values sum to ``raw − base`` up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def signed_log1p(x: FloatArray) -> FloatArray:
    """``sign(x) · log(1 + |x|)``: compresses heavy tails, keeps zero and the sign."""
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)), dtype=np.float64)


@dataclass(frozen=True)
class NumericTerm:
    """A numeric input column: log, impute, standardise; plus a missing indicator.

    Attributes:
        name: Feature name.
        column: Position in the encoded matrix.
        fill: Value (after the log) that stands in for a missing one: the training median.
        center: Mean of the filled, logged values on training rows.
        scale: Their standard deviation (1 when constant).
        coef: Coefficient of the standardised value.
        missing_coef: Coefficient of the missing indicator.
        mean: Training mean of the standardised value (about 0).
        missing_mean: Training share of missing values.
        has_missing: Whether the indicator is used: training rows held enough missing
            values to learn what a missing value says. Otherwise a missing value is only
            imputed (indicator always 0), so a rare gap cannot carry a wild coefficient.
        low: Smallest standardised value on training rows; values below are clipped to it.
        high: Largest one; values above are clipped to it. A linear model would otherwise
            extrapolate without bound (a day of the month never seen in training would
            move the margin by dozens of standard deviations); trees clamp the same way.
    """

    name: str
    column: int
    fill: float
    center: float
    scale: float
    coef: float = 0.0
    missing_coef: float = 0.0
    mean: float = 0.0
    missing_mean: float = 0.0
    has_missing: bool = True
    low: float | None = None
    high: float | None = None

    def design(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The standardised value (clipped to the training range) and the missing indicator."""
        x = X[:, self.column]
        missing = ~np.isfinite(x)
        logged = signed_log1p(np.where(missing, 0.0, x))
        value = (np.where(missing, self.fill, logged) - self.center) / self.scale
        if self.low is not None or self.high is not None:
            value = np.clip(value, self.low, self.high)
        indicator = missing if self.has_missing else np.zeros_like(missing)
        return value, indicator.astype(np.float64)


@dataclass(frozen=True)
class CategoricalTerm:
    """A categorical input column: one indicator per kept code, plus "missing".

    Attributes:
        name: Feature name.
        column: Position in the encoded matrix.
        codes: Category codes (``InputSpec`` positions) with their own indicator.
        coefs: Coefficient of each code's indicator.
        means: Training share of each code.
        missing_coef: Coefficient of the missing indicator.
        missing_mean: Training share of missing values.
        has_missing: Whether "missing" has an indicator of its own (enough missing training
            rows). ``InputSpec`` codes unseen categories as missing too, so without one
            both share the reference with rare categories: a new category in production
            never inherits the coefficient of a handful of training gaps.
    """

    name: str
    column: int
    codes: tuple[int, ...]
    coefs: tuple[float, ...] = ()
    means: tuple[float, ...] = ()
    missing_coef: float = 0.0
    missing_mean: float = 0.0
    has_missing: bool = True

    def design(self, X: FloatArray) -> list[FloatArray]:
        """One indicator per kept code, then the missing indicator."""
        x = X[:, self.column]
        out = [(x == code).astype(np.float64) for code in self.codes]
        missing = np.isnan(x) if self.has_missing else np.zeros(len(x), dtype=bool)
        out.append(missing.astype(np.float64))
        return out


Term = NumericTerm | CategoricalTerm


def design_matrix(terms: Sequence[Term], X: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """The design columns of ``X`` and, for each, the input feature it belongs to."""
    columns: list[FloatArray] = []
    owners: list[int] = []
    for term in terms:
        parts = list(term.design(X)) if isinstance(term, NumericTerm) else term.design(X)
        columns.extend(parts)
        owners.extend([term.column] * len(parts))
    D = np.column_stack(columns) if columns else np.empty((X.shape[0], 0))
    return np.asarray(D, dtype=np.float64), np.asarray(owners, dtype=np.int64)


def _coefs(term: Term) -> list[float]:
    if isinstance(term, NumericTerm):
        return [term.coef, term.missing_coef]
    return [*term.coefs, term.missing_coef]


def _means(term: Term) -> list[float]:
    if isinstance(term, NumericTerm):
        return [term.mean, term.missing_mean]
    return [*term.means, term.missing_mean]


class LinearMargin:
    """A fitted logistic regression over ``InputSpec``-encoded matrices, explained exactly.

    Args:
        terms: One term per input feature (numeric or categorical), coefficients set.
        intercept: The model's intercept.
        n_features: Columns of the encoded matrix.
        C: Inverse regularisation strength it was fitted with (recorded, not used).
    """

    kind = "linear"

    def __init__(
        self, terms: Sequence[Term], intercept: float, n_features: int, C: float | None = None
    ):
        self.terms = tuple(terms)
        self.intercept = float(intercept)
        self.n_features = int(n_features)
        self.C = C
        columns = [t.column for t in self.terms]
        if len(set(columns)) != len(columns) or any(not 0 <= c < self.n_features for c in columns):
            raise ValueError(
                f"linear model terms must name distinct columns in 0..{self.n_features - 1}, "
                f"got {columns}"
            )

    @cached_property
    def _arrays(self) -> tuple[FloatArray, FloatArray]:
        coef = np.asarray([c for t in self.terms for c in _coefs(t)], dtype=np.float64)
        mean = np.asarray([m for t in self.terms for m in _means(t)], dtype=np.float64)
        return coef, mean

    @property
    def expected_value(self) -> float:
        """The SHAP base value: the margin at the training means of the design columns."""
        coef, mean = self._arrays
        return float(self.intercept + coef @ mean)

    def _check(self, X: npt.ArrayLike) -> FloatArray:
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"the linear model expects {self.n_features} columns, got shape {rows.shape}"
            )
        return rows

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins (log-odds)."""
        D, _ = design_matrix(self.terms, self._check(X))
        coef, _ = self._arrays
        return np.asarray(self.intercept + D @ coef, dtype=np.float64)

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and exact SHAP values (``coef · (d − mean)`` summed per feature)."""
        rows = self._check(X)
        D, owners = design_matrix(self.terms, rows)
        coef, mean = self._arrays
        raw = np.asarray(self.intercept + D @ coef, dtype=np.float64)
        contributions = (D - mean) * coef
        shap = np.zeros((rows.shape[0], self.n_features), dtype=np.float64)
        for k, owner in enumerate(owners):
            shap[:, owner] += contributions[:, k]
        return raw, shap

    def warmup(self) -> None:
        """Nothing to compile: present for the margin-model protocol."""
        self.explain(np.full((1, self.n_features), np.nan))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``linear_model.json`` of a bundle)."""
        terms: list[dict[str, Any]] = []
        for t in self.terms:
            if isinstance(t, NumericTerm):
                terms.append({"type": "numeric", **t.__dict__})
            else:
                d = dict(t.__dict__)
                d.update(codes=list(t.codes), coefs=list(t.coefs), means=list(t.means))
                terms.append({"type": "categorical", **d})
        return {
            "kind": self.kind,
            "intercept": self.intercept,
            "n_features": self.n_features,
            "C": self.C,
            "terms": terms,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> LinearMargin:
        """Inverse of ``to_dict``.

        Raises:
            KeyError, TypeError, ValueError: on a malformed payload (the bundle loader
                names the file).
        """
        terms: list[Term] = []
        for raw in payload["terms"]:
            d = dict(raw)
            kind = d.pop("type")
            if kind == "numeric":
                terms.append(NumericTerm(**{k: _num(k, v) for k, v in d.items()}))
            elif kind == "categorical":
                terms.append(
                    CategoricalTerm(
                        name=str(d["name"]),
                        column=int(d["column"]),
                        codes=tuple(int(c) for c in d["codes"]),
                        coefs=tuple(float(c) for c in d["coefs"]),
                        means=tuple(float(c) for c in d["means"]),
                        missing_coef=float(d["missing_coef"]),
                        missing_mean=float(d["missing_mean"]),
                        has_missing=bool(d.get("has_missing", True)),
                    )
                )
            else:
                raise ValueError(f"unknown linear term type {kind!r}")
        for t in terms:
            if isinstance(t, CategoricalTerm) and not (
                len(t.codes) == len(t.coefs) == len(t.means)
            ):
                raise ValueError(f"term {t.name!r}: codes, coefs and means differ in length")
        C = payload.get("C")
        return cls(
            terms,
            float(payload["intercept"]),
            int(payload["n_features"]),
            None if C is None else float(C),
        )


def _num(key: str, value: Any) -> Any:
    if key == "name":
        return str(value)
    if key == "has_missing":
        return bool(value)
    if key in ("low", "high"):
        return None if value is None else float(value)
    if key == "column":
        return int(value)
    return float(value)
