"""``leadscore accounts new|momentum|timeline|funnel``: the account history in the lead store,
as tables for people and ``--json`` for scripts; an unknown account or window is named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from store.engine import open_store
from store.frames import insert_frame
from store.runs import RunInfo, write_account_run, write_run
from store.schema import dispositions


def _accounts(day: str, rows: dict[str, int]) -> tuple[RunInfo, pd.DataFrame]:
    frame = pd.DataFrame(
        {
            "account_id": list(rows),
            "probability": [s / 100 for s in rows.values()],
            "score": list(rows.values()),
            "grade": ["A1" if s >= 60 else "C3" for s in rows.values()],
            "mqa": [s >= 60 for s in rows.values()],
            "threshold": 0.6,
            "region": "EMEA",
        }
    )
    return RunInfo("batch", pd.Timestamp(day), "acc", "1", 0.6), frame


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Accounts A1 (rising into MQA) and A2 (falling out), three weekly runs, and a lead of
    A1 that became an opportunity."""
    engine = open_store(f"sqlite:///{tmp_path / 'leadscore.db'}")
    try:
        leads = pd.DataFrame(
            {
                "lead_id": ["L1"],
                "probability": 0.2,
                "score": 20,
                "grade": "C3",
                "mql": False,
                "threshold": 0.5,
                "account_id": ["A1"],
            }
        )
        write_run(engine, RunInfo("batch", pd.Timestamp("2025-03-01"), "m", "1", 0.5), leads)
        for day, rows in (
            ("2025-03-01", {"A1": 30, "A2": 70}),
            ("2025-03-22", {"A1": 50, "A2": 65}),
            ("2025-03-29", {"A1": 80, "A2": 40}),
        ):
            write_account_run(engine, *_accounts(day, rows))
        feedback = pd.DataFrame(
            {
                "lead_id": ["L1"],
                "stage": ["opportunity"],
                "occurred_at": [pd.Timestamp("2025-04-02")],
                "event_key": ["k1"],
                "recorded_by": ["rep"],
                "recorded_at": [pd.Timestamp("2025-04-02")],
                "source": ["api"],
            }
        )
        with engine.begin() as connection:
            insert_frame(connection, dispositions, feedback)
    finally:
        engine.dispose()
    return tmp_path


def _run(home: Path, *args: str):
    return CliRunner().invoke(app, ["accounts", *args], env={"LEADSCORE_HOME": str(home)})


def test_new_mqas_momentum_and_timeline(home: Path) -> None:
    fresh = _run(home, "new", "--since", "2025-03-15", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert [a["account_id"] for a in json.loads(fresh.stdout)["accounts"]] == ["A1"]
    moves = _run(home, "momentum", "--days", "28", "--json")
    assert moves.exit_code == 0, moves.output
    ranked = json.loads(moves.stdout)["accounts"]
    assert [(a["account_id"], a["momentum_28d"]) for a in ranked] == [("A1", 50), ("A2", -30)]
    line = _run(home, "timeline", "A1", "--json")
    assert [s["score"] for s in json.loads(line.stdout)["scores"]] == [30, 50, 80]


def test_the_mqa_funnel_counts_an_opportunity_of_any_person(home: Path) -> None:
    shown = _run(home, "funnel", "--json")
    assert shown.exit_code == 0, shown.output
    rates = {(r["grade"], r["stage"]): r for r in json.loads(shown.stdout)["rates"]}
    opportunity = rates[("A1", "opportunity")]  # both entered MQA graded A1
    assert (opportunity["episodes"], opportunity["reached_any"]) == (2, 1)  # only A1 got there
    assert "MQA funnel" in shown.output


def test_unknown_account_window_or_dimension_is_named(home: Path) -> None:
    missing = _run(home, "timeline", "NOPE")
    assert missing.exit_code == 2 and "account 'NOPE'" in missing.output
    window = _run(home, "momentum", "--days", "30")
    assert window.exit_code == 2 and "--days: give one of 7, 28" in window.output
    dimension = _run(home, "funnel", "--by", "lead_source")
    assert (
        dimension.exit_code == 2 and "accounts cannot be grouped by lead_source" in dimension.output
    )
