"""Single-lead scoring latency: our BentoML service vs ``mlflow models serve``, side by side.

Both servers serve the same registered champion on loopback, one worker each:

* ours answers ``POST /score`` with a lead's raw profile, account and activities: it
  computes the features, the calibrated probability, MQL flag, grade and exact SHAP
  reasons;
* ``mlflow models serve --env-manager local`` answers ``POST /invocations`` with the
  *precomputed feature row* of the same lead and returns the bare probability.

Requests alternate between the servers in blocks, so a change in machine load hits
both alike. Single requests and the concurrent runs go through
``benchmarks/http_client.py``, a minimal keep-alive client (like ``wrk``), because a
general-purpose Python client spends as much CPU per call as a fast server does. Both
servers run ``--workers`` worker processes (default 1 each).

Printed: p50/p99/mean latency, requests per second at each ``--concurrency`` (default 1
and 16 clients; the median of ``--rounds`` alternating rounds of at least ``--requests``
requests each), ``/score_batch`` rows per second against ``/invocations``
with the same rows as one frame, the resident memory of each server's processes, the
ratios, and the load average next to each figure. Targets (issue 6): our fully
explained p50 at most 0.2x MLflow's bare prediction, and at 16 clients at least 5x its
requests per second. On a small machine the load generator shares the CPUs with both
servers, which caps the requests per second of whichever server is faster.

Usage::

    python benchmarks/bench_serving.py                       # trains a small champion
    python benchmarks/bench_serving.py --tracking-uri sqlite:///outputs/mlflow.db
    python benchmarks/bench_serving.py --requests 100 --warmup 10 --json out.json  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # serving_support

from benchmarks.http_client import Connection, encode_request, run_concurrent
from features.contract import TIMESTAMP_UNIT
from features.pipeline import compute_features, data_window
from leadscore.settings import Settings
from serving.batch import open_leads
from serving.launch import free_port, start_server, wait_ready
from serving.model_store import QUIET_ENV, quiet_telemetry
from serving.samples import lead_payload

TARGET_LATENCY_RATIO = 0.2
"""Our fully explained single-lead p50 over MLflow's bare-prediction p50, at most."""
TARGET_THROUGHPUT_RATIO = 5.0
"""Our requests per second over MLflow's at 16 clients, at least."""
TARGET_CONCURRENCY = 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tracking-uri",
        help="MLflow store holding lead-scoring@champion; "
        "default: train a small champion in a temporary folder",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="Data folder of the champion (for lead "
        "payloads); default: the simulated data of the trained champion",
    )
    p.add_argument("--requests", type=int, default=600, help="Timed requests per server")
    p.add_argument("--warmup", type=int, default=50, help="Untimed requests per server")
    p.add_argument("--block", type=int, default=50, help="Requests per alternation block")
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, TARGET_CONCURRENCY],
        help="Client counts for the requests-per-second runs",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Alternating rounds per client count (the median round is reported)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="Leads per /score_batch (and rows per /invocations) call",
    )
    p.add_argument("--batch-requests", type=int, default=20, help="Timed batch calls per server")
    p.add_argument("--leads", type=int, default=40, help="Distinct leads to cycle through")
    p.add_argument(
        "--workers", type=int, default=1, help="Worker processes of each server (the same for both)"
    )
    p.add_argument("--json", type=Path, dest="out", help="Also write the results as JSON here")
    return p.parse_args(argv)


def champion_source(args: argparse.Namespace, work: Path) -> tuple[str, dict[str, pd.DataFrame]]:
    """The tracking URI and the data tables to draw leads from."""
    from serving_support import register_champion

    from features.io import load_tables

    if args.tracking_uri:
        if args.data is None:
            raise SystemExit("--data is required with --tracking-uri")
        return args.tracking_uri, load_tables(args.data)
    print("training a small champion (simulated data) ...", flush=True)
    champion = register_champion(work / "registry", n_leads=3000)
    return champion.tracking_uri, champion.tables


