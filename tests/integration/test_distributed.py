"""The Dask engine: same output as one machine, leads kept whole, any fsspec URL.

One real ``LocalCluster`` of two worker processes serves the whole module, so the cost
of starting it (and of the workers' first import) is paid once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import fsspec
import numpy as np
import pandas as pd
import pytest
from dask.system import CPU_COUNT
from distributed import Client, get_task_stream

from features.build import fingerprint, read_training_set, run_features, sidecar_path
from features.contract import ContractError, validate
from features.distributed import (
    assemble,
    build_training_set_dask,
    dask_client,
    partition_of,
    partition_tables,
    run_features_dask,
)
from features.io import load_tables, write_tables
from features.pipeline import (
    PipelineConfig,
    SnapshotRule,
    TrainingSet,
    build_training_set,
    compute_features,
    plan_snapshots,
)
from features.simulate import simulate


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validate(simulate(1500, seed=7).tables())


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client("local", n_workers=2) as client:
        yield client


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh folder in fsspec's in-process memory filesystem, removed afterwards."""
    bucket = f"leadscore-test-{uuid.uuid4().hex[:8]}"
    yield f"memory://{bucket}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


def assert_identical(got: TrainingSet, want: TrainingSet) -> None:
    """Row for row, value for value, dtype for dtype, and the same metadata."""
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert fingerprint(got.frame) == fingerprint(want.frame)
    assert got.metadata == want.metadata


@pytest.mark.parametrize("rule", ["monthly", "weekly", "after-creation:7,30,60"])
def test_dask_output_is_identical_to_single_machine(tables, client, rule):
    config = PipelineConfig(horizon_days=60, snapshots=SnapshotRule.parse(rule))
    want = build_training_set(tables, config)
    with get_task_stream(client) as stream:
        got = build_training_set_dask(tables, config, client, n_partitions=6)
    assert_identical(got, want)
    workers = {t["worker"] for t in stream.data if "_partition_features" in str(t["key"])}
    assert len(client.nthreads()) >= 2 and len(workers) >= 2


@pytest.mark.parametrize("n_partitions", [1, 13, None])
def test_partition_count_never_changes_the_output(tables, client, n_partitions):
    config = PipelineConfig()
    got = build_training_set_dask(tables, config, client, n_partitions=n_partitions)
    assert_identical(got, build_training_set(tables, config))


def test_categories_seen_by_only_some_partitions(tables, client):
    """A value seen in one partition, and a column empty in another, still match."""
    leads = tables["leads"].copy()
    part = partition_of(leads["lead_id"], 3)
    leads.loc[part == 0, "seniority"] = np.nan
    leads.loc[np.flatnonzero(part == 1)[0], "seniority"] = "Chief Vibes Officer"
    changed = {**tables, "leads": leads}
    config = PipelineConfig()
    got = build_training_set_dask(changed, config, client, n_partitions=3)
    assert_identical(got, build_training_set(changed, config))
    assert "Chief Vibes Officer" in got.frame["seniority"].cat.categories


def test_assemble_falls_back_when_partitions_disagree_on_category_kinds(tables):
    snaps, _, _ = plan_snapshots(tables, PipelineConfig())
    parts = list(partition_tables(tables, snaps, 2))
    frames = [compute_features(*p.payload()) for p in parts]
    odd = frames[1]["region"]
    frames[1]["region"] = odd.cat.set_categories(odd.cat.categories.astype(object))
    want = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)
    got = assemble(frames, [p.rows for p in parts])
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_scheduler_address_connects_to_a_running_cluster(tables, client):
    config = PipelineConfig(horizon_days=30)
    got = build_training_set_dask(tables, config, scheduler=client.scheduler.address)
    assert_identical(got, build_training_set(tables, config))
    assert client.status == "running"  # a cluster we did not start is left running


def _numba_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def test_local_cluster_shares_cpus_and_leaves_our_environment_alone(tables):
    before = dict(os.environ)
    with dask_client("local", n_workers=1) as one:
        assert list(one.run(_numba_threads).values()) == [CPU_COUNT]
        config = PipelineConfig(horizon_days=120)
        got = build_training_set_dask(tables, config, one)
    assert dict(os.environ) == before  # the nanny's OMP_NUM_THREADS=1 etc. are undone
    assert_identical(got, build_training_set(tables, config))


def test_no_complete_label_window_fails_like_single_machine(tables, client):
    config = PipelineConfig(horizon_days=5000)
    with pytest.raises(ValueError, match="complete 5000-day label window"):
        build_training_set(tables, config)
    with pytest.raises(ValueError, match="complete 5000-day label window"):
        build_training_set_dask(tables, config, client)


