"""The worklist's reads: milliseconds per page on SQLite and PostgreSQL.

N leads scored in four weekly batch runs (``store.runs.write_run``), then
``serving.worklist``'s queries as the page sends them: a page by score (MQLs, all, a
region, far into the list), sorted by 7- and 30-day momentum, by MQL date, the filter
values and one lead's drawer. The peer is ``store.history.momentum`` (pandas over the
whole history), what a worklist sorted by momentum would otherwise start from. Best of
three per query. The PostgreSQL figures need Debian's ``postgresql`` (a throwaway server
on loopback, as the tests start); without it only SQLite is measured.

    python benchmarks/bench_worklist.py --leads 50000 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from serving.worklist import WorklistQuery, facets, lead_detail, worklist  # noqa: E402
from store.engine import open_store  # noqa: E402
from store.history import momentum  # noqa: E402
from store.runs import RunInfo, write_run  # noqa: E402

RUNS = ("2025-02-01", "2025-02-08", "2025-02-15", "2025-03-08")


def fill(url: str, leads: int) -> float:
    """Write the four runs; seconds taken."""
    engine = open_store(url)
    rng = np.random.default_rng(0)
    ids = [f"L{i:07d}" for i in range(leads)]
    regions = np.array(["EMEA", "NA", "APAC", "LATAM"])
    sources = np.array(["web", "event", "partner", "paid"])
    base = rng.integers(0, 100, leads)
    reasons = {
        "positive": [
            {
                "signal": "pricing_page_visits",
                "group": "engagement",
                "sentence": "Visited the pricing page 4 times in the last 7 days",
                "contribution": 0.41,
            }
        ],
        "negative": [],
    }
    actions = [
        {
            "action": "demo_request",
            "score": 90,
            "probability": 0.6,
            "mql": True,
            "grade": "A1",
            "gain": 0.2,
            "sentence": "A demo request would raise the score to 90",
        }
    ]
    start = time.perf_counter()
    for k, day in enumerate(RUNS):
        score = np.clip(base + rng.integers(-15, 16, leads) * k, 0, 100)
        keep = rng.random(leads) > 0.05 if k else np.ones(leads, dtype=bool)
        frame = pd.DataFrame(
            {
                "lead_id": ids,
                "probability": score / 100,
                "probability_low": score / 120,
                "probability_high": np.minimum(1.0, score / 90),
                "score": score,
                "grade": np.where(score > 60, "A1", "C3"),
                "mql": score >= 70,
                "threshold": 0.7,
                "region": regions[rng.integers(0, 4, leads)],
                "lead_source": sources[rng.integers(0, 4, leads)],
                "created_at": pd.Timestamp("2025-01-01"),
                "reasons": [reasons] * leads,
                "next_best_actions": [actions] * leads,
            }
        )[keep]
        info = RunInfo(
            source="batch",
            as_of=pd.Timestamp(day),
            model_name="m",
            model_version="1",
            threshold=0.7,
        )
        write_run(engine, info, frame)
    engine.dispose()
    return time.perf_counter() - start


def best_ms(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def measure(url: str, leads: int) -> dict[str, float]:
    result = {"fill_s": round(fill(url, leads), 1)}
    engine = open_store(url, migrate=False)
    try:
        queries = {
            "mqls_by_score": WorklistQuery(mql=True),
            "all_by_score": WorklistQuery(),
            "all_by_score_offset_20000": WorklistQuery(offset=min(20_000, leads - 50)),
            "region_by_score": WorklistQuery(region=("EMEA",)),
            "all_by_momentum_7d": WorklistQuery(sort="momentum_7d"),
            "mqls_by_momentum_30d": WorklistQuery(mql=True, sort="momentum_30d"),
            "mqls_by_mql_since": WorklistQuery(mql=True, sort="mql_since"),
        }
        for name, query in queries.items():
            result[f"{name}_ms"] = best_ms(lambda q=query: worklist(engine, q))
        result["facets_ms"] = best_ms(lambda: facets(engine))
        result["lead_drawer_ms"] = best_ms(lambda: lead_detail(engine, "L0000005"))
        result["peer_history_momentum_ms"] = best_ms(lambda: momentum(engine), repeat=1)
    finally:
        engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {"leads": args.leads, "runs": len(RUNS)}
    with tempfile.TemporaryDirectory() as folder:
        result["sqlite"] = measure(f"sqlite:///{Path(folder) / 'bench.db'}", args.leads)
    import postgres_support

    bin_dir = postgres_support.find_bin()
    result["postgresql"] = None
    if bin_dir is not None:
        server = postgres_support.start(bin_dir)
        try:
            result["postgresql"] = measure(server.create_database("bench"), args.leads)
        finally:
            server.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
