"""Partitioned Parquet datasets: the layout a cluster reads its inputs from and writes to.

A table too big for one file is a folder of Parquet files, hive-style:
``activities/month=2025-01/part-0.parquet``. Workers each read some of the files, so no
single process ever holds the whole table (``features.dask_read``). This module holds
what needs no cluster: finding such datasets, writing one from frames (the simulator's
``--partitioned`` output, tests, benchmarks) and reading a training set that the Dask
engine wrote as a dataset back into one frame.

Layout of an input folder, any mix per table::

    DATA/leads/month=2024-01/part-0.parquet   a hive-partitioned dataset (a folder)
    DATA/accounts.parquet                     or a single file, as the single-machine
    DATA/conversions.csv                      engine reads it

Layout of a training set written by the workers (``features.dask_build``)::

    OUT/part-00000.parquet ...   one file per lead partition, written by a worker
    OUT/_leadscore.json          the metadata and every file's rows, size and SHA-256,
                                 written by the client last, before the folder is renamed
    OUT.json                     the same metadata as a sidecar, as for a single file
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE
from features.contract import TABLES
from features.io import is_url, join, replace_dir
from features.metadata import TrainingSetMetadata
from leadscore.errors import LeadscoreError

PARTITION_COLUMNS: dict[str, str] = {
    "leads": "created_at",
    "activities": "occurred_at",
    "conversions": "converted_at",
}
"""The time column each table is partitioned by month on; accounts have none."""

DATASET_MANIFEST = "_leadscore.json"
"""File inside a training-set folder holding its metadata and file list."""

DATASET_NAMES: tuple[str, ...] = ("{table}", "{table}.parquet")
"""Folder names a table's dataset may have in a data folder (``leads/``, ``leads.parquet/``)."""

NO_MONTH = "none"
"""Partition value of rows without a timestamp (the contract reports them)."""


class TrainingDatasetError(LeadscoreError, ValueError):
    """A training-set folder is incomplete or does not match its manifest."""


def location_fs(location: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a local path or fsspec URL (local paths made absolute)."""
    if is_url(location):
        return fsspec.core.url_to_fs(str(location))
    return fsspec.filesystem("file"), str(Path(location).resolve())


def is_dataset(location: str | Path) -> bool:
    """Whether ``location`` is a folder (a partitioned dataset) rather than a file."""
    fs, path = location_fs(location)
    return bool(fs.isdir(path))


def holds_partitioned_tables(data_dir: str | Path) -> bool:
    """Whether a data folder holds at least one table as a partitioned dataset.

    ``leadscore features --engine dask`` reads such a folder on the workers; a folder of
    single files keeps the engine that reads them on the client.
    """
    return any(
        is_dataset(join(data_dir, name.format(table=table)))
        for table in TABLES
        for name in DATASET_NAMES
    )


def month_of(values: pd.Series) -> pd.Series:
    """``YYYY-MM`` of each timestamp (``NO_MONTH`` where it is missing or unreadable)."""
    stamps = pd.to_datetime(values, errors="coerce", utc=True)
    return stamps.dt.strftime("%Y-%m").fillna(NO_MONTH).astype(str)


def write_partitioned_table(frame: pd.DataFrame, folder: str | Path, column: str) -> None:
    """Write ``frame`` as ``folder/month=YYYY-MM/part-0.parquet``, one file per month.

    Months are written in order and rows keep their order within a month, so reading
    the folder back (files in path order) gives the rows sorted by month, stably.
    """
    months = month_of(frame[column])
    fs, root = location_fs(folder)
    for month in sorted(months.unique()):
        part = frame.loc[(months == month).to_numpy()]
        fs.makedirs(f"{root}/month={month}", exist_ok=True)
        with fs.open(f"{root}/month={month}/part-0.parquet", "wb") as handle:
            part.to_parquet(handle, index=False)


def write_partitioned_tables(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, single: tuple[str, ...] = ()
) -> Path | str:
    """Write the contract's tables as hive-partitioned Parquet datasets, by month.

    ``leads``, ``activities`` and ``conversions`` become folders partitioned by the
    month of their time column; ``accounts`` (no time column) and any other frame
    (``ground_truth``) stay single Parquet files, which the Dask reader accepts too.
    The whole folder is written beside ``out_dir`` and swapped in at the end.

    Args:
        tables: The four tables (and any extra frames, written as single files).
        out_dir: Folder or fsspec URL.
        single: Tables to write as single files even though they have a time column.
    """

    def fill(folder: Path | str) -> None:
        for name, frame in tables.items():
            column = PARTITION_COLUMNS.get(name)
            if column is None or name in single or column not in frame.columns:
                with fsspec.open(str(join(folder, f"{name}.parquet")), "wb") as handle:
                    frame.to_parquet(handle, index=False)
            else:
                write_partitioned_table(frame, join(folder, name), column)

    return replace_dir(out_dir, fill)  # type: ignore[arg-type]


def read_manifest(location: str | Path) -> dict:
    """The manifest of a training-set folder (metadata and files).

    Raises:
        TrainingDatasetError: the folder has no manifest (a run that did not finish, or
            a folder some other tool wrote).
    """
    fs, root = location_fs(location)
    path = f"{root}/{DATASET_MANIFEST}"
    if not fs.exists(path):
        raise TrainingDatasetError(
            f"{location} is a folder without {DATASET_MANIFEST}: not a training set written "
            "by leadscore features --engine dask (rebuild it)"
        )
    with fs.open(path, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows and dtypes of a gathered training set exactly as the single-machine build has
    them: sorted by ``(as_of, lead_id)`` (the snapshot order ``make_snapshots`` gives) and
    each categorical feature's categories inferred, sorted, over the whole column (each
    file only knew the values its own leads had)."""
    frame = frame.sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)
    for spec in CATALOGUE:
        if spec.dtype == "category" and spec.name in frame.columns:
            values = frame[spec.name]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(values.cat.categories.dtype)
            frame[spec.name] = values.astype("category")
    if "label" in frame.columns:
        frame["label"] = frame["label"].to_numpy(dtype=np.int8)
    return frame


def read_training_dataset(location: str | Path) -> tuple[pd.DataFrame, TrainingSetMetadata]:
    """Read a training-set folder into one frame, identical to the single-machine build.

    This gathers the whole training set into this process: what training does today
    (training from Dask collections is the next step, issue 20 item 3).

    Raises:
        TrainingDatasetError: no manifest, or a file it lists is missing.
    """
    manifest = read_manifest(location)
    fs, root = location_fs(location)
    frames = []
    for entry in manifest["files"]:
        path = f"{root}/{entry['name']}"
        if not fs.exists(path):
            raise TrainingDatasetError(
                f"{location}: {entry['name']} is listed in {DATASET_MANIFEST} but missing"
            )
        with fs.open(path, "rb") as handle:
            frames.append(pd.read_parquet(handle))
    metadata = TrainingSetMetadata.from_json(manifest["metadata"], location)
    if not frames:
        raise TrainingDatasetError(f"{location}: {DATASET_MANIFEST} lists no files")
    return restore_frame(pd.concat(frames, ignore_index=True)), metadata
