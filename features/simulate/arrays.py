"""Vectorised building blocks that know nothing of the world.

Drawing integer codes, ragged (owner, position) indexing, and turning codes and day
offsets into pandas columns. Everything works on whole arrays, never row by row in
Python, because one simulation produces millions of activities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.simulate.world import _DT_UNIT, _US_PER_DAY


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lookup(mapping: dict[str, float], vocab: tuple[str, ...]) -> np.ndarray:
    """Effect per vocabulary code, so effects index with code arrays."""
    return np.array([mapping[name] for name in vocab], dtype=np.float64)


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` codes from fixed weights (inverse CDF: fast and seed-stable)."""
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _draw_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One code per row of a (rows, k) probability matrix."""
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((rng.random(len(probs))[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and position within owner for ``counts[i]`` items per owner."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _strings(values: np.ndarray | list[str] | tuple[str, ...], codes: np.ndarray) -> pd.Series:
    """Pandas ``str`` column from codes into a small vocabulary (-1 gives missing).

    Going through an Arrow ``take`` is several times faster than object arrays for
    millions of rows.
    """
    vocab = pa.array(list(values), type=pa.large_string())
    codes = np.asarray(codes, dtype=np.int64)
    idx = pa.array(codes, mask=codes < 0)
    taken = pa.chunked_array([vocab.take(idx)])
    return pd.Series(pd.array(taken, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))


def _text(series: pd.Series) -> pd.Series:
    """Normalise to the default pandas ``str`` dtype."""
    return series.astype(pd.StringDtype("pyarrow", na_value=np.nan))


def _to_datetime(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Days since ``start`` to ``datetime64[us]`` (rounding is monotone, so order holds)."""
    base = np.datetime64(start.to_datetime64(), "us").astype(np.int64)
    finite = np.isfinite(days)
    us = np.where(finite, np.round(np.where(finite, days, 0.0) * _US_PER_DAY), 0).astype(np.int64)
    out = (base + us).astype(_DT_UNIT)
    out[~finite] = np.datetime64("NaT")
    return out


def _to_days(values: pd.Series | np.ndarray, origin: np.datetime64) -> np.ndarray:
    """Datetimes to float days since ``origin``; NaT becomes +inf (never happened).

    Accepts strings, any datetime unit and tz-aware values (converted to naive UTC), so
    callers can pass snapshots however they were built.
    """
    series = pd.Series(pd.to_datetime(pd.Series(values).to_numpy()))
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = series.to_numpy(dtype=_DT_UNIT)
    days = (arr.astype(np.int64) - origin.astype(np.int64)) / _US_PER_DAY
    return np.where(np.isnat(arr), np.inf, days)


def _ids(prefix: str, n: int, width: int) -> pd.Series:
    numbers = pd.Series(np.arange(1, n + 1)).astype(str)
    return _text(prefix + numbers.str.zfill(max(width, len(str(n)))))
