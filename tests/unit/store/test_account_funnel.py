"""MQA → stage rates: an account reaches a stage when any of its people does (counted by
hand, on SQLite and on a real PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest

from store.engine import open_store
from store.frames import insert_frame
from store.funnel import FunnelError, account_episodes, account_funnel_rates
from store.runs import RunInfo, write_account_run, write_run
from store.schema import dispositions


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _leads(engine, day: str, accounts: dict[str, str | None]) -> None:
    """A lead run that links each lead to its account (none of them an MQL)."""
    ids = list(accounts)
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "probability": 0.1,
            "score": 10,
            "grade": "C3",
            "mql": False,
            "threshold": 0.5,
            "account_id": [accounts[i] for i in ids],
        }
    )
    info = RunInfo("batch", pd.Timestamp(day), "m", "1", threshold=0.5)
    write_run(engine, info, frame)


def _accounts(engine, day: str, rows: dict[str, tuple[float, str]]) -> None:
    """An account run: account -> (probability, grade); MQA when p >= 0.5."""
    ids = list(rows)
    p = [rows[i][0] for i in ids]
    frame = pd.DataFrame(
        {
            "account_id": ids,
            "probability": p,
            "score": [round(100 * x) for x in p],
            "grade": [rows[i][1] for i in ids],
            "mqa": [x >= 0.5 for x in p],
            "threshold": 0.5,
            "region": "EMEA",
        }
    )
    write_account_run(engine, RunInfo("batch", pd.Timestamp(day), "acc", "1", 0.5), frame)


def _feedback(engine, rows: list[tuple[str, str, str]]) -> None:
    frame = pd.DataFrame(rows, columns=["lead_id", "stage", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])
    frame["event_key"] = [f"k{i}" for i in range(len(frame))]
    frame["recorded_by"] = "rep@example.com"
    frame["recorded_at"] = pd.Timestamp("2025-12-31")
    frame["source"] = "api"
    with engine.begin() as connection:
        insert_frame(connection, dispositions, frame)


def test_an_account_reaches_a_stage_when_any_of_its_people_does(engine) -> None:
    _leads(engine, "2024-12-31", {"L1": "A1", "L2": "A1", "L3": "A2", "L4": "A3", "L5": None})
    _accounts(engine, "2025-01-01", {"A1": (0.9, "A1"), "A2": (0.8, "A1"), "A3": (0.6, "B2")})
    _feedback(
        engine,
        [
            ("L1", "rejected", "2025-01-04"),  # one person turned down ...
            ("L2", "opportunity", "2025-02-01"),  # ... and a colleague became an opportunity
            ("L2", "won", "2025-03-15"),
            ("L3", "accepted", "2025-01-05"),
            ("L5", "won", "2025-02-01"),  # no account: in no account episode
        ],
    )
    episodes = account_episodes(engine, as_of="2025-06-30").set_index("account_id")
    assert sorted(episodes.index) == ["A1", "A2", "A3"]
    assert episodes.loc["A1", "opportunity_days"] == 31.0
    assert episodes.loc["A1", "won_days"] == 73.0
    assert pd.isna(episodes.loc["A2", "opportunity_at"])
    assert episodes.loc["A2", "accepted_days"] == 4.0
    rates = account_funnel_rates(engine, by="grade", as_of="2025-06-30")
    won = rates[(rates["stage"] == "won") & (rates["grade"] == "A1")].iloc[0]
    assert (won["mature"], won["reached"]) == (2, 1)  # A1 won within 90 days, A2 not
    opportunity = rates[(rates["stage"] == "opportunity") & (rates["grade"] == "B2")].iloc[0]
    assert (opportunity["mature"], opportunity["reached"]) == (1, 0)


def test_accounts_refuse_a_dimension_they_do_not_have(engine) -> None:
    with pytest.raises(FunnelError, match="accounts cannot be grouped by lead_source"):
        account_funnel_rates(engine, by="lead_source")


def test_an_empty_store_has_no_account_episodes(engine) -> None:
    assert account_episodes(engine).empty
    assert "account_id" in account_episodes(engine).columns
