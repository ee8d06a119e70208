"""Dataset configs: map any CRM or marketing export onto leadscore's training data.

A config file (YAML or TOML) says which file holds what and how to read it. Two kinds:

* ``kind: tables`` maps files and columns onto the four tables of the data contract
  (``features.contract``): which file, which column is which, how timestamps are written,
  which source values mean which activity type. The normal point-in-time pipeline then
  runs. Extra lead columns can be declared as additional ``fit`` features.
* ``kind: lead_snapshot`` is for exports that already hold one row per lead with
  aggregated behaviour (no activity log): one file, an ``id`` column, an ``outcome``
  (a column and its positive values, or membership of the id in another file), a
  ``time`` column or a fixed ``as_of``, and the ``features`` to use, each with its group,
  dtype and plain-language template. Columns that leak the outcome go under ``exclude``
  with the reason.

Both kinds may declare the ``split`` (``{kind: time, at: 2018-03-01}`` or
``{kind: stratified, test_fraction: 0.25, seed: 0}``), the ``points`` rules of the
points-based baseline and ``train`` settings. ``load_dataset`` returns a ``TrainingSet``
whose metadata carries the custom feature catalogue, the split and the points rules, so
training, the baselines and the model card all use them.

Every problem in a config and in the data it points at is collected before anything
raises (``DatasetConfigError`` lists them all), so ``leadscore check --config FILE``
reports a broken export in one go.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.catalogue import ACTIVITY_TYPES, FeatureSpec
from features.contract import TIMESTAMP_UNIT, to_utc_naive
from features.metadata import TrainingSetMetadata
from features.pipeline import TrainingSet
from leadscore.errors import LeadscoreError

KINDS = ("tables", "lead_snapshot")
GROUPS = ("fit", "engagement")
DTYPES = ("category", "float", "int", "bool")
TRANSFORMS = ("dayofweek", "month", "day", "dayofyear", "hour", "weekofyear")
SPLIT_KINDS = ("time", "stratified")
TRAIN_KEYS = ("num_boost_round", "early_stopping_rounds", "min_rows", "min_positives",
              "calibration", "params", "valid_fraction")
CONTRACT_COLUMNS = {
    "leads": ("lead_id", "account_id", "created_at", "job_title", "seniority", "department",
              "country", "region", "lead_source", "email"),
    "accounts": ("account_id", "company_name", "industry", "employee_count",
                 "annual_revenue", "country"),
    "activities": ("lead_id", "occurred_at", "activity_type", "detail"),
    "conversions": ("lead_id", "converted_at"),
}
TRUE_TEXT = {"1", "true", "yes", "y", "t"}
FALSE_TEXT = {"0", "false", "no", "n", "f"}


class DatasetConfigError(LeadscoreError, ValueError):
    """A dataset config or the data it points at is unusable; lists every problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: {len(self.problems)} problem(s)\n{lines}")


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


def _resolve(base: Path, file: str) -> Path:
    p = Path(file).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _read_csv(path: Path, spec: dict, problems: list[str]) -> pd.DataFrame | None:
    if not path.exists():
        problems.append(f"file {path} does not exist")
        return None
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=spec.get("sep", ","), dtype=str,
                                keep_default_na=True, encoding=spec.get("encoding", "utf-8"))
    except Exception as exc:  # any reader error is a data problem to report
        problems.append(f"cannot read {path}: {exc}")
        return None
    # Exports that end every line with a comma grow an unnamed, empty last column.
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed:") and frame[c].isna().all()]
    frame = frame.drop(columns=unnamed)
    frame.columns = [str(c).strip() for c in frame.columns]
    na_values = spec.get("na_values") or []
    if na_values:
        frame = frame.replace({v: np.nan for v in na_values})
    return frame


def _need_columns(frame: pd.DataFrame, columns: list[str], where: str, path: Path,
                  problems: list[str]) -> None:
    for col in columns:
        if col not in frame.columns:
            close = [c for c in frame.columns if c.lower() == str(col).lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: column {col!r} is not in {path.name}{hint}; "
                            f"it has {list(frame.columns)[:12]}"
                            + ("…" if len(frame.columns) > 12 else ""))


