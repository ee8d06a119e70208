"""The feature stage: data folder in, training set file (plus JSON sidecar) out.

Folders and files may be local paths or fsspec URLs (``s3://…``), see ``features.io``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.contract import UnknownActivity
from features.io import atomic_write, exists, is_url, load_tables, read_text, write_text
from features.pipeline import PipelineConfig, TrainingSet, build_training_set


def sidecar_path(out: str | Path) -> Path | str:
    """The metadata file written next to a training set."""
    if is_url(out):
        return f"{out}.json"
    path = Path(out)
    return path.with_name(path.name + ".json")


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable hash of a frame's content, to tell which data a model was trained on."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


def write_training_set(training_set: TrainingSet, out: str | Path) -> Path | str:
    """Write the training set as Parquet and its metadata as JSON, both atomically.

    The Parquet file is renamed into place last but one and the sidecar last, so a
    reader never pairs a new file with stale metadata for long; each file on its own is
    always complete.
    """
    target = out if is_url(out) else Path(out)
    if not str(target).endswith(".parquet"):
        raise ValueError(f"training set must be a .parquet file, got {target}")
    meta = {**training_set.metadata, "fingerprint": fingerprint(training_set.frame)}
    atomic_write(target, lambda tmp: training_set.frame.to_parquet(tmp, index=False))
    text = json.dumps(meta, indent=2, default=str)
    atomic_write(sidecar_path(target), lambda tmp: write_text(tmp, text + "\n"))
    return target


def read_training_set(path: str | Path) -> TrainingSet:
    """Read a training set and its sidecar metadata (empty when the sidecar is absent)."""
    target = path if is_url(path) else Path(path)
    if not exists(target):
        raise FileNotFoundError(f"training set not found: {target}")
    frame = pd.read_parquet(target)
    side = sidecar_path(target)
    metadata = json.loads(read_text(side)) if exists(side) else {}
    return TrainingSet(frame, metadata)


def run_features(
    data_dir: str | Path,
    out: str | Path,
    config: PipelineConfig,
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainingSet:
    """Load and validate a data folder, build the training set and write it.

    Nothing is written unless validation and the whole build succeed.
    """
    progress("validating input tables")
    tables = load_tables(data_dir, unknown_activity, timestamp_format)
    progress("computing point-in-time features")
    training_set = build_training_set(tables, config)
    progress("writing training set")
    write_training_set(training_set, out)
    return training_set
