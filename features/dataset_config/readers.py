"""Reading what a dataset config points at: the config file itself, then its data.

``read_config`` parses YAML or TOML. ``DataReader`` reads the files of a validated (or
salvaged, see ``schema.salvage``) config into a frame of ``lead_id``, ``as_of``, the
features and ``label``, collecting every problem of the data on the way instead of
stopping at the first: a missing column, timestamps that do not parse, values that are
not numbers, duplicate ids.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.catalogue import ACTIVITY_TYPES, FeatureSpec
from features.contract import TIMESTAMP_UNIT
from features.dataset_config.schema import (
    CONTRACT_COLUMNS,
    DEFAULT_POSITIVE,
    DatasetConfigError,
    LeadSnapshotConfig,
    ReadOptions,
    TablesConfig,
)
from features.dataset_config.values import date_part, lead_column, parse_times, type_series


def read_config(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file."""
    path = Path(path)
    if not path.exists():
        raise DatasetConfigError(path, [f"config file {path} does not exist"])
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise DatasetConfigError(path, [f"cannot parse the config: {exc}"]) from exc
    if not isinstance(data, dict):
        raise DatasetConfigError(path, ["the config must be a mapping of keys to values"])
    return data


class DataReader:
    """Reads a config's files relative to ``base``; ``problems`` collects what is wrong."""

    def __init__(self, base: Path):
        self.base = base
        self.problems: list[str] = []

    def resolve(self, file: str) -> Path:
        """A config's file name as a path (relative names are relative to the config)."""
        p = Path(file).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()

    def read(self, spec: ReadOptions) -> tuple[Path, pd.DataFrame | None]:
        """A CSV (every column as text) or Parquet file, cleaned of export quirks."""
        path = self.resolve(spec.file)
        if not path.exists():
            self.problems.append(f"file {path} does not exist")
            return path, None
        try:
            if path.suffix == ".parquet":
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(
                    path,
                    sep=spec.sep or ",",
                    dtype=str,
                    keep_default_na=True,
                    encoding=spec.encoding or "utf-8",
                )
        except Exception as exc:  # any reader error is a data problem to report
            self.problems.append(f"cannot read {path}: {exc}")
            return path, None
        # Exports that end every line with a comma grow an unnamed, empty last column.
        unnamed = [
            c for c in frame.columns if str(c).startswith("Unnamed:") and frame[c].isna().all()
        ]
        frame = frame.drop(columns=unnamed)
        frame.columns = [str(c).strip() for c in frame.columns]
        if spec.na_values:
            frame = frame.replace({v: np.nan for v in spec.na_values})
        return path, frame

    def need_columns(self, frame: pd.DataFrame, columns: list[str], where: str, path: Path) -> None:
        """Report each of ``columns`` that ``frame`` lacks (with a case-insensitive hint)."""
        for col in columns:
            if col not in frame.columns:
                close = [c for c in frame.columns if c.lower() == str(col).lower()]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problems.append(
                    f"{where}: column {col!r} is not in {path.name}{hint}; "
                    f"it has {list(frame.columns)[:12]}" + ("…" if len(frame.columns) > 12 else "")
                )

    def times(self, values: pd.Series, fmt: str | None, what: str) -> pd.Series:
        """Parsed timestamps; unparseable ones are reported."""
        parsed, problem = parse_times(values, fmt, what)
        if problem:
            self.problems.append(problem)
        return parsed

    def typed(self, values: pd.Series, dtype: str, where: str) -> pd.Series:
        """Values typed as ``dtype`` (``values.type_series``); bad ones are reported."""
        out, problem = type_series(values, dtype, where)
        if problem:
            self.problems.append(problem)
        return out

    # lead_snapshot

    def snapshot(self, cfg: LeadSnapshotConfig) -> pd.DataFrame:
        """The frame of a ``lead_snapshot`` config: one row per lead."""
        if cfg.source is None or not cfg.source.file:
            return pd.DataFrame()
        path, frame = self.read(cfg.source)
        if frame is None:
            return pd.DataFrame()
        id_col = cfg.id
        if id_col:
            self.need_columns(frame, [id_col], "id", path)
        has_ids = bool(id_col) and id_col in frame.columns
        ids = (
            frame[id_col].astype("string")
            if has_ids
            else pd.Series(np.arange(len(frame)).astype(str), index=frame.index)
        )
        if has_ids:
            dup = ids.duplicated(keep=False)
            if dup.any():
                self.problems.append(
                    f"id: {int(dup.sum()):,} row(s) of {path.name} share an "
                    f"id (e.g. {ids[dup].unique()[:3].tolist()}); one row per "
                    "lead is expected"
                )
            if ids.isna().any():
                self.problems.append(
                    f"id: {int(ids.isna().sum()):,} row(s) of {path.name} have no id"
                )
        features = [f for f in cfg.features if f.key]
        self.need_columns(frame, [f.source for f in features if f.source], "features", path)
        self.need_columns(
            frame, sorted({e.column for e in cfg.exclude if e.column}), "exclude", path
        )
        label = self.outcome(frame, cfg, ids, path)
        as_of = self.scoring_time(frame, cfg, path)
        out = pd.DataFrame(
            {
                "lead_id": ids.astype(str).to_numpy(),
                "as_of": np.asarray(as_of, dtype=TIMESTAMP_UNIT),
            }
        )
        for f in features:
            column = f.source
            if column not in frame.columns:
                continue
            values = frame[column]
            if f.na_values:
                values = values.replace({v: np.nan for v in f.na_values})
            if f.transform:
                t = self.times(values, f.format, f"features ({f.key})")
                values = date_part(t, f.transform)
            if f.map:
                values = values.map(lambda v, m=f.map: m.get(v, v) if pd.notna(v) else v)
            typed = self.typed(values, f.dtype, f"features ({f.key} <- {column})")
            out[f.key] = typed.to_numpy()
            if f.dtype == "category":
                out[f.key] = out[f.key].astype("category")
            if out[f.key].isna().all():
                self.problems.append(
                    f"features ({f.key}): column {column!r} is empty after cleaning"
                )
        if label is not None:
            out["label"] = label
        return out

    def outcome(
        self, frame: pd.DataFrame, cfg: LeadSnapshotConfig, ids: pd.Series, path: Path
    ) -> np.ndarray | None:
        """1 for each converted lead, 0 otherwise (None when it cannot be told)."""
        outcome = cfg.outcome
        if outcome is None:
            return None
        if outcome.in_file is not None:
            spec = outcome.in_file
            other_path, other = self.read(spec)
            if other is None:
                return None
            key = spec.column or cfg.id
            if not key:
                return None
            self.need_columns(other, [key], "outcome.in_file", other_path)
            if key not in other.columns:
                return None
            if (~other[key].isin(ids)).all():
                self.problems.append(
                    f"outcome.in_file: no id in {other_path.name}[{key}] "
                    f"matches {path.name}[{cfg.id}]"
                )
            return ids.isin(other[key]).to_numpy(dtype=np.int8)
        column = outcome.column
        if not column:
            return None
        self.need_columns(frame, [column], "outcome", path)
        if column not in frame.columns:
            return None
        positive = {
            str(v).strip().lower()
            for v in (outcome.positive if outcome.positive is not None else DEFAULT_POSITIVE)
        }
        text = frame[column].astype("string").str.strip().str.lower()
        if text.isna().any():
            self.problems.append(
                f"outcome: {int(text.isna().sum()):,} row(s) of {path.name}[{column}] are empty"
            )
        return text.isin(positive).fillna(False).to_numpy(dtype=np.int8)

    def scoring_time(self, frame: pd.DataFrame, cfg: LeadSnapshotConfig, path: Path) -> pd.Series:
        """Each lead's scoring time: its ``time`` column or the fixed ``as_of``."""
        if cfg.time is not None:
            tcol = cfg.time.column
            self.need_columns(frame, [tcol], "time", path)
            if tcol not in frame.columns:
                return pd.Series(pd.NaT, index=frame.index)
            as_of = self.times(frame[tcol], cfg.time.format, f"time ({tcol})")
            if frame[tcol].isna().any():
                self.problems.append(
                    f"time: {int(frame[tcol].isna().sum()):,} row(s) have no {tcol}"
                )
            return as_of
        if cfg.as_of:
            return pd.Series(pd.Timestamp(str(cfg.as_of)), index=frame.index)
        return pd.Series(pd.NaT, index=frame.index)

    # tables

    def tables(
        self, cfg: TablesConfig, run_pipeline: bool = True
    ) -> tuple[pd.DataFrame, list[FeatureSpec], dict]:
        """The training set of a ``tables`` config: the contract's pipeline on its files.

        Args:
            cfg: The config.
            run_pipeline: False when the config itself has problems: its files are still
                read and checked, but no snapshots are built from them.
        """
        from features.contract import ContractError, validate
        from features.pipeline import PipelineConfig, SnapshotRule, build_training_set

        tables: dict[str, pd.DataFrame] = {}
        specs = cfg.tables
        for name, allowed in CONTRACT_COLUMNS.items():
            spec = getattr(specs, name, None) if specs is not None else None
            if spec is None and name == "accounts":
                tables[name] = pd.DataFrame({c: pd.Series(dtype=object) for c in allowed})
                continue
            if spec is None or not spec.file:
                continue
            frame = self.contract_table(name, spec)
            if frame is not None:
                tables[name] = frame
        if "leads" in tables and "accounts" in tables and tables["accounts"].empty:
            tables["accounts"] = pd.DataFrame(
                {"account_id": tables["leads"]["account_id"].dropna().unique()}
            )
        extra = [f for f in cfg.features if f.key]
        extra_specs = [f.to_spec() for f in extra]
        if not run_pipeline or self.problems or len(tables) < len(CONTRACT_COLUMNS):
            return pd.DataFrame(), extra_specs, {}
        try:
            typed = validate(tables, cfg.unknown_activity)
        except ContractError as exc:
            self.problems.extend(str(v) for v in exc.violations)
            return pd.DataFrame(), extra_specs, {}
        pipeline = cfg.pipeline
        try:
            config = PipelineConfig(
                horizon_days=int(pipeline.horizon_days),
                snapshots=SnapshotRule.parse(str(pipeline.snapshots)),
            )
            ts = build_training_set(typed, config)
        except ValueError as exc:
            self.problems.append(str(exc))
            return pd.DataFrame(), extra_specs, {}
        frame = ts.frame
        for f in extra:
            values, problem = lead_column(
                frame["lead_id"], tables["leads"], str(f.source), f.dtype, f"features ({f.key})"
            )
            if problem:
                self.problems.append(problem)
            frame[f.key] = values
        return frame, extra_specs, ts.metadata.model_dump()

    def contract_table(self, name: str, spec: Any) -> pd.DataFrame | None:
        """One file renamed onto a contract table, timestamps parsed, activities mapped."""
        path, frame = self.read(spec)
        if frame is None:
            return None
        mapping = spec.columns or {}
        self.need_columns(frame, list(mapping.values()), f"tables.{name}.columns", path)
        renamed = frame.rename(columns={v: k for k, v in mapping.items()})
        for col in ("created_at", "occurred_at", "converted_at"):
            if col in renamed.columns:
                renamed[col] = self.times(
                    renamed[col], spec.timestamp_format, f"tables.{name} ({col})"
                )
        if name == "activities" and "activity_type" in renamed.columns:
            mapped = (
                renamed["activity_type"].astype("string").replace(dict(spec.activity_types or {}))
            )
            renamed["activity_type"] = mapped.where(mapped.isin(ACTIVITY_TYPES), "other")
        if name == "leads" and "account_id" not in renamed.columns:
            renamed["account_id"] = renamed.get("lead_id")
        return renamed
