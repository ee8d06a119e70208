"""The feature pipeline on a Dask cluster: the same pure function, one partition of leads each.

``compute_features`` needs nothing but one lead's own rows, so the training set splits
cleanly by lead. This module runs it on ``distributed`` workers and returns exactly what
``features.pipeline.build_training_set`` returns for the same tables: same rows, same
order, same values, same dtypes, same metadata.

How a build runs:

1. The client reads and validates the four tables (the whole contract, including the
   cross-table references), then plans snapshots and labels exactly as the single-machine
   build does. Both are cheap next to the features, and doing them once, globally, keeps
   them identical by construction.
2. Each lead goes to partition ``siphash(lead_id) % n_partitions`` (:func:`partition_of`:
   pandas' keyed SipHash, the same in every process, machine and Python hash seed). A
   partition holds only what its features read: its leads that have a snapshot, their
   accounts, their activities up to their last snapshot (three columns, text as
   categorical codes), and their snapshots.
3. Each partition is scattered to one worker and ``compute_features`` runs where it
   lands, so every row travels once, client to one worker; nothing is broadcast.
4. The client gathers the per-partition frames, puts the rows back in the single-machine
   order, rebuilds the categorical dtypes over the whole set and attaches the labels.

Limits of this first version: the client holds the whole input and the whole output in
memory (reading, validation and the Parquet write are single-process); the workers only
parallelise the feature computation. Workers must have the same ``leadscore`` package
installed, because tasks refer to :func:`compute_features` by import path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.build import run_features
from features.catalogue import ACTIVITY_TYPES, CATALOGUE
from features.contract import TIMESTAMP_UNIT, UnknownActivity
from features.pipeline import (
    Icp,
    PipelineConfig,
    TrainingSet,
    compute_features,
    label_snapshots,
    plan_build,
    training_metadata,
)
from features.pipeline import (
    plan_snapshots as plan_snapshots,  # re-exported: benchmarks plan through this module
)

if TYPE_CHECKING:
    from distributed import Client

ACTIVITIES_PER_PARTITION = 2_000_000
"""Default partition size: big enough that per-task overhead (milliseconds) is noise,
small enough that a worker holds a few partitions in a couple of GB."""

PARTITIONS_PER_THREAD = 4
"""Default minimum partitions per worker thread, so a slow partition does not idle the rest."""

_NO_SNAPSHOT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Partition:
    """The inputs of ``compute_features`` for one partition of leads.

    Attributes:
        index: Partition number, ``partition_of(lead_id) == index`` for every row.
        leads: The partition's leads that have at least one snapshot.
        accounts: The accounts those leads belong to.
        activities: Their activities up to their last snapshot: only the columns
            ``compute_features`` reads (``lead_id``, ``occurred_at``, ``activity_type``),
            the text ones as categoricals. The identity test against the single-machine
            build fails if a feature starts reading another column.
        snapshots: Their snapshots, in the global snapshot order.
        rows: Position of each of those snapshots in the global snapshot table; stays on
            the client, to put the gathered rows back in order.
    """

    index: int
    leads: pd.DataFrame
    accounts: pd.DataFrame
    activities: pd.DataFrame
    snapshots: pd.DataFrame
    rows: np.ndarray

    def payload(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """What a worker needs: the four frames, in ``compute_features`` argument order."""
        return self.leads, self.accounts, self.activities, self.snapshots


def partition_of(lead_ids: pd.Series | pd.Index, n_partitions: int) -> np.ndarray:
    """Partition number of each lead id, stable across processes, machines and runs.

    Python's ``hash`` of a string changes with ``PYTHONHASHSEED``; pandas' SipHash uses a
    fixed key and hashes the UTF-8 text, so ``str`` and ``object`` columns agree too.
    """
    if n_partitions < 1:
        raise ValueError(f"n_partitions must be at least 1, got {n_partitions}")
    hashed = pd.util.hash_pandas_object(pd.Series(lead_ids).astype("str"), index=False)
    return (hashed.to_numpy() % np.uint64(n_partitions)).astype(np.int64)


def _micros(values: pd.Series | np.ndarray) -> np.ndarray:
    """Microseconds since the epoch, the resolution ``compute_features`` compares at."""
    return np.asarray(values, dtype=TIMESTAMP_UNIT).astype(np.int64)


def _groups(part: np.ndarray, n_partitions: int) -> list[np.ndarray]:
    """Row positions of each partition, each in increasing (original) order."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_partitions + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_partitions)]


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return frame.take(rows).reset_index(drop=True)


def _positions(index: pd.Index, values: pd.Series) -> np.ndarray:
    """``index.get_indexer(values)``, looking up each distinct value once.

    ``factorize`` hashes an Arrow string column in C++, several times faster than
    ``get_indexer`` on millions of activity rows; missing values map to -1.
    """
    codes, uniques = pd.factorize(values)
    return np.append(index.get_indexer(uniques), -1)[codes]


