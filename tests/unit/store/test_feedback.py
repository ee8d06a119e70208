"""Sales feedback into the store: validated whole, idempotent, one transaction, flags kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import sqlalchemy as sa

import store.feedback as feedback
from store.engine import open_store
from store.feedback import (
    OUT_OF_ORDER,
    FeedbackError,
    Naming,
    leads_dispositions,
    out_of_order_flags,
    record_dispositions,
)
from store.runs import RunInfo, read_states, write_run
from store.schema import dispositions

NOW = pd.Timestamp("2025-06-01")


def _seed(engine, leads: dict[str, str]) -> None:
    """A batch run that puts ``leads`` (id -> created_at) into ``lead_states``."""
    ids = list(leads)
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "probability": 0.7,
            "probability_low": 0.6,
            "probability_high": 0.8,
            "score": 70,
            "grade": "A1",
            "mql": True,
            "threshold": 0.5,
            "created_at": [pd.Timestamp(leads[i]) for i in ids],
        }
    )
    info = RunInfo(
        source="batch", as_of=pd.Timestamp("2025-03-01"), model_name="m", model_version="1",
        threshold=0.5,
    )  # fmt: skip
    write_run(engine, info, frame)


def _events(*rows: tuple) -> pd.DataFrame:
    """(lead, stage, occurred_at[, reason_code]) rows as a feedback frame."""
    return pd.DataFrame(
        [
            {
                "lead_id": r[0],
                "stage": r[1],
                "occurred_at": r[2],
                "reason_code": r[3] if len(r) > 3 else None,
            }
            for r in rows
        ]
    )


def _count(engine) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(dispositions)).scalar())


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    _seed(engine, {"L1": "2025-01-01", "L2": "2025-01-01", "L3": "2025-02-15"})
    yield engine
    engine.dispose()


def test_events_are_recorded_once_and_a_second_import_is_a_no_op(engine) -> None:
    frame = _events(
        ("L1", "accepted", "2025-03-02T09:00:00"),
        ("L1", "SQL", "2025-03-10 10:00"),  # any case
        ("L2", "rejected", "2025-03-03T12:00:00+02:00", "no_budget"),  # to UTC
        ("L1", "accepted", "2025-03-02T09:00:00"),  # the same event twice in one file
    )
    frame["recorded_by"] = ["ann", None, "bob", "ann"]
    first = record_dispositions(engine, frame, "import", recorded_by_default="crm", now=NOW)
    assert (first.received, first.recorded, first.duplicates, first.flagged) == (4, 3, 1, 0)
    again = record_dispositions(engine, frame, "import", recorded_by_default="crm", now=NOW)
    assert (again.recorded, again.duplicates, again.flagged, again.reflagged) == (0, 4, 0, 0)
    stored = leads_dispositions(engine)
    assert len(stored) == _count(engine) == 3
    assert list(stored["stage"]) == ["accepted", "sql", "rejected"]
    assert list(stored["recorded_by"]) == ["ann", "crm", "bob"]
    rejected = stored.iloc[2]
    assert rejected["reason_code"] == "no_budget"
    assert rejected["occurred_at"] == pd.Timestamp("2025-03-03 10:00")
    assert rejected["source"] == "import" and stored["recorded_at"].iloc[0] == NOW
    assert stored["event_key"].str.len().eq(64).all() and stored["flag"].isna().all()
    only = leads_dispositions(engine, lead_ids=["L2"], stages=["rejected"], since="2025-03-01")
    assert list(only["lead_id"]) == ["L2"]


def test_every_bad_row_is_named_and_nothing_is_written(engine) -> None:
    frame = _events(
        ("L1", "accepted", "2025-03-02"),  # fine, but not written: others are bad
        ("L1", "acepted", "2025-03-03"),
        ("L9", "accepted", "2025-03-03"),
        ("L2", "rejected", "2025-03-03"),
        ("L2", "rejected", "2025-03-03", "no_money"),
        ("L2", "won", "2025-03-03", "bad_fit"),
        ("L3", "accepted", "2025-02-01"),  # before L3 was created
        ("L1", "won", "yesterday"),
        ("L1", "won", "2026-01-01"),  # after now
    )
    with pytest.raises(FeedbackError) as caught:
        record_dispositions(engine, frame, "api", recorded_by_default="x", now=NOW)
    error = caught.value
    assert _count(engine) == 0
    assert error.bad_rows == 8
    assert isinstance(error, ValueError)
    text = str(error)
    assert text.startswith("feedback: 8 of 9 row(s) refused, nothing recorded")
    assert "row 1 (lead 'L1'), column 'stage': 'acepted' is not a stage" in text
    assert "did you mean 'accepted'?" in text and "accepted, rejected, sql" in text
    assert "row 2 (lead 'L9'), column 'lead_id': unknown lead 'L9'" in text
    assert "row 3 (lead 'L2'), column 'reason_code': a rejection needs a reason_code" in text
    assert "row 4 (lead 'L2'), column 'reason_code': 'no_money' is not a rejection" in text
    assert "row 5 (lead 'L2'), column 'reason_code': a reason_code is only for rejected" in text
    assert "row 6 (lead 'L3'), column 'occurred_at': 2025-02-01 00:00:00 is before" in text
    assert "row 7 (lead 'L1'), column 'occurred_at': 'yesterday' is not a date" in text
    assert "row 8 (lead 'L1'), column 'occurred_at': 2026-01-01 00:00:00 is in the future" in text
    assert [(d.position, d.column) for d in error.details][:2] == [(1, "stage"), (2, "lead_id")]


def test_errors_speak_the_sources_words_and_are_capped(engine) -> None:
    frame = _events(*[("L1", "maybe", "2025-03-02")] * 30)
    naming = Naming(where="crm.csv", rows=range(2, 32), columns={"stage": "Status"})
    with pytest.raises(FeedbackError) as caught:
        record_dispositions(engine, frame, "import", "crm", now=NOW, naming=naming)
    error = caught.value
    assert str(error).startswith("crm.csv: 30 of 30 row(s) refused")
    assert error.problems[0].startswith("row 2 (lead 'L1'), column 'Status': 'maybe'")
    assert len(error.problems) == feedback.MAX_LISTED + 1
    assert error.problems[-1] == "... and 10 more"
    with pytest.raises(FeedbackError, match="column 'stage' is missing"):
        record_dispositions(engine, frame.drop(columns="stage"), "import", "crm", now=NOW)
    with pytest.raises(FeedbackError, match=r"unknown column 'stge'.*did you mean 'stage'"):
        record_dispositions(engine, frame.rename(columns={"stage": "stge"}), "import", now=NOW)
    with pytest.raises(FeedbackError, match="recorded_by is missing"):
        record_dispositions(engine, _events(("L1", "accepted", "2025-03-02")), "api", now=NOW)


def test_out_of_order_stages_are_kept_and_flagged_and_reflagged_later(engine) -> None:
    frame = _events(
        ("L1", "won", "2025-03-01"),  # won before the lead's accepted
        ("L1", "accepted", "2025-03-05"),
        ("L2", "sql", "2025-03-05"),  # sql with no accepted before it
        ("L3", "accepted", "2025-03-01"),
        ("L3", "opportunity", "2025-03-05"),
        ("L3", "sql", "2025-03-06"),  # a step back
    )
    result = record_dispositions(engine, frame, "import", "crm", now=NOW)
    assert (result.recorded, result.flagged) == (6, 3)
    stored = leads_dispositions(engine).set_index(["lead_id", "stage"])["flag"]
    assert stored[("L1", "won")] == OUT_OF_ORDER and pd.isna(stored[("L1", "accepted")])
    assert stored[("L2", "sql")] == OUT_OF_ORDER
    assert stored[("L3", "sql")] == OUT_OF_ORDER and pd.isna(stored[("L3", "opportunity")])
    # A late-recorded accepted puts L2's sql back in order: its stored flag is cleared.
    late = record_dispositions(
        engine, _events(("L2", "accepted", "2025-03-04")), "import", "crm", now=NOW
    )
    assert (late.recorded, late.flagged, late.reflagged) == (1, 0, 1)
    assert leads_dispositions(engine, lead_ids=["L2"])["flag"].isna().all()


def test_episodes_end_with_a_rejection_or_an_outcome() -> None:
    events = _events(
        ("A", "accepted", "2025-01-01"),
        ("A", "lost", "2025-01-10"),
        ("A", "sql", "2025-02-01"),  # a new episode without an accepted
        ("B", "rejected", "2025-01-01", "bad_timing"),
        ("B", "accepted", "2025-02-01"),  # recycled, then accepted: fine
        ("B", "sql", "2025-02-01"),  # same time as accepted: funnel order decides
        ("B", "won", "2025-03-01"),
    )
    events["occurred_at"] = pd.to_datetime(events["occurred_at"])
    assert list(out_of_order_flags(events)) == [None, None, OUT_OF_ORDER, None, None, None, None]


def test_an_owner_column_sets_the_leads_owner(engine) -> None:
    frame = _events(("L1", "accepted", "2025-03-02"), ("L1", "sql", "2025-03-09"))
    frame["owner"] = ["ann", "bob"]  # the latest event's owner wins
    result = record_dispositions(engine, frame, "import", "crm", now=NOW)
    assert result.owners == 1
    with engine.connect() as c:
        states = read_states(c).set_index("lead_id")
    assert states.loc["L1", "owner"] == "bob" and pd.isna(states.loc["L2", "owner"])
    _seed(engine, {"L1": "2025-01-01", "L2": "2025-01-01"})  # a later run keeps the owner
    with engine.connect() as c:
        assert read_states(c).set_index("lead_id").loc["L1", "owner"] == "bob"


def test_an_import_failing_midway_leaves_nothing(engine, monkeypatch) -> None:
    frame = _events(
        *[("L1", "accepted", f"2025-03-02T{h:02d}:{m:02d}") for h in range(20) for m in range(60)]
    )
    calls = []
    original = feedback._insert_chunk

    def fail_after_first(connection, statement, rows):
        original(connection, statement, rows)
        calls.append(len(rows))
        raise RuntimeError("killed midway")

    monkeypatch.setattr(feedback, "_insert_chunk", fail_after_first)
    with pytest.raises(RuntimeError, match="killed midway"):
        record_dispositions(engine, frame, "import", "crm", now=NOW)
    assert calls == [feedback.CHUNK] and _count(engine) == 0


def test_a_process_killed_mid_import_leaves_nothing(engine, store_url: str, tmp_path) -> None:
    """A real ``kill -9`` between two chunks of one import: the store has no trace of it."""
    script = textwrap.dedent(
        f"""
        import sys, time
        import pandas as pd
        import store.feedback as feedback
        from store.engine import open_store

        original = feedback._insert_chunk
        def slow(connection, statement, rows):
            original(connection, statement, rows)
            print("half", flush=True)
            time.sleep(60)
        feedback._insert_chunk = slow
        times = pd.date_range("2025-03-02", periods=2 * feedback.CHUNK, freq="min")
        frame = pd.DataFrame({{"lead_id": "L1", "stage": "accepted", "occurred_at": times}})
        feedback.record_dispositions(open_store({store_url!r}), frame, "import", "crm")
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "half"
        assert _count(engine) == 0  # not committed yet: nobody sees the first chunk
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert _count(engine) == 0
    assert record_dispositions(engine, _events(("L1", "accepted", "2025-03-02")), "api", "x", NOW)
    assert _count(engine) == 1  # and the store takes writes again
