"""The monitor's pieces: drift statistics, thresholds and config, periods, score bands,
and the checks that read and write the lead store (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from store.engine import open_store
from store.frames import insert_frame, read_frame
from store.runs import RunInfo, write_run
from store.schema import dispositions, monitoring_results
from training.drift import categorical_drift, column_drift, numeric_drift, psi
from training.monitor import (
    CheckResult,
    Limits,
    MonitorConfig,
    MonitorError,
    MonitorReport,
    _sample_leads,
    current_dates,
    drift_status,
    feedback_checks,
    performance_period,
    score_bands,
    stored_score_check,
    write_results,
)

RNG = np.random.default_rng(0)


def test_psi_is_zero_for_equal_shares_and_grows_with_a_shift() -> None:
    assert psi(np.array([10, 20, 30]), np.array([20, 40, 60])) == pytest.approx(0.0)
    small = psi(np.array([50, 50]), np.array([55, 45]))
    large = psi(np.array([50, 50]), np.array([90, 10]))
    assert 0 < small < 0.1 < 0.25 < large


def test_numeric_drift_stays_quiet_on_the_same_distribution_and_flags_a_shift() -> None:
    same = numeric_drift(RNG.normal(size=20_000), RNG.normal(size=20_000))
    assert same.psi < 0.01 and same.p_value > 0.001 and same.test == "ks"
    moved = numeric_drift(RNG.normal(size=20_000), RNG.normal(1.0, size=20_000))
    assert moved.psi > 0.25 and moved.p_value < 1e-12
    assert moved.changes and {"bin", "reference", "current"} <= set(moved.changes[0])


def test_numeric_drift_counts_missing_values_as_a_bin_of_their_own() -> None:
    ref = RNG.normal(size=5000)
    cur = ref.copy()
    cur[: len(cur) // 2] = np.nan
    stat = numeric_drift(ref, cur)
    assert stat.psi > 0.25
    assert stat.changes[0]["bin"] == "(missing)" and stat.changes[0]["current"] == 0.5


def test_constant_columns_do_not_drift_unless_the_constant_changes() -> None:
    assert numeric_drift(np.zeros(100), np.zeros(50)).psi == 0.0
    moved = numeric_drift(np.zeros(100), np.ones(50))
    assert moved.p_value == 0.0 and moved.psi > 1


def test_categorical_drift_uses_chi_square_and_sees_a_new_category() -> None:
    ref = pd.Series(RNG.choice(["a", "b", "c"], 5000), dtype="category")
    same = categorical_drift(ref, pd.Series(RNG.choice(["a", "b", "c"], 5000)))
    assert same.test == "chi2" and same.psi < 0.01 and same.p_value > 0.001
    cur = pd.Series(RNG.choice(["a", "b", "c", "new"], 5000, p=[0.2, 0.2, 0.2, 0.4]))
    moved = categorical_drift(ref, cur)
    assert moved.psi > 0.25 and moved.p_value < 1e-12
    assert moved.changes[0] == {
        "bin": "new",
        "reference": 0.0,
        "current": moved.changes[0]["current"],
    }


def test_column_drift_picks_the_test_by_dtype() -> None:
    assert column_drift(pd.Series(["x", None]), pd.Series(["x", "y"])).test == "chi2"
    assert column_drift(pd.Series([1, 2, 3]), pd.Series([1, 2, 4])).test == "ks"
    assert column_drift(pd.Series([True, False]), pd.Series([True, True])).test == "ks"


def test_a_few_leads_cannot_alert_however_large_their_psi() -> None:
    """On 30 leads PSI is noise; the test's p-value keeps the status at ok."""
    ref = RNG.normal(size=30)
    cur = RNG.normal(0.3, size=30)
    stat = numeric_drift(ref, cur)
    config = MonitorConfig()
    assert stat.p_value > config.drift_p_value
    assert drift_status(stat, config.psi, config.drift_p_value) == "ok"


def test_limits_judge_in_both_directions_and_refuse_a_reversed_order() -> None:
    drop = Limits(warn=0.05, alert=0.1)
    assert [drop.status(v) for v in (0.0, 0.05, 0.2, None, float("nan"))] == [
        "ok",
        "warn",
        "alert",
        "ok",
        "ok",
    ]
    floor = Limits(warn=1.5, alert=1.0, higher_is_worse=False)
    assert [floor.status(v) for v in (2.0, 1.2, 0.9)] == ["ok", "warn", "alert"]
    with pytest.raises(ValidationError):
        Limits(warn=0.2, alert=0.1)


