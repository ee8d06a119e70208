"""From a config file to a training set: validate the config, read its data, check both.

Every problem of the config (``schema``), of the training settings (a ``check_train``
callback from the training stage) and of the data (``readers``) is collected before
anything raises, so ``leadscore check --config FILE`` reports a broken export in one go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from features.catalogue import FeatureSpec
from features.dataset_config.readers import DataReader, read_config
from features.dataset_config.schema import (
    DEFAULT_SPLIT,
    DatasetConfigError,
    LeadSnapshotConfig,
    Split,
    TablesConfig,
    config_actions,
    validate_config,
)
from features.metadata import TrainingSetMetadata
from features.pipeline import TrainingSet

TrainCheck = Callable[[Mapping[str, Any]], list[str]]


def load_dataset(path: str | Path, check_train: TrainCheck | None = None) -> TrainingSet:
    """Read a dataset config and the data it points at; return a training set.

    The frame has ``lead_id``, ``as_of``, ``label`` and one column per feature. The
    metadata carries ``catalogue`` (the features as serialised ``FeatureSpec``), ``split``,
    ``points`` and ``train`` settings, and ``dataset`` (name, kind, config path).

    Args:
        path: The config file (YAML or TOML).
        check_train: The problems of the config's ``train`` settings, worded as
            ``train.<key> ...``; the training stage passes
            ``training.config.train_problems`` (features cannot type them itself).

    Raises:
        DatasetConfigError: listing every problem in the config and the data.
    """
    path = Path(path).resolve()
    raw = read_config(path)
    cfg, problems = validate_config(raw)
    reader = DataReader(path.parent)
    catalogue: list[FeatureSpec] = []
    extra_meta: dict = {}
    frame = pd.DataFrame()
    if isinstance(cfg, LeadSnapshotConfig):
        frame = reader.snapshot(cfg)
        catalogue = [f.to_spec() for f in cfg.features if f.key]
    elif isinstance(cfg, TablesConfig):
        from features.catalogue import CATALOGUE

        frame, extra, extra_meta = reader.tables(cfg, run_pipeline=not problems)
        catalogue = list(CATALOGUE) + list(extra)
    problems += reader.problems
    kind = raw.get("kind")
    # A tables-kind config without a split uses the pipeline's own time split.
    split_cfg = cfg.split if cfg is not None else None
    split = (
        None
        if kind == "tables" and split_cfg is None
        else (split_cfg or Split.model_validate(DEFAULT_SPLIT)).spec()
    )
    train = dict(cfg.train or {}) if cfg is not None else {}
    if check_train is not None:
        problems += check_train(train)
    problems += _label_problems(frame, split)
    if problems or cfg is None:
        raise DatasetConfigError(path, problems)
    metadata = {
        **extra_meta,
        "dataset": {
            "name": cfg.name or path.stem,
            "kind": kind,
            "config": str(path),
            **_snapshot_facts(cfg),
            **_action_facts(cfg),
        },
        "catalogue": catalogue,
        "signals": [s.to_spec() for s in cfg.signals if s is not None],
        "features": [f.name for f in catalogue],
        "split": split,
        "points": cfg.points.spec() if cfg.points else None,
        "train": train,
        "rows": len(frame),
        "positives": int(frame["label"].sum()),
        "leads": int(frame["lead_id"].nunique()),
        "first_as_of": str(frame["as_of"].min()),
        "last_as_of": str(frame["as_of"].max()),
        "excluded": raw.get("exclude", []),
    }
    if kind == "lead_snapshot":
        metadata.setdefault("horizon_days", None)
        metadata.setdefault("snapshot_rule", "lead_snapshot")
    return TrainingSet(frame.reset_index(drop=True), metadata)


def _label_problems(frame: pd.DataFrame, split: dict | None) -> list[str]:
    """One class only, or a time split that leaves a side without rows or conversions."""
    if "label" not in frame.columns or not len(frame):
        return []
    positives = int(frame["label"].sum())
    if positives in (0, len(frame)):
        return [
            f"outcome: every one of the {len(frame):,} rows has the same class "
            f"({'converted' if positives else 'not converted'}); check the outcome "
            "column and its positive values"
        ]
    if (
        not split
        or split.get("kind") != "time"
        or "at" not in split
        or not frame["as_of"].notna().any()
    ):
        return []
    at = pd.Timestamp(split["at"])
    before = int((frame["as_of"] < at).sum())
    after = int((frame["as_of"] >= at).sum())
    if before == 0 or after == 0:
        return [
            f"split: at {split['at']} leaves {before:,} row(s) before and {after:,} at or "
            f"after it; both sides need rows (data runs {frame['as_of'].min().date()} … "
            f"{frame['as_of'].max().date()})"
        ]
    if int(frame.loc[frame["as_of"] >= at, "label"].sum()) == 0:
        return [f"split: no conversion at or after {split['at']}"]
    return []


def _snapshot_facts(cfg: TablesConfig | LeadSnapshotConfig) -> dict:
    """What a ``lead_snapshot`` config states about its rows, for the model card: the id
    column, the outcome and the scoring time (a fixed ``as_of`` or a ``time`` column); for
    a ``tables`` config, the leads file's column of each extra lead feature."""
    if isinstance(cfg, TablesConfig):  # where batch scoring finds each extra lead column
        columns = {str(f.key): str(f.source) for f in cfg.features if f.key}
        return {"lead_columns": columns} if columns else {}
    if not isinstance(cfg, LeadSnapshotConfig):
        return {}
    facts: dict[str, Any] = {"id": cfg.id}
    outcome = cfg.outcome
    if outcome.in_file is not None:
        facts["outcome"] = {
            "in_file": Path(str(outcome.in_file.file)).name,
            "column": outcome.in_file.column or cfg.id,
        }
    else:
        facts["outcome"] = {"column": outcome.column, "positive": list(outcome.positive)}
    if cfg.time is not None:
        facts["time"] = cfg.time.column
    elif cfg.as_of:
        when = pd.Timestamp(str(cfg.as_of))
        facts["as_of"] = str(when.date()) if when == when.normalize() else when.isoformat()
    return facts


def _action_facts(cfg: TablesConfig | LeadSnapshotConfig) -> dict:
    """The config's next best actions, for the model to answer with (none declared:
    nothing, and a ``tables`` model has the built-in ones)."""
    actions = config_actions(cfg)
    return {} if actions is None else {"actions": [a.model_dump() for a in actions]}


def check_dataset(path: str | Path, check_train: TrainCheck | None = None) -> list[str]:
    """Every problem of a config and its data (empty when it loads cleanly)."""
    try:
        load_dataset(path, check_train)
    except DatasetConfigError as exc:
        return exc.problems
    return []


def catalogue_from_metadata(metadata: TrainingSetMetadata) -> tuple[FeatureSpec, ...] | None:
    """The custom catalogue a dataset config stored in a training set's metadata."""
    return metadata.catalogue or None
