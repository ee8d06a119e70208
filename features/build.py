"""The feature stage: data folder in, training set file (plus JSON sidecar) out.

Folders and files may be local paths or fsspec URLs (``s3://…``), see ``features.io``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.contract import UnknownActivity
from features.io import (
    _is_dir,
    atomic_write,
    exists,
    is_url,
    load_tables,
    read_bytes,
    read_text,
    write_bytes,
    write_text,
)
from features.metadata import TrainingSetMetadata
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from leadscore.errors import LeadscoreError


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


PARQUET_METADATA_KEY = b"leadscore.training_set"
"""Key of the training set's metadata inside the Parquet file's own schema metadata."""
SIDECAR_FILE_KEY = "parquet_file"
"""Sidecar entry naming the Parquet file it describes: name, size and SHA-256."""

log = logging.getLogger(__name__)


class TrainingSetMismatchError(LeadscoreError, ValueError):
    """A training set's sidecar describes another Parquet file than the one beside it."""


def _file_facts(location: str | Path, data: bytes) -> dict:
    name = str(location).rstrip("/").rsplit("/", 1)[-1]
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_training_set(training_set: TrainingSet, out: str | Path) -> Path | str:
    """Write the training set as Parquet and its metadata as JSON, both atomically.

    The metadata travels *inside* the Parquet file too (its schema metadata), so the
    Parquet rename is the one commit point: a run killed before it leaves the previous
    training set, one killed after it leaves the complete new one, whatever state the
    sidecar is in. The sidecar, renamed last, is a readable copy that also records the
    size and SHA-256 of the Parquet file it describes, so ``read_training_set`` can tell
    a stale or foreign sidecar from the right one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = out if is_url(out) else Path(out)
    if not str(target).endswith(".parquet"):
        raise ValueError(f"training set must be a .parquet file, got {target}")
    meta = training_set.metadata.model_copy(
        update={"fingerprint": fingerprint(training_set.frame)}
    ).to_json()
    table = pa.Table.from_pandas(training_set.frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {
            **(table.schema.metadata or {}),
            PARQUET_METADATA_KEY: json.dumps(meta, default=str).encode(),
        }
    )
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)  # snappy, as DataFrame.to_parquet
    data = buffer.getvalue().to_pybytes()
    atomic_write(target, lambda tmp: write_bytes(tmp, data))
    side = {**meta, SIDECAR_FILE_KEY: _file_facts(target, data)}
    text = json.dumps(side, indent=2, default=str)
    atomic_write(sidecar_path(target), lambda tmp: write_text(tmp, text + "\n"))
    return target


def read_training_set(path: str | Path) -> TrainingSet:
    """Read a training set and its metadata, making sure the two belong together.

    The metadata comes from the sidecar when it records this very Parquet file (same
    size and SHA-256). A sidecar that describes another file (e.g. a run killed between
    its two renames, or files copied separately) is not used: the metadata stored inside
    the Parquet file is, with a warning; a Parquet file written without it (by an older
    leadscore or another tool) and a sidecar that does not match it raise
    ``TrainingSetMismatchError`` naming both files. Empty metadata when there is neither.

    Raises:
        FileNotFoundError: no Parquet file at ``path``.
        TrainingSetMismatchError: the sidecar does not describe this Parquet file.
        TrainingSetFormatError: the metadata used is in another format (an older
            leadscore wrote it): rebuild the training set.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = path if is_url(path) else Path(path)
    if not exists(target):
        raise FileNotFoundError(f"training set not found: {target}")
    if _is_dir(target):  # a Parquet folder the Dask engine's workers wrote
        from features.partitioned import read_training_dataset

        return TrainingSet(*read_training_dataset(target))
    data = read_bytes(target)
    schema = pq.read_schema(pa.BufferReader(data))
    frame = pd.read_parquet(io.BytesIO(data))
    raw = (schema.metadata or {}).get(PARQUET_METADATA_KEY)
    embedded = json.loads(raw) if raw else None
    side = sidecar_path(target)
    sidecar = json.loads(read_text(side)) if exists(side) else None
    if sidecar is None:
        return TrainingSet(
            frame,
            TrainingSetMetadata.from_json(embedded, target) if embedded else TrainingSetMetadata(),
        )
    recorded = sidecar.pop(SIDECAR_FILE_KEY, None)
    actual = _file_facts(target, data)
    if recorded is not None:
        matches = (recorded.get("bytes"), recorded.get("sha256")) == (
            actual["bytes"],
            actual["sha256"],
        )
    elif embedded is None and "fingerprint" in sidecar:  # an older pair: check the content
        matches = sidecar["fingerprint"] == fingerprint(frame)
    else:
        matches = embedded is None  # an older sidecar beside a new file is stale
    if matches:
        return TrainingSet(frame, TrainingSetMetadata.from_json(sidecar, side))
    said = (
        f"a file of {recorded.get('bytes')} bytes, SHA-256 {str(recorded.get('sha256'))[:16]}…"
        if recorded
        else "other data"
    )
    problem = (
        f"the sidecar {side} does not describe the training set {target} (it "
        f"records {said}; the file has {actual['bytes']} bytes, SHA-256 "
        f"{actual['sha256'][:16]}…)"
    )
    if embedded is None:
        raise TrainingSetMismatchError(
            f"{problem}, and {target} carries no metadata of its own: the two files come "
            "from different runs. Rebuild them together (leadscore features) or put the "
            "matching sidecar back"
        )
    log.warning(
        "%s; using the metadata stored in %s itself (rerun leadscore features to "
        "rewrite the sidecar)",
        problem,
        target,
    )
    return TrainingSet(frame, TrainingSetMetadata.from_json(embedded, target))


def run_features(
    data_dir: str | Path,
    out: str | Path,
    config: PipelineConfig,
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
    build: Callable[[dict, PipelineConfig], TrainingSet] = build_training_set,
    engine: str = "",
) -> TrainingSet:
    """Load and validate a data folder, build the training set and write it.

    Nothing is written unless validation and the whole build succeed.

    Args:
        build: The feature step (``build_training_set``, or the Dask engine's).
        engine: Named in the progress line (``" on dask"``).
    """
    progress("validating input tables")
    tables = load_tables(data_dir, unknown_activity, timestamp_format)
    progress(f"computing point-in-time features{engine}")
    training_set = build(tables, config)
    progress("writing training set")
    write_training_set(training_set, out)
    return training_set
