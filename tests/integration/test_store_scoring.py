"""``leadscore score`` writes its runs into the lead store: a score history a user can read."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa
from typer.testing import CliRunner

from leadscore.cli import app
from store.engine import open_store
from store.history import momentum, new_mqls, timeline
from store.runs import read_states
from store.schema import mql_events, scores, scoring_runs


def test_score_weeks_builds_a_history_in_the_store(champion, store_url, tmp_path):
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
        "LEADSCORE_DB_URL": store_url,
    }
    out = tmp_path / "scores.csv"
    args = ["score", "--data", str(champion.data_dir), "--out", str(out), "--actions", "1"]
    shown = CliRunner().invoke(app, [*args, "--weeks", "3", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.stdout)
    written = pd.read_csv(out)
    engine = open_store(store_url)
    try:
        with engine.connect() as c:
            runs = c.execute(sa.select(scoring_runs).order_by(scoring_runs.c.as_of)).all()
            last = pd.read_sql(
                sa.select(scores.c.lead_id, scores.c.score, scores.c.grade, scores.c.mql)
                .where(scores.c.run_id == runs[-1].id)
                .order_by(scores.c.lead_id),
                c,
            )
            entered = c.execute(
                sa.select(sa.func.count()).where(mql_events.c.event == "entered")
            ).scalar()
            card = c.execute(sa.select(scores.c.reasons, scores.c.next_best_actions).limit(1)).one()
            states = read_states(c)
        assert [r.as_of.date() for r in runs] == [
            (pd.Timestamp(facts["as_of"]) - pd.Timedelta(weeks=k)).date() for k in (2, 1, 0)
        ]
        assert facts["store"]["run_id"] == runs[-1].id
        # the store's last run is exactly the file the user got
        expected = written.sort_values("lead_id").reset_index(drop=True)
        assert list(last["lead_id"]) == list(expected["lead_id"].astype(str))
        assert list(last["score"]) == list(expected["score"])
        assert list(last["grade"]) == list(expected["grade"])
        assert list(last["mql"].astype(bool)) == list(expected["mql"])
        assert runs[-1].mqls == int(expected["mql"].sum()) and runs[-1].source == "batch"
        # the whole card is kept, not only the CSV's summary of it
        assert {"positive", "negative"} <= set(card.reasons)
        assert all("sentence" in r and "signal" in r for r in card.reasons["positive"])
        assert len(card.next_best_actions) <= 1
        # every lead that is an MQL now entered MQL in one of the runs
        assert entered >= int(states["mql"].sum()) == int(expected["mql"].sum())
        some = str(expected["lead_id"].iloc[0])
        line = timeline(engine, some)
        assert len(line) >= 1 and line["score"].iloc[-1] == expected["score"].iloc[0]
        moves = momentum(engine).set_index("lead_id")
        assert moves.loc[some, "score"] == expected["score"].iloc[0]
        fresh = new_mqls(engine, runs[0].as_of)
        assert set(fresh["lead_id"]) <= set(states.loc[states["mql"], "lead_id"])
        # each lead's account as the CRM links it: what account funnels join on
        crm = pd.read_parquet(champion.data_dir / "leads.parquet").set_index("lead_id")
        linked = states.set_index("lead_id")["account_id"]
        assert linked.notna().all()
        assert (linked == crm.loc[linked.index, "account_id"].astype(str)).all()
    finally:
        engine.dispose()


def test_no_store_leaves_no_database(champion, tmp_path):
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
    }
    out = tmp_path / "scores.csv"
    args = ["score", "--data", str(champion.data_dir), "--out", str(out), "--no-store"]
    shown = CliRunner().invoke(app, args, env=env)
    assert shown.exit_code == 0, shown.output
    assert not (tmp_path / "home" / "leadscore.db").exists()
    refused = CliRunner().invoke(app, [*args, "--weeks", "2"], env=env)
    assert refused.exit_code == 2 and "--weeks" in refused.output


def test_leads_commands_read_the_history_a_run_left(champion, tmp_path):
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
    }
    out = tmp_path / "scores.csv"
    args = ["score", "--data", str(champion.data_dir), "--out", str(out), "--actions", "0"]
    shown = CliRunner().invoke(app, [*args, "--weeks", "2", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    end = pd.Timestamp(json.loads(shown.stdout)["as_of"])
    written = pd.read_csv(out)

    fresh = CliRunner().invoke(
        app, ["leads", "new", "--since", str(end - pd.Timedelta(days=1)), "--json"], env=env
    )
    assert fresh.exit_code == 0, fresh.output
    new = json.loads(fresh.stdout)
    mqls = set(written.loc[written["mql"], "lead_id"].astype(str))
    assert new["count"] > 0 and {row["lead_id"] for row in new["leads"]} <= mqls

    lead = str(written["lead_id"].iloc[0])
    line = CliRunner().invoke(app, ["leads", "timeline", lead, "--json"], env=env)
    assert line.exit_code == 0, line.output
    assert json.loads(line.stdout)["scores"][-1]["score"] == int(written["score"].iloc[0])

    moves = CliRunner().invoke(app, ["leads", "momentum", "--json"], env=env)
    assert moves.exit_code == 0, moves.output
    ranked = [row["momentum_7d"] for row in json.loads(moves.stdout)["leads"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) > 0

    missing = CliRunner().invoke(app, ["leads", "timeline", "nobody"], env=env)
    assert missing.exit_code == 2 and "nobody" in missing.output
    bad = CliRunner().invoke(app, ["leads", "momentum", "--days", "9"], env=env)
    assert bad.exit_code == 2 and "--days" in bad.output


def test_simulate_sales_works_the_mqls_in_the_store(champion, tmp_path):
    import shutil

    from features.simulate import simulate

    data = tmp_path / "data"
    shutil.copytree(champion.data_dir, data)
    simulate(1500, seed=7, months=12).ground_truth.to_parquet(data / "ground_truth.parquet")
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
    }
    args = ["score", "--data", str(data), "--out", str(tmp_path / "s.csv"), "--actions", "0"]
    assert CliRunner().invoke(app, [*args, "--weeks", "8"], env=env).exit_code == 0
    export = tmp_path / "crm_export.csv"
    shown = CliRunner().invoke(
        app, ["simulate-sales", "--data", str(data), "--out", str(export), "--json"], env=env
    )
    assert shown.exit_code == 0, shown.output
    facts = json.loads(shown.stdout)
    dispositions = pd.read_csv(export, parse_dates=["occurred_at"])
    truth = pd.read_parquet(facts["truth"])
    engine = open_store(f"sqlite:///{tmp_path / 'home' / 'leadscore.db'}")
    try:
        with engine.connect() as c:
            entered = c.execute(
                sa.select(sa.func.count()).where(mql_events.c.event == "entered")
            ).scalar()
    finally:
        engine.dispose()
    assert facts["mqls"] == entered == len(truth) > 0
    assert set(dispositions["lead_id"]) <= set(truth["lead_id"])
    assert set(dispositions["stage"]) <= {
        "accepted",
        "rejected",
        "sql",
        "opportunity",
        "won",
        "lost",
    }
    assert dispositions["reason_code"].notna().eq(dispositions["stage"].eq("rejected")).all()
    assert dispositions["occurred_at"].is_monotonic_increasing
    # with no ground truth there is nothing to play sales on, and the user is told why
    (data / "ground_truth.parquet").unlink()
    refused = CliRunner().invoke(
        app, ["simulate-sales", "--data", str(data), "--out", str(export)], env=env
    )
    assert refused.exit_code == 2 and "ground_truth" in refused.output
