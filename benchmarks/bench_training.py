"""Benchmark: seconds to train a lead-scoring model at a given number of snapshots.

For each size, enough leads are simulated to give that many monthly snapshots (the
training set is cut to the size), then the steps of ``leadscore train`` are timed:
``fit`` (time split, LightGBM with early stopping, calibration, MQL policy with SHAP on
the validation period; ``lightgbm`` is the boosting alone), ``evaluate`` (test scoring
with SHAP, logistic and points baselines) and, with ``--mlflow``, the whole
``run_training`` into a throw-away MLflow store (plots, card, artifacts, registration).
Each size runs in its own subprocess, so peak memory is that size's own. Prints a table
and writes JSON.

    python benchmarks/bench_training.py --snapshots 100000
    python benchmarks/bench_training.py --snapshots 100000 1000000 --mlflow --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAPSHOTS_PER_LEAD = 3.4
"""Monthly snapshots per simulated lead (18 months of data, 90-day horizon), measured."""


def training_set_of(n_snapshots: int, seed: int):
    """A simulated training set cut to about ``n_snapshots`` rows (a random share of leads,
    so the time span, and so the split, stays that of the full simulation)."""
    from features.contract import validate
    from features.pipeline import PipelineConfig, TrainingSet, build_training_set
    from features.simulate import simulate

    n_leads = int(n_snapshots / SNAPSHOTS_PER_LEAD * 1.1) + 100
    ts = build_training_set(validate(simulate(n_leads, seed=seed).tables()), PipelineConfig())
    frame = ts.frame
    if len(frame) > n_snapshots:
        leads = frame["lead_id"].drop_duplicates()
        chosen = leads.sample(frac=n_snapshots / len(frame), random_state=seed)
        frame = frame[frame["lead_id"].isin(chosen)].reset_index(drop=True)
    return TrainingSet(frame, ts.metadata), n_leads


def measure(n_snapshots: int, seed: int, threads: int, with_mlflow: bool) -> dict:
    """Run one size in this process and return its figures."""
    from training.evaluate import evaluate
    from training.train import TrainConfig, fit_bundle, run_training

    t0 = time.perf_counter()
    training_set, n_leads = training_set_of(n_snapshots, seed)
    t_data = time.perf_counter() - t0
    config = TrainConfig(num_threads=threads, seed=seed)
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    fitted = fit_bundle(
        training_set, config, progress=lambda step: marks.append((step, time.perf_counter()))
    )
    t_fit = time.perf_counter() - t0
    steps = {step.split()[0]: at for step, at in marks}  # "training ...", "calibrating ..."
    t_lgbm = steps["calibrating"] - steps["training"]  # every candidate (trees and logistic)
    t0 = time.perf_counter()
    evaluation = evaluate(
        fitted.bundle, fitted.split.test, fitted.split.train, fitted.split.valid, seed=seed
    )
    t_eval = time.perf_counter() - t0
    row = {
        "snapshots": len(training_set.frame),
        "leads_simulated": n_leads,
        "train_rows": len(fitted.split.train),
        "valid_rows": len(fitted.split.valid),
        "test_rows": len(fitted.split.test),
        "trees": fitted.model.best_iteration_,
        "threads": threads,
        "data_s": round(t_data, 2),
        "fit_s": round(t_fit, 2),
        "lightgbm_s": round(t_lgbm, 2),
        "evaluate_s": round(t_eval, 2),
        "test_roc_auc": round(evaluation.metrics["model"]["roc_auc"], 4),
    }
    if with_mlflow:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_training(training_set, config=config, tracking_uri=f"sqlite:///{tmp}/mlflow.db")
            row["run_training_s"] = round(time.perf_counter() - t0, 2)
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    return row


def warm_up() -> None:
    """Compile the numba kernels (features, TreeSHAP) once so timings exclude JIT."""
    from training.train import TrainConfig, fit_bundle

    training_set, _ = training_set_of(6000, seed=1)
    fit_bundle(training_set, TrainConfig(num_boost_round=20)).bundle.score(
        training_set.frame.head(100)
    )


def main() -> None:
    """Parse arguments, run each size in a subprocess, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="LightGBM threads (0: all)")
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help="also time the whole run_training into a temporary MLflow store",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/training.json"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seed, args.threads, args.mlflow)))
        return
    warm_up()
    rows = []
    for n in args.snapshots:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
        ] + (["--mlflow"] if args.mlflow else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = (
        f"{'snapshots':>10} {'train':>9} {'trees':>6} {'data s':>7} {'fit s':>7} "
        f"{'lgbm s':>7} {'eval s':>7} {'run s':>7} {'AUC':>6} {'peak GB':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['snapshots']:>10,} {r['train_rows']:>9,} {r['trees']:>6} {r['data_s']:>7} "
            f"{r['fit_s']:>7} {r['lightgbm_s']:>7} {r['evaluate_s']:>7} "
            f"{r.get('run_training_s', '–'):>7} "
            f"{r['test_roc_auc']:>6} {r['peak_rss_gb']:>8}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"training": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
