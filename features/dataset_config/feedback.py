"""The ``feedback:`` section of a dataset config: how a CRM export of sales dispositions
maps onto leadscore's feedback events, and reading such an export.

A CRM names things its own way: the column ``Lead ID``, the status ``Sales Accepted``,
the reason ``Disqualified - No Budget``. The section says, once, which column is which
event field and which CRM value is which stage or rejection reason::

    feedback:
      columns: {lead_id: Lead ID, stage: Status, occurred_at: Status Date,
                reason_code: Reason, reason_text: Notes, recorded_by: Rep, owner: Owner}
      stages:
        Sales Accepted: accepted
        Disqualified - No Budget: {stage: rejected, reason_code: no_budget}
        Open: null            # not a disposition: the row is skipped
      reasons: {No budget: no_budget, Wrong timing: bad_timing}
      timestamp_format: "%d/%m/%Y %H:%M"    # optional; default ISO 8601
      recorded_by: crm-import               # who recorded rows that do not say

A value without a mapping is passed on as it is (so canonical values need none), and
matched case-insensitively when no exact mapping exists. Which stages and reasons exist
is the lead store's business (``store.schema``; features imports no other stage), so
the targets are checked there (``store.feedback.config_problems``); here the section's
shape is checked, in the same words as the rest of a config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pandas as pd
from pydantic import BeforeValidator, Field, ValidationError

from features.dataset_config.schema import (
    DatasetConfigError,
    Section,
    Text,
    did_you_mean,
    problems_of,
)
from leadscore.errors import LeadscoreError

FeedbackField = Literal[
    "lead_id", "stage", "occurred_at", "reason_code", "reason_text", "recorded_by", "owner"
]
FEEDBACK_FIELDS: tuple[str, ...] = get_args(FeedbackField)
"""The event fields an export's columns map onto (``store.feedback.FEEDBACK_COLUMNS``)."""
REQUIRED_FIELDS = FEEDBACK_FIELDS[:3]
HEADER_ROWS = 1
"""Rows before the first event in a CSV: a row's number is its position + 1 + this, as a
spreadsheet or an editor shows it."""


class StageTarget(Section):
    """What a CRM value means: a stage, and for a rejection its reason code."""

    stage: str
    reason_code: str | None = None


def _target(value: Any) -> Any:
    """``accepted`` is short for ``{stage: accepted}``."""
    return {"stage": value} if isinstance(value, str) else value


class FeedbackConfig(Section):
    """The ``feedback:`` section (see the module docstring).

    Attributes:
        columns: Event field -> the export's column (unmapped fields: their own name).
        stages: CRM value -> stage (or ``{stage, reason_code}``; null skips the row).
        reasons: CRM value -> rejection reason code.
        timestamp_format: ``strftime`` format of ``occurred_at`` (default ISO 8601).
        recorded_by: Who recorded the rows that do not say.
        sep: The CSV's separator.
        encoding: The CSV's encoding.
    """

    columns: dict[FeedbackField, str] = Field(default_factory=dict)
    stages: dict[Text, Annotated[StageTarget | None, BeforeValidator(_target)]] = Field(
        default_factory=dict
    )
    reasons: dict[Text, str] = Field(default_factory=dict)
    timestamp_format: str | None = None
    recorded_by: str | None = None
    sep: str = ","
    encoding: str = "utf-8"


class FeedbackExportError(LeadscoreError, ValueError):
    """A feedback export lacks a column it needs; the message names the file and column."""


def feedback_problems(section: Mapping[str, Any]) -> list[str]:
    """Every problem of a ``feedback:`` section, worded as ``feedback.columns ...``."""
    try:
        FeedbackConfig.model_validate(section)
    except ValidationError as exc:
        return problems_of(exc, section, root=FeedbackConfig, prefix="feedback")
    return []


def feedback_section(raw: Mapping[str, Any], path: str | Path) -> FeedbackConfig:
    """The ``feedback:`` section of a parsed config, validated.

    Raises:
        DatasetConfigError: naming every problem of the section (``feedback.columns ...``),
            or that the config has none.
    """
    section = raw.get("feedback")
    if section is None:
        raise DatasetConfigError(
            path,
            [
                "no `feedback:` section: add one mapping the export's columns and values, "
                "e.g. `feedback: {columns: {lead_id: Lead ID, stage: Status, occurred_at: "
                "Date}}`"
            ],
        )
    if not isinstance(section, Mapping):
        raise DatasetConfigError(path, ["feedback: must be a mapping"])
    if problems := feedback_problems(section):
        raise DatasetConfigError(path, problems)
    return FeedbackConfig.model_validate(section)