def _compact_activities(
    occurred_at: np.ndarray,
    type_codes: np.ndarray,
    act_lead: np.ndarray,
    rows: np.ndarray,
    p_leads: np.ndarray,
    lead_ids: pd.Series,
) -> pd.DataFrame:
    """One partition's activities with ``lead_id`` and ``activity_type`` as categoricals.

    ``compute_features`` only looks these columns up (``get_indexer`` and
    ``pd.Categorical``), which give the same answer for a categorical as for text; the
    codes are a third of the bytes to serialise and ship.
    """
    local = np.searchsorted(p_leads, act_lead[rows])
    return pd.DataFrame(
        {
            "lead_id": pd.Categorical.from_codes(local, dtype=pd.CategoricalDtype(lead_ids)),
            "occurred_at": occurred_at[rows],
            "activity_type": pd.Categorical.from_codes(type_codes[rows], categories=ACTIVITY_TYPES),
        }
    )


def partition_tables(
    tables: dict[str, pd.DataFrame], snapshots: pd.DataFrame, n_partitions: int
) -> Iterator[Partition]:
    """Split validated tables and planned snapshots by lead, one partition at a time.

    A generator, so the client can ship each partition before building the next one
    instead of holding a second copy of the data. Partitions without snapshots are
    skipped, and so are rows no feature can see: leads without a snapshot, activities of
    an unknown type, and activities after their lead's last snapshot (at the microsecond
    resolution ``compute_features`` compares at).

    Args:
        tables: Validated tables (``features.contract.validate``).
        snapshots: ``lead_id`` and ``as_of`` of every snapshot (``make_snapshots``).
        n_partitions: Number of partitions to hash leads into.
    """
    leads, accounts, activities = tables["leads"], tables["accounts"], tables["activities"]
    lead_index = pd.Index(leads["lead_id"])
    snap_lead = _positions(lead_index, snapshots["lead_id"])
    if (snap_lead < 0).any():
        unknown = snapshots.loc[snap_lead < 0, "lead_id"].head(3).tolist()
        raise KeyError(f"snapshots name unknown leads: {unknown}")
    # Last snapshot of each lead; the extra last slot catches activities of unknown leads.
    last = np.full(len(leads) + 1, _NO_SNAPSHOT, dtype=np.int64)
    np.maximum.at(last, snap_lead, _micros(snapshots["as_of"]))
    act_lead = _positions(lead_index, activities["lead_id"])
    type_codes = pd.Categorical(activities["activity_type"], categories=ACTIVITY_TYPES).codes
    occurred_at = np.asarray(activities["occurred_at"], dtype=TIMESTAMP_UNIT)
    keep = np.flatnonzero(
        (last[act_lead] != _NO_SNAPSHOT)
        & (type_codes >= 0)
        & (_micros(occurred_at) <= last[act_lead])
    )
    lead_part = partition_of(leads["lead_id"], n_partitions)
    lead_rows = np.flatnonzero(last[:-1] != _NO_SNAPSHOT)
    acc_pos = _positions(pd.Index(accounts["account_id"]), leads["account_id"])
    snapshots = snapshots[["lead_id", "as_of"]]
    lead_groups = _groups(lead_part[lead_rows], n_partitions)
    snap_groups = _groups(lead_part[snap_lead], n_partitions)
    act_groups = _groups(lead_part[act_lead[keep]], n_partitions)
    for p in range(n_partitions):
        if snap_groups[p].size == 0:
            continue
        p_leads = lead_rows[lead_groups[p]]
        p_accounts = np.unique(acc_pos[p_leads])
        p_lead_table = _take(leads, p_leads)
        yield Partition(
            index=p,
            leads=p_lead_table,
            accounts=_take(accounts, p_accounts[p_accounts >= 0]),
            activities=_compact_activities(
                occurred_at,
                type_codes,
                act_lead,
                keep[act_groups[p]],
                p_leads,
                p_lead_table["lead_id"],
            ),
            snapshots=_take(snapshots, snap_groups[p]),
            rows=snap_groups[p],
        )


def _partition_features(
    payload: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame], icp: Icp
) -> pd.DataFrame:
    """The task each worker runs: the single-machine feature function, unchanged."""
    leads, accounts, activities, snapshots = payload
    return compute_features(leads, accounts, activities, snapshots, icp)


def _category_union(columns: list[pd.Series]) -> pd.CategoricalDtype | None:
    """The sorted union of the partitions' categories; None if their kinds differ.

    ``astype("category")`` on the whole column would infer exactly these (sorted unique
    values), but recoding integer codes is far cheaper than re-hashing every string.
    """
    kinds = [c.cat.categories for c in columns if len(c.cat.categories)]
    if not kinds or any(k.dtype != kinds[0].dtype for k in kinds):
        return None
    union = kinds[0]
    for more in kinds[1:]:
        union = union.union(more)
    return pd.CategoricalDtype(union.sort_values())


