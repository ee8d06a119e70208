"""Benchmark: features and training on one machine vs a Dask cluster of 1 and 2 workers.

Simulates leads, validates them once, then times the training-set build (features and
labels, not validation) on the single-machine engine and on Dask, checking that every
Dask result is identical to the single-machine one. Each figure is the best of
``--repeats`` warm runs: cluster start-up and the workers' first import are reported
separately, since a long-lived cluster pays them once. Also times the client's serial
share of a Dask build (partitioning and reassembly), which bounds its speed-up.

Then trains on that training set with each engine (``fit_bundle``: split, LightGBM with
early stopping, calibration, MQL policy; the same ``TrainConfig`` but the engine) and
reports the seconds of the whole fit and of LightGBM alone (best of ``--train-repeats``),
the trees kept and the test-period ROC AUC, which must agree within 0.01.

    python benchmarks/bench_distributed.py                      # 50,000 leads, 1 and 2 workers
    python benchmarks/bench_distributed.py --leads 200000 --workers 1 2 4
    python benchmarks/bench_distributed.py --scheduler tcp://scheduler:8786   # a real cluster
    python benchmarks/bench_distributed.py --no-train           # features only
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def best_of(repeats: int, run: Callable[[], object]) -> tuple[float, object]:
    """Fastest of ``repeats`` runs (the least disturbed by other load) and its result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def client_share(tables: dict[str, pd.DataFrame], n_partitions: int) -> dict:
    """Seconds the client spends partitioning and reassembling, outside any worker."""
    from features.distributed import assemble, partition_tables, plan_snapshots
    from features.pipeline import PipelineConfig, compute_features

    config = PipelineConfig()
    snaps, _, _ = plan_snapshots(tables, config)
    t0 = time.perf_counter()
    parts = list(partition_tables(tables, snaps, n_partitions))
    t_part = time.perf_counter() - t0
    frames = [compute_features(*p.payload(), config.icp) for p in parts]
    t0 = time.perf_counter()
    assemble(frames, [p.rows for p in parts])
    return {"partition_s": round(t_part, 2), "assemble_s": round(time.perf_counter() - t0, 2)}


def measure_training(training_set, repeats: int, **engine) -> dict:
    """Best-of-``repeats`` seconds of ``fit_bundle`` and of its LightGBM step, and test AUC.

    ``engine``: ``TrainConfig`` fields choosing the engine (``engine``, ``scheduler``,
    ``num_threads``); everything else is the default config.
    """
    from sklearn.metrics import roc_auc_score

    from training.train import TrainConfig, fit_bundle

    config = TrainConfig(**engine)
    best: dict = {}
    for _ in range(repeats):
        marks: dict[str, float] = {}

        def mark(step: str, marks: dict[str, float] = marks) -> None:
            marks[step.split()[0]] = time.perf_counter()

        t0 = time.perf_counter()
        fitted = fit_bundle(training_set, config, progress=mark)
        total = time.perf_counter() - t0
        fit = marks["calibrating"] - marks["training"]
        if not best or total < best["train_s"]:
            test = fitted.split.test
            best = {
                "train_s": round(total, 2),
                "lightgbm_fit_s": round(fit, 2),
                "best_iteration": fitted.model.best_iteration_,
                "machines": fitted.model.params_.get("num_machines", 1),
                "test_auc": round(
                    float(roc_auc_score(test["label"], fitted.bundle.predict_proba(test))), 4
                ),
            }
    return best


def measure_dask(
    tables: dict,
    warm: dict,
    reference: pd.DataFrame,
    scheduler: str,
    n_workers: int,
    n_partitions: int | None,
    repeats: int,
    training_set=None,
    train_repeats: int = 1,
) -> dict:
    """Start (or connect to) a cluster, warm it up, then time identical builds on it.

    With a ``training_set``, also time training on the same cluster.
    """
    from features.distributed import build_training_set_dask, dask_client
    from features.pipeline import PipelineConfig

    config = PipelineConfig()
    t0 = time.perf_counter()
    with dask_client(scheduler, n_workers) as client:
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_training_set_dask(warm, config, client)
        t_warm = time.perf_counter() - t0
        seconds, ts = best_of(
            repeats,
            lambda: build_training_set_dask(tables, config, client, n_partitions=n_partitions),
        )
        workers, threads = len(client.nthreads()), sum(client.nthreads().values())
        training = (
            measure_training(training_set, train_repeats, engine="dask", scheduler=client)
            if training_set is not None
            else None
        )
    pd.testing.assert_frame_equal(ts.frame, reference, check_exact=True)
    n_act = len(tables["activities"])
    row = {
        "engine": "dask",
        "scheduler": scheduler,
        "workers": workers,
        "threads": threads,
        "cluster_start_s": round(t_start, 2),
        "first_build_small_s": round(t_warm, 2),
        "features_s": round(seconds, 2),
        "activity_rows_per_s": round(n_act / seconds),
        "identical": True,
    }
    return row if training is None else {**row, "training": training}


