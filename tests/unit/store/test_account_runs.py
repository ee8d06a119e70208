"""Account scoring runs: account scores kept, MQA events and account states right, and kept
apart from the lead tables (on SQLite and on a real PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from store.engine import current_revision, downgrade, head_revision, open_store, upgrade
from store.history import account_momentum, account_timeline, new_mqas
from store.runs import RunInfo, ScoresFrameError, write_account_run, write_run
from store.schema import account_runs, account_scores, account_states, mqa_events, scoring_runs


def _frame(rows: dict[str, tuple[int, bool]]) -> pd.DataFrame:
    """Scores of an account run: account -> (score, mqa)."""
    ids = list(rows)
    return pd.DataFrame(
        {
            "account_id": ids,
            "probability": [rows[i][0] / 100 for i in ids],
            "score": [rows[i][0] for i in ids],
            "grade": ["A1" if rows[i][1] else "C3" for i in ids],
            "mqa": [rows[i][1] for i in ids],
            "threshold": 0.5,
            "region": "EMEA",
            "leads": 4,
            "engaged": [3 if rows[i][1] else 1 for i in ids],
            "reasons": [{"positive": [{"signal": "engaged_people"}]} for _ in ids],
            "buying_group": [{"engaged": ["champion"], "missing": ["economic_buyer"]} for _ in ids],
        }
    )


def _run(engine, day: str, rows: dict[str, tuple[int, bool]], source: str = "batch"):
    info = RunInfo(
        source=source, as_of=pd.Timestamp(day), model_name="acc", model_version="2", threshold=0.5
    )
    return write_account_run(engine, info, _frame(rows))


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def test_an_account_run_keeps_scores_buying_group_and_counts(engine) -> None:
    written = _run(engine, "2025-03-01", {"A1": (80, True), "A2": (20, False)})
    assert (written.scores, written.entered, written.left) == (2, 1, 0)
    with engine.connect() as c:
        run = c.execute(sa.select(account_runs)).one()
        stored = c.execute(sa.select(account_scores).order_by(account_scores.c.account_id)).all()
        lead_runs = c.execute(sa.select(sa.func.count()).select_from(scoring_runs)).scalar()
    assert (run.accounts, run.mqas, run.model_name) == (2, 1, "acc")
    assert [(s.account_id, s.score, s.mqa, s.engaged) for s in stored] == [
        ("A1", 80, True, 3),
        ("A2", 20, False, 1),
    ]
    assert stored[0].buying_group == {"engaged": ["champion"], "missing": ["economic_buyer"]}
    assert lead_runs == 0  # readers of lead runs never meet an account run


def test_mqa_events_and_states_follow_an_account_in_and_out(engine) -> None:
    _run(engine, "2025-03-01", {"A1": (80, True), "A2": (20, False), "A3": (70, True)})
    second = _run(engine, "2025-03-08", {"A1": (40, False), "A2": (60, True)})  # A3 gone
    third = _run(engine, "2025-03-15", {"A1": (90, True), "A2": (65, True)})
    assert (second.entered, second.left) == (1, 2)
    assert (third.entered, third.left) == (1, 0)
    with engine.connect() as c:
        events = c.execute(
            sa.select(mqa_events.c.account_id, mqa_events.c.event, mqa_events.c.cause).order_by(
                mqa_events.c.id
            )
        ).all()
        states = {
            s.account_id: s
            for s in c.execute(sa.select(account_states).order_by(account_states.c.account_id))
        }
    assert [tuple(e) for e in events] == [
        ("A1", "entered", "score"),
        ("A3", "entered", "score"),
        ("A1", "left", "score"),
        ("A2", "entered", "score"),
        ("A3", "left", "not_scored"),
        ("A1", "entered", "score"),
    ]
    assert states["A1"].mqa and states["A1"].mqa_episodes == 2
    assert states["A1"].mqa_since == pd.Timestamp("2025-03-15")
    assert states["A1"].first_mqa_at == pd.Timestamp("2025-03-01")
    assert states["A2"].mqa_since == pd.Timestamp("2025-03-08")  # still an MQA since then
    assert not states["A3"].mqa and states["A3"].mqa_since is None
    assert states["A2"].engaged == 3 and states["A2"].leads == 4


def test_a_backfilled_account_run_is_kept_but_changes_no_state(engine) -> None:
    _run(engine, "2025-03-08", {"A1": (80, True)})
    late = _run(engine, "2025-03-01", {"A1": (10, False)})
    assert (late.entered, late.left) == (0, 0)
    with engine.connect() as c:
        state = c.execute(sa.select(account_states)).one()
        stored = c.execute(sa.select(sa.func.count()).select_from(account_scores)).scalar()
    assert state.mqa and state.last_as_of == pd.Timestamp("2025-03-08")
    assert stored == 2


def test_account_timeline_momentum_and_new_mqas_read_the_account_history(engine) -> None:
    _run(engine, "2025-03-01", {"A1": (30, False), "A2": (60, True)})
    _run(engine, "2025-03-22", {"A1": (50, False), "A2": (55, True)})
    _run(engine, "2025-03-29", {"A1": (75, True), "A2": (40, False)})
    line = account_timeline(engine, "A1")
    assert line["score"].tolist() == [30, 50, 75]
    assert line["mqa"].tolist() == [False, False, True]
    assert set(line["source"]) == {"batch"}
    moves = account_momentum(engine).set_index("account_id")
    assert moves.loc["A1", "momentum_7d"] == 25  # this week against last week
    assert moves.loc["A1", "momentum_28d"] == 45  # against four weeks back
    assert moves.loc["A2", "score_28d_ago"] == 60
    fresh = new_mqas(engine, "2025-03-15")
    assert fresh["account_id"].tolist() == ["A1"]  # A2 entered earlier and has left
    assert fresh.loc[0, "entered_at"] == pd.Timestamp("2025-03-29")
    assert account_timeline(engine, "nobody").empty


def test_accounts_and_leads_keep_separate_histories(engine) -> None:
    """The same id as a lead and as an account: two subjects, two states, no crossing."""
    _run(engine, "2025-03-01", {"X1": (80, True)})
    leads = pd.DataFrame(
        {
            "lead_id": ["X1"],
            "probability": [0.1],
            "score": [10],
            "grade": ["D4"],
            "mql": [False],
            "threshold": 0.5,
        }
    )
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-02"),
        model_name="m",
        model_version="1",
        threshold=0.5,
    )
    lead_run = write_run(engine, info, leads)
    second = _run(engine, "2025-03-08", {"X1": (85, True)})
    assert (lead_run.entered, lead_run.left) == (0, 0)
    assert (second.entered, second.left) == (0, 0)  # the lead run did not end the MQA


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["mqa"]), "account scores: missing column(s) mqa"),
        (lambda f: f.assign(mql=True), "account scores: unknown column(s) mql"),
        (
            lambda f: pd.concat([f, f.iloc[:1]]),
            "account scores: account_id 'A1' appears twice in one run",
        ),
        (
            lambda f: f.assign(probability=[0.5, None]),
            "account scores: row 1 (account 'A2'): probability is missing or not a number",
        ),
    ],
)
def test_a_bad_account_frame_is_refused_by_name_and_nothing_is_written(
    engine, change, message
) -> None:
    frame = change(_frame({"A1": (80, True), "A2": (20, False)}))
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-01"),
        model_name="acc",
        model_version="2",
        threshold=0.5,
    )
    with pytest.raises(ScoresFrameError) as caught:
        write_account_run(engine, info, frame)
    assert str(caught.value) == message
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(account_runs)).scalar() == 0


def test_the_accounts_migration_goes_down_and_up_alone(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        downgrade(engine, "0002_crm")
        names = set(sa.inspect(engine).get_table_names())
        assert not names & {"account_runs", "account_scores", "mqa_events", "account_states"}
        assert "scores" in names  # the lead store is untouched
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        _run(engine, "2025-03-01", {"A1": (80, True)})
    finally:
        engine.dispose()