def _parse_time(values: pd.Series, fmt: str | None, what: str,
                problems: list[str]) -> pd.Series:
    parsed = to_utc_naive(values, fmt)
    bad = parsed.isna() & values.notna()
    if bad.any():
        examples = values[bad].astype(str).unique()[:3].tolist()
        problems.append(f"{what}: {int(bad.sum()):,} of {len(values):,} timestamp(s) cannot be "
                        f"parsed with format {fmt or 'ISO 8601'} (e.g. {examples})")
    return parsed


def _feature_specs(features: list, problems: list[str]) -> list[FeatureSpec]:
    specs, seen = [], set()
    if not isinstance(features, list) or not features:
        problems.append("features: declare at least one feature (a list of mappings)")
        return specs
    for i, f in enumerate(features):
        where = f"features[{i}]"
        if not isinstance(f, dict):
            problems.append(f"{where}: must be a mapping with name, column, group, dtype, "
                            "template and description")
            continue
        name = f.get("name") or f.get("column")
        if not name:
            problems.append(f"{where}: needs a name or a column")
            continue
        where = f"features[{i}] ({name})"
        if name in seen:
            problems.append(f"{where}: duplicate feature name")
        seen.add(name)
        if name in ("lead_id", "as_of", "label"):
            problems.append(f"{where}: {name!r} is reserved; choose another name")
        group = f.get("group", "fit")
        dtype = f.get("dtype", "category")
        if group not in GROUPS:
            problems.append(f"{where}: group must be one of {GROUPS}, got {group!r}")
        if dtype not in DTYPES:
            problems.append(f"{where}: dtype must be one of {DTYPES}, got {dtype!r}")
        if f.get("transform") and f["transform"] not in TRANSFORMS:
            problems.append(f"{where}: transform must be one of {TRANSFORMS}, "
                            f"got {f['transform']!r}")
        template = f.get("template") or (f"{f.get('description') or name}: {{value}}")
        if "{value" not in template:
            problems.append(f"{where}: template must contain {{value}}, got {template!r}")
        # A bad group or dtype is reported above; a stand-in keeps the other checks going.
        specs.append(FeatureSpec(str(name), group if group in GROUPS else "fit",
                                 dtype if dtype in DTYPES else "category", str(template),
                                 str(f.get("description") or name)))
    return specs


def _typed(values: pd.Series, dtype: str, where: str, problems: list[str]) -> pd.Series:
    if dtype == "category":
        return values.astype("string").str.strip().astype("category")
    if dtype == "bool":
        text = values.astype("string").str.strip().str.lower()
        out = pd.Series(np.where(text.isin(TRUE_TEXT), 1.0,
                                 np.where(text.isin(FALSE_TEXT), 0.0, np.nan)),
                        index=values.index)
        bad = out.isna() & text.notna()
        if bad.any():
            problems.append(f"{where}: {int(bad.sum()):,} value(s) are not yes/no/true/false/1/0 "
                            f"(e.g. {text[bad].unique()[:3].tolist()})")
        return out
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & values.notna() & (values.astype("string").str.strip() != "")
    if bad.any():
        problems.append(f"{where}: {int(bad.sum()):,} value(s) are not numbers "
                        f"(e.g. {values[bad].astype(str).unique()[:3].tolist()})")
    return out.astype("float64")


def _check_split(split: dict | None, problems: list[str]) -> dict:
    split = dict(split or {"kind": "stratified", "test_fraction": 0.25, "seed": 0})
    kind = split.get("kind")
    if kind not in SPLIT_KINDS:
        problems.append(f"split.kind must be one of {SPLIT_KINDS}, got {kind!r}")
    if kind == "time":
        try:
            split["at"] = str(pd.Timestamp(split["at"]).date())
        except (KeyError, ValueError, TypeError):
            problems.append("split: a time split needs `at: YYYY-MM-DD` (test = rows at or "
                            "after it)")
    for key in ("test_fraction", "valid_fraction"):
        if key in split and not 0.0 < float(split[key]) < 0.9:
            problems.append(f"split.{key} must be between 0 and 0.9, got {split[key]}")
    split.setdefault("valid_fraction", 0.2)
    split.setdefault("seed", 0)
    if kind == "stratified":
        split.setdefault("test_fraction", 0.25)
    return split