def pick_requests(tables: dict[str, pd.DataFrame], n: int) -> tuple[list[dict], list[dict]]:
    """Our ``/score`` bodies and MLflow's ``/invocations`` bodies for the same leads
    (MLflow's hold the lead's precomputed feature row under ``dataframe_split``)."""
    as_of = data_window(tables)[1] - pd.Timedelta(days=30)
    snaps = open_leads(tables, as_of)
    rng = np.random.default_rng(0)
    snaps = snaps.iloc[
        np.sort(rng.choice(len(snaps), size=min(n, len(snaps)), replace=False))
    ].reset_index(drop=True)
    ours = [lead_payload(tables, lead_id, as_of) for lead_id in snaps["lead_id"]]
    features = compute_features(
        tables["leads"],
        tables["accounts"],
        tables["activities"],
        snaps.assign(as_of=snaps["as_of"].astype(TIMESTAMP_UNIT)),
    )
    columns = [c for c in features.columns if c not in ("lead_id", "as_of")]
    theirs = []
    for i in range(len(features)):
        row = [
            None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
            for v in features[columns].iloc[i].astype(object)
        ]
        theirs.append({"dataframe_split": {"columns": columns, "data": [row]}})
    return ours, theirs


def start_mlflow(tracking_uri: str, work: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve`` of the champion, in the local environment, on loopback."""
    port = free_port()
    # MLflow starts `uvicorn` by name: put this interpreter's scripts folder on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    log = open(work / "mlflow-serve.log", "w")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/lead-scoring@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(
        "mlflow models serve did not start:\n" + (work / "mlflow-serve.log").read_text()[-3000:]
    )


def timed(client: httpx.Client, path: str, body: dict) -> float:
    """Seconds for one request (raises on an HTTP error)."""
    t0 = time.perf_counter()
    r = client.post(path, json=body)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed


def host_port(url: str) -> tuple[str, int]:
    """``("127.0.0.1", 3000)`` from ``http://127.0.0.1:3000``."""
    parsed = urlsplit(url)
    return parsed.hostname or "127.0.0.1", int(parsed.port or 80)


def encoded(url: str, path: str, bodies: list[dict]) -> list[bytes]:
    """The bodies as ready-to-send ``POST`` requests."""
    host, port = host_port(url)
    return [encode_request(host, port, path, json.dumps(b).encode()) for b in bodies]


def summary(latencies: list[float], rps_concurrent: float) -> dict[str, float]:
    """p50/p99/mean in milliseconds and requests per second."""
    ms = np.asarray(latencies) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "rps_sequential": float(1000 / ms.mean()),
        "rps_concurrent": rps_concurrent,
        "requests": len(ms),
    }


def load_average() -> float:
    """One-minute load average (what else the machine was doing while we measured)."""
    return round(os.getloadavg()[0], 2)


def batch_bodies(
    ours: list[dict], theirs: list[dict], size: int, n: int
) -> tuple[list[dict], list[dict]]:
    """``n`` bodies of ``size`` leads each: ``/score_batch`` for us, one ``dataframe_split``
    frame of the same leads' feature rows for MLflow."""
    ours_b, theirs_b = [], []
    for k in range(n):
        idx = [(k * size + i) % len(ours) for i in range(size)]
        ours_b.append({"leads": [ours[i] for i in idx]})
        split = theirs[idx[0]]["dataframe_split"]
        theirs_b.append(
            {
                "dataframe_split": {
                    "columns": split["columns"],
                    "data": [theirs[i]["dataframe_split"]["data"][0] for i in idx],
                }
            }
        )
    return ours_b, theirs_b


def batch_rows_per_s(url: str, path: str, bodies: list[dict], rows: int) -> dict[str, float]:
    """Rows per second of sequential batch calls (one untimed call first)."""
    with httpx.Client(base_url=url, timeout=300) as client:
        timed(client, path, bodies[0])
        seconds = sum(timed(client, path, body) for body in bodies)
    return {
        "rows_per_s": rows * len(bodies) / seconds,
        "calls": len(bodies),
        "rows_per_call": rows,
        "load_average": load_average(),
    }


def resident_memory(pid: int) -> dict[str, object]:
    """Resident memory of a server: every process of its tree, the workers and the total.

    A worker is a process of the tree that is not its root (the root only supervises);
    a server run in a single process counts as one worker.
    """
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    rss = {}
    for proc in procs:
        try:
            rss[proc.pid] = (proc.memory_info().rss / 2**20, " ".join(proc.cmdline()[:4]))
        except psutil.Error:
            continue
    children = [mb for p, (mb, _) in rss.items() if p != pid] or [rss[pid][0]]
    return {
        "total_mb": round(sum(mb for mb, _ in rss.values()), 1),
        "per_worker_mb": round(max(children), 1),
        "processes": len(rss),
        "tree": [{"pid": p, "rss_mb": round(mb, 1), "cmd": cmd} for p, (mb, cmd) in rss.items()],
    }