def test_config_defaults_and_yaml_overrides(tmp_path) -> None:
    config = MonitorConfig()
    assert (config.psi.warn, config.psi.alert) == (0.1, 0.25)
    path = tmp_path / "monitoring.yaml"
    path.write_text("psi: {warn: 0.15, alert: 0.3}\nperiod_days: 56\n")
    loaded = MonitorConfig.from_yaml(path)
    assert (loaded.psi.warn, loaded.psi.alert, loaded.period_days) == (0.15, 0.3, 56)
    assert loaded.roc_auc_drop == config.roc_auc_drop


def test_the_example_in_the_docs_loads_and_floors_stay_floors(tmp_path) -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "monitoring.md"
    example = docs.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "monitoring.yaml"
    path.write_text(example)
    config = MonitorConfig.from_yaml(path)
    assert config.acceptance_rate == Limits(warn=0.7, alert=0.5, higher_is_worse=False)
    assert config.acceptance_rate.status(0.45) == "alert"
    assert config.roc_auc_drop.higher_is_worse and config.period_days == 56


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("psii: {warn: 0.1, alert: 0.2}\n", "psii"),
        ("psi: {warn: 0.3, alert: 0.2}\n", "psi"),
        ("period_days: -3\n", "period_days"),
        ("- a list\n", "mapping"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(tmp_path, text: str, named: str) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text(text)
    with pytest.raises(MonitorError, match=named) as caught:
        MonitorConfig.from_yaml(path)
    assert str(path) in str(caught.value)


def test_the_performance_period_ends_one_horizon_before_the_data_end() -> None:
    end = pd.Timestamp("2025-06-30 12:00")
    start, stop, dates = performance_period(end, 90, MonitorConfig(period_days=28, step_days=7))
    assert stop == end - pd.Timedelta(days=90)
    assert start == stop - pd.Timedelta(days=28)
    assert dates == [stop - pd.Timedelta(days=d) for d in (21, 14, 7, 0)]
    assert current_dates(end, MonitorConfig(current_days=0)) == [end]


def test_samples_keep_every_snapshot_of_the_leads_they_keep() -> None:
    snapshots = pd.DataFrame(
        {
            "lead_id": np.repeat([f"L{i}" for i in range(1000)], 4),
            "as_of": pd.Timestamp("2025-01-01"),
        }
    )
    assert _sample_leads(snapshots, 5000, 0) is snapshots
    kept = _sample_leads(snapshots, 400, 0)
    assert len(kept) == 400 and kept.groupby("lead_id").size().eq(4).all()
    assert kept.equals(_sample_leads(snapshots, 400, 0))  # seeded


def test_score_bands_run_from_the_top_and_capture_every_conversion() -> None:
    score = np.array([5, 15, 30, 50, 70, 85, 95, 99])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    bands = score_bands(y, score)
    assert [b["band"] for b in bands] == ["81-100", "61-80", "41-60", "21-40", "0-20"]
    assert bands[0] == {
        "band": "81-100",
        "leads": 3,
        "conversions": 2,
        "rate": 2 / 3,
        "capture": 2 / 3,
    }
    assert bands[-1]["capture"] == 1.0
    assert [b["leads"] for b in bands] == [3, 1, 1, 1, 2]


def _report(*statuses: str) -> MonitorReport:
    t = pd.Timestamp("2025-01-01")
    results = [
        CheckResult("feature_drift", f"f{i}", "psi", 0.1, None, s)  # type: ignore[arg-type]
        for i, s in enumerate(statuses)
    ]
    return MonitorReport("run", t.to_pydatetime(), "m", "1", t, t, t, results)


def test_exit_codes_follow_fail_on() -> None:
    assert _report("ok", "warn").status == "warn"
    assert _report("ok", "warn").exit_code("alert") == 0
    assert _report("ok", "warn").exit_code("warn") == 1
    assert _report("alert").exit_code("never") == 0
    assert _report("alert").exit_code("alert") == 1
    assert _report().status == "ok"


# --- the store ------------------------------------------------------------------------


def _run(engine, as_of: str, probabilities: np.ndarray, version: str = "3", mql_top: int = 0):
    n = len(probabilities)
    order = np.argsort(-probabilities)
    mql = np.zeros(n, dtype=bool)
    mql[order[:mql_top]] = True
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(n)],
            "probability": probabilities,
            "probability_low": probabilities,
            "probability_high": probabilities,
            "score": (probabilities * 100).astype(int),
            "grade": "B2",
            "mql": mql,
            "threshold": 0.5,
        }
    )
    info = RunInfo("batch", pd.Timestamp(as_of), "lead-scoring", version, 0.5)
    return write_run(engine, info, frame)