def assemble(frames: list[pd.DataFrame], rows: list[np.ndarray]) -> pd.DataFrame:
    """Concatenate per-partition features and restore the single-machine frame exactly.

    Rows go back to their global positions. Categoricals are rebuilt over the whole
    column, because each partition only knows the categories it saw and the
    single-machine build infers them (sorted) from all rows at once.
    """
    recoded = {}
    for spec in CATALOGUE:
        if spec.dtype == "category":
            dtype = _category_union([f[spec.name] for f in frames])
            if dtype is not None:
                recoded[spec.name] = dtype
    frames = [f.astype(recoded) for f in frames]
    frame = pd.concat(frames, ignore_index=True)
    positions = np.concatenate(rows)
    order = np.empty_like(positions)
    order[positions] = np.arange(len(positions))
    frame = frame.take(order).reset_index(drop=True)
    for spec in CATALOGUE:
        if spec.dtype == "category" and spec.name not in recoded:
            values = frame[spec.name]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(values.cat.categories.dtype)
            frame[spec.name] = values.astype("category")
    return frame


def default_partitions(total_threads: int, n_activities: int) -> int:
    """Enough partitions to keep every worker thread busy and each partition modest."""
    by_threads = PARTITIONS_PER_THREAD * max(1, total_threads)
    return max(by_threads, math.ceil(n_activities / ACTIVITIES_PER_PARTITION))


@contextmanager
def _environ_restored() -> Iterator[None]:
    """Undo the variables ``distributed``'s nanny writes into this process's environment.

    Before spawning a worker, the nanny copies its pre-spawn variables (``OMP_NUM_THREADS=1``
    and ours) into the parent's ``os.environ``; left there, they would throttle every
    later subprocess of the client (a CLI command, a test session's servers).
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


@contextmanager
def dask_client(scheduler: str = "local", n_workers: int = 2) -> Iterator[Client]:
    """A ``distributed.Client`` for the duration of a build.

    Args:
        scheduler: ``local`` starts a ``LocalCluster`` of ``n_workers`` single-threaded
            worker processes and stops it afterwards; anything else is a scheduler
            address (``tcp://host:8786``) of a running cluster, which is left running.
        n_workers: Local worker processes. Each gets ``NUMBA_NUM_THREADS`` set to its
            share of the CPUs, because the engagement kernel is itself multi-threaded and
            would otherwise oversubscribe the machine ``n_workers`` times. It must be set
            before the worker process starts (numba reads it on import), hence the
            nanny's pre-spawn environment.
    """
    import dask
    from dask.system import CPU_COUNT
    from distributed import Client, LocalCluster

    if scheduler != "local":
        with Client(scheduler) as client:
            client.wait_for_workers(1, timeout=120)
            yield client
        return
    share = str(max(1, CPU_COUNT // n_workers))
    with _environ_restored():
        # The nanny lets a variable already in os.environ win over its config, and another
        # local cluster may have left its own value there, so set ours in both places.
        os.environ["NUMBA_NUM_THREADS"] = share
        with dask.config.set({"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": share}):
            # Port 0: the scheduler's HTTP endpoint never clashes with another cluster's.
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
        with cluster, Client(cluster) as client:
            yield client


def build_training_set_dask(
    tables: dict[str, pd.DataFrame],
    config: PipelineConfig,
    scheduler: str | Client = "local",
    n_workers: int = 2,
    n_partitions: int | None = None,
) -> TrainingSet:
    """``build_training_set`` on a Dask cluster, with an identical result.

    Args:
        tables: Validated tables (``features.io.load_tables``), held by the client.
        config: Horizon, snapshot rule, data end and ICP.
        scheduler: ``local`` (a ``LocalCluster`` for this call), a scheduler address, or
            an existing ``distributed.Client`` to reuse (tests, notebooks).
        n_workers: Worker processes of the local cluster (ignored otherwise).
        n_partitions: Lead partitions; default :func:`default_partitions`.

    Raises:
        ValueError: if no snapshot has a fully observed label window.
    """
    snaps, window = plan_build(tables, config)
    if isinstance(scheduler, str):
        connect = dask_client(scheduler, n_workers)
    else:
        connect = nullcontext(scheduler)
    with connect as client:
        threads = sum(client.nthreads().values())
        n = n_partitions or default_partitions(threads, len(tables["activities"]))
        futures, rows = [], []
        for part in partition_tables(tables, snaps, n):
            [data] = client.scatter([part.payload()], hash=False)
            futures.append(client.submit(_partition_features, data, config.icp))
            rows.append(part.rows)
        frames = client.gather(futures)
        del futures
    frame = assemble(frames, rows)
    frame["label"] = label_snapshots(snaps, tables["conversions"], config.horizon_days)
    return TrainingSet(frame, training_metadata(frame, tables, config, window))


def run_features_dask(
    data_dir: str | Path,
    out: str | Path,
    config: PipelineConfig,
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
    scheduler: str | Client = "local",
    n_workers: int = 2,
    n_partitions: int | None = None,
) -> TrainingSet:
    """``features.build.run_features`` with the feature step on Dask (``--engine dask``).

    Same arguments and result as ``run_features``, plus where to run. ``data_dir`` and
    ``out`` may be local paths or fsspec URLs. Nothing is written unless validation and
    the whole build succeed.
    """
    return run_features(
        data_dir,
        out,
        config,
        unknown_activity,
        timestamp_format,
        progress,
        build=lambda tables, cfg: build_training_set_dask(
            tables, cfg, scheduler, n_workers, n_partitions
        ),
        engine=" on dask",
    )
