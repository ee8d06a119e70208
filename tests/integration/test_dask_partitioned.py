"""Workers read partitioned inputs, check the contract and build the training set.

The single-machine engine is the reference: the same error report for bad data, the
same rows, values and metadata for good data. One ``LocalCluster`` of two worker
processes serves the module.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, get_task_stream

from features.contract import TABLES, ContractError, validate
from features.dask_build import build_training_dataset, resolve_window_dask
from features.dask_read import check_tables, read_raw_tables
from features.distributed import dask_client
from features.io import read_frame
from features.partitioned import (
    DATASET_MANIFEST,
    holds_partitioned_tables,
    read_training_dataset,
    write_partitioned_tables,
)
from features.pipeline import PipelineConfig, SnapshotRule, build_training_set, resolve_window
from features.simulate import simulate

EXPORT = pd.Timestamp("2026-01-01")


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    return simulate(400, seed=11, months=9).tables()


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client("local", n_workers=2) as client:
        yield client


def dataset_order(root: Path) -> dict[str, pd.DataFrame]:
    """The tables as one machine reads the same files: in path order, rows in file order."""
    tables = {}
    for name in TABLES:
        files = sorted(glob.glob(f"{root}/{name}/*/*.parquet"))
        files = files or glob.glob(f"{root}/{name}.parquet") or [f"{root}/{name}.csv"]
        tables[name] = pd.concat([read_frame(f) for f in files], ignore_index=True)
    return tables


def contract_report(tables: dict[str, pd.DataFrame]) -> list:
    with pytest.raises(ContractError) as caught:
        validate(tables)
    return caught.value.violations


def test_writer_lays_out_months_and_reader_finds_them(raw, tmp_path):
    write_partitioned_tables(raw, tmp_path / "data")
    months = sorted(p.name for p in (tmp_path / "data" / "activities").iterdir())
    assert months[0].startswith("month=") and len(months) >= 9
    assert (tmp_path / "data" / "accounts.parquet").is_file()  # a single file still works
    assert holds_partitioned_tables(tmp_path / "data")
    tables = read_raw_tables(tmp_path / "data")
    assert tables["activities"].npartitions == len(months)
    assert "month" not in tables["activities"].columns  # a hive key, not a column of ours
    (tmp_path / "data" / "leads").rename(tmp_path / "data" / "leads.parquet")  # as Spark names it
    assert read_raw_tables(tmp_path / "data")["leads"].npartitions >= 9


def _phase_one(tables: dict[str, pd.DataFrame]) -> None:
    """Table-level problems: duplicate ids across months, missing values, bad numbers."""
    leads = tables["leads"]
    last = len(leads) - 1
    leads.loc[[last, last - 1], "lead_id"] = leads.loc[[0, 1], "lead_id"].to_numpy()
    acts = tables["activities"]
    acts.loc[[5, len(acts) // 2, len(acts) - 3], "activity_type"] = None
    accounts = tables["accounts"]
    accounts["employee_count"] = accounts["employee_count"].astype(str)
    accounts.loc[[2, 9], "employee_count"] = "many"


def _phase_two(tables: dict[str, pd.DataFrame]) -> None:
    """Cross-table problems: orphans in three references, unknown activity types."""
    acts = tables["activities"]
    n = len(acts)
    acts.loc[[3, n // 3, n // 2, n - 2], "activity_type"] = ["zoom", "fax", "zoom", "fax"]
    acts.loc[[7, n - 5], "activity_type"] = "telex"
    acts.loc[[11, n // 4], "lead_id"] = ["ghost-1", "ghost-2"]
    tables["conversions"].loc[[0], "lead_id"] = "ghost-3"
    tables["leads"].loc[[4, len(tables["leads"]) - 1], "account_id"] = ["A-none", "A-gone"]


@pytest.mark.parametrize("breaks", [_phase_one, _phase_two], ids=["tables", "references"])
def test_contract_report_is_the_single_machine_report(raw, client, tmp_path, breaks):
    bad = {name: frame.copy() for name, frame in raw.items()}
    breaks(bad)
    write_partitioned_tables(bad, tmp_path / "bad")
    want = contract_report(dataset_order(tmp_path / "bad"))
    with pytest.raises(ContractError) as caught:
        check_tables(read_raw_tables(tmp_path / "bad"))
    assert caught.value.violations == want
    assert str(caught.value) == str(ContractError(want))
    assert len(want) >= 3


def test_training_set_is_the_single_machine_one(raw, client, tmp_path):
    write_partitioned_tables(raw, tmp_path / "data")
    config = PipelineConfig(horizon_days=30, export_time=EXPORT)
    want = build_training_set(validate(raw), config)
    tables = check_tables(read_raw_tables(tmp_path / "data"))
    out = tmp_path / "training_set.parquet"
    with get_task_stream(client) as stream:
        dataset = build_training_dataset(tables, config, out, client, n_partitions=5)
    workers = {t["worker"] for t in stream.data if "build_partition" in str(t["key"])}
    assert len(workers) == 2  # the partitions were built on both workers
    frame, metadata = read_training_dataset(out)
    pd.testing.assert_frame_equal(frame, want.frame, check_exact=True)
    assert metadata.model_copy(update={"fingerprint": None}) == want.metadata
    assert metadata == dataset.metadata
    manifest = json.loads((out / DATASET_MANIFEST).read_text())
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [
        f["name"] for f in manifest["files"]
    ]
    assert sum(f["rows"] for f in manifest["files"]) == len(want.frame)
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["rows"] == len(want.frame)


def test_data_window_rule_and_late_rows_match(raw, client, tmp_path):
    """The outlier-tail rule from the k+1 latest timestamps, and rows after the end."""
    late = {name: frame.copy() for name, frame in raw.items()}
    acts = late["activities"]
    far = acts["occurred_at"].max() + pd.Timedelta(days=400)
    acts.loc[[2, 40], "occurred_at"] = [far, far + pd.Timedelta(hours=1)]
    write_partitioned_tables(late, tmp_path / "late")
    want = resolve_window(validate(dataset_order(tmp_path / "late")), export_time=EXPORT)
    got, activities = resolve_window_dask(
        check_tables(read_raw_tables(tmp_path / "late")), export_time=EXPORT
    )
    assert want.rule == "before_outliers"
    assert got == want
    assert activities == int((late["activities"]["occurred_at"] <= want.end).sum())


def test_no_snapshot_writes_nothing(raw, client, tmp_path):
    write_partitioned_tables(raw, tmp_path / "data")
    config = PipelineConfig(horizon_days=2000, export_time=EXPORT)
    tables = check_tables(read_raw_tables(tmp_path / "data"))
    with pytest.raises(ValueError, match="no snapshot has a complete 2000-day label window"):
        build_training_dataset(tables, config, tmp_path / "ts.parquet", client)
    assert not (tmp_path / "ts.parquet").exists()
    assert not any(p.name.startswith(".ts.parquet") for p in tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["weekly", "after-creation:7,30,60"])
def test_other_snapshot_rules(raw, client, tmp_path, rule):
    write_partitioned_tables(raw, tmp_path / "data")
    config = PipelineConfig(horizon_days=30, snapshots=SnapshotRule.parse(rule), export_time=EXPORT)
    want = build_training_set(validate(raw), config)
    tables = check_tables(read_raw_tables(tmp_path / "data"))
    build_training_dataset(tables, config, tmp_path / "ts.parquet", client, n_partitions=3)
    frame, _ = read_training_dataset(tmp_path / "ts.parquet")
    pd.testing.assert_frame_equal(frame, want.frame, check_exact=True)
    assert np.array_equal(frame["label"], want.frame["label"])


def test_cli_simulates_partitioned_and_builds_on_the_workers(client, tmp_path):
    """`simulate --partitioned`, then `features --engine dask` on fsspec URLs, twice (the
    second run replaces the folder), and `train`'s reader takes the folder."""
    from typer.testing import CliRunner

    from features.build import read_training_set
    from leadscore.cli import app

    runner = CliRunner()
    simulated = ["simulate", "--out", str(tmp_path / "data"), "--leads", "300"]
    made = runner.invoke(app, [*simulated, "--months", "6", "--partitioned"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "data" / "leads").is_dir()
    args = [
        "features",
        "--data",
        f"file://{tmp_path}/data",
        "--out",
        f"file://{tmp_path}/ts.parquet",
    ]
    args += ["--engine", "dask", "--scheduler", client.scheduler.address, "--horizon", "30"]
    args += ["--export-time", "2026-01-01", "--partitions", "3"]
    for _ in range(2):
        built = runner.invoke(app, args)
        assert built.exit_code == 0, built.output
    config = PipelineConfig(horizon_days=30, export_time=EXPORT)
    want = build_training_set(validate(simulate(300, months=6).tables()), config)
    got = read_training_set(tmp_path / "ts.parquet")
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert got.metadata.rows == want.metadata.rows == len(want.frame)
    assert f"wrote {len(want.frame):,} snapshots" in " ".join(built.output.split())


def test_typed_tables_are_validates_tables_csv_and_other_activities(raw, client, tmp_path):
    """Typing per partition gives ``validate``'s tables, for a CSV table too, with unknown
    activity types kept as ``other`` when asked."""
    odd = {name: frame.copy() for name, frame in raw.items()}
    odd["activities"].loc[[1, 50], "activity_type"] = ["fax", " telex "]
    write_partitioned_tables(odd, tmp_path / "data", single=("conversions",))
    (tmp_path / "data" / "conversions.parquet").unlink()
    odd["conversions"].to_csv(tmp_path / "data" / "conversions.csv", index=False)
    want = validate(dataset_order(tmp_path / "data"), unknown_activity="other")
    with pytest.raises(ContractError, match="unknown activity type"):
        check_tables(read_raw_tables(tmp_path / "data"))
    typed = check_tables(read_raw_tables(tmp_path / "data"), unknown_activity="other")
    for name in TABLES:
        got = typed[name].compute().drop(columns="_order").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want[name], check_exact=True)
    assert (typed["activities"]["activity_type"] == "other").sum().compute() >= 2
