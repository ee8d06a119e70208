"""The data contract: the four input tables, declared as data and validated on load.

A CRM export that is wrong in one place is usually wrong in several, so validation
collects every violation before it raises, and each violation names the table, the
column, how many rows are bad and a few example keys. Validation returns typed copies
of the tables; callers never write anything before it has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.catalogue import ACTIVITY_TYPES
from leadscore.errors import LeadscoreError

Kind = Literal["str", "datetime", "float", "int"]
UnknownActivity = Literal["reject", "other"]
Level = Literal["error", "warning"]

TIMESTAMP_UNIT = "datetime64[us]"
"""Every timestamp is normalised to tz-naive UTC at microsecond resolution."""


@dataclass(frozen=True)
class Column:
    """One declared column.

    Attributes:
        name: Column name in the input file.
        kind: Logical type the column is coerced to.
        required: Whether the column must be present in the file.
        nullable: Whether missing values are allowed in it.
        description: What the column means, for docs and error messages.
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSchema:
    """One declared table.

    Attributes:
        name: Table name; also the file stem (``leads.parquet`` or ``leads.csv``).
        columns: Declared columns; undeclared extra columns are kept as they are.
        key: Column whose values must be unique, if any.
        example_key: Column used to show example rows in error messages.
        references: ``(column, table, column)`` foreign keys that must resolve.
    """

    name: str
    columns: tuple[Column, ...]
    key: str | None = None
    example_key: str = "lead_id"
    references: tuple[tuple[str, str, str], ...] = field(default=())

    def column(self, name: str) -> Column:
        """Look a declared column up by name."""
        return next(c for c in self.columns if c.name == name)


CONTRACT: dict[str, TableSchema] = {
    "leads": TableSchema(
        name="leads",
        key="lead_id",
        references=(("account_id", "accounts", "account_id"),),
        columns=(
            Column("lead_id", "str", description="Unique lead identifier"),
            Column("account_id", "str", description="The lead's company (accounts.account_id)"),
            Column("created_at", "datetime", description="When the lead entered the CRM"),
            Column("job_title", "str", nullable=True, description="Free-text job title"),
            Column("seniority", "str", nullable=True, description="C-Level, VP, Director, ..."),
            Column("department", "str", nullable=True, description="Marketing, IT, ..."),
            Column("country", "str", nullable=True, description="ISO country code"),
            Column("region", "str", nullable=True, description="Sales region (NA, EMEA, ...)"),
            Column("lead_source", "str", nullable=True, description="Acquisition channel"),
            Column(
                "email",
                "str",
                required=False,
                nullable=True,
                description="Optional; only its domain is used (corporate vs free mail)",
            ),
        ),
    ),
    "accounts": TableSchema(
        name="accounts",
        key="account_id",
        example_key="account_id",
        columns=(
            Column("account_id", "str", description="Unique account identifier"),
            Column("company_name", "str", nullable=True, description="Company name"),
            Column("industry", "str", nullable=True, description="Industry"),
            Column("employee_count", "float", nullable=True, description="Employees"),
            Column("annual_revenue", "float", nullable=True, description="Revenue in USD"),
            Column("country", "str", nullable=True, description="Headquarters country"),
        ),
    ),
    "activities": TableSchema(
        name="activities",
        references=(("lead_id", "leads", "lead_id"),),
        columns=(
            Column("lead_id", "str", description="The lead (leads.lead_id)"),
            Column("occurred_at", "datetime", description="When it happened"),
            Column("activity_type", "str", description="One of the known activity types"),
            Column(
                "detail",
                "str",
                required=False,
                nullable=True,
                description="Optional free text: page, asset, campaign",
            ),
        ),
    ),
    "conversions": TableSchema(
        name="conversions",
        key="lead_id",
        references=(("lead_id", "leads", "lead_id"),),
        columns=(
            Column("lead_id", "str", description="The lead (leads.lead_id)"),
            Column(
                "converted_at",
                "datetime",
                description="When the lead became an opportunity or customer",
            ),
        ),
    ),
}

TABLES: tuple[str, ...] = tuple(CONTRACT)


