"""Writing scoring runs into the lead store: rows per second on SQLite and PostgreSQL.

A batch run of N leads writes N scores (each with its compact card as JSON, about 1 KB),
its MQL events and N lead states, in one transaction (``store.runs.write_run``). The
peer is what most people would write first: ``pandas.DataFrame.to_sql`` of the same
score rows (JSON already serialised, no events, no states) into the same database.
The PostgreSQL figures need Debian's ``postgresql`` (a throwaway server is started on
loopback, as the tests do); without it only SQLite is measured.

    python benchmarks/bench_store.py --leads 100000 --runs 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from store.engine import open_store  # noqa: E402
from store.runs import RunInfo, write_run  # noqa: E402

SENTENCES = (
    "Visited the pricing page 4 times in the last 7 days (19 in 90 days)",
    "Requested a demo 2 days ago",
    "Works at a company with 51-200 employees, the ideal size",
    "Matches 1 of 3 ideal-customer criteria",
    "Became a lead 74 days ago",
)


def cards(n: int, seed: int) -> pd.DataFrame:
    """N score rows with realistic compact cards (3 positive, 2 negative, 3 actions)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 6, n)
    reason = {
        "positive": [
            {
                "signal": f"s{k}",
                "group": "engagement",
                "sentence": SENTENCES[k],
                "contribution": round(0.4 / (k + 1), 4),
            }
            for k in range(3)
        ],
        "negative": [
            {
                "signal": f"s{k}",
                "group": "fit",
                "sentence": SENTENCES[k],
                "contribution": -round(0.2 / k, 4),
            }
            for k in (3, 4)
        ],
    }
    action = [
        {
            "action": a,
            "score": 70,
            "mql": True,
            "grade": "A2",
            "probability": 0.31,
            "gain": 0.12,
            "sentence": f"A {a} now would raise the score from 41 to 70 and make it an MQL",
        }
        for a in ("demo request", "trial signup", "pricing-page visit")
    ]
    return pd.DataFrame(
        {
            "lead_id": [f"00Q{i:012d}" for i in range(n)],
            "probability": p,
            "probability_low": p * 0.8,
            "probability_high": np.minimum(1, p * 1.25),
            "score": (p * 100).astype(int),
            "grade": rng.choice(["A1", "B2", "C3", "D4"], n),
            "mql": p > np.quantile(p, 0.9),
            "threshold": float(np.quantile(p, 0.9)),
            "region": rng.choice(["NA", "EMEA", "APAC", "LATAM"], n),
            "lead_source": rng.choice(["webinar", "paid_search", "referral"], n),
            "created_at": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 180, n), "D"),
            "reasons": [reason] * n,
            "next_best_actions": [action] * n,
        }
    )


def measure(url: str, leads: int, runs: int) -> dict[str, float]:
    """write_run over ``runs`` weekly runs, then to_sql of the same rows as the peer."""
    engine = open_store(url)
    seconds = []
    try:
        for k in range(runs):
            frame = cards(leads, k)
            info = RunInfo(
                source="batch",
                as_of=pd.Timestamp("2025-07-01") + pd.Timedelta(weeks=k),
                model_name="bench",
                model_version="1",
                threshold=0.1,
            )
            t0 = time.perf_counter()
            write_run(engine, info, frame)
            seconds.append(time.perf_counter() - t0)
        plain = cards(leads, 99)
        plain["reasons"] = [json.dumps(r) for r in plain["reasons"]]
        plain["next_best_actions"] = [json.dumps(a) for a in plain["next_best_actions"]]
        t0 = time.perf_counter()
        with engine.begin() as connection:
            plain.to_sql(
                "bench_to_sql", connection, if_exists="replace", index=False, chunksize=10_000
            )
        peer = time.perf_counter() - t0
    finally:
        engine.dispose()
    return {
        "leads": leads,
        "runs": runs,
        "store_rows_per_s": round(leads * runs / sum(seconds), 0),
        "first_run_rows_per_s": round(leads / seconds[0], 0),
        "last_run_rows_per_s": round(leads / seconds[-1], 0),
        "to_sql_rows_per_s": round(leads / peer, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, dict[str, float] | None] = {}
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-store-") as tmp:
        result["sqlite"] = measure(f"sqlite:///{tmp}/leadscore.db", args.leads, args.runs)
    import postgres_support

    bin_dir = postgres_support.find_bin()
    result["postgresql"] = None
    if bin_dir is not None:
        server = postgres_support.start(bin_dir)
        try:
            result["postgresql"] = measure(server.create_database("bench"), args.leads, args.runs)
        finally:
            server.stop()
    for name, figures in result.items():
        if figures is None:
            print(f"{name}: not measured (no server binaries)")
            continue
        print(
            f"{name}: write_run {figures['store_rows_per_s']:,.0f} rows/s over {args.runs} runs "
            f"of {args.leads:,} (first {figures['first_run_rows_per_s']:,.0f}, last "
            f"{figures['last_run_rows_per_s']:,.0f}) vs to_sql {figures['to_sql_rows_per_s']:,.0f}"
            f" rows/s ({figures['store_rows_per_s'] / figures['to_sql_rows_per_s']:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps({"store": result}, indent=2))


if __name__ == "__main__":
    main()