def concurrent_rps(url: str, requests: list[bytes], clients: int, total: int) -> dict[str, float]:
    """Requests per second and latency with ``clients`` connections sending ``total``."""
    host, port = host_port(url)
    result = run_concurrent(host, port, requests, clients, total)
    if result.errors:
        raise RuntimeError(f"{result.errors} of {total} requests to {url} failed")
    ms = np.asarray(result.latencies) * 1000
    return {
        "rps": result.requests_per_s,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    args = parse_args(argv)
    quiet_telemetry()
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        work = Path(tmp)
        tracking_uri, tables = champion_source(args, work)
        ours_bodies, mlflow_bodies = pick_requests(tables, max(args.leads, args.batch_size))
        settings = Settings(tracking_uri=tracking_uri, bentoml_home=work / "bentoml")
        print("starting bentoml serve and mlflow models serve ...", flush=True)
        settings = settings.replace(workers=args.workers)
        ours = start_server(settings, log_path=work / "bentoml-serve.log")
        mlflow_proc, mlflow_url = start_mlflow(tracking_uri, work, args.workers)
        try:
            assert wait_ready(ours.url, ours.process, 60)
            results = run(args, ours.url, mlflow_url, ours_bodies, mlflow_bodies)
            results["memory"] = {
                "leadscore (bentoml)": resident_memory(ours.process.pid),
                "mlflow models serve": resident_memory(mlflow_proc.pid),
            }
        finally:
            ours.stop()
            mlflow_proc.terminate()
            mlflow_proc.wait(30)
    report(results, args)
    return 0


def run(
    args: argparse.Namespace,
    ours_url: str,
    mlflow_url: str,
    ours_bodies: list[dict],
    mlflow_bodies: list[dict],
) -> dict:
    """Warm up, check both agree, time alternating blocks, then throughput and batches."""
    singles = {"ours": ours_bodies[: args.leads], "mlflow": mlflow_bodies[: args.leads]}
    targets = {
        "leadscore (bentoml /score)": (ours_url, "/score", singles["ours"]),
        "mlflow models serve (/invocations)": (mlflow_url, "/invocations", singles["mlflow"]),
    }
    requests = {name: encoded(url, path, bodies) for name, (url, path, bodies) in targets.items()}
    clients = {name: Connection(*host_port(url)) for name, (url, _, _) in targets.items()}
    load_start = load_average()
    try:
        ours_c, theirs_c = clients.values()
        ours_r, theirs_r = requests.values()
        p_ours = json.loads(ours_c.send(ours_r[0])[1])["probability"]
        p_theirs = json.loads(theirs_c.send(theirs_r[0])[1])["predictions"][0]
        agree = abs(p_ours - p_theirs) < 1e-9
        for name in targets:
            for i in range(args.warmup):
                clients[name].timed(requests[name][i % len(requests[name])])
        latencies: dict[str, list[float]] = {name: [] for name in targets}
        done = 0
        while done < args.requests:
            n = min(args.block, args.requests - done)
            for name in targets:
                reqs = requests[name]
                latencies[name] += [
                    clients[name].timed(reqs[(done + i) % len(reqs)]) for i in range(n)
                ]
            done += n
    finally:
        for client in clients.values():
            client.close()
    load_latency = load_average()
    concurrency: dict[str, dict] = {}
    for c in args.concurrency:
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(max(1, args.rounds)):  # alternate, so load drifts hit both alike
            for name, (url, _, _) in targets.items():
                rounds[name].append(
                    concurrent_rps(url, requests[name], c, max(args.requests, 20 * c))
                )
        row: dict[str, float] = {}
        for name, measured in rounds.items():
            who = "ours" if name.startswith("leadscore") else "mlflow"
            median = sorted(measured, key=lambda m: m["rps"])[len(measured) // 2]
            row[f"{who}_rps"] = median["rps"]
            row[f"{who}_p50_ms"] = median["p50_ms"]
            row[f"{who}_p99_ms"] = median["p99_ms"]
            row[f"{who}_rps_rounds"] = [round(m["rps"], 1) for m in measured]
        row["ratio"] = row["ours_rps"] / row["mlflow_rps"]
        row["load_average"] = load_average()
        concurrency[str(c)] = row
    top = str(max(args.concurrency))
    out: dict = {}
    for name in targets:
        key = "ours_rps" if name.startswith("leadscore") else "mlflow_rps"
        out[name] = summary(latencies[name], concurrency[top][key])
    ours_batches, theirs_batches = batch_bodies(
        ours_bodies, mlflow_bodies, args.batch_size, args.batch_requests
    )
    batch = {
        "leadscore (bentoml /score_batch)": batch_rows_per_s(
            ours_url, "/score_batch", ours_batches, args.batch_size
        ),
        "mlflow models serve (/invocations)": batch_rows_per_s(
            mlflow_url, "/invocations", theirs_batches, args.batch_size
        ),
    }
    ours, theirs = out.values()
    at16 = concurrency.get(str(TARGET_CONCURRENCY))
    latency_ratio = ours["p50_ms"] / theirs["p50_ms"]
    out["concurrency"] = concurrency
    out["batch"] = batch
    out["comparison"] = {
        "speed_ratio_p50": theirs["p50_ms"] / ours["p50_ms"],
        "latency_ratio_p50": latency_ratio,
        "throughput_ratio": ours["rps_concurrent"] / theirs["rps_concurrent"],
        "throughput_ratio_at_16": at16["ratio"] if at16 else None,
        "batch_rows_ratio": (
            batch["leadscore (bentoml /score_batch)"]["rows_per_s"]
            / batch["mlflow models serve (/invocations)"]["rows_per_s"]
        ),
        "same_probability": agree,
        "target_latency_ratio": TARGET_LATENCY_RATIO,
        "target_throughput_ratio_at_16": TARGET_THROUGHPUT_RATIO,
        "meets_latency_target": latency_ratio <= TARGET_LATENCY_RATIO,
        "meets_throughput_target": bool(at16 and at16["ratio"] >= TARGET_THROUGHPUT_RATIO),
        "cpu_count": os.cpu_count(),
        "load_average": load_latency,
        "load_average_at_start": load_start,
    }
    return out


def report(results: dict, args: argparse.Namespace) -> None:
    """Print the tables and optionally write JSON."""
    c = results["comparison"]
    print(
        f"\nsingle-lead scoring on loopback, {args.requests} timed requests per server, "
        f"alternating blocks of {args.block} (load average {c['load_average']:.1f} on "
        f"{c['cpu_count']} CPUs)"
    )
    print(f"{'server':40s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s} {'req/s seq':>10s}")
    for name in ("leadscore (bentoml /score)", "mlflow models serve (/invocations)"):
        r = results[name]
        print(
            f"{name:40s} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['mean_ms']:8.2f} "
            f"{r['rps_sequential']:10.1f}"
        )
    print(f"\n{'clients':>8s} {'ours req/s':>11s} {'mlflow req/s':>13s} {'ratio':>7s} {'load':>6s}")
    for clients, r in results["concurrency"].items():
        print(
            f"{clients:>8s} {r['ours_rps']:11.1f} {r['mlflow_rps']:13.1f} "
            f"{r['ratio']:7.2f} {r['load_average']:6.1f}   rounds: ours "
            f"{r.get('ours_rps_rounds')}, mlflow {r.get('mlflow_rps_rounds')}"
        )
    print(
        f"\n{'batch (' + str(args.batch_size) + ' rows a call)':40s} {'rows/s':>10s} {'load':>6s}"
    )
    for name, r in results["batch"].items():
        print(f"{name:40s} {r['rows_per_s']:10.1f} {r['load_average']:6.1f}")
    if "memory" in results:
        print(f"\n{'resident memory':40s} {'per worker MB':>14s} {'total MB':>9s} {'procs':>6s}")
        for name, r in results["memory"].items():
            print(f"{name:40s} {r['per_worker_mb']:14.1f} {r['total_mb']:9.1f} {r['processes']:6d}")
    verdict = {True: "met", False: "NOT met"}
    print(
        f"\nour p50 is {c['latency_ratio_p50']:.2f}x mlflow's (target <= "
        f"{TARGET_LATENCY_RATIO}: {verdict[c['meets_latency_target']]}); at "
        f"{TARGET_CONCURRENCY} clients "
        + (
            f"{c['throughput_ratio_at_16']:.2f}x its req/s"
            if c["throughput_ratio_at_16"]
            else "not measured"
        )
        + f" (target >= {TARGET_THROUGHPUT_RATIO}: "
        f"{verdict[c['meets_throughput_target']]}); batch rows/s {c['batch_rows_ratio']:.2f}x; "
        f"same probability: {c['same_probability']}"
    )
    print(
        "ours = features + calibrated probability + MQL + grade + exact SHAP reasons from "
        "raw CRM rows; mlflow = bare probability from a precomputed feature row"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