def _check_points(points: dict | None, names: set[str], problems: list[str]) -> dict | None:
    if not points:
        return None
    rules = points.get("rules") or []
    for i, rule in enumerate(rules):
        feature = rule.get("feature")
        if feature not in names:
            problems.append(f"points.rules[{i}]: feature {feature!r} is not a declared feature")
        if not any(k in rule for k in ("values", "per", "at_least")):
            problems.append(f"points.rules[{i}]: give `values` (points per value), `per` "
                            "(points per unit, optional `cap`) or `at_least` with `points`")
    return {"threshold": float(points.get("threshold", 50)), "rules": rules}


def _check_train(train: dict | None, problems: list[str]) -> dict:
    train = dict(train or {})
    for key in train:
        if key not in TRAIN_KEYS:
            problems.append(f"train.{key} is not a known setting ({', '.join(TRAIN_KEYS)})")
    return train


def _outcome(frame: pd.DataFrame, cfg: dict, ids: pd.Series, base: Path, path: Path,
             problems: list[str]) -> np.ndarray | None:
    outcome = cfg.get("outcome")
    if not isinstance(outcome, dict):
        problems.append("outcome: give `column` and `positive` values, or `in_file` "
                        "(`file`, `column`): a lead converted when its id appears there")
        return None
    if "in_file" in outcome:
        spec = outcome["in_file"]
        other_path = _resolve(base, spec.get("file", ""))
        other = _read_csv(other_path, spec, problems)
        if other is None:
            return None
        key = spec.get("column", cfg.get("id"))
        _need_columns(other, [key], "outcome.in_file", other_path, problems)
        if key not in other.columns:
            return None
        unknown = ~other[key].isin(ids)
        if unknown.all():
            problems.append(f"outcome.in_file: no id in {other_path.name}[{key}] matches "
                            f"{path.name}[{cfg.get('id')}]")
        return ids.isin(other[key]).to_numpy(dtype=np.int8)
    column = outcome.get("column")
    _need_columns(frame, [column], "outcome", path, problems)
    if column not in frame.columns:
        return None
    positive = {str(v).strip().lower() for v in outcome.get("positive", [1, "true", "yes"])}
    text = frame[column].astype("string").str.strip().str.lower()
    if text.isna().any():
        problems.append(f"outcome: {int(text.isna().sum()):,} row(s) of {path.name}"
                        f"[{column}] are empty")
    return text.isin(positive).fillna(False).to_numpy(dtype=np.int8)