def main() -> None:
    """Parse arguments, run the engines, print the table and save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="Local cluster sizes to time (ignored with --scheduler).",
    )
    parser.add_argument(
        "--scheduler", default="local", help="'local' or the address of a running Dask scheduler."
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="Lead partitions (default: the engine's own choice).",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also time training on each engine (default: yes).",
    )
    parser.add_argument(
        "--train-repeats",
        type=int,
        default=2,
        help="Training runs per engine; the fastest is reported.",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/distributed.json"))
    args = parser.parse_args()

    from features.contract import validate
    from features.distributed import default_partitions
    from features.pipeline import PipelineConfig, build_training_set
    from features.simulate import simulate

    tables = validate(simulate(args.leads, seed=args.seed).tables())
    warm = validate(simulate(300, seed=1).tables())
    build_training_set(warm, PipelineConfig())  # numba kernels load once, outside the timing
    n_act = len(tables["activities"])
    seconds, ts = best_of(args.repeats, lambda: build_training_set(tables, PipelineConfig()))
    rows = [
        {
            "engine": "single",
            "scheduler": "-",
            "workers": 1,
            "threads": os.cpu_count(),
            "cluster_start_s": 0.0,
            "first_build_small_s": 0.0,
            "features_s": round(seconds, 2),
            "activity_rows_per_s": round(n_act / seconds),
            "identical": True,
        }
    ]
    training = []
    if args.train:  # LightGBM on all cores, and on one (the threads of one dask worker)
        for threads in sorted({os.cpu_count() or 1, 1}, reverse=True):
            training.append(
                {
                    "engine": "single",
                    "workers": 1,
                    "threads": threads,
                    **measure_training(ts, args.train_repeats, num_threads=threads),
                }
            )
    sizes = args.workers if args.scheduler == "local" else [0]
    for n_workers in sizes:
        rows.append(
            measure_dask(
                tables,
                warm,
                ts.frame,
                args.scheduler,
                n_workers,
                args.partitions,
                args.repeats,
                ts if args.train else None,
                args.train_repeats,
            )
        )
    share = client_share(tables, args.partitions or default_partitions(max(sizes), n_act))
    single = rows[0]["activity_rows_per_s"]
    print(
        f"{args.leads:,} leads, {n_act:,} activities, {len(ts.frame):,} snapshots; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'engine':>7} {'workers':>7} {'start s':>8} {'feat s':>7} {'act rows/s':>12} "
        f"{'vs single':>9} {'vs 1 worker':>11}"
    )
    one = next((r for r in rows if r["engine"] == "dask"), rows[0])["activity_rows_per_s"]
    for r in rows:
        vs_one = f"{r['activity_rows_per_s'] / one:.2f}x" if r["engine"] == "dask" else "-"
        print(
            f"{r['engine']:>7} {r['workers']:>7} {r['cluster_start_s']:>8} "
            f"{r['features_s']:>7} {r['activity_rows_per_s']:>12,} "
            f"{r['activity_rows_per_s'] / single:>8.2f}x {vs_one:>11}"
        )
    print(
        f"client's serial share of a dask build: partitioning {share['partition_s']} s, "
        f"reassembly {share['assemble_s']} s (plus shipping partitions and results)"
    )
    training += [
        {
            "engine": r["engine"],
            "workers": r["workers"],
            "threads": r["threads"],
            **r.pop("training"),
        }
        for r in rows
        if "training" in r
    ]
    if training:
        print(
            f"training on the same {len(ts.frame):,} snapshots (fit_bundle: split, LightGBM "
            f"with early stopping, calibration, policy), best of {args.train_repeats}:"
        )
        print(
            f"{'engine':>7} {'workers':>7} {'threads':>7} {'train s':>8} {'lgbm s':>7} "
            f"{'trees':>6} {'test AUC':>9} {'vs single':>9}"
        )
        for t in training:
            print(
                f"{t['engine']:>7} {t['workers']:>7} {t['threads']:>7} {t['train_s']:>8} "
                f"{t['lightgbm_fit_s']:>7} {t['best_iteration']:>6} {t['test_auc']:>9} "
                f"{t['test_auc'] - training[0]['test_auc']:>+9.4f}"
            )
        spread = max(abs(t["test_auc"] - training[0]["test_auc"]) for t in training)
        print(
            f"largest test AUC difference from single-machine: {spread:.4f} "
            f"({'within' if spread <= 0.01 else 'NOT within'} 0.01); "
            f"load average after training {os.getloadavg()[0]:.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "leads": args.leads,
                "activities": n_act,
                "snapshots": len(ts.frame),
                "cpus": os.cpu_count(),
                "repeats": args.repeats,
                "train_repeats": args.train_repeats,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "client_share": share,
                "distributed": rows,
                "training": training,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
