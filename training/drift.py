"""Drift of one feature (or of the score) between a reference sample and a recent one.

Two numbers per feature, each answering its own question:

* **PSI** (population stability index), *how much* the distribution moved: the sum over
  bins of ``(cur − ref) · ln(cur / ref)`` of the two samples' shares. Credit-risk and
  marketing teams read it on the same scale everywhere (below 0.1 stable, 0.1–0.25 a
  shift worth a look, above 0.25 a real shift), and it does not grow with the sample
  size, so a million leads do not make a trivial change look alarming. Bins are the
  reference's deciles for numbers (ties merged, missing values a bin of their own) and
  the categories for categoricals (missing a category of its own).
* **A two-sample test** from ``scipy.stats``, *whether* it moved at all: Kolmogorov–
  Smirnov (``ks_2samp``) for numbers, Pearson's chi-square on the 2 × k table of counts
  (``chi2_contingency``) for categories. On a small sample PSI is noisy (its expected
  value under no drift is about ``(k − 1)(1/n_ref + 1/n_cur)``); the test's p-value
  keeps a handful of leads from raising an alert by chance.

Why scipy.stats and not a drift library: evidently (0.7) installs with pandas 3 here but
brings some thirty packages (a web server, NLTK, statsmodels, plotly, a telemetry client)
for the same KS, chi-square and PSI; nannyml would downgrade LightGBM and pull xgboost
and cloud SDKs. scipy is already a dependency, well kept, and its tests are the ones
those libraries call underneath. Only PSI, a one-line formula, is computed here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

PSI_FLOOR = 1e-4
"""Share given to an empty bin, so a category absent from one sample has a finite PSI."""
NUMERIC_BINS = 10
MISSING = "(missing)"
TOP_CHANGES = 3
"""Categories (or bins) whose share moved most, kept in the details."""


@dataclass(frozen=True)
class DriftStat:
    """Drift of one column.

    Attributes:
        kind: ``numeric`` or ``categorical``.
        psi: Population stability index (0: identical shares).
        test: ``ks`` or ``chi2``.
        statistic: The test's statistic (KS distance; chi-square).
        p_value: The test's p-value (1.0 when it could not be run: a constant column).
        n_reference: Rows of the reference sample.
        n_current: Rows of the recent sample.
        changes: The bins or categories whose share moved most: ``{"bin", "reference",
            "current"}`` shares, largest change first.
    """

    kind: str
    psi: float
    test: str
    statistic: float
    p_value: float
    n_reference: int
    n_current: int
    changes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the store's ``details`` column)."""
        return asdict(self)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two vectors of counts over the same bins."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = np.maximum(ref / max(ref.sum(), 1.0), PSI_FLOOR)
    cur = np.maximum(cur / max(cur.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _changes(labels: list[str], ref: np.ndarray, cur: np.ndarray) -> list[dict[str, Any]]:
    r = ref / max(ref.sum(), 1)
    c = cur / max(cur.sum(), 1)
    order = np.argsort(-np.abs(c - r), kind="stable")[:TOP_CHANGES]
    return [
        {"bin": labels[i], "reference": round(float(r[i]), 4), "current": round(float(c[i]), 4)}
        for i in order
        if abs(c[i] - r[i]) > 0
    ]


def numeric_drift(reference: np.ndarray, current: np.ndarray) -> DriftStat:
    """PSI over the reference's deciles and the KS test, for a numeric column."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref_ok.size:
        edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
    else:
        edges = np.empty(0)
    # bin i holds values in (edges[i-1], edges[i]]; the last bin is everything above
    ref_bins = np.bincount(np.searchsorted(edges, ref_ok, side="left"), minlength=edges.size + 1)
    cur_bins = np.bincount(np.searchsorted(edges, cur_ok, side="left"), minlength=edges.size + 1)
    ref_counts = np.append(ref_bins, ref.size - ref_ok.size)
    cur_counts = np.append(cur_bins, cur.size - cur_ok.size)
    labels = [_bin_label(edges, i) for i in range(edges.size + 1)] + [MISSING]
    statistic, p_value = 0.0, 1.0
    if ref_ok.size and cur_ok.size and not (_constant(ref_ok) and _constant(cur_ok)):
        result = stats.ks_2samp(ref_ok, cur_ok, method="asymp")
        statistic, p_value = float(result.statistic), float(result.pvalue)
    elif ref_ok.size and cur_ok.size and ref_ok[0] != cur_ok[0]:
        statistic, p_value = 1.0, 0.0  # two different constants: moved entirely
    return DriftStat(
        "numeric",
        psi(ref_counts, cur_counts),
        "ks",
        statistic,
        p_value,
        int(ref.size),
        int(cur.size),
        _changes(labels, ref_counts, cur_counts),
    )


def _constant(values: np.ndarray) -> bool:
    return bool(values.min() == values.max())


def _bin_label(edges: np.ndarray, i: int) -> str:
    if edges.size == 0:
        return "all"
    if i == 0:
        return f"<= {edges[0]:.4g}"
    if i == edges.size:
        return f"> {edges[-1]:.4g}"
    return f"({edges[i - 1]:.4g}, {edges[i]:.4g}]"


def categorical_drift(reference: pd.Series, current: pd.Series) -> DriftStat:
    """PSI over the categories and Pearson's chi-square test, for a categorical column."""
    ref = reference.astype("object").where(reference.notna(), MISSING).astype(str)
    cur = current.astype("object").where(current.notna(), MISSING).astype(str)
    ref_counts = ref.value_counts()
    cur_counts = cur.value_counts()
    labels = sorted(set(ref_counts.index) | set(cur_counts.index))
    r = ref_counts.reindex(labels, fill_value=0).to_numpy(dtype=np.float64)
    c = cur_counts.reindex(labels, fill_value=0).to_numpy(dtype=np.float64)
    statistic, p_value = 0.0, 1.0
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1 and r.sum() and c.sum():
        result = stats.chi2_contingency(table, correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return DriftStat(
        "categorical",
        psi(r, c),
        "chi2",
        statistic,
        p_value,
        len(ref),
        len(cur),
        _changes(labels, r, c),
    )


def column_drift(reference: pd.Series, current: pd.Series) -> DriftStat:
    """Drift of one column, numeric or categorical by its dtype (booleans as numbers)."""
    if (
        isinstance(reference.dtype, pd.CategoricalDtype)
        or reference.dtype == object
        or (pd.api.types.is_string_dtype(reference.dtype))
    ):
        return categorical_drift(reference, current)
    return numeric_drift(
        pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64", na_value=np.nan),
        pd.to_numeric(current, errors="coerce").to_numpy(dtype="float64", na_value=np.nan),
    )