@dataclass(frozen=True)
class Violation:
    """One broken rule, with enough detail to find the rows.

    ``level`` is ``error`` for what stops a run (``ContractError``) and ``warning`` for
    rows that are kept out of the build but do not make the rest untrustworthy (rows
    dated after the data end, see ``rows_after``).
    """

    table: str
    column: str
    problem: str
    count: int
    examples: tuple[str, ...] = ()
    level: Level = "error"

    def __str__(self) -> str:
        shown = ", ".join(self.examples)
        where = f" (e.g. {shown})" if shown else ""
        return f"{self.table}.{self.column}: {self.problem} in {self.count} row(s){where}"


class ContractError(LeadscoreError, ValueError):
    """Raised when input tables break the data contract; lists every violation."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(
            f"input data breaks the data contract ({len(violations)} problem(s)):\n{lines}"
        )


def _examples(frame: pd.DataFrame, mask: np.ndarray | pd.Series, key: str, n: int = 3) -> tuple:
    rows = frame.loc[np.asarray(mask, dtype=bool)]
    if key in rows.columns:
        values = rows[key].astype("string").fillna("<missing>").head(n)
        return tuple(f"{key}={v}" for v in values)
    return tuple(f"row {i}" for i in rows.index[:n])


def _coerce(
    frame: pd.DataFrame, schema: TableSchema, column: Column, fmt: str | None
) -> tuple[pd.Series, Violation | None]:
    raw = frame[column.name]
    missing = raw.isna()
    if column.kind == "str":
        # pandas' own ``str`` dtype (Arrow-backed) keeps 4M-row id columns fast to hash.
        out = raw if raw.dtype == "str" else raw.astype("str")
        out = out.str.strip()
        return out.mask(out == ""), None
    if raw.dtype == object or raw.dtype == "str":
        raw = raw.mask(raw == "NA")  # R's missing number or time; a region only in text
        missing = raw.isna()
    if column.kind == "datetime":
        out = to_utc_naive(raw, fmt)
        bad = out.isna() & ~missing
        problem = "unparseable timestamp"
    else:
        out = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = out.isna() & ~missing
        bad |= np.isinf(out.to_numpy(dtype="float64", na_value=np.nan))
        problem = f"not a number (expected {column.kind})"
        if column.kind == "int":
            frac = out.notna() & (out != np.floor(out))
            bad |= frac
    if bad.any():
        return out, Violation(
            schema.name,
            column.name,
            problem,
            int(bad.sum()),
            _examples(frame, bad, schema.example_key),
        )
    return out, None


def to_utc_naive(values: pd.Series, fmt: str | None = None) -> pd.Series:
    """Parse timestamps to tz-naive UTC; unparseable values become NaT.

    Args:
        values: Raw values (strings, datetimes, or epoch-free datetime64).
        fmt: ``strftime`` format, or None for ISO 8601 / mixed inference.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed.astype(TIMESTAMP_UNIT)
    text = values.astype("string")
    kwargs = {"format": fmt} if fmt else {"format": "ISO8601"}
    try:
        parsed = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    if fmt is None and parsed.isna().sum() > text.isna().sum():
        # ISO 8601 failed for some rows: give other common layouts a chance.
        retry = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        parsed = parsed.fillna(retry)
    return parsed.dt.tz_localize(None).astype(TIMESTAMP_UNIT)


def validate_table(
    name: str, frame: pd.DataFrame, timestamp_format: str | None = None
) -> tuple[pd.DataFrame, list[Violation]]:
    """Check one table on its own: columns, types, nulls and unique keys.

    Returns:
        The typed table (declared columns coerced, extra columns kept) and the
        violations found. The typed table is only meaningful when there are none.
    """
    schema = CONTRACT[name]
    violations: list[Violation] = []
    missing = [c.name for c in schema.columns if c.required and c.name not in frame.columns]
    for col in missing:
        violations.append(Violation(name, col, "required column is missing", len(frame)))
    if missing:
        return frame, violations
    out = frame.copy()
    out.index = pd.RangeIndex(len(out))
    for column in schema.columns:
        if column.name not in out.columns:
            out[column.name] = None if column.kind == "str" else np.nan
            if column.kind == "datetime":
                out[column.name] = pd.Series(pd.NaT, index=out.index, dtype=TIMESTAMP_UNIT)
            continue
        coerced, problem = _coerce(out, schema, column, timestamp_format)
        if problem:
            violations.append(problem)
        elif not column.nullable:
            nulls = coerced.isna()
            if nulls.any():
                violations.append(
                    Violation(
                        name,
                        column.name,
                        "missing value",
                        int(nulls.sum()),
                        _examples(out, nulls, schema.example_key),
                    )
                )
        out[column.name] = coerced
    if schema.key and not any(v.column == schema.key for v in violations):
        dup = out[schema.key].duplicated(keep=False) & out[schema.key].notna()
        if dup.any():
            violations.append(
                Violation(
                    name,
                    schema.key,
                    "duplicate id",
                    int(dup.sum()),
                    _examples(out, dup, schema.key),
                )
            )
    return out, violations


