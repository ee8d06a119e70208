"""The one typing of feature values: text, numbers, yes/no and timestamps.

A feature value reaches a model three ways: from an export (``load_dataset`` reads every
column as text), from a service request typed one value at a time
(``serving.featureform``) and from the same request typed as a frame (``snapshot_frame``,
the batch path and the fallback of the service). They must agree exactly, or a model
scores a lead differently from how it was trained, so all three use this module:

* ``category``: text, stripped; empty stays missing.
* ``bool``: one of ``TRUE_TEXT`` is 1.0, one of ``FALSE_TEXT`` 0.0 (case-insensitive,
  stripped); anything else is a problem.
* ``float`` and ``int``: a number (as float64); text that is not a number is a problem.
* timestamps: parsed to tz-naive UTC with an optional ``strftime`` format; ``DATE_PARTS``
  derive a number (weekday, month, ...) from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from features.contract import TIMESTAMP_UNIT, to_utc_naive

TRUE_TEXT = {"1", "true", "yes", "y", "t"}
FALSE_TEXT = {"0", "false", "no", "n", "f"}

DATE_PARTS: dict[str, Callable[[Any], pd.Series]] = {
    "dayofweek": lambda t: t.dayofweek,
    "month": lambda t: t.month,
    "day": lambda t: t.day,
    "dayofyear": lambda t: t.dayofyear,
    "hour": lambda t: t.hour,
    "weekofyear": lambda t: t.isocalendar().week if hasattr(t, "isocalendar") else t.dayofyear // 7,
}


def type_series(values: pd.Series, dtype: str, where: str) -> tuple[pd.Series, str | None]:
    """A column of raw values typed as ``dtype``, and the problem found (or None).

    Args:
        values: Raw values (text as read from an export, or request values).
        dtype: ``category``, ``bool``, ``float`` or ``int``.
        where: Names the column in the problem (``features (visits <- Visits)``).

    Returns:
        The typed column (category, or float64 with NaN for missing/unreadable) and a
        sentence naming how many values could not be typed, with examples.
    """
    if dtype == "category":
        return values.astype("string").str.strip().astype("category"), None
    if dtype == "bool":
        text = values.astype("string").str.strip().str.lower()
        out = pd.Series(
            np.where(text.isin(TRUE_TEXT), 1.0, np.where(text.isin(FALSE_TEXT), 0.0, np.nan)),
            index=values.index,
        )
        bad = out.isna() & text.notna()
        if bad.any():
            return out, (
                f"{where}: {int(bad.sum()):,} value(s) are not "
                f"yes/no/true/false/1/0 (e.g. {text[bad].unique()[:3].tolist()})"
            )
        return out, None
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & values.notna() & (values.astype("string").str.strip() != "")
    problem = None
    if bad.any():
        problem = (
            f"{where}: {int(bad.sum()):,} value(s) are not numbers "
            f"(e.g. {values[bad].astype(str).unique()[:3].tolist()})"
        )
    return out.astype("float64"), problem


def lead_column(
    lead_ids: pd.Series, leads: pd.DataFrame, column: str, dtype: str, where: str
) -> tuple[pd.Series, str | None]:
    """One extra lead column of a ``tables`` config, per snapshot, and the problem found.

    The one computation of such a feature, so training (``DataReader.tables``), batch
    scoring and the service (``serving.leadform``) cannot drift apart: each snapshot
    takes the value of ``column`` in its lead's row of ``leads``, typed as ``dtype`` by
    ``type_series``.

    Args:
        lead_ids: The lead of each snapshot (its index is the result's).
        leads: A leads table: ``lead_id`` and ``column``, one row per lead.
        column: The column holding the feature (the config's ``column``).
        dtype: The feature's dtype.
        where: Names the feature in the problem (``features (newsletter)``).

    Returns:
        The typed values (missing where the lead or its value is unknown) and a sentence
        naming values that cannot be typed, or a column the table lacks (or None).
    """
    if column not in leads.columns:
        missing = pd.Series(np.nan, index=lead_ids.index, dtype=object)
        return type_series(missing, dtype, where)[0], (
            f"{where}: column {column!r} is not in the leads file"
        )
    values = lead_ids.map(leads.set_index("lead_id")[column])
    return type_series(values, dtype, where)


def type_column(values: Sequence[object], dtype: str) -> np.ndarray | None:
    """Request values (already stripped, never empty text) typed without a frame, or None.

    Gives exactly what ``type_series`` gives for the combinations whose typing is
    unambiguous: text (or None) for a category, a number for a numeric feature, a boolean
    or yes/no text for a boolean one. Anything else returns None: the caller then types
    the values with ``snapshot_frame``, which also words the problems.
    """
    if dtype == "category":
        if any(v is not None and not isinstance(v, str) for v in values):
            return None
        return np.asarray(values, dtype=object)
    if dtype == "bool":
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            flag = _flag(v)
            if flag is _UNREADABLE:
                return None
            out[i] = flag
        return out
    if any(
        v is not None and (isinstance(v, bool) or not isinstance(v, int | float)) for v in values
    ):
        return None
    return np.asarray(
        [np.nan if v is None else float(cast(float, v)) for v in values], dtype=np.float64
    )


_UNREADABLE = object()


def _flag(value: object) -> float | object:
    """1.0 / 0.0 / NaN for one boolean request value, ``_UNREADABLE`` when unsure."""
    if value is None:
        return np.nan
    if isinstance(value, bool):  # type_series reads it as the text "True" / "False"
        return float(value)
    if not isinstance(value, str):
        return _UNREADABLE
    text = value.lower()
    if text in TRUE_TEXT:
        return 1.0
    if text in FALSE_TEXT:
        return 0.0
    return _UNREADABLE


def parse_times(values: pd.Series, fmt: str | None, what: str) -> tuple[pd.Series, str | None]:
    """Timestamps as tz-naive UTC, and the problem found (or None).

    Args:
        values: Raw values.
        fmt: ``strftime`` format, or None for ISO 8601 (and other common layouts).
        what: Names the column in the problem.
    """
    parsed = to_utc_naive(values, fmt)
    bad = parsed.isna() & values.notna()
    if not bad.any():
        return parsed, None
    examples = values[bad].astype(str).unique()[:3].tolist()
    return parsed, (
        f"{what}: {int(bad.sum()):,} of {len(values):,} timestamp(s) cannot be "
        f"parsed with format {fmt or 'ISO 8601'} (e.g. {examples})"
    )


def date_part(times: pd.Series, part: str) -> pd.Series:
    """One of ``DATE_PARTS`` of parsed timestamps, as float64."""
    return DATE_PARTS[part](times.dt).astype("float64")


def snapshot_frame(features: Iterable[Any], rows: list[dict], as_of: object = None) -> pd.DataFrame:
    """Feature frame for a lead-snapshot model from raw feature values (one dict per lead).

    For scoring such a model outside a training set (batch or service): each row holds
    ``lead_id`` and values keyed by feature name (as declared in the config, after its
    cleaning: ``bool`` as 1/0 or yes/no, categories as text). Missing features are scored
    as unknown. ``features``: the model's features (``bundle.spec.features_``).

    Raises:
        ValueError: naming every unknown feature key or non-numeric value.
    """
    features = list(features)
    names = [f.name for f in features]
    problems = [
        f"row {i}: unknown feature {k!r}"
        for i, row in enumerate(rows)
        for k in row
        if k not in (*names, "lead_id", "as_of")
    ]
    raw = pd.DataFrame(rows)
    out = pd.DataFrame(
        {
            "lead_id": raw["lead_id"].astype(str)
            if "lead_id" in raw
            else pd.Series([str(i) for i in range(len(raw))]),
            "as_of": pd.Series(
                pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.now(), index=raw.index
            ).astype(TIMESTAMP_UNIT),
        }
    )
    for f in features:
        values = raw[f.name] if f.name in raw else pd.Series(np.nan, index=raw.index, dtype=object)
        typed, problem = type_series(values, f.dtype, f"feature {f.name}")
        if problem:
            problems.append(problem)
        out[f.name] = typed.to_numpy()
    if problems:
        raise ValueError("; ".join(problems))
    return out
