"""Benchmark: simulate leads, then build the point-in-time training set.

Each size runs in its own subprocess so that peak memory (max RSS) is that size's own.
Prints rows, activities, seconds per step, activity rows per second through the feature
pipeline, and peak memory; writes the table as JSON.

    python benchmarks/bench_features.py --leads 100000
    python benchmarks/bench_features.py --leads 20000 100000 400000 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGET_ROWS_PER_S = 1_000_000
TARGET_PEAK_GB = 4.0


def measure(n_leads: int, seed: int) -> dict:
    """Run one size in this process and return its figures."""
    from features.contract import validate
    from features.pipeline import PipelineConfig, build_training_set
    from features.simulate import simulate

    t0 = time.perf_counter()
    sim = simulate(n_leads, seed=seed)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = validate(sim.tables())
    t_validate = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts = build_training_set(tables, PipelineConfig())
    t_features = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    n_act = len(tables["activities"])
    return {
        "leads": n_leads,
        "activities": n_act,
        "snapshots": len(ts.frame),
        "simulate_s": round(t_sim, 2),
        "validate_s": round(t_validate, 2),
        "features_s": round(t_features, 2),
        "activity_rows_per_s": round(n_act / t_features),
        "activity_rows_per_s_with_validation": round(n_act / (t_features + t_validate)),
        "peak_rss_gb": round(peak_gb, 2),
    }


def warm_up() -> None:
    """Compile the numba kernels once so timings exclude JIT (they are cached on disk)."""
    from features.contract import validate
    from features.pipeline import PipelineConfig, build_training_set
    from features.simulate import simulate

    build_training_set(validate(simulate(300, seed=1).tables()), PipelineConfig())


def main() -> None:
    """Parse arguments, run each size in a subprocess, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("bench-results/features.json"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        # Each size's own process loads the cached kernels first (about 0.4 s of numba type
        # registries), so the timing is the pipeline's, as the docstring of warm_up says.
        warm_up()
        print(json.dumps(measure(args.one, args.seed)))
        return
    warm_up()
    rows = []
    for n in args.leads:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = (
        f"{'leads':>9} {'activities':>11} {'snapshots':>10} {'sim s':>7} {'valid s':>8} "
        f"{'feat s':>7} {'act rows/s':>12} {'vs target':>9} {'peak GB':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['leads']:>9,} {r['activities']:>11,} {r['snapshots']:>10,} "
            f"{r['simulate_s']:>7} {r['validate_s']:>8} {r['features_s']:>7} "
            f"{r['activity_rows_per_s']:>12,} "
            f"{r['activity_rows_per_s'] / TARGET_ROWS_PER_S:>8.1f}x {r['peak_rss_gb']:>8}"
        )
    print(f"targets: >= {TARGET_ROWS_PER_S:,} activity rows/s, peak < {TARGET_PEAK_GB} GB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"features": rows}, indent=2))


if __name__ == "__main__":
    main()