@dataclass(frozen=True)
class FeedbackExport:
    """A CRM export read and mapped onto feedback events.

    Attributes:
        frame: One event a row, canonical columns (``FEEDBACK_FIELDS`` present in the
            file), values mapped; ``occurred_at`` parsed where it parses (text where it
            does not, for the store to report with its row).
        rows: Each event's row number in the file (the header is row 1).
        columns: Event field -> the file's column, for messages.
        skipped: Rows whose stage the config maps to null (not dispositions).
    """

    frame: pd.DataFrame
    rows: list[int]
    columns: dict[str, str]
    skipped: int


def _lookup(mapping: Mapping[str, Any], value: str) -> tuple[bool, Any]:
    """The mapping of ``value``: exact first, then ignoring case and outer spaces."""
    if value in mapping:
        return True, mapping[value]
    folded = value.strip().casefold()
    for key, target in mapping.items():
        if key.strip().casefold() == folded:
            return True, target
    return False, None


def _read_csv(path: Path, config: FeedbackConfig) -> pd.DataFrame:
    frame = pd.read_csv(
        path, sep=config.sep, dtype=str, keep_default_na=False, encoding=config.encoding
    )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_feedback_export(path: str | Path, config: FeedbackConfig | None = None) -> FeedbackExport:
    """Read a CSV export of dispositions and map it onto events (``config``: the
    ``feedback:`` section; None: the file uses the canonical column names and values).

    Raises:
        FeedbackExportError: when a column the events need is not in the file.
    """
    path = Path(path)
    config = config or FeedbackConfig()
    raw = _read_csv(path, config)
    mapped: dict[str, str] = dict(config.columns)
    columns = {f: mapped.get(f, f) for f in FEEDBACK_FIELDS}
    missing = [
        f
        for f in FEEDBACK_FIELDS
        if columns[f] not in raw.columns and (f in REQUIRED_FIELDS or f in config.columns)
    ]
    if missing:
        names = [columns[f] for f in missing]
        hints = "".join(did_you_mean(n, list(raw.columns)) for n in names[:1])
        listed = ", ".join(map(repr, list(raw.columns)[:12]))
        raise FeedbackExportError(
            f"{path}: column(s) {', '.join(map(repr, names))} not in the file{hints}; it has "
            f"{listed}"
            + (
                ""
                if config.columns
                else " (map the export's columns in the "
                "dataset config's `feedback.columns`, --config)"
            )
        )
    present = {f: columns[f] for f in FEEDBACK_FIELDS if columns[f] in raw.columns}
    frame = pd.DataFrame({f: raw[c].astype(object) for f, c in present.items()})
    frame = frame.replace({"": None})
    keep = pd.Series(True, index=frame.index)
    stages: list[Any] = list(frame["stage"])
    codes: list[Any] = list(frame["reason_code"]) if "reason_code" in frame else [None] * len(frame)
    for i, value in enumerate(stages):
        if value is None:
            continue
        found, target = _lookup(config.stages, str(value))
        if not found:
            continue
        if target is None:
            keep.iat[i] = False
            continue
        stages[i] = target.stage
        if target.reason_code is not None and codes[i] is None:
            codes[i] = target.reason_code
    for i, code in enumerate(codes):
        if code is not None:
            found, target = _lookup(config.reasons, str(code))
            codes[i] = target if found else code
    frame["stage"] = pd.Series(stages, index=frame.index, dtype=object)
    if any(c is not None for c in codes) or "reason_code" in frame:
        frame["reason_code"] = pd.Series(codes, index=frame.index, dtype=object)
    if config.timestamp_format:
        frame["occurred_at"] = _times(frame["occurred_at"], config.timestamp_format)
    rows = [int(i) + 1 + HEADER_ROWS for i in frame.index[keep.to_numpy()]]
    return FeedbackExport(
        frame=frame[keep.to_numpy()].reset_index(drop=True),
        rows=rows,
        columns=dict(present),
        skipped=int((~keep).sum()),
    )


def _times(values: pd.Series, fmt: str) -> pd.Series:
    """Times in ``fmt`` parsed; a value that does not parse stays as the text it was."""
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    out = values.astype(object).copy()
    ok = parsed.notna().to_numpy()
    out[ok] = list(parsed[ok])
    return out


def read_feedback_config(path: str | Path) -> FeedbackConfig:
    """The ``feedback:`` section of a dataset config file (YAML or TOML).

    Only that section is read and checked, so a feedback import does not depend on the
    training data the rest of the config points at.

    Raises:
        DatasetConfigError: naming every problem of the section.
    """
    from features.dataset_config.readers import read_config

    return feedback_section(read_config(path), path)
