"""``leadscore monitor`` flags real drift and stays quiet without it; ``leadscore retrain``
trains, promotes on the margin rule and monitors.

The session's champion (``serving_support``: 1,500 simulated leads, a 60-day horizon) is
monitored as of mid-November, two weeks after its training set ends: the simulator's
Christmas trough, a real seasonal shift in engagement, is outside the data then. Drift is
injected into the last weeks of the tables: a shift of lead sources, and a campaign that
floods the funnel with low-fit leads.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.contract import validate
from features.io import write_tables
from serving.batch import load_champion, score_frame
from store.engine import open_store
from store.frames import read_frame
from store.schema import monitoring_results
from training.monitor import MonitorError, MonitorReport, logged_test_predictions, run_monitor
from training.retrain import RetrainError, rolling_training_set

pytestmark = pytest.mark.slow

END = pd.Timestamp("2024-11-15")
"""The data end the champion is monitored at (see the module docstring)."""


def shift_sources(tables: dict, days: int = 60, share: float = 0.7, seed: int = 0) -> dict:
    """``share`` of the leads created in the last ``days`` now come from events."""
    out = dict(tables)
    leads = tables["leads"].copy()
    recent = (leads["created_at"] > END - pd.Timedelta(days=days)) & (leads["created_at"] <= END)
    pick = recent & (np.random.default_rng(seed).random(len(leads)) < share)
    leads.loc[pick, "lead_source"] = "event"
    out["leads"] = leads
    return out


def flood_low_fit(tables: dict, n: int = 600, days: int = 45, seed: int = 0) -> dict:
    """A campaign brings ``n`` students on free mail from the smallest account, no activity."""
    leads, accounts = tables["leads"], tables["accounts"]
    rng = np.random.default_rng(seed)
    smallest = accounts.sort_values("employee_count").iloc[0]
    created = END - pd.to_timedelta(rng.uniform(0, days, n), unit="D")
    new = pd.DataFrame(
        {
            "lead_id": [f"F{i:06d}" for i in range(n)],
            "account_id": smallest["account_id"],
            "created_at": created.astype("datetime64[us]"),
            "job_title": "Student",
            "seniority": "Student",
            "department": leads["department"].iloc[0],
            "country": leads["country"].iloc[0],
            "region": leads["region"].iloc[0],
            "lead_source": "social",
            "email": [f"flood{i}@gmail.com" for i in range(n)],
        }
    ).astype(leads.dtypes.to_dict())
    return validate({**tables, "leads": pd.concat([leads, new], ignore_index=True)})


def random_conversions(tables: dict, days: int = 100, share: float = 0.08, seed: int = 0) -> dict:
    """Concept drift: over the last ``days`` who converts no longer depends on anything
    the model sees (the conversions of that time go to random open leads)."""
    rng = np.random.default_rng(seed)
    since = END - pd.Timedelta(days=days)
    conversions = tables["conversions"]
    kept = conversions[conversions["converted_at"] <= since]
    leads = tables["leads"]
    candidates = leads[(leads["created_at"] < since) & ~leads["lead_id"].isin(set(kept["lead_id"]))]
    chosen = candidates.sample(frac=share, random_state=seed)
    when = since + pd.to_timedelta(rng.uniform(0, days, len(chosen)), unit="D")
    new = pd.DataFrame({"lead_id": chosen["lead_id"].to_numpy(), "converted_at": when})
    new = new.astype(kept.dtypes.to_dict())
    return validate({**tables, "conversions": pd.concat([kept, new], ignore_index=True)})


@pytest.fixture(scope="module")
def served(champion):
    return load_champion(champion.tracking_uri, champion.name)


def _monitor(tables: dict, served) -> MonitorReport:
    return run_monitor(
        tables,
        served.bundle,
        model_name=served.name,
        model_version=served.version,
        data_end=END,
    )


def _alerted(report: MonitorReport) -> set[str]:
    return {r.subject for r in report.alerts()}


def test_no_drift_no_alert(champion, served) -> None:
    report = _monitor(champion.tables, served)
    assert report.alerts() == []
    checks = {(r.check, r.metric) for r in report.results}
    assert {
        ("performance", "roc_auc"),
        ("performance", "lift_top10"),
        ("calibration", "ece"),
        ("score_bands", "top_band_lift"),
        ("score_drift", "psi"),
    } <= checks
    drifted = {r.subject for r in report.results if r.check == "feature_drift"}
    assert drifted == set(served.bundle.spec.names)
    auc = next(r for r in report.results if r.metric == "roc_auc")
    assert auc.reference == served.bundle.metadata.test_metrics["model"]["roc_auc"]
    assert auc.details["positives"] >= 20 and 0.6 < auc.value <= 1.0
    assert report.period_end == END - pd.Timedelta(days=60)


def test_a_shift_of_lead_sources_alerts_on_lead_source_only(champion, served) -> None:
    report = _monitor(shift_sources(champion.tables), served)
    assert _alerted(report) == {"lead_source"}
    source = next(r for r in report.results if r.subject == "lead_source")
    assert source.details["changes"][0]["bin"] == "event"
    assert source.details["p_value"] < 1e-6


def test_a_flood_of_low_fit_leads_alerts_on_fit(champion, served) -> None:
    report = _monitor(flood_low_fit(champion.tables), served)
    assert {"seniority", "email_domain_type", "company_size_band", "lead_source"} <= _alerted(
        report
    )
    assert not {r.subject for r in report.results if r.check == "performance"} & _alerted(report)


def test_conversions_that_no_longer_follow_the_score_alert_on_performance(champion, served) -> None:
    report = _monitor(random_conversions(champion.tables), served)
    performance = {r.metric: r for r in report.results if r.check == "performance"}
    assert performance["roc_auc"].status == "alert" and performance["roc_auc"].value < 0.7
    assert performance["lift_top10"].status == "alert"
    assert not {r.subject for r in report.alerts() if r.check == "feature_drift"}


def test_the_batch_scorer_and_the_bundle_give_the_same_period(champion, served) -> None:
    """The CLI scores the period with batch scoring's ``score_frame``; the API's default
    scorer (features + calibrated model + policy) agrees with it."""
    via_batch = run_monitor(
        champion.tables,
        served.bundle,
        model_name=served.name,
        model_version=served.version,
        data_end=END,
        scorer=lambda t, s: score_frame(t, s, served, top=1, actions=0),
        test_predictions=logged_test_predictions(champion.tracking_uri, served.run_id),
    )
    plain = _monitor(champion.tables, served)
    for a, b in zip(via_batch.results[:4], plain.results[:4], strict=True):
        assert a.metric == b.metric and a.value == pytest.approx(b.value)
    assert via_batch.bands["test"] is not None and via_batch.reliability["test"]
    assert via_batch.results[3].reference is not None  # the test-time top band lift


def _cli(tmp_path: Path, tracking_uri: str, *args: str):
    from leadscore.cli import app

    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "LEADSCORE_TRACKING_URI": tracking_uri,
        "LEADSCORE_EXPERIMENT": "monitor-tests",
    }
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_cli_records_to_the_store_and_mlflow_and_exits_for_schedulers(
    champion, tmp_path: Path
) -> None:
    quiet = _cli(
        tmp_path,
        champion.tracking_uri,
        "monitor",
        "--data", str(champion.data_dir),
        "--data-end", str(END.date()),
        "--fail-on", "alert",
        "--json",
    )  # fmt: skip
    assert quiet.exit_code == 0, quiet.output
    report = json.loads(quiet.stdout)
    assert report["counts"]["alert"] == 0 and report["mlflow_run_id"]
    engine = open_store(f"sqlite:///{tmp_path / 'home' / 'leadscore.db'}")
    try:
        with engine.connect() as connection:
            rows = read_frame(connection, sa.select(monitoring_results))
    finally:
        engine.dispose()
    assert set(rows["check_run"]) == {report["check_run"]}
    assert len(rows) == len(report["results"])
    assert set(rows["model_version"]) == {report["model_version"]}
    client = mlflow.MlflowClient(tracking_uri=champion.tracking_uri)
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.tags["leadscore.check_run"] == report["check_run"]
    assert "performance.model.roc_auc" in run.data.metrics
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "monitor-tests-monitoring"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert {"monitoring/reliability.json", "monitoring/reliability.png"} <= artifacts

    drifted = write_tables(shift_sources(champion.tables), tmp_path / "drifted")
    loud = _cli(
        tmp_path,
        champion.tracking_uri,
        "monitor",
        "--data", str(drifted),
        "--data-end", str(END.date()),
        "--fail-on", "alert",
        "--no-record",
    )  # fmt: skip
    assert loud.exit_code == 1
    assert "lead_source" in loud.output and "alert" in loud.output


def test_cli_refuses_a_bad_config_naming_the_key(champion, tmp_path: Path) -> None:
    config = tmp_path / "monitoring.yaml"
    config.write_text("psi: {warn: 0.5, alert: 0.1}\n")
    result = _cli(
        tmp_path,
        champion.tracking_uri,
        "monitor",
        "--data", str(champion.data_dir),
        "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error:" in result.output and "psi" in result.output
    bad = _cli(tmp_path, champion.tracking_uri, "monitor", "--data", str(champion.data_dir),
               "--fail-on", "sometimes")  # fmt: skip
    assert bad.exit_code == 2 and "--fail-on" in bad.output


def test_retrain_trains_promotes_and_monitors(champion, tmp_path: Path) -> None:
    """In an empty registry: the rolling window's first model becomes the champion, and
    the monitor runs on it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _cli(
        tmp_path,
        uri,
        "retrain",
        "--data", str(champion.data_dir),
        "--window-months", "9",
        "--threads", "1",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    retrained, monitored = out["retrain"], out["monitor"]
    assert retrained["promotion"]["decision"] == "already_champion"
    assert retrained["label"]["from"] == "default"
    first = pd.Timestamp(retrained["window_start"])
    assert first == pd.Timestamp(retrained["data_end"]) - pd.DateOffset(months=9)
    assert monitored["model_version"] == retrained["challenger_version"]
    assert "kept the champion" in result.output or "promoted" in result.output


def test_the_rolling_window_keeps_the_last_months_with_the_whole_history_behind(champion) -> None:
    training_set, start = rolling_training_set(champion.tables, 6, horizon_days=60)
    frame, meta = training_set.frame, training_set.metadata
    assert start == pd.Timestamp(meta.data_end) - pd.DateOffset(months=6)
    assert frame["as_of"].min() >= start
    assert (meta.rows, meta.positives) == (len(frame), int(frame["label"].sum()))
    assert meta.first_as_of == str(frame["as_of"].min()) and meta.horizon_days == 60
    # features still see history before the window: some leads were created before it
    created = champion.tables["leads"].set_index("lead_id")["created_at"]
    assert (frame["lead_id"].map(created) < start).any()


def test_too_short_a_window_or_data_is_a_clear_error(champion, served) -> None:
    with pytest.raises(RetrainError, match="widen --window-months"):
        rolling_training_set(champion.tables, 1, horizon_days=60, data_end=END)
    with pytest.raises(MonitorError, match="too short to judge"):
        run_monitor(
            champion.tables,
            served.bundle,
            model_name=served.name,
            model_version=served.version,
            data_end=pd.Timestamp("2024-02-01"),
        )


@pytest.mark.parametrize(
    "scenario,expected",
    [
        ("source_shift", {"lead_source"}),
        ("low_fit_flood", {"seniority", "company_size_band", "revenue_band"}),
    ],
)
def test_the_simulators_own_drift_is_flagged(champion, served, scenario, expected) -> None:
    """The same world as the champion's (same seed, size and window), with the simulator's
    drift injected from October: the inflow check names the drifted features (the open
    leads, months of them, move only slowly)."""
    from features.simulate import simulate
    from features.simulate.drift import LowFitFlood, SourceShift

    kind = {"source_shift": SourceShift, "low_fit_flood": LowFitFlood}[scenario]
    sim = simulate(1500, seed=7, months=12, drift=kind(start_month=9))
    truth = sim.ground_truth
    drifted = truth[truth["drifted"]]
    assert len(drifted) > 0 and drifted["created_at"].min() >= pd.Timestamp("2024-10-01")
    report = _monitor(validate(sim.tables()), served)
    inflow = {r.subject for r in report.alerts() if r.check == "inflow_drift"}
    assert expected <= inflow, sorted(inflow)
    undrifted = validate(simulate(1500, seed=7, months=12).tables())
    assert _monitor(undrifted, served).alerts() == []
