"""Load test of the real service on loopback: N requests at concurrency C, zero errors.

A bounded loop of threads, each with its own keep-alive ``httpx.Client``, posts sample
leads to ``POST /score`` of a real ``bentoml serve`` (started here from a small champion
trained with the real training stage, unless ``--url`` names a running one) and reports
p50/p90/p99 latency, throughput and every error. ``--kill-worker`` SIGKILLs the BentoML
worker process a third of the way through: the arbiter restarts it, and the report counts
the requests that failed and how long the service was away.

    python benchmarks/bench_load.py --requests 20000 --concurrency 32 [--kill-worker]

The load average and core count are printed next to the figures: on a shared machine the
latencies say as much about the neighbours as about the service.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # serving_support


def worker_pids(server_pid: int) -> list[int]:
    """BentoML worker processes under ``bentoml serve`` (found through /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and "_bentoml_impl.worker" in cmdline:
            pids.append(int(entry.name))
    return pids


def run_load(
    url: str,
    payloads: list[dict],
    requests: int,
    concurrency: int,
    headers: dict[str, str],
    kill_at: int | None = None,
    server_pid: int | None = None,
) -> dict:
    """Send ``requests`` requests from ``concurrency`` threads; returns the figures."""
    lock = threading.Lock()
    counter = iter(range(requests))
    latencies = np.zeros(requests)
    ok = np.zeros(requests, dtype=bool)
    errors: list[str] = []
    events: dict[str, float] = {}
    bodies = [json.dumps(p).encode() for p in payloads]

    def client_loop() -> None:
        with httpx.Client(
            base_url=url, timeout=60, headers={"content-type": "application/json", **headers}
        ) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if kill_at is not None and i == kill_at and server_pid:
                    pids = worker_pids(server_pid)
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    events["killed_at"] = time.perf_counter()
                    events["killed_pids"] = len(pids)
                start = time.perf_counter()
                try:
                    r = client.post("/score", content=bodies[i % len(bodies)])
                    good = r.status_code == 200
                    if not good:
                        with lock:
                            errors.append(f"HTTP {r.status_code}: {r.text[:120]}")
                except httpx.HTTPError as exc:
                    good = False
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:160])
                end = time.perf_counter()
                latencies[i], ok[i] = end - start, good
                if (
                    good
                    and "killed_at" in events
                    and "recovered_at" not in events
                    and start > events["killed_at"]
                ):
                    events["recovered_at"] = end

    load_before = os.getloadavg()
    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    good = latencies[ok] * 1000
    result = {
        "requests": requests,
        "concurrency": concurrency,
        "ok": int(ok.sum()),
        "errors": len(errors),
        "error_kinds": sorted({e.split(":")[0] for e in errors}),
        "error_examples": errors[:5],
        "seconds": round(seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "p50_ms": round(float(np.percentile(good, 50)), 1) if len(good) else None,
        "p90_ms": round(float(np.percentile(good, 90)), 1) if len(good) else None,
        "p99_ms": round(float(np.percentile(good, 99)), 1) if len(good) else None,
        "max_ms": round(float(good.max()), 1) if len(good) else None,
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    if "killed_at" in events:
        result["worker_killed"] = int(events["killed_pids"])
        result["recovery_s"] = round(
            events.get("recovered_at", float("nan")) - events["killed_at"], 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--kill-worker",
        action="store_true",
        help="SIGKILL the BentoML worker a third of the way through",
    )
    parser.add_argument("--url", help="a running service (default: start one here)")
    parser.add_argument(
        "--token",
        default=os.environ.get("LEADSCORE_API_TOKEN"),
        help="bearer token (default: LEADSCORE_API_TOKEN)",
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}

    import serving_support as testing

    from serving.launch import start_server
    from serving.samples import list_samples, write_samples

    with tempfile.TemporaryDirectory(prefix="leadscore-load-") as tmp:
        root = testing.session_root(Path(tmp))
        champion = testing.session_champion(root)
        folder = write_samples(champion.tables, root / "samples", 12)
        payloads = [
            json.loads((folder / f"{s['name']}.json").read_text()) for s in list_samples(folder)
        ]
        server = None
        url = args.url
        if url is None:
            extra = {"LEADSCORE_API_TOKEN": args.token} if args.token else None
            server = start_server(
                testing.session_settings(root), extra_env=extra, log_path=root / "server.log"
            )
            url = server.url
        try:
            for body in payloads:  # warm-up, and every sample must score
                r = httpx.post(f"{url}/score", json=body, headers=headers, timeout=60)
                r.raise_for_status()
            result = run_load(
                url,
                payloads,
                args.requests,
                args.concurrency,
                headers,
                args.requests // 3 if args.kill_worker else None,
                server.process.pid if server else None,
            )
        finally:
            if server is not None:
                server.stop()
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
