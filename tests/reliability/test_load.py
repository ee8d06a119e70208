"""Load on loopback (bounded in CI; ``benchmarks/bench_load.py`` runs the 20,000-request
version) and a worker killed mid-run: zero errors without faults, at most the in-flight
requests lost with one, and the service back afterwards."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import httpx
import pytest
import serving_support as testing
from reliability_support import TOKEN, budget

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_load.py"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def payloads(root):
    from serving.samples import list_samples

    folder = testing.session_samples(root)
    return [json.loads((folder / f"{s['name']}.json").read_text()) for s in list_samples(folder)]


def test_load_without_errors(guarded, payloads):
    concurrency = budget(8, 32)
    result = bench().run_load(guarded.url, payloads, budget(400, 20_000), concurrency, AUTH)
    print(f"\nload: {result}")
    assert result["errors"] == 0, result["error_examples"]


def test_load_with_a_worker_killed(guarded, payloads):
    concurrency = budget(8, 32)
    requests = budget(300, 20_000)
    result = bench().run_load(
        guarded.url,
        payloads,
        requests,
        concurrency,
        AUTH,
        kill_at=requests // 3,
        server_pid=guarded.process.pid,
    )
    print(f"\nload with a worker killed: {result}")
    assert result["worker_killed"] == 1
    assert result["errors"] <= concurrency, result["error_examples"]
    assert result["ok"] >= requests - concurrency
    deadline = time.monotonic() + 120
    while httpx.get(f"{guarded.url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the service did not come back"
        time.sleep(0.5)
    assert (
        httpx.post(f"{guarded.url}/score", json=payloads[0], headers=AUTH, timeout=60).status_code
        == 200
    )
