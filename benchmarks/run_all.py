"""Run every benchmark, gather their JSON into one file and print one table.

Each ``bench_*.py`` script runs in its own subprocess with ``--json``; this script adds
the machine (CPU model, cores, memory) and the load average before and after each
script, then prints every figure next to its peer from the same run (``shap``,
``pred_contrib``, ``mlflow models serve``, the single-machine engine, ...) and the ratio.

    python benchmarks/run_all.py                # full sizes, for the README table
    python benchmarks/run_all.py --quick        # smoke run, small sizes (a few minutes)
    python benchmarks/run_all.py --only explain serving --out bench-results/all.json

Full sizes: the feature pipeline at about 1M, 5M and 20M activities (the simulator
gives about 58 activities per lead), training at 100k and 1M snapshots, explanations
on a 300-tree model, the HTTP service against ``mlflow models serve`` at 1 and 16
clients, and the Dask engine at 1 and 2 workers. ``bench_load.py`` (a reliability load
test) and ``bench_datasets.py`` (model quality on public data sets, which must be
downloaded first) are not part of this performance suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

ACTIVITIES_PER_LEAD = 58
"""Activities per simulated lead (about 5.8M for 100k leads), to size the feature runs."""

BENCHMARKS: dict[str, dict[str, list[str]]] = {
    "features": {
        "full": [
            "--leads",
            *(str(n // ACTIVITIES_PER_LEAD) for n in (1_000_000, 5_000_000, 20_000_000)),
        ],
        "quick": ["--leads", "2000", "10000"],
    },
    "training": {
        "full": ["--snapshots", "100000", "1000000"],
        "quick": ["--snapshots", "20000"],
    },
    "explain": {
        "full": [],
        "quick": ["--trees", "100", "--rows", "2000", "--single-calls", "100"],
    },
    "serving": {
        "full": [],
        "quick": [
            "--requests",
            "100",
            "--warmup",
            "10",
            "--leads",
            "20",
            "--batch-size",
            "50",
            "--batch-requests",
            "5",
        ],
    },
    "distributed": {
        "full": [],
        "quick": ["--leads", "3000", "--workers", "1", "--repeats", "1"],
    },
    "store": {
        "full": ["--leads", "200000", "--runs", "3"],
        "quick": ["--leads", "20000", "--runs", "2"],
    },
    "funnel": {
        "full": ["--leads", "100000", "--runs", "10", "--dispositions", "100000"],
        "quick": ["--leads", "10000", "--runs", "3", "--dispositions", "10000"],
    },
    "monitor": {
        "full": ["--scores", "1000000"],
        "quick": [
            "--scores",
            "50000",
            "--runs",
            "5",
            "--dispositions",
            "5000",
            "--reference",
            "10000",
        ],
    },
}
"""Arguments of each ``bench_<name>.py`` per mode (``--json`` is added)."""


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and software versions of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram_gb = psutil.virtual_memory().total / 2**30
    except ImportError:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def load_average() -> float:
    """One-minute load average."""
    return round(os.getloadavg()[0], 2)


def run_one(name: str, mode: str, out_dir: Path, timeout: float) -> dict[str, Any]:
    """Run ``bench_<name>.py`` in a subprocess; its JSON plus timing, load and status."""
    json_path = out_dir / f"{name}.json"
    json_path.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(HERE / f"bench_{name}.py"),
        *BENCHMARKS[name][mode],
        "--json",
        str(json_path),
    ]
    record: dict[str, Any] = {"command": " ".join(cmd[1:]), "load_before": load_average()}
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        record["returncode"] = proc.returncode
        record["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        record["returncode"] = None
        record["output_tail"] = f"timed out after {timeout:.0f} s: {exc}"
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["load_after"] = load_average()
    if record["returncode"] == 0 and json_path.exists():
        record["result"] = json.loads(json_path.read_text())
    else:
        print(f"  {name} FAILED:\n{record['output_tail'][-1500:]}", flush=True)
    return record


Row = tuple[str, str, str, str, str]
"""benchmark figure, value, peer (value), ratio, load average."""


def _fmt(x: float, digits: int = 1) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _load(rec: dict) -> str:
    return f"{rec['load_before']:.1f}-{rec['load_after']:.1f}"


def rows_features(rec: dict) -> list[Row]:
    rows = rec["result"]["features"]
    base = rows[0]["activity_rows_per_s"] if rows else 1
    out = []
    for r in rows:
        out.append(
            (
                f"features: {r['activities'] / 1e6:.1f}M activities, rows/s",
                _fmt(r["activity_rows_per_s"]),
                f"smallest: {_fmt(base)}",
                f"{r['activity_rows_per_s'] / base:.2f}x",
                _load(rec),
            )
        )
        out.append(
            (
                f"features: {r['activities'] / 1e6:.1f}M activities, peak GB",
                f"{r['peak_rss_gb']}",
                "-",
                "-",
                _load(rec),
            )
        )
    return out


def rows_training(rec: dict) -> list[Row]:
    rows = rec["result"]["training"]
    out = []
    for r in rows:
        per_100k = r["fit_s"] / r["snapshots"] * 1e5
        out.append(
            (
                f"training: {r['snapshots']:,} snapshots, fit s",
                f"{r['fit_s']}",
                f"lightgbm alone: {r['lightgbm_s']}",
                f"{r['fit_s'] / max(r['lightgbm_s'], 1e-9):.2f}x",
                _load(rec),
            )
        )
        out.append(
            (
                f"training: {r['snapshots']:,} snapshots, fit s per 100k",
                _fmt(per_100k, 2),
                "-",
                "-",
                _load(rec),
            )
        )
    return out


def rows_explain(rec: dict) -> list[Row]:
    r = rec["result"]
    batch, single = r["batch_rows_per_s"], r["single_row_p50_us"]
    predict = min(single["booster_predict"], single["booster_predict_1_thread"])
    steady = r["single_row_steady_p50_us"]
    steady_predict = min(steady["booster_predict"], steady["booster_predict_1_thread"])
    return [
        (
            "explain: batch rows/s vs shap.TreeExplainer",
            _fmt(batch["ours_explain"]),
            _fmt(batch["shap_tree_explainer"]),
            f"{batch['ours_explain'] / batch['shap_tree_explainer']:.1f}x",
            _load(rec),
        ),
        (
            "explain: batch rows/s vs pred_contrib",
            _fmt(batch["ours_explain"]),
            _fmt(batch["pred_contrib"]),
            f"{batch['ours_explain'] / batch['pred_contrib']:.1f}x",
            _load(rec),
        ),
        (
            "explain: single row p50 µs vs shap",
            _fmt(single["ours_explain"]),
            _fmt(single["shap_tree_explainer"]),
            f"{single['shap_tree_explainer'] / single['ours_explain']:.1f}x faster",
            _load(rec),
        ),
        (
            "explain: single row p50 µs vs bare predict (interleaved)",
            _fmt(single["ours_explain"]),
            _fmt(predict),
            f"{single['ours_explain'] / predict:.2f}x (target<=5)",
            _load(rec),
        ),
        (
            "explain: single row p50 µs vs bare predict (steady)",
            _fmt(steady["ours_explain"]),
            _fmt(steady_predict),
            f"{steady['ours_explain'] / steady_predict:.2f}x (target<=5)",
            _load(rec),
        ),
        ("explain: max |ours - shap|", f"{r['max_abs_diff_vs_shap']:.1e}", "-", "-", _load(rec)),
    ]


def rows_serving(rec: dict) -> list[Row]:
    r = rec["result"]
    ours, theirs = r["leadscore (bentoml /score)"], r["mlflow models serve (/invocations)"]
    load = f"{r['comparison']['load_average']:.1f}"
    out = [
        (
            "serving: /score p50 ms vs mlflow serve",
            f"{ours['p50_ms']:.2f}",
            f"{theirs['p50_ms']:.2f}",
            f"{ours['p50_ms'] / theirs['p50_ms']:.2f}x (target<=0.2)",
            load,
        ),
        (
            "serving: /score p99 ms vs mlflow serve",
            f"{ours['p99_ms']:.2f}",
            f"{theirs['p99_ms']:.2f}",
            f"{ours['p99_ms'] / theirs['p99_ms']:.2f}x",
            load,
        ),
    ]
    for clients, c in r.get("concurrency", {}).items():
        target = " (target>=5)" if clients == "16" else ""
        out.append(
            (
                f"serving: /score req/s at {clients} clients",
                _fmt(c["ours_rps"]),
                _fmt(c["mlflow_rps"]),
                f"{c['ratio']:.2f}x{target}",
                f"{c['load_average']:.1f}",
            )
        )
        if "ours_p50_ms" in c:
            out.append(
                (
                    f"serving: /score p50 ms at {clients} clients",
                    f"{c['ours_p50_ms']:.2f}",
                    f"{c['mlflow_p50_ms']:.2f}",
                    f"{c['ours_p50_ms'] / c['mlflow_p50_ms']:.2f}x",
                    f"{c['load_average']:.1f}",
                )
            )
    batch = r.get("batch", {})
    if batch:
        b_ours = batch["leadscore (bentoml /score_batch)"]
        b_theirs = batch["mlflow models serve (/invocations)"]
        out.append(
            (
                f"serving: /score_batch rows/s ({b_ours['rows_per_call']}/call)",
                _fmt(b_ours["rows_per_s"]),
                _fmt(b_theirs["rows_per_s"]),
                f"{b_ours['rows_per_s'] / b_theirs['rows_per_s']:.2f}x",
                f"{b_ours['load_average']:.1f}",
            )
        )
    memory = r.get("memory", {})
    if memory:
        m_ours, m_theirs = memory["leadscore (bentoml)"], memory["mlflow models serve"]
        out.append(
            (
                "serving: RSS per worker MB",
                _fmt(m_ours["per_worker_mb"]),
                _fmt(m_theirs["per_worker_mb"]),
                f"{m_ours['per_worker_mb'] / m_theirs['per_worker_mb']:.2f}x",
                load,
            )
        )
        out.append(
            (
                "serving: RSS all processes MB",
                _fmt(m_ours["total_mb"]),
                _fmt(m_theirs["total_mb"]),
                f"{m_ours['total_mb'] / m_theirs['total_mb']:.2f}x",
                load,
            )
        )
    return out


def rows_distributed(rec: dict) -> list[Row]:
    r = rec["result"]
    single = r["distributed"][0]["activity_rows_per_s"]
    out = []
    for row in r["distributed"][1:]:
        out.append(
            (
                f"distributed: dask {row['workers']} worker(s), rows/s",
                _fmt(row["activity_rows_per_s"]),
                _fmt(single),
                f"{row['activity_rows_per_s'] / single:.2f}x",
                _load(rec),
            )
        )
    trained = r.get("training") or []
    local = next((t for t in trained if t["engine"] == "single"), None)
    for row in trained:
        if local is None or row["engine"] != "dask":
            continue
        out.append(
            (
                f"distributed: train, dask {row['workers']} worker(s), s",
                f"{row['train_s']}",
                f"single machine: {local['train_s']}",
                f"{row['train_s'] / local['train_s']:.2f}x",
                _load(rec),
            )
        )
        out.append(
            (
                f"distributed: train, dask {row['workers']} worker(s), test AUC",
                f"{row['test_auc']:.4f}",
                f"{local['test_auc']:.4f}",
                f"{row['test_auc'] - local['test_auc']:+.4f}",
                _load(rec),
            )
        )
    return out


def rows_funnel(rec: dict) -> list[Row]:
    r = rec["result"]
    return [
        (
            f"funnel + threshold report: {r['scores']:,} scores, {r['dispositions']:,} "
            "dispositions, s",
            f"{r['report_total']}",
            "target: 10",
            f"{r['report_total'] / 10:.2f}x",
            _load(rec),
        )
    ]


def rows_monitor(rec: dict) -> list[Row]:
    r = rec["result"]
    return [
        (
            "leadscore monitor on the stored scores, s",
            f"{r['total_s']}",
            "target: 30",
            f"{r['total_s'] / 30:.2f}x",
            _load(rec),
        )
    ]


def rows_store(rec: dict) -> list[Row]:
    out = []
    for backend, r in rec["result"]["store"].items():
        if r is None:
            continue
        out.append(
            (
                f"store: {backend}, {r['leads']:,} leads x {r['runs']} runs, rows/s",
                _fmt(r["store_rows_per_s"]),
                f"to_sql: {_fmt(r['to_sql_rows_per_s'])}",
                f"{r['store_rows_per_s'] / r['to_sql_rows_per_s']:.2f}x",
                _load(rec),
            )
        )
    return out


ROWS: dict[str, Callable[[dict], list[Row]]] = {
    "features": rows_features,
    "training": rows_training,
    "explain": rows_explain,
    "serving": rows_serving,
    "distributed": rows_distributed,
    "store": rows_store,
    "funnel": rows_funnel,
    "monitor": rows_monitor,
}


def table(report: dict[str, Any]) -> str:
    """The one table: figure, value, peer, ratio and load average."""
    m = report["machine"]
    lines = [
        f"leadscore benchmarks ({report['mode']}), {report['date']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['system']}, "
        f"Python {m['python']}",
        "",
    ]
    header = ("figure", "ours", "peer", "ratio", "load")
    rows: list[Row] = []
    for name, rec in report["benchmarks"].items():
        if "result" not in rec:
            rows.append((f"{name}: FAILED (see all.json)", "-", "-", "-", _load(rec)))
            continue
        try:
            rows += ROWS[name](rec)
        except (KeyError, TypeError, ZeroDivisionError) as exc:
            rows.append((f"{name}: unreadable result ({exc!r})", "-", "-", "-", _load(rec)))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        lines.append(
            "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    lines.append("")
    lines.append(
        "load = one-minute load average before-after the script (or while measured);"
        " a load above the core count means the figures are inflated."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write ``all.json`` and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "all.json")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per benchmark (default: 900 quick, 7200 full)",
    )
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    timeout = args.timeout or (900 if args.quick else 7200)
    out_dir = args.out.parent / (f"{mode}-parts")
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "benchmarks": {},
    }
    for name in args.only or list(BENCHMARKS):
        report["benchmarks"][name] = run_one(name, mode, out_dir, timeout)
    text = table(report)
    report["table"] = text
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n" + text)
    print(f"\nwrote {args.out}")
    failed = [n for n, rec in report["benchmarks"].items() if "result" not in rec]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