def _load_snapshot(cfg: dict, base: Path, problems: list[str]) -> tuple[pd.DataFrame, list]:
    source = cfg.get("source") or {}
    if "file" not in source:
        problems.append("source.file: which file holds one row per lead?")
        return pd.DataFrame(), []
    path = _resolve(base, source["file"])
    frame = _read_csv(path, source, problems)
    specs = _feature_specs(cfg.get("features"), problems)
    if frame is None:
        return pd.DataFrame(), specs
    id_col = cfg.get("id")
    if not id_col and "id" not in cfg:
        problems.append("id: which column identifies a lead? (`id: null` numbers the rows)")
    elif id_col:
        _need_columns(frame, [id_col], "id", path, problems)
    ids = (frame[id_col].astype("string") if id_col and id_col in frame.columns
           else pd.Series(np.arange(len(frame)).astype(str), index=frame.index))
    if id_col and id_col in frame.columns:
        dup = ids.duplicated(keep=False)
        if dup.any():
            problems.append(f"id: {int(dup.sum()):,} row(s) of {path.name} share an id "
                            f"(e.g. {ids[dup].unique()[:3].tolist()}); one row per lead is "
                            "expected")
        if ids.isna().any():
            problems.append(f"id: {int(ids.isna().sum()):,} row(s) of {path.name} have no id")
    excluded = {e["column"] if isinstance(e, dict) else str(e) for e in cfg.get("exclude", [])}
    cols = [f.get("column", f.get("name")) for f in cfg.get("features") or []
            if isinstance(f, dict)]
    _need_columns(frame, [c for c in cols if c], "features", path, problems)
    for c in cols:
        if c in excluded:
            problems.append(f"features: column {c!r} is both a feature and excluded "
                            "(see its exclude reason)")
    _need_columns(frame, sorted(excluded), "exclude", path, problems)
    label = _outcome(frame, cfg, ids, base, path, problems)

    time_cfg = cfg.get("time")
    if time_cfg:
        time_cfg = time_cfg if isinstance(time_cfg, dict) else {"column": time_cfg}
        tcol = time_cfg.get("column")
        _need_columns(frame, [tcol], "time", path, problems)
        as_of = (_parse_time(frame[tcol], time_cfg.get("format"), f"time ({tcol})", problems)
                 if tcol in frame.columns else pd.Series(pd.NaT, index=frame.index))
        if tcol in frame.columns and frame[tcol].isna().any():
            problems.append(f"time: {int(frame[tcol].isna().sum()):,} row(s) have no {tcol}")
    elif cfg.get("as_of"):
        try:
            as_of = pd.Series(pd.Timestamp(str(cfg["as_of"])), index=frame.index)
        except ValueError:
            problems.append(f"as_of: {cfg['as_of']!r} is not a date")
            as_of = pd.Series(pd.NaT, index=frame.index)
    else:
        problems.append("give `time` (a column with each lead's scoring time) or a fixed "
                        "`as_of` date")
        as_of = pd.Series(pd.NaT, index=frame.index)

    out = pd.DataFrame({"lead_id": ids.astype(str).to_numpy(),
                        "as_of": np.asarray(as_of, dtype=TIMESTAMP_UNIT)})
    for f, spec in zip([f for f in cfg.get("features") or [] if isinstance(f, dict)
                        and (f.get("name") or f.get("column"))], specs, strict=False):
        column = f.get("column", spec.name)
        if column not in frame.columns:
            continue
        values = frame[column]
        if f.get("na_values"):
            values = values.replace({v: np.nan for v in f["na_values"]})
        if f.get("transform"):
            t = _parse_time(values, f.get("format"), f"features ({spec.name})", problems)
            t = t.dt
            values = {"dayofweek": t.dayofweek, "month": t.month, "day": t.day,
                      "dayofyear": t.dayofyear, "hour": t.hour,
                      "weekofyear": t.isocalendar().week if hasattr(t, "isocalendar")
                      else t.dayofyear // 7}[f["transform"]].astype("float64")
        if f.get("map"):
            values = values.map(lambda v, m=f["map"]: m.get(v, v) if pd.notna(v) else v)
        typed = _typed(values, spec.dtype, f"features ({spec.name} <- {column})", problems)
        out[spec.name] = typed.to_numpy()
        if spec.dtype == "category":
            out[spec.name] = out[spec.name].astype("category")
        if out[spec.name].isna().all():
            problems.append(f"features ({spec.name}): column {column!r} is empty after cleaning")
    if label is not None:
        out["label"] = label
    return out, specs


def _load_tables(cfg: dict, base: Path, problems: list[str]) -> tuple[pd.DataFrame, list, dict]:
    from features.contract import ContractError, validate
    from features.pipeline import PipelineConfig, SnapshotRule, build_training_set

    tables_cfg = cfg.get("tables") or {}
    tables: dict[str, pd.DataFrame] = {}
    extras: list[tuple[dict, pd.DataFrame]] = []
    for name, allowed in CONTRACT_COLUMNS.items():
        spec = tables_cfg.get(name)
        if spec is None and name == "accounts":
            tables[name] = pd.DataFrame({c: pd.Series(dtype=object) for c in allowed})
            continue
        if not isinstance(spec, dict) or "file" not in spec:
            problems.append(f"tables.{name}: give `file` and `columns` (contract column: "
                            "source column)")
            continue
        path = _resolve(base, spec["file"])
        frame = _read_csv(path, spec, problems)
        if frame is None:
            continue
        mapping = spec.get("columns") or {}
        for target in mapping:
            if target not in allowed:
                problems.append(f"tables.{name}.columns: {target!r} is not a contract column "
                                f"of {name} ({', '.join(allowed)})")
        _need_columns(frame, list(mapping.values()), f"tables.{name}.columns", path, problems)
        renamed = frame.rename(columns={v: k for k, v in mapping.items()})
        fmt = spec.get("timestamp_format")
        for col in ("created_at", "occurred_at", "converted_at"):
            if col in renamed.columns:
                renamed[col] = _parse_time(renamed[col], fmt, f"tables.{name} ({col})",
                                           problems)
        if name == "activities" and "activity_type" in renamed.columns:
            mapping_types = spec.get("activity_types") or {}
            for source, target in mapping_types.items():
                if target not in ACTIVITY_TYPES:
                    problems.append(f"tables.activities.activity_types: {source!r} -> "
                                    f"{target!r} is not a known activity type")
            raw = renamed["activity_type"].astype("string")
            mapped = raw.replace(mapping_types)
            renamed["activity_type"] = mapped.where(mapped.isin(ACTIVITY_TYPES), "other")
        if name == "leads" and "account_id" not in renamed.columns:
            renamed["account_id"] = renamed.get("lead_id")
        tables[name] = renamed
        if name == "leads":
            extras.append((spec, renamed))
    if "leads" in tables and "accounts" in tables and tables["accounts"].empty:
        tables["accounts"] = pd.DataFrame({"account_id": tables["leads"]["account_id"]
                                           .dropna().unique()})
    extra_specs = _feature_specs(cfg["features"], problems) if cfg.get("features") else []
    if problems:
        return pd.DataFrame(), extra_specs, {}
    try:
        typed = validate(tables, cfg.get("unknown_activity", "reject"))
    except ContractError as exc:
        problems.extend(str(v) for v in exc.violations)
        return pd.DataFrame(), extra_specs, {}
    p = cfg.get("pipeline") or {}
    pipeline = PipelineConfig(horizon_days=int(p.get("horizon_days", 90)),
                              snapshots=SnapshotRule.parse(str(p.get("snapshots", "monthly"))))
    try:
        ts = build_training_set(typed, pipeline)
    except ValueError as exc:
        problems.append(str(exc))
        return pd.DataFrame(), extra_specs, {}
    frame = ts.frame
    leads = tables["leads"].set_index("lead_id")
    for f, spec in zip(cfg.get("features") or [], extra_specs, strict=False):
        column = f.get("column", spec.name)
        if column not in leads.columns:
            problems.append(f"features ({spec.name}): column {column!r} is not in the leads file")
            continue
        values = frame["lead_id"].map(leads[column])
        frame[spec.name] = _typed(values, spec.dtype, f"features ({spec.name})", problems)
    return frame, extra_specs, ts.metadata.model_dump()


def load_dataset(path: str | Path) -> TrainingSet:
    """Read a dataset config and the data it points at; return a training set.

    The frame has ``lead_id``, ``as_of``, ``label`` and one column per feature. The
    metadata carries ``catalogue`` (the features as serialised ``FeatureSpec``), ``split``,
    ``points`` and ``train`` settings, and ``dataset`` (name, kind, config path).

    Raises:
        DatasetConfigError: listing every problem in the config and the data.
    """
    path = Path(path).resolve()
    cfg = read_config(path)
    problems: list[str] = []
    kind = cfg.get("kind")
    base = path.parent
    catalogue: list[FeatureSpec] = []
    extra_meta: dict = {}
    if kind == "lead_snapshot":
        frame, catalogue = _load_snapshot(cfg, base, problems)
    elif kind == "tables":
        from features.catalogue import CATALOGUE

        frame, extra, extra_meta = _load_tables(cfg, base, problems)
        catalogue = list(CATALOGUE) + list(extra)
    else:
        problems.append(f"kind must be one of {KINDS}, got {kind!r}")
        frame = pd.DataFrame()
    # A tables-kind config without a split uses the pipeline's own time split.
    split = (None if kind == "tables" and not cfg.get("split")
             else _check_split(cfg.get("split"), problems))
    points = _check_points(cfg.get("points"), {f.name for f in catalogue}, problems)
    train = _check_train(cfg.get("train"), problems)
    if "label" in frame.columns and len(frame):
        positives = int(frame["label"].sum())
        if positives in (0, len(frame)):
            problems.append(f"outcome: every one of the {len(frame):,} rows has the same class "
                            f"({'converted' if positives else 'not converted'}); check the "
                            "outcome column and its positive values")
        if split and split.get("kind") == "time" and "at" in split and frame["as_of"].notna().any():
            at = pd.Timestamp(split["at"])
            before = int((frame["as_of"] < at).sum())
            after = int((frame["as_of"] >= at).sum())
            if before == 0 or after == 0:
                problems.append(f"split: at {split['at']} leaves {before:,} row(s) before and "
                                f"{after:,} at or after it; both sides need rows (data runs "
                                f"{frame['as_of'].min().date()} … {frame['as_of'].max().date()})")
            elif int(frame.loc[frame["as_of"] >= at, "label"].sum()) == 0:
                problems.append(f"split: no conversion at or after {split['at']}")
    if problems:
        raise DatasetConfigError(path, problems)
    metadata = {
        **extra_meta,
        "dataset": {"name": cfg.get("name", path.stem), "kind": kind, "config": str(path),
                    **_snapshot_facts(cfg, kind)},
        "catalogue": catalogue,
        "features": [f.name for f in catalogue],
        "split": split,
        "points": points,
        "train": train,
        "rows": len(frame),
        "positives": int(frame["label"].sum()),
        "leads": int(frame["lead_id"].nunique()),
        "first_as_of": str(frame["as_of"].min()),
        "last_as_of": str(frame["as_of"].max()),
        "excluded": cfg.get("exclude", []),
    }
    if kind == "lead_snapshot":
        metadata.setdefault("horizon_days", None)
        metadata.setdefault("snapshot_rule", "lead_snapshot")
    return TrainingSet(frame.reset_index(drop=True), metadata)


def _snapshot_facts(cfg: dict, kind: str | None) -> dict:
    """What a ``lead_snapshot`` config states about its rows, for the model card: the id
    column, the outcome and the scoring time (a fixed ``as_of`` or a ``time`` column)."""
    if kind != "lead_snapshot":
        return {}
    facts: dict[str, Any] = {"id": cfg.get("id")}
    outcome = cfg.get("outcome") or {}
    if "in_file" in outcome:
        spec = outcome["in_file"] or {}
        facts["outcome"] = {"in_file": Path(str(spec.get("file", ""))).name,
                            "column": spec.get("column", cfg.get("id"))}
    else:
        facts["outcome"] = {"column": outcome.get("column"),
                            "positive": list(outcome.get("positive", [1, "true", "yes"]))}
    time_cfg = cfg.get("time")
    if time_cfg:
        facts["time"] = time_cfg.get("column") if isinstance(time_cfg, dict) else time_cfg
    elif cfg.get("as_of"):
        when = pd.Timestamp(str(cfg["as_of"]))
        facts["as_of"] = str(when.date()) if when == when.normalize() else when.isoformat()
    return facts


def check_dataset(path: str | Path) -> list[str]:
    """Every problem of a config and its data (empty when it loads cleanly)."""
    try:
        load_dataset(path)
    except DatasetConfigError as exc:
        return exc.problems
    return []


def catalogue_from_metadata(metadata: TrainingSetMetadata) -> tuple[FeatureSpec, ...] | None:
    """The custom catalogue a dataset config stored in a training set's metadata."""
    return metadata.catalogue or None


def snapshot_frame(features, rows: list[dict], as_of: object = None) -> pd.DataFrame:
    """Feature frame for a lead-snapshot model from raw feature values (one dict per lead).

    For scoring such a model outside a training set (batch or service): each row holds
    ``lead_id`` and values keyed by feature name (as declared in the config, after its
    cleaning: ``bool`` as 1/0 or yes/no, categories as text). Missing features are scored
    as unknown. ``features``: the model's features (``bundle.spec.features_``).

    Raises:
        ValueError: naming every unknown feature key or non-numeric value.
    """
    names = [f.name for f in features]
    problems = [f"row {i}: unknown feature {k!r}" for i, row in enumerate(rows)
                for k in row if k not in (*names, "lead_id", "as_of")]
    raw = pd.DataFrame(rows)
    out = pd.DataFrame({
        "lead_id": raw["lead_id"].astype(str) if "lead_id" in raw
        else pd.Series([str(i) for i in range(len(raw))]),
        "as_of": pd.Series(pd.Timestamp(as_of) if as_of is not None else pd.Timestamp.now(),
                           index=raw.index).astype(TIMESTAMP_UNIT),
    })
    for f in features:
        values = raw[f.name] if f.name in raw else pd.Series(np.nan, index=raw.index,
                                                              dtype=object)
        out[f.name] = _typed(values, f.dtype, f"feature {f.name}", problems).to_numpy()
    if problems:
        raise ValueError("; ".join(problems))
    return out