def _check_activity_types(
    activities: pd.DataFrame, unknown: UnknownActivity
) -> tuple[pd.DataFrame, list[Violation]]:
    known = activities["activity_type"].isin(ACTIVITY_TYPES)
    if known.all():
        return activities, []
    if unknown == "other":
        out = activities.copy()
        out.loc[~known, "activity_type"] = "other"
        return out, []
    bad_values = activities.loc[~known, "activity_type"].astype(str).value_counts().index[:3]
    return activities, [
        Violation(
            "activities",
            "activity_type",
            f"unknown activity type ({', '.join(bad_values)}; known: {', '.join(ACTIVITY_TYPES)};"
            " set unknown_activity='other' to keep them as 'other')",
            int((~known).sum()),
            _examples(activities, ~known, "lead_id"),
        )
    ]


def _check_references(tables: dict[str, pd.DataFrame]) -> list[Violation]:
    violations = []
    for name, schema in CONTRACT.items():
        for column, target, target_col in schema.references:
            values = tables[name][column]
            orphan = values.notna() & ~values.isin(tables[target][target_col])
            if orphan.any():
                violations.append(
                    Violation(
                        name,
                        column,
                        f"points to an unknown {target}.{target_col}",
                        int(orphan.sum()),
                        _examples(tables[name], orphan, column),
                    )
                )
    return violations


def validate(
    tables: dict[str, pd.DataFrame],
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Validate the four tables against the contract and return typed copies.

    Args:
        tables: ``leads``, ``accounts``, ``activities`` and ``conversions``.
        unknown_activity: ``reject`` unknown activity types, or keep them as ``other``.
        timestamp_format: ``strftime`` format of text timestamps (None: ISO 8601).

    Raises:
        ContractError: listing every violation found, across all tables.
    """
    absent = [name for name in TABLES if name not in tables]
    if absent:
        raise ContractError([Violation(n, "*", "table is missing", 0) for n in absent])
    typed: dict[str, pd.DataFrame] = {}
    violations: list[Violation] = []
    for name in TABLES:
        typed[name], found = validate_table(name, tables[name], timestamp_format)
        violations += found
    if violations:
        raise ContractError(violations)
    typed["activities"], found = _check_activity_types(typed["activities"], unknown_activity)
    violations += found + _check_references(typed)
    if violations:
        raise ContractError(violations)
    return typed


TIME_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (schema.name, column.name)
    for schema in CONTRACT.values()
    for column in schema.columns
    if column.kind == "datetime"
)
"""Every declared ``(table, column)`` that holds a timestamp."""


def rows_after(tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> list[Violation]:
    """Warnings for rows dated after the data end, one per timestamp column that has any.

    Such rows are not errors: a CRM export often holds a few future-dated typos or
    scheduled events. But nobody has observed the world after the data end, so the
    pipeline keeps them out of every snapshot, feature and label window, and this report
    says how many there are and where, so that they are not silently dropped either.

    Args:
        tables: Validated tables (``validate``).
        end: The data end (``features.pipeline.resolve_window``).
    """
    found = []
    for name, column in TIME_COLUMNS:
        values = tables[name][column]
        late = (values > end).to_numpy(dtype=bool, na_value=False)
        if late.any():
            found.append(
                Violation(
                    name,
                    column,
                    f"dated after the data end {end} (left out of snapshots, features and labels)",
                    int(late.sum()),
                    _examples(tables[name], late, CONTRACT[name].example_key),
                    level="warning",
                )
            )
    return found