def test_results_are_written_with_one_check_run_id(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        report = _report("ok", "alert")
        report.results[0].details["changes"] = [{"bin": "a", "reference": 0.5, "current": 0.6}]
        assert write_results(engine, report) == 2
        with engine.connect() as connection:
            rows = read_frame(connection, sa.select(monitoring_results))
        assert set(rows["check_run"]) == {"run"}
        assert list(rows["status"]) == ["ok", "alert"]
        assert rows["details"].iloc[0]["changes"][0]["bin"] == "a"
    finally:
        engine.dispose()


def test_stored_scores_compare_the_latest_run_with_the_first(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        config = MonitorConfig()
        rng = np.random.default_rng(1)
        assert stored_score_check(engine, "3", config) is None
        _run(engine, "2025-01-01", rng.beta(2, 20, 2000))
        assert stored_score_check(engine, "3", config) is None  # one run: nothing to compare
        _run(engine, "2025-01-08", rng.beta(2, 20, 2000))
        same = stored_score_check(engine, "3", config)
        assert same is not None and same.status == "ok"
        _run(engine, "2025-01-15", rng.beta(6, 20, 2000))
        moved = stored_score_check(engine, "3", config)
        assert moved is not None and moved.status == "alert"
        assert moved.details["runs"] == 3 and moved.details["first_run"] < moved.details["last_run"]
        assert stored_score_check(engine, "4", config) is None  # another version
    finally:
        engine.dispose()


def test_feedback_rates_count_mqls_sales_accepted_and_won(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        config = MonitorConfig(min_mqls=10, sla_days=14, feedback_days=120)
        end = pd.Timestamp("2025-06-30")
        checks, notes = feedback_checks(engine, end, 60, config, 0.2)
        assert checks == [] and "no sales dispositions" in notes[0]
        # 40 MQLs enter on 2025-03-01 (older than one horizon and than the SLA)
        _run(engine, "2025-03-01", np.linspace(0.01, 0.99, 100), mql_top=40)
        mqls = [f"L{i:05d}" for i in range(60, 100)]
        stages = [(lead, "accepted") for lead in mqls[:30]] + [
            (lead, "rejected") for lead in mqls[30:]
        ]
        stages += [(lead, "won") for lead in mqls[:6]]
        stages += [("L00001", "won")]  # never an MQL: not counted
        frame = pd.DataFrame(
            {
                "event_key": [f"k{i}" for i in range(len(stages))],
                "lead_id": [lead for lead, _ in stages],
                "stage": [stage for _, stage in stages],
                "occurred_at": pd.Timestamp("2025-03-10"),
                "recorded_by": "test",
                "recorded_at": pd.Timestamp("2025-03-10"),
                "source": "import",
            }
        )
        with engine.begin() as connection:
            insert_frame(connection, dispositions, frame)
        checks, notes = feedback_checks(engine, end, 60, config, 0.2)
        by_metric = {c.metric: c for c in checks}
        assert by_metric["acceptance_rate"].value == pytest.approx(30 / 40)
        assert by_metric["acceptance_rate"].status == "ok"
        won = by_metric["won_rate"]
        assert won.value == pytest.approx(6 / 40) and won.reference == 0.2
        assert won.details["relative_drop"] == pytest.approx(0.25)
        assert won.status == "warn"
        strict = MonitorConfig(min_mqls=41, feedback_days=120)
        checks, notes = feedback_checks(engine, end, 60, strict, 0.2)
        assert checks == [] and all("at least 41 needed" in n for n in notes)
    finally:
        engine.dispose()
