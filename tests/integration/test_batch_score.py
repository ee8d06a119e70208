"""Batch scoring of a data folder, and the skew test against the live service."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pandas as pd
import pytest
import serving_support as testing

from features.contract import ContractError
from features.eligibility import OPEN_LEADS
from features.io import write_tables
from serving.batch import OUTPUT_COLUMNS, load_champion, open_leads, score_folder, score_run
from serving.model_store import ModelNotAvailableError
from serving.samples import lead_payload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(champion):
    return load_champion(champion.tracking_uri)


@pytest.fixture(scope="module")
def as_of(champion) -> pd.Timestamp:
    return pd.Timestamp("2024-10-15 08:00:00")


@pytest.fixture(scope="module")
def scored(champion, served, as_of, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("batch") / "scores.csv"
    frame = score_folder(champion.data_dir, out, str(as_of), served)
    assert out.exists()
    return frame


def test_every_open_lead_in_the_models_population_is_scored(champion, served, scored, as_of):
    leads = champion.tables["leads"]
    conv = champion.tables["conversions"].set_index("lead_id")["converted_at"]
    converted = leads["lead_id"].map(conv)
    age = as_of - leads["created_at"]
    open_ids = set(
        leads.loc[
            (leads["created_at"] <= as_of)
            & (age <= pd.Timedelta(days=180))
            & ~(converted <= as_of).fillna(False),
            "lead_id",
        ]
    )
    assert served.bundle.metadata.population.max_lead_age_days == 180
    assert set(scored["lead_id"]) == open_ids
    assert len(scored) == len(open_ids) > 100
    assert list(scored.columns) == list(OUTPUT_COLUMNS)
    assert scored["probability"].is_monotonic_decreasing
    low, p, high = scored["probability_low"], scored["probability"], scored["probability_high"]
    assert ((low <= p) & (p <= high)).all()  # the calibration's 95% evidence interval
    assert ((high - low) > 0).all()
    assert scored["grade"].str.fullmatch(r"[A-D][1-4]").all()
    assert scored["score"].between(0, 100).all()
    assert (scored["mql"] == (scored["probability"] >= scored["threshold"])).all()
    assert (scored["top_positive_reasons"].str.len() > 0).mean() > 0.9
    assert (scored["model_version"] == champion.version).all()


def test_file_round_trips(scored, tmp_path, champion, served, as_of):
    out = tmp_path / "scores.parquet"
    frame = score_folder(champion.data_dir, out, as_of, served)
    again = pd.read_parquet(out)
    pd.testing.assert_frame_equal(again, frame, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]
    np.testing.assert_allclose(frame["probability"], scored["probability"])


def test_default_as_of_is_the_end_of_the_data(champion, served, tmp_path):
    frame = score_folder(champion.data_dir, tmp_path / "s.csv", None, served)
    end = max(
        champion.tables["activities"]["occurred_at"].max(),
        champion.tables["leads"]["created_at"].max(),
        champion.tables["conversions"]["converted_at"].max(),
    )
    assert (pd.to_datetime(frame["as_of"]) == end).all()


def test_no_open_leads_writes_an_empty_file(champion, served, tmp_path):
    frame = score_folder(champion.data_dir, tmp_path / "s.csv", "2000-01-01", served)
    assert frame.empty and list(frame.columns) == list(OUTPUT_COLUMNS)
    assert open_leads(champion.tables, pd.Timestamp("2000-01-01")).empty


def test_bad_folder_and_bad_date_are_clear_errors(champion, served, tmp_path):
    tables = {k: v.copy() for k, v in champion.tables.items()}
    tables["leads"].loc[0, "created_at"] = pd.NaT
    write_tables(tables, tmp_path / "bad")
    with pytest.raises(ContractError, match=r"leads\.created_at"):
        score_folder(tmp_path / "bad", tmp_path / "out.csv", None, served)
    with pytest.raises(ValueError, match="--as-of"):
        score_folder(champion.data_dir, tmp_path / "out.csv", "not a date", served)
    assert not (tmp_path / "out.csv").exists()


def test_registry_without_champion_is_a_clear_error(root):
    with pytest.raises(ModelNotAvailableError, match="no model to score with"):
        load_champion(testing.session_empty_registry(root))


def test_service_answers_equal_batch_scores(root, champion, scored, as_of):
    """The skew test: the live service and batch scoring agree for the same lead and as_of."""
    server = testing.session_server(root)
    picks = scored.iloc[np.linspace(0, len(scored) - 1, 12).astype(int)]
    payloads = [
        {**lead_payload(champion.tables, lead_id, as_of), "top_reasons": 3}
        for lead_id in picks["lead_id"]
    ]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        cards = [http.post("/score", json=p).json() for p in payloads[:4]]
        cards += http.post("/score_batch", json={"leads": payloads[4:]}).json()
    for (_, row), card in zip(picks.iterrows(), cards, strict=True):
        assert card["lead_id"] == row["lead_id"]
        assert card["probability"] == pytest.approx(row["probability"], abs=1e-12)
        assert card["raw_score"] == pytest.approx(row["raw_score"], abs=1e-9)
        assert card["score"] == row["score"] and card["grade"] == row["grade"]
        assert card["mql"] == bool(row["mql"])
        assert card["threshold"] == pytest.approx(row["threshold"])
        assert " | ".join(r["sentence"] for r in card["reasons"]["positive"]) == (
            row["top_positive_reasons"] if isinstance(row["top_positive_reasons"], str) else ""
        )
        assert ";".join(r["feature"] for r in card["reasons"]["negative"]) == (
            row["top_negative_features"] if isinstance(row["top_negative_features"], str) else ""
        )


def _ages(champion, run) -> pd.Series:
    created = run.scores["lead_id"].map(champion.tables["leads"].set_index("lead_id")["created_at"])
    return (run.as_of - created).dt.total_seconds() / 86_400


@pytest.fixture(scope="module")
def at_the_end(champion, served, tmp_path_factory):
    """A scoring run at the data end, where many open leads are older than training saw."""
    return score_run(champion.data_dir, tmp_path_factory.mktemp("end") / "s.csv", None, served)


def test_no_lead_older_than_the_models_population_is_scored(champion, at_the_end):
    run = at_the_end
    max_age = run.population.max_lead_age_days
    assert max_age == 180
    assert len(run.scores) > 100 and _ages(champion, run).max() <= max_age
    every_open = open_leads(champion.tables, run.as_of)
    assert len(every_open) == run.open_leads == len(run.scores) + run.skipped
    old = every_open["lead_id"].map(champion.tables["leads"].set_index("lead_id")["created_at"])
    assert run.skipped == int(((run.as_of - old) > pd.Timedelta(days=max_age)).sum()) > 0
    assert run.to_dict()["skipped_outside_population"] == run.skipped
    assert f"skipped {run.skipped:,} of {run.open_leads:,} open leads" in run.skipped_note()


def _without_population(bundle):
    """The same model as an older bundle that recorded no population."""
    return type(bundle)(
        bundle.margin,
        bundle.spec,
        bundle.calibration,
        bundle.policy,
        bundle.metadata.model_copy(update={"population": None}),
    )


def test_the_mql_share_of_capacity_runs_is_near_the_target(champion, served, tmp_path):
    """Runs at the validation period's snapshot dates score the population the capacity
    threshold was chosen on, so together they hit the target; every open lead would not."""
    bounds = served.bundle.metadata.boundaries
    dates = pd.date_range(bounds.valid_start, bounds.test_start, freq="MS", inclusive="left")
    assert len(dates) >= 2
    runs = [score_run(champion.data_dir, tmp_path / "s.csv", d, served) for d in dates]
    everyone = [
        score_run(champion.data_dir, tmp_path / "s.csv", d, _without_population(served.bundle))
        for d in dates
    ]
    assert {(r.policy_rule, r.policy_target) for r in runs} == {("capacity", 0.1)}
    share = sum(r.scores["mql"].sum() for r in runs) / sum(len(r.scores) for r in runs)
    every = sum(r.scores["mql"].sum() for r in everyone) / sum(len(r.scores) for r in everyone)
    assert abs(share - 0.1) < 0.005
    assert abs(every - 0.1) > 2 * abs(share - 0.1)


def test_a_run_reports_its_mql_share_beside_the_policys_target(at_the_end):
    run = at_the_end
    assert (run.policy_rule, run.policy_target) == ("capacity", 0.1)
    assert run.mql_share == pytest.approx(run.scores["mql"].mean())
    assert run.summary() == (
        f"MQLs: {run.mql_share:.1%} of {len(run.scores):,} scored leads "
        "(policy target: 10% capacity)"
    )
    facts = run.to_dict()
    assert facts["mql_share"] == run.mql_share and facts["policy"] == {
        "rule": "capacity",
        "target": 0.1,
    }


def test_a_model_without_a_recorded_population_scores_every_open_lead(champion, served, tmp_path):
    run = score_run(champion.data_dir, tmp_path / "s.csv", None, _without_population(served.bundle))
    assert run.skipped == 0 and run.skipped_note() is None
    assert len(run.scores) == len(open_leads(champion.tables, run.as_of, OPEN_LEADS))


def test_leadscore_score_reports_skipped_leads_and_the_mql_share(champion, tmp_path):
    from typer.testing import CliRunner

    from leadscore.cli import app

    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
    }
    args = ["score", "--data", str(champion.data_dir), "--out", str(tmp_path / "s.csv")]
    shown = CliRunner().invoke(app, args, env=env)
    assert shown.exit_code == 0, shown.output
    assert re.search(
        r"MQLs: \d+\.\d% of [\d,]+ scored leads \(policy target: 10% capacity\)", shown.output
    )
    assert re.search(r"skipped [\d,]+ of [\d,]+ open leads outside the population", shown.output)
    facts = json.loads(CliRunner().invoke(app, [*args, "--json"], env=env).stdout)
    assert facts["policy"] == {"rule": "capacity", "target": 0.1}
    assert facts["skipped_outside_population"] > 0
    assert facts["open_leads"] == facts["leads"] + facts["skipped_outside_population"]
    assert facts["mql_share"] == pytest.approx(facts["mqls"] / facts["leads"])
    assert facts["population"] == {"max_lead_age_days": 180}