def test_dask_agrees_on_the_data_end_and_the_time_resolution(tables, client):
    """A row dated 2030 and activities 0.4 s after a snapshot: both engines leave them
    out the same way, with the default data end and an explicit one."""
    snaps, _, _ = plan_snapshots(tables, PipelineConfig(horizon_days=60))
    first = snaps.drop_duplicates("lead_id").head(40)
    extra = pd.DataFrame(
        {
            "lead_id": [*first["lead_id"], first["lead_id"].iloc[0]],
            "occurred_at": [
                *(first["as_of"] + pd.Timedelta(milliseconds=400)),
                pd.Timestamp("2030-01-01"),
            ],
            "activity_type": "demo_request",
        }
    )
    tampered = validate(
        {**tables, "activities": pd.concat([tables["activities"], extra], ignore_index=True)}
    )
    for config in (
        PipelineConfig(horizon_days=60),
        PipelineConfig(horizon_days=60, data_end=pd.Timestamp("2025-02-01")),
    ):
        want = build_training_set(tampered, config)
        assert_identical(build_training_set_dask(tampered, config, client, n_partitions=5), want)
        assert "activities" in {r.table for r in want.metadata.rows_after_data_end}
    clean = build_training_set(tables, PipelineConfig(horizon_days=60))
    got = build_training_set_dask(tampered, PipelineConfig(horizon_days=60), client)
    assert len(got.frame) == len(clean.frame)
    assert got.metadata.data_end == clean.metadata.data_end
    key = ["lead_id", "as_of"]
    at = pd.MultiIndex.from_frame(first[key])
    # At the snapshots the 0.4-s activities follow, no feature sees them.
    pd.testing.assert_frame_equal(
        got.frame.set_index(key).loc[at], clean.frame.set_index(key).loc[at], check_exact=True
    )


def test_partitioning_keeps_all_rows_of_a_lead_together(tables):
    snaps, _, _ = plan_snapshots(tables, PipelineConfig())
    parts = list(partition_tables(tables, snaps, 7))
    seen: set[str] = set()
    for part in parts:
        ids = set(part.leads["lead_id"])
        assert (partition_of(part.leads["lead_id"], 7) == part.index).all()
        assert ids.isdisjoint(seen)
        seen |= ids
        assert set(part.snapshots["lead_id"]) == ids
        assert set(part.activities["lead_id"].astype(str)) <= ids
        assert set(part.accounts["account_id"]) == set(part.leads["account_id"])
        assert (np.diff(part.rows) > 0).all()
        pd.testing.assert_frame_equal(part.snapshots, snaps.iloc[part.rows].reset_index(drop=True))
    assert seen == set(snaps["lead_id"])
    assert sorted(np.concatenate([p.rows for p in parts])) == list(range(len(snaps)))
    # Every activity a feature can see is shipped, exactly once: at or before the lead's
    # last snapshot, at the microsecond resolution the features use.
    acts = tables["activities"]
    last = acts["lead_id"].map(snaps.groupby("lead_id")["as_of"].max())
    visible = acts["occurred_at"] <= last
    assert sum(len(p.activities) for p in parts) == int(visible.sum()) < len(acts)


def test_more_partitions_than_leads_skips_empty_ones():
    small = validate(simulate(60, seed=2).tables())
    config = PipelineConfig(horizon_days=30)
    snaps, _, _ = plan_snapshots(small, config)
    parts = list(partition_tables(small, snaps, 500))
    used = set(partition_of(snaps["lead_id"], 500))
    assert len(used) < 500 and [p.index for p in parts] == sorted(used)
    assert all(len(p.snapshots) for p in parts)


def test_partition_of_is_stable_across_processes_and_dtypes():
    ids = pd.Series(["L0000001", "L0000002", "lead-42", "007", "ünïcode"])
    # Pinned: a lead must land in the same partition on every machine and every run.
    assert partition_of(ids, 16).tolist() == [2, 13, 6, 10, 7]
    assert partition_of(ids.astype(object), 16).tolist() == [2, 13, 6, 10, 7]
    assert partition_of(pd.Index(ids), 1000).tolist() == [906, 957, 534, 434, 623]
    with pytest.raises(ValueError):
        partition_of(ids, 0)


def test_memory_url_round_trip_read_validate_build_write(client, memory_root):
    sim = simulate(600, seed=3)
    data, out = f"{memory_root}/data", f"{memory_root}/sets/train.parquet"
    write_tables(sim.tables(), data, fmt="csv")
    write_tables(sim.tables(), data)  # replaces the CSV folder with a Parquet one
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(data)) == [
        "accounts.parquet",
        "activities.parquet",
        "conversions.parquet",
        "leads.parquet",
    ]
    config = PipelineConfig(horizon_days=60)
    got = run_features_dask(data, out, config, scheduler=client)
    want = build_training_set(load_tables(data), config)
    assert_identical(got, want)
    back = read_training_set(out)
    pd.testing.assert_frame_equal(back.frame, want.frame, check_exact=True)
    assert back.metadata.fingerprint == fingerprint(want.frame)
    assert sidecar_path(out) == f"{out}.json"
    # The single-machine stage takes the same URL; no staging files are left behind.
    run_features(data, f"{memory_root}/sets/single.parquet", config)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{memory_root}/sets"))
    assert names == ["single.parquet", "single.parquet.json", "train.parquet", "train.parquet.json"]


def test_memory_url_missing_folder_or_table_is_reported(memory_root):
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        load_tables(f"{memory_root}/nowhere")
    tables = simulate(50, seed=1).tables()
    del tables["conversions"]
    write_tables(tables, f"{memory_root}/partial")
    with pytest.raises(ContractError, match=r"no conversions\.parquet or conversions\.csv"):
        load_tables(f"{memory_root}/partial")
