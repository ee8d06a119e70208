"""The training set built where the data is: workers read, plan, compute and write.

``features.distributed`` (the first Dask engine) has the client read all four tables,
plan every snapshot and gather every feature row. This module is the next step, for
input stored as partitioned Parquet datasets (``features.partitioned``):

1. **Read and check** on the workers: ``features.dask_read.check_tables`` (the data
   contract per partition, duplicates and orphans as distributed aggregations and joins,
   the single-machine error report).
2. **The data window** from aggregates: the first lead creation, per timestamp column a
   count and a maximum, the ``k + 1`` latest timestamps for the outlier-tail rule (``k``
   is 0.1 % of the rows, a tree reduction of per-partition ``nlargest``), and per column
   the rows after the data end (a count and the first three keys, counted in the same
   pass as step 4). The client applies ``features.pipeline.resolve_window``'s rule to
   these few numbers.
3. **Repartition by lead**: every table gets ``_p = partition_of(lead_id, n)`` (the stable
   SipHash of ``features.distributed``) and is shuffled so that output partition ``p``
   holds exactly the rows with ``_p == p``: leads, activities (only the three columns a
   feature reads, only rows up to the last snapshot time), conversions, and the accounts
   of the partition's leads (a join of the distinct ``(account_id, _p)`` pairs onto the
   accounts, so an account whose leads fall in several partitions goes to each).
4. **Plan, compute and write per partition**, one task per partition: ``make_snapshots``
   (with the whole data's start, so the calendar is the single-machine one),
   ``compute_features`` and ``label_snapshots``, unchanged, on the partition's rows;
   the task writes ``part-NNNNN.parquet`` itself and returns a few facts (rows,
   positives, leads, first and last ``as_of``, file size, SHA-256, a content hash).
5. **Metadata** by the client from those facts: the same ``TrainingSetMetadata`` the
   single-machine build records (except ``fingerprint``, see below), written into the
   folder's manifest before the folder is renamed into place, and as a sidecar.

The training set is the single-machine one: the same rows and values, read back with
``features.partitioned.read_training_dataset`` (sorted by ``(as_of, lead_id)``, which is
the single-machine order, and with categories rebuilt over the whole column).

``fingerprint`` here hashes the per-file content hashes in partition order, so it names
this dataset's content without any process reading all of it; it differs from the
single-file fingerprint of the same rows. Training recomputes its own data fingerprint
from the frame it trains on, which is identical.

What the client still holds: the file listing Dask plans from, the aggregates above
(the ``k + 1`` latest timestamps are the largest: 0.1 % of the timestamps, 8 bytes
each), one dict of facts per partition, and the metadata. It holds no table and no
feature row. Each pass of steps 1 and 2 reads and types the input again rather than
keeping it in worker memory, so the cluster's memory bounds nothing but one partition
per worker thread (and the shuffle).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import numpy as np
import pandas as pd

from features.build import fingerprint, sidecar_path
from features.catalogue import feature_names
from features.contract import (
    CONTRACT,
    TIME_COLUMNS,
    UnknownActivity,
    Violation,
    _examples,
)
from features.dask_read import ORDER, CheckedTables, check_tables, read_raw_tables
from features.distributed import dask_client, default_partitions, partition_of
from features.io import atomic_write, is_url, join, replace_dir, write_text
from features.metadata import RowsAfterEnd, TrainingSetMetadata
from features.partitioned import DATASET_MANIFEST
from features.pipeline import (
    TAIL_GAP,
    TAIL_SHARE,
    DataWindow,
    DataWindowError,
    PipelineConfig,
    _utc_naive,
    compute_features,
    label_snapshots,
    make_snapshots,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

PART = "_p"
"""Column holding each row's lead partition during the shuffle."""

ACTIVITY_COLUMNS: tuple[str, ...] = ("lead_id", "occurred_at", "activity_type")
"""The activity columns ``compute_features`` reads; the shuffle moves no other."""


