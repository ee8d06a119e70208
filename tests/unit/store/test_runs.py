"""Writing scoring runs: scores kept, MQL events and lead states right, history readable."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from store.engine import open_store
from store.history import momentum, new_mqls, timeline
from store.runs import RunInfo, ScoresFrameError, read_states, write_run
from store.schema import mql_events, scores, scoring_runs


def _frame(rows: dict[str, tuple[int, bool]], region: str = "EMEA") -> pd.DataFrame:
    """Scores of a run: lead -> (score, mql)."""
    ids = list(rows)
    return pd.DataFrame(
        {
            "lead_id": ids,
            "probability": [rows[i][0] / 100 for i in ids],
            "probability_low": [rows[i][0] / 120 for i in ids],
            "probability_high": [min(1, rows[i][0] / 80) for i in ids],
            "score": [rows[i][0] for i in ids],
            "grade": ["A1" if rows[i][1] else "C3" for i in ids],
            "mql": [rows[i][1] for i in ids],
            "threshold": 0.5,
            "region": region,
            "lead_source": "webinar",
            "reasons": [
                {"positive": [{"signal": "pricing_page", "sentence": "Visited pricing"}]}
                for _ in ids
            ],
            "next_best_actions": [[{"action": "demo_request", "score": 80}] for _ in ids],
        }
    )


def _run(engine, day: str, rows: dict[str, tuple[int, bool]], source: str = "batch"):
    info = RunInfo(
        source=source, as_of=pd.Timestamp(day), model_name="m", model_version="3", threshold=0.5
    )
    return write_run(engine, info, _frame(rows))


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def test_a_run_stores_every_score_with_its_card(engine) -> None:
    written = _run(engine, "2025-03-01", {"L1": (80, True), "L2": (20, False)})
    assert (written.scores, written.entered, written.left) == (2, 1, 0)
    with engine.connect() as c:
        run = c.execute(sa.select(scoring_runs)).one()
        stored = c.execute(sa.select(scores).order_by(scores.c.lead_id)).all()
    assert (run.leads, run.mqls, run.model_version, run.source) == (2, 1, "3", "batch")
    assert [(s.lead_id, s.score, s.mql, s.grade) for s in stored] == [
        ("L1", 80, True, "A1"),
        ("L2", 20, False, "C3"),
    ]
    assert stored[0].reasons == {
        "positive": [{"signal": "pricing_page", "sentence": "Visited pricing"}]
    }
    assert stored[0].next_best_actions == [{"action": "demo_request", "score": 80}]
    assert stored[0].as_of == pd.Timestamp("2025-03-01")


def test_mql_events_follow_a_lead_in_and_out_and_in_again(engine) -> None:
    _run(engine, "2025-03-01", {"L1": (80, True), "L2": (20, False), "L3": (70, True)})
    second = _run(engine, "2025-03-08", {"L1": (40, False), "L2": (60, True)})  # L3 converted
    third = _run(engine, "2025-03-15", {"L1": (90, True), "L2": (65, True)})
    assert (second.entered, second.left) == (1, 2)
    assert (third.entered, third.left) == (1, 0)
    with engine.connect() as c:
        events = c.execute(
            sa.select(
                mql_events.c.lead_id,
                mql_events.c.event,
                mql_events.c.cause,
                mql_events.c.occurred_at,
            ).order_by(mql_events.c.occurred_at, mql_events.c.lead_id)
        ).all()
        states = read_states(c).set_index("lead_id")
    assert [(e.lead_id, e.event, e.cause, e.occurred_at.day) for e in events] == [
        ("L1", "entered", "score", 1),
        ("L3", "entered", "score", 1),
        ("L1", "left", "score", 8),
        ("L2", "entered", "score", 8),
        ("L3", "left", "not_scored", 8),
        ("L1", "entered", "score", 15),
    ]
    assert states.loc["L1", "mql_episodes"] == 2
    assert states.loc["L1", "first_mql_at"] == pd.Timestamp("2025-03-01")
    assert states.loc["L1", "last_mql_at"] == pd.Timestamp("2025-03-15")
    assert states.loc["L1", "mql_since"] == pd.Timestamp("2025-03-15")
    assert states.loc["L2", "mql_since"] == pd.Timestamp("2025-03-08")  # still the same episode
    assert not states.loc["L3", "mql"] and pd.isna(states.loc["L3", "mql_since"])


def test_an_online_run_only_touches_the_leads_it_scored(engine) -> None:
    _run(engine, "2025-03-01", {"L1": (80, True), "L2": (70, True)})
    online = _run(engine, "2025-03-02", {"L1": (30, False)}, source="online")
    assert (online.entered, online.left) == (0, 1)
    with engine.connect() as c:
        states = read_states(c).set_index("lead_id")
    assert bool(states.loc["L2", "mql"]) and not bool(states.loc["L1", "mql"])


def test_a_backfill_older_than_the_state_is_kept_but_changes_nothing(engine) -> None:
    _run(engine, "2025-03-08", {"L1": (80, True)})
    late = _run(engine, "2025-03-01", {"L1": (10, False)})
    assert (late.entered, late.left) == (0, 0)
    with engine.connect() as c:
        states = read_states(c).set_index("lead_id")
    assert bool(states.loc["L1", "mql"]) and states.loc["L1", "score"] == 80
    assert list(timeline(engine, "L1")["score"]) == [10, 80]


def test_momentum_and_new_mqls_read_the_history(engine) -> None:
    _run(engine, "2025-02-01", {"L1": (10, False), "L2": (50, True)})
    _run(engine, "2025-02-25", {"L1": (30, False), "L2": (55, True)})
    _run(engine, "2025-03-04", {"L1": (75, True), "L2": (52, True), "L4": (5, False)})
    m = momentum(engine).set_index("lead_id")
    assert m.loc["L1", "score"] == 75
    assert m.loc["L1", "momentum_7d"] == 45  # against 2025-02-25, on or before 7 days earlier
    assert m.loc["L1", "momentum_30d"] == 65  # against 2025-02-01
    assert pd.isna(m.loc["L4", "momentum_7d"])  # never scored that long ago: no momentum
    fresh = new_mqls(engine, "2025-03-01")
    assert list(fresh["lead_id"]) == ["L1"]
    assert fresh["entered_at"].iloc[0] == pd.Timestamp("2025-03-04")
    line = timeline(engine, "L1")
    assert list(line["score"]) == [10, 30, 75] and list(line["mql"]) == [False, False, True]
    assert timeline(engine, "nobody").empty


def test_a_bad_frame_is_refused_whole_naming_row_and_column(engine) -> None:
    frame = _frame({"L1": (80, True), "L2": (20, False)})
    frame.loc[1, "score"] = None
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-01"),
        model_name="m",
        model_version="1",
        threshold=0.5,
    )
    with pytest.raises(ScoresFrameError, match=r"row 1 \(lead 'L2'\): score"):
        write_run(engine, info, frame)
    with pytest.raises(ScoresFrameError, match=r"missing column.*grade"):
        write_run(engine, info, frame.drop(columns="grade"))
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(scoring_runs)).scalar() == 0


def test_online_scores_keep_their_own_moment_and_regional_threshold(engine) -> None:
    frame = _frame({"L1": (80, True), "L2": (60, True)})
    frame["as_of"] = pd.to_datetime(["2025-03-01 09:00", "2025-03-01 17:30"])
    frame["threshold"] = [0.5, 0.55]  # L2's region has its own threshold
    info = RunInfo(
        source="online",
        as_of=pd.Timestamp("2025-03-01 17:30"),
        model_name="m",
        model_version="3",
        threshold=0.5,
    )
    write_run(engine, info, frame)
    with engine.connect() as c:
        events = c.execute(
            sa.select(
                mql_events.c.lead_id, mql_events.c.occurred_at, mql_events.c.threshold
            ).order_by(mql_events.c.lead_id)
        ).all()
        stored = c.execute(sa.select(scores.c.as_of).order_by(scores.c.lead_id)).scalars().all()
    assert [(e.lead_id, e.occurred_at.hour, e.threshold) for e in events] == [
        ("L1", 9, 0.5),
        ("L2", 17, 0.55),
    ]
    assert [t.hour for t in stored] == [9, 17]


def test_awkward_text_round_trips_unchanged(engine) -> None:
    awkward = 'tab\there, new\nline, back\\slash, "quotes", \\N, emoji 🚀, naïve'
    frame = _frame({"L1": (80, True)})
    frame["region"] = awkward
    frame["reasons"] = [{"positive": [{"sentence": awkward, "contribution": 0.25}]}]
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-01"),
        model_name="m",
        model_version="1",
        threshold=0.5,
    )
    write_run(engine, info, frame)
    with engine.connect() as c:
        row = c.execute(sa.select(scores.c.region, scores.c.reasons)).one()
        state = read_states(c).iloc[0]
    assert row.region == awkward == state["region"]
    assert row.reasons == {"positive": [{"sentence": awkward, "contribution": 0.25}]}
