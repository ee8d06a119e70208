"""Funnel and threshold report over a large store: 1M scores and 100k dispositions.

Builds an SQLite store in a temporary folder, as the nightly batch would: ``--leads``
leads scored by ``--runs`` weekly runs through ``store.runs.write_run`` (so MQL events and
lead states are the real ones), then ``--dispositions`` sales dispositions written
straight into the table (mostly on MQL episodes, some wins of leads that never were MQLs).
Then times what a report does: read the episodes once, funnel rates by grade, region,
lead source, score band and cohort month, rejection reasons by grade, and the threshold
diagnostics per region. Target (issue 16): the report in < 10 s on 2 cores.

    python benchmarks/bench_funnel.py                      # 100k leads x 10 runs
    python benchmarks/bench_funnel.py --leads 10000 --dispositions 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from store.engine import open_store, sqlite_url
from store.frames import insert_frame
from store.funnel import mql_episodes, rates_from_episodes, reasons_from_episodes
from store.runs import RunInfo, write_run
from store.schema import REJECTION_REASONS, dispositions, mql_events
from store.threshold import threshold_diagnostics

REGIONS = {"EMEA": 0.50, "NA": 0.45, "APAC": 0.55, "LATAM": 0.50}
SOURCES = ("webinar", "paid_search", "organic", "events", "partner")
GRADES = np.array([f"{letter}{digit}" for letter in "ABCD" for digit in "1234"])
START = pd.Timestamp("2025-01-06")


def build(engine: Any, leads: int, runs: int, seed: int) -> dict[str, float]:
    """Write ``runs`` weekly batch runs of ``leads`` leads; seconds and rows written."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"lead-{i:07d}" for i in range(leads)], dtype=object)
    region_names = np.array(list(REGIONS), dtype=object)
    region = region_names[rng.integers(0, len(REGIONS), leads)]
    threshold = np.array([REGIONS[r] for r in region])
    source = np.array(SOURCES, dtype=object)[rng.integers(0, len(SOURCES), leads)]
    level = rng.beta(2, 5, leads)
    t0 = time.perf_counter()
    for week in range(runs):
        level = np.clip(level + rng.normal(0, 0.05, leads), 0, 1)
        frame = pd.DataFrame(
            {
                "lead_id": ids,
                "probability": level,
                "probability_low": level * 0.9,
                "probability_high": np.minimum(level * 1.1, 1.0),
                "score": np.round(100 * level).astype(np.int64),
                "grade": GRADES[rng.integers(0, len(GRADES), leads)],
                "mql": level >= threshold,
                "threshold": threshold,
                "region": region,
                "lead_source": source,
            }
        )
        info = RunInfo(
            source="batch",
            as_of=START + pd.Timedelta(weeks=week),
            model_name="lead-scoring",
            model_version="1",
            threshold=0.5,
        )
        write_run(engine, info, frame)
    seconds = time.perf_counter() - t0
    return {"write_seconds": round(seconds, 1), "scores_per_second": round(leads * runs / seconds)}


def feedback(engine: Any, count: int, seed: int) -> int:
    """Write ``count`` dispositions: most after an MQL entry, 5 % wins of other leads."""
    rng = np.random.default_rng(seed + 1)
    with engine.connect() as connection:
        entries = pd.DataFrame(
            connection.execute(
                sa.select(mql_events.c.lead_id, mql_events.c.occurred_at).where(
                    mql_events.c.event == "entered"
                )
            ).all(),
            columns=["lead_id", "at"],
        )
    entries["at"] = pd.to_datetime(entries["at"])
    pick = entries.iloc[rng.integers(0, len(entries), count)].reset_index(drop=True)
    stage = rng.choice(
        ["accepted", "rejected", "sql", "opportunity", "won", "lost"],
        count,
        p=[0.40, 0.20, 0.15, 0.10, 0.10, 0.05],
    )
    delay = pd.to_timedelta(rng.gamma(2.0, 6.0, count) * 24, unit="h")
    lead = pick["lead_id"].to_numpy(dtype=object)
    others = rng.random(count) < 0.05
    lead[others] = [f"lead-{i:07d}" for i in rng.integers(0, 10**5, int(others.sum()))]
    stage[others] = "won"
    reason = np.where(stage == "rejected", rng.choice(list(REJECTION_REASONS), count), None).astype(
        object
    )
    frame = pd.DataFrame(
        {
            "event_key": [f"bench-{i}" for i in range(count)],
            "lead_id": lead,
            "stage": stage,
            "reason_code": reason,
            "occurred_at": (pick["at"] + delay).astype("datetime64[ns]"),
            "recorded_by": "bench",
            "recorded_at": pd.Timestamp("2025-06-01"),
            "source": "import",
        }
    )
    with engine.begin() as connection:
        return insert_frame(connection, dispositions, frame)


def report(engine: Any) -> dict[str, float]:
    """Time each part of the funnel and threshold report."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    episodes = mql_episodes(engine)
    times["read_episodes"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    for by in ("grade", "region", "lead_source", "score_band", "cohort_month"):
        rates_from_episodes(episodes, by)
    rates_from_episodes(episodes, ("region", "grade"))
    times["funnel_rates_6_groupings"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    reasons_from_episodes(episodes, "grade")
    times["rejection_reasons"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    diagnostics = threshold_diagnostics(
        engine, capacity={region: 1500.0 for region in REGIONS}, horizon_days=30
    )
    times["threshold_diagnostics"] = time.perf_counter() - t3
    times["report_total"] = time.perf_counter() - t0
    rounded = {key: round(value, 2) for key, value in times.items()}
    rounded["episodes"] = len(episodes)
    for message in diagnostics.verdicts["message"]:
        print(f"  {message}")
    return rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--dispositions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = open_store(sqlite_url(Path(folder) / "leadscore.db"))
        try:
            figures: dict[str, Any] = {"leads": args.leads, "runs": args.runs}
            figures.update(build(engine, args.leads, args.runs, args.seed))
            figures["dispositions"] = feedback(engine, args.dispositions, args.seed)
            figures["scores"] = args.leads * args.runs
            figures.update(report(engine))
        finally:
            engine.dispose()
    for key, value in figures.items():
        print(f"{key:>26}: {value}")
    status = "meets" if figures["report_total"] < 10 else "misses"
    print(
        f"report over {figures['scores']:,} scores: {figures['report_total']} s ({status} < 10 s)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