@dataclass(frozen=True)
class TrainingDataset:
    """A training set written as a partitioned Parquet folder by the workers.

    Attributes:
        location: The folder (path or URL).
        metadata: What the single-machine build would record, ``fingerprint`` aside.
        files: Per written file: name, rows, bytes, SHA-256 and content hash.
    """

    location: str | Path
    metadata: TrainingSetMetadata
    files: tuple[dict, ...]


# -- the data window from aggregates ----------------------------------------------------


def _micros_of(values: pd.Series) -> pd.Series:
    """Microseconds since the epoch of one partition's timestamps, missing ones dropped."""
    return values.dropna().astype("int64").rename("micros")


def _micros(frame: dd.DataFrame, column: str) -> dd.Series:
    """A timestamp column as integer microseconds (opaque to Dask's optimiser, which
    would otherwise push the later integer comparisons down onto the timestamps)."""
    return frame[column].map_partitions(_micros_of, meta=pd.Series(dtype="int64", name="micros"))


def _stamp(micros: int) -> pd.Timestamp:
    return pd.Timestamp(np.datetime64(int(micros), "us"))


def _tail(top: np.ndarray, k_max: int) -> tuple[int, int]:
    """``features.pipeline._before_tail`` from the ``k_max + 1`` largest timestamps."""
    tail = np.sort(top)
    big = np.flatnonzero(np.diff(tail) >= TAIL_GAP.value // 1_000)
    if big.size == 0:
        return int(tail[-1]), 0
    return int(tail[big[0]]), k_max - int(big[0])


def _late_rows(
    frame: pd.DataFrame, name: str, column: str, end: pd.Timestamp
) -> tuple[int, tuple[str, ...]]:
    """Rows of one partition dated after the data end: a count and the first 3 keys."""
    late = (frame[column] > end).to_numpy(dtype=bool, na_value=False)
    if not late.any():
        return 0, ()
    return int(late.sum()), _examples(frame, late, CONTRACT[name].example_key)


def _compute(*values: object) -> tuple:
    from features.dask_read import _compute as compute

    return compute(*values)


def window_end(
    tables: CheckedTables, data_end: object = None, export_time: object = None
) -> tuple[DataWindow, int]:
    """The data window's start, end and rule from aggregates (no late-row warnings yet).

    Returns:
        The window with ``after_end`` still empty (see :func:`late_rows`), and the number
        of activity rows, to size the partitions.
    """
    import dask
    import dask.dataframe as dd

    series = [_micros(tables[name], column) for name, column in TIME_COLUMNS]
    export = None if export_time is None else _utc_naive(export_time, "export time")
    cutoff = export if export is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    said = "the export time" if export is not None else "now"
    cut = int(np.datetime64(cutoff, "us").astype(np.int64))
    known = [s[s <= cut] for s in series]
    start, counts, maxima, n_known, known_max = dask.compute(
        tables["leads"]["created_at"].min(),
        [s.count() for s in series],
        [s.max() for s in series],
        [s.count() for s in known],
        [s.max() for s in known],
    )
    if sum(counts) == 0:
        raise DataWindowError("the data holds no timestamp at all: no window to build on")
    latest = _stamp(max(int(m) for m, c in zip(maxima, counts, strict=True) if c))
    if data_end is not None:
        end = _utc_naive(data_end, "data end")
        if end > cutoff:
            raise DataWindowError(
                f"the data end {end} is after {said} ({cutoff}): label windows cannot run "
                "into time nobody has observed; give an earlier --data-end"
            )
        rule = "given"
    else:
        total_known = sum(n_known)
        if total_known == 0:
            raise DataWindowError(
                f"every timestamp in the data is after {said} ({cutoff}): give the real "
                "export time (--export-time) or the data end (--data-end)"
            )
        k_max = int(total_known * TAIL_SHARE)
        if k_max == 0:
            last, cut_rows = max(int(m) for m, c in zip(known_max, n_known, strict=True) if c), 0
        else:
            top = dd.concat(known).nlargest(k_max + 1).compute().to_numpy()
            last, cut_rows = _tail(top, k_max)
        end = _stamp(last)
        if cut_rows:
            rule = "before_outliers"
        elif total_known < sum(counts):
            rule = "before_export"
        else:
            rule = "latest"
    activity_rows = counts[[name for name, _ in TIME_COLUMNS].index("activities")]
    return DataWindow(pd.Timestamp(start), end, rule, latest, export), int(activity_rows)


def late_rows(tables: CheckedTables, end: pd.Timestamp) -> tuple[dict, object]:
    """Lazy: per timestamp column each partition's rows after ``end`` (count and first
    keys), and the activities at or before it. The build computes them with its own
    tasks, so they cost no pass of their own."""
    import dask

    late = {
        (name, column): [
            dask.delayed(_late_rows)(part, name, column, end) for part in tables[name].to_delayed()
        ]
        for name, column in TIME_COLUMNS
    }
    return late, (tables["activities"]["occurred_at"] <= end).sum()


def with_late_rows(window: DataWindow, found: dict) -> DataWindow:
    """``window`` with ``rows_after``'s warnings, from what :func:`late_rows` found."""
    after_end = []
    for name, column in TIME_COLUMNS:
        parts = found[(name, column)]
        count = sum(n for n, _ in parts)
        if count:
            examples = tuple(e for _, ex in parts for e in ex)[:3]
            after_end.append(
                Violation(
                    name,
                    column,
                    f"dated after the data end {window.end} (left out of snapshots, features "
                    "and labels)",
                    count,
                    examples,
                    level="warning",
                )
            )
    return replace(window, after_end=tuple(after_end))


def resolve_window_dask(
    tables: CheckedTables, data_end: object = None, export_time: object = None
) -> tuple[DataWindow, int]:
    """``features.pipeline.resolve_window`` on the workers, and the activities up to the end.

    Same window, same rule, same errors, same warnings as the single-machine function
    on the same rows; the client only sees aggregates.

    Returns:
        The window and the number of activities at or before its end (metadata).
    """
    window, _ = window_end(tables, data_end, export_time)
    late, activities = late_rows(tables, window.end)
    found, n_activities = _compute(late, activities)
    return with_late_rows(window, found), int(n_activities)


# -- repartition by lead ----------------------------------------------------------------


def _tag(frame: pd.DataFrame, n_partitions: int) -> pd.DataFrame:
    """``frame`` with its lead partition in ``PART`` (runs on the workers)."""
    out = frame.drop(columns=[ORDER], errors="ignore")
    return out.assign(**{PART: partition_of(out["lead_id"], n_partitions)})


def _by_partition(frame: dd.DataFrame, n_partitions: int) -> dd.DataFrame:
    """Shuffle so that output partition ``p`` holds exactly the rows with ``PART == p``."""
    return frame.set_index(PART, divisions=tuple(range(n_partitions + 1)))


def _declared(name: str) -> list[str]:
    """The contract's columns of a table: a user's extra columns are not shuffled."""
    return [column.name for column in CONTRACT[name].columns]


def lead_partitions(
    tables: CheckedTables, n_partitions: int, last_as_of: pd.Timestamp
) -> dict[str, dd.DataFrame]:
    """The four tables shuffled by lead: partition ``p`` of each holds lead partition ``p``."""

    def tagged(frame: dd.DataFrame) -> dd.DataFrame:
        meta = _tag(frame._meta, n_partitions)
        return frame.map_partitions(_tag, n_partitions, meta=meta)

    leads = tagged(tables["leads"][_declared("leads")])
    activities = tables["activities"][list(ACTIVITY_COLUMNS)]
    activities = tagged(activities[activities["occurred_at"] <= last_as_of])
    conversions = tagged(tables["conversions"][_declared("conversions")])
    pairs = leads[["account_id", PART]].drop_duplicates(subset=["account_id", PART])
    accounts = pairs.merge(tables["accounts"][_declared("accounts")], on="account_id")
    return {
        "leads": _by_partition(leads, n_partitions),
        "accounts": _by_partition(accounts, n_partitions),
        "activities": _by_partition(activities, n_partitions),
        "conversions": _by_partition(conversions, n_partitions),
    }


# -- one partition's build (runs on a worker) -------------------------------------------


@dataclass(frozen=True)
class PartitionPlan:
    """What every partition's task needs besides its rows (small, sent with each task)."""

    config: PipelineConfig
    start: pd.Timestamp
    last_as_of: pd.Timestamp
    folder: str


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index(drop=True)


def build_partition(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    activities: pd.DataFrame,
    conversions: pd.DataFrame,
    number: int,
    plan: PartitionPlan,
) -> dict:
    """Snapshots, features and labels of one lead partition, written where they are made.

    The same functions as the single-machine build, on this partition's rows: each
    lead's snapshots, features and label depend on its own rows only.

    Returns:
        Facts for the metadata and the manifest (``rows`` 0 and no file when no lead of
        the partition has a snapshot).
    """
    leads, accounts = _rows(leads), _rows(accounts)
    activities, conversions = _rows(activities), _rows(conversions)
    config = plan.config
    snaps = make_snapshots(leads, conversions, config.snapshots, plan.last_as_of, start=plan.start)
    facts: dict = {"partition": number, "rows": len(snaps)}
    if snaps.empty:
        return facts
    frame = compute_features(leads, accounts, activities, snaps, config.icp)
    frame["label"] = label_snapshots(snaps, conversions, config.horizon_days)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    name = f"part-{number:05d}.parquet"
    with fsspec.open(str(join(plan.folder, name)), "wb") as handle:
        handle.write(data)
    return {
        **facts,
        "name": name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "fingerprint": fingerprint(frame),
        "positives": int(frame["label"].sum()),
        "leads": int(frame["lead_id"].nunique()),
        "first_as_of": str(frame["as_of"].min()),
        "last_as_of": str(frame["as_of"].max()),
    }


def _no_snapshot(window: DataWindow, horizon_days: int) -> ValueError:
    return ValueError(
        f"no snapshot has a complete {horizon_days}-day label window: the data runs "
        f"from {window.start.date()} to {window.end.date()}; use a shorter horizon or "
        "more history"
    )


def dataset_metadata(
    files: list[dict], config: PipelineConfig, window: DataWindow, activities: int
) -> TrainingSetMetadata:
    """``features.pipeline.training_metadata`` from the partitions' facts."""
    return TrainingSetMetadata(
        horizon_days=config.horizon_days,
        snapshot_rule=config.snapshots.kind,
        snapshot_offsets_days=tuple(config.snapshots.offsets_days),
        max_lead_age_days=config.snapshots.max_lead_age_days,
        data_start=str(window.start),
        data_end=str(window.end),
        data_end_rule=window.rule,
        export_time=None if window.export_time is None else str(window.export_time),
        latest_timestamp=str(window.latest),
        rows_after_data_end=tuple(
            RowsAfterEnd(table=v.table, column=v.column, count=v.count, examples=v.examples)
            for v in window.after_end
        ),
        first_as_of=str(min(pd.Timestamp(f["first_as_of"]) for f in files)),
        last_as_of=str(max(pd.Timestamp(f["last_as_of"]) for f in files)),
        rows=sum(f["rows"] for f in files),
        positives=sum(f["positives"] for f in files),
        leads=sum(f["leads"] for f in files),
        activities=activities,
        features=tuple(feature_names()),
        population=config.snapshots.population(),
        icp=config.icp.record(),
        fingerprint=dataset_fingerprint(files),
    )


def dataset_fingerprint(files: list[dict]) -> str:
    """A hash of the files' content hashes in partition order: names the dataset's content
    without any process reading all of it (not the single-file ``fingerprint``)."""
    joined = ",".join(f["fingerprint"] for f in files)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


# -- the whole build --------------------------------------------------------------------


def build_training_dataset(
    tables: CheckedTables,
    config: PipelineConfig,
    out: str | Path,
    client: Client,
    n_partitions: int | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainingDataset:
    """Build the training set on the cluster and write it as a Parquet folder at ``out``.

    The folder is filled under a temporary name and renamed into place at the end, so a
    failed build leaves the previous training set as it was.

    Args:
        tables: Checked tables (``features.dask_read.check_tables``), lazy.
        config: Horizon, snapshot rule, data end and ICP.
        out: The training-set folder (``training_set.parquet``), path or fsspec URL. On
            a real cluster it must be storage every worker can write to.
        client: The cluster to run on.
        n_partitions: Lead partitions (default: ``features.distributed.default_partitions``).

    Raises:
        DataWindowError: the data end cannot be set.
        ValueError: no snapshot has a complete label window.
    """
    import dask

    progress("resolving the data window from aggregates")
    window, activity_rows = window_end(tables, config.data_end, config.export_time)
    last_as_of = window.end - pd.Timedelta(days=config.horizon_days)
    if last_as_of < window.start:  # no lead exists yet at any possible snapshot
        raise _no_snapshot(window, config.horizon_days)
    threads = sum(client.nthreads().values())
    n = n_partitions or default_partitions(threads, activity_rows)
    shuffled = lead_partitions(tables, n, last_as_of)
    progress(f"planning, computing and writing {n} lead partitions on the workers")
    written: list[dict] = []

    def fill(folder: Path | str) -> None:
        plan = PartitionPlan(config, window.start, last_as_of, str(folder))
        tasks = [
            dask.delayed(build_partition)(*parts, number, plan)
            for number, parts in enumerate(
                zip(*(shuffled[t].to_delayed() for t in CONTRACT), strict=True)
            )
        ]
        late, activities = late_rows(tables, window.end)
        results, found, n_activities = _compute(tasks, late, activities)
        facts = [f for f in results if f["rows"]]
        if not facts:
            raise _no_snapshot(window, config.horizon_days)
        metadata = dataset_metadata(facts, config, with_late_rows(window, found), int(n_activities))
        files = [
            {k: f[k] for k in ("name", "rows", "bytes", "sha256", "fingerprint")} for f in facts
        ]
        manifest = {"metadata": metadata.to_json(), "files": files}
        written.append(manifest)
        with fsspec.open(str(join(folder, DATASET_MANIFEST)), "wb") as handle:
            handle.write(json.dumps(manifest, indent=2, default=str).encode())

    replace_dir(out, fill)  # type: ignore[arg-type]
    manifest = written[0]
    sidecar = {**manifest["metadata"], "parquet_dataset": {"files": manifest["files"]}}
    text = json.dumps(sidecar, indent=2, default=str)
    atomic_write(sidecar_path(out), lambda tmp: write_text(tmp, text + "\n"))
    return TrainingDataset(
        out if is_url(out) else Path(out),
        TrainingSetMetadata.from_json(manifest["metadata"], out),
        tuple(manifest["files"]),
    )


def run_features_partitioned(
    data_dir: str | Path,
    out: str | Path,
    config: PipelineConfig,
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
    scheduler: str | Client = "local",
    n_workers: int = 2,
    n_partitions: int | None = None,
) -> TrainingDataset:
    """``leadscore features --engine dask`` for a folder of partitioned datasets.

    Nothing is written unless the checks and the whole build succeed.

    Args:
        data_dir: Folder or fsspec URL holding the four tables, each a hive-partitioned
            Parquet folder or a single Parquet/CSV file.
        out: Training-set folder to write (path or URL every worker can reach).
        scheduler: ``local`` (a ``LocalCluster`` for this call), a scheduler address, or
            an existing ``distributed.Client``.
        n_workers: Worker processes of the local cluster (ignored otherwise).
        n_partitions: Lead partitions (default: automatic).
    """
    from contextlib import nullcontext

    connect = (
        dask_client(scheduler, n_workers) if isinstance(scheduler, str) else nullcontext(scheduler)
    )
    with connect as client:
        progress("validating input tables on the workers")
        tables = check_tables(read_raw_tables(data_dir), unknown_activity, timestamp_format)
        return build_training_dataset(tables, config, out, client, n_partitions, progress)
