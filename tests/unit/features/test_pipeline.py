"""The point-in-time pipeline: no leakage, no skew, deterministic, correct labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import read_training_set, sidecar_path
from features.catalogue import CATALOGUE, feature_names
from features.contract import validate
from features.io import write_tables
from features.pipeline import (
    PipelineConfig,
    SnapshotRule,
    build_training_set,
    compute_features,
    label_snapshots,
    make_snapshots,
    plan_snapshots,
)
from features.simulate import simulate
from leadscore.cli import app


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validate(simulate(1500, seed=7).tables())


@pytest.fixture(scope="module")
def training(tables):
    return build_training_set(tables, PipelineConfig())


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = feature_names()
    left = a[cols].reset_index(drop=True)
    right = b[cols].reset_index(drop=True)
    for spec in CATALOGUE:
        if spec.dtype == "category":
            left[spec.name] = left[spec.name].astype("string")
            right[spec.name] = right[spec.name].astype("string")
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_training_set_shape_and_columns(training):
    frame = training.frame
    assert list(frame.columns) == ["lead_id", "as_of", *feature_names(), "label"]
    assert len(frame) > 1000
    assert 0 < frame["label"].mean() < 0.5
    assert training.metadata.rows == len(frame)
    assert not frame.duplicated(["lead_id", "as_of"]).any()


def test_leakage_future_rows_change_nothing(tables, training):
    """Adding or changing activities after as_of changes no feature and no label."""
    snaps = (
        training.frame[["lead_id", "as_of"]].drop_duplicates("lead_id").sample(300, random_state=1)
    )
    before = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)
    activities = tables["activities"]
    as_of = activities["lead_id"].map(snaps.set_index("lead_id")["as_of"])
    is_future = (activities["occurred_at"] > as_of).to_numpy()
    assert is_future.sum() > 100
    rng = np.random.default_rng(0)
    # Reshuffle the types of activities that were already in the future ...
    changed = activities[is_future].assign(
        activity_type=rng.choice(["trial_signup", "unsubscribe"], int(is_future.sum()))
    )
    # ... and add a burst of high-intent activity one second after each snapshot.
    burst = snaps.assign(
        occurred_at=snaps["as_of"] + pd.Timedelta(seconds=1),
        activity_type="demo_request",
        detail=None,
    )
    tampered = pd.concat([activities[~is_future], changed, burst], ignore_index=True)
    after = compute_features(tables["leads"], tables["accounts"], tampered, snaps)
    assert_same_features(before, after)


def test_leakage_labels_ignore_conversions_outside_horizon(tables, training):
    snaps = training.frame[["lead_id", "as_of"]]
    moved = tables["conversions"].copy()
    moved["converted_at"] = moved["converted_at"] + pd.Timedelta(days=400)
    labels = label_snapshots(snaps, moved, 90)
    converted = snaps["lead_id"].map(tables["conversions"].set_index("lead_id")["converted_at"])
    far = (converted - snaps["as_of"]) <= pd.Timedelta(days=10)
    assert labels[far.to_numpy()].sum() == 0


def test_labels_count_conversions_in_the_half_open_horizon():
    """A snapshot is positive when its lead converts in ``(as_of, as_of + horizon]``."""
    as_of = pd.Timestamp("2024-03-01")
    us, horizon = pd.Timedelta(microseconds=1), pd.Timedelta(days=30)
    converted_at = {
        "before": as_of - us,
        "at_as_of": as_of,
        "just_after": as_of + us,
        "mid": as_of + pd.Timedelta(days=15),
        "at_horizon": as_of + horizon,
        "past_horizon": as_of + horizon + us,
    }
    expected = [0, 0, 1, 1, 1, 0, 0]
    snaps = pd.DataFrame(
        {"lead_id": [*converted_at, "never"], "as_of": [as_of] * (len(converted_at) + 1)}
    ).astype({"as_of": "datetime64[us]"})
    conversions = pd.DataFrame(
        {"lead_id": list(converted_at), "converted_at": list(converted_at.values())}
    ).astype({"converted_at": "datetime64[us]"})
    assert label_snapshots(snaps, conversions, 30).tolist() == expected
    assert label_snapshots(snaps, conversions, 29).tolist() == [0, 0, 1, 1, 0, 0, 0]


def test_snapshots_need_an_open_lead_and_a_fully_observed_horizon():
    """A lead converted at ``as_of`` is not snapshotted then; a snapshot is kept when its
    horizon ends exactly at the data end, and left out one microsecond later."""
    us = pd.Timedelta(microseconds=1)
    leads = pd.DataFrame(
        {"lead_id": ["at", "after"], "created_at": pd.to_datetime(["2024-01-10"] * 2)}
    ).astype({"created_at": "datetime64[us]"})
    as_of = pd.Timestamp("2024-02-01")
    conversions = pd.DataFrame(
        {"lead_id": ["at", "after"], "converted_at": [as_of, as_of + us]}
    ).astype({"converted_at": "datetime64[us]"})
    rule = SnapshotRule()
    snaps = make_snapshots(leads, conversions, rule, as_of)
    assert snaps["lead_id"].tolist() == ["after"]
    assert snaps["as_of"].tolist() == [as_of]
    tables = {
        "leads": leads,
        "accounts": pd.DataFrame(),
        "activities": pd.DataFrame({"occurred_at": pd.Series([], dtype="datetime64[us]")}),
        "conversions": conversions,
    }
    end = as_of + pd.Timedelta(days=30)
    kept, _, _ = plan_snapshots(tables, PipelineConfig(horizon_days=30, data_end=end))
    assert kept["as_of"].tolist() == [as_of]
    with pytest.raises(ValueError, match="complete 30-day label window"):
        plan_snapshots(tables, PipelineConfig(horizon_days=30, data_end=end - us))


def test_skew_one_lead_alone_equals_batch_row(tables, training):
    """Features for a lead computed from its own rows equal its row in the batch output."""
    rows = training.frame.sample(25, random_state=3)
    for _, row in rows.iterrows():
        lead = tables["leads"][tables["leads"]["lead_id"] == row["lead_id"]]
        account = tables["accounts"][tables["accounts"]["account_id"].isin(lead["account_id"])]
        acts = tables["activities"][tables["activities"]["lead_id"] == row["lead_id"]]
        alone = compute_features(
            lead,
            account,
            acts,
            pd.DataFrame({"lead_id": [row["lead_id"]], "as_of": [row["as_of"]]}),
        )
        assert_same_features(alone, row.to_frame().T)


def test_deterministic(tables, training):
    again = build_training_set(tables, PipelineConfig())
    pd.testing.assert_frame_equal(training.frame, again.frame)
    shuffled = {**tables, "activities": tables["activities"].sample(frac=1, random_state=5)}
    assert_same_features(training.frame, build_training_set(shuffled, PipelineConfig()).frame)


def test_no_snapshot_after_conversion_or_past_label_window(tables, training):
    frame = training.frame
    converted = frame["lead_id"].map(tables["conversions"].set_index("lead_id")["converted_at"])
    assert not (converted <= frame["as_of"]).any()
    end = pd.Timestamp(training.metadata.data_end)
    assert (frame["as_of"] + pd.Timedelta(days=90) <= end).all()
    created = frame["lead_id"].map(tables["leads"].set_index("lead_id")["created_at"])
    assert (created < frame["as_of"]).all()


def test_after_creation_rule(tables):
    rule = SnapshotRule.parse("after-creation:7,30")
    snaps = make_snapshots(tables["leads"], tables["conversions"], rule, pd.Timestamp("2030-01-01"))
    created = snaps["lead_id"].map(tables["leads"].set_index("lead_id")["created_at"])
    assert set((snaps["as_of"] - created).dt.days) == {7, 30}


def test_feature_values_by_hand():
    tables = validate(
        {
            "leads": pd.DataFrame(
                {
                    "lead_id": ["L1"],
                    "account_id": ["A1"],
                    "created_at": ["2024-01-01"],
                    "job_title": ["CTO"],
                    "seniority": ["C-Level"],
                    "department": ["IT"],
                    "country": ["US"],
                    "region": ["NA"],
                    "lead_source": ["event"],
                    "email": ["cto@gmail.com"],
                }
            ),
            "accounts": pd.DataFrame(
                {
                    "account_id": ["A1"],
                    "company_name": ["X"],
                    "industry": ["Software"],
                    "employee_count": [1200],
                    "annual_revenue": [3e8],
                    "country": ["US"],
                }
            ),
            "activities": pd.DataFrame(
                {
                    "lead_id": ["L1"] * 5,
                    "occurred_at": [
                        "2024-01-02",
                        "2024-02-20",
                        "2024-02-25",
                        "2024-02-25 12:00",
                        "2024-03-05",
                    ],
                    "activity_type": [
                        "email_open",
                        "pricing_page_view",
                        "email_open",
                        "email_click",
                        "demo_request",
                    ],
                }
            ),
            "conversions": pd.DataFrame({"lead_id": [], "converted_at": []}),
        }
    )
    snaps = pd.DataFrame({"lead_id": ["L1"], "as_of": [pd.Timestamp("2024-03-01")]})
    row = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps).iloc[0]
    assert row["company_size_band"] == "1001-5000" and row["revenue_band"] == "250M-1B"
    assert row["email_domain_type"] == "free" and row["icp_score"] == 3
    assert row["n_pricing_page_view_7d"] == 0 and row["n_pricing_page_view_30d"] == 1
    assert row["n_email_open_90d"] == 2 and row["n_email_open_30d"] == 1
    assert row["n_demo_request_90d"] == 0  # after as_of
    assert row["days_since_last_activity"] == pytest.approx(4.5)
    assert row["days_since_last_high_intent"] == pytest.approx(10)
    assert row["email_ctr_90d"] == pytest.approx(0.5)
    assert row["active_days_90d"] == 3 and row["days_since_created"] == pytest.approx(60)
    assert row["n_activities_30d"] == 3 and row["n_high_intent_30d"] == 1


def test_unseen_category_does_not_crash(tables):
    leads = tables["leads"].head(1).assign(seniority="Chief Vibes Officer", region="Mars")
    snaps = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": [pd.Timestamp("2025-01-01")]})
    row = compute_features(leads, tables["accounts"], tables["activities"], snaps)
    assert row["seniority"].iloc[0] == "Chief Vibes Officer"


def test_cli_features_writes_set_and_sidecar(tmp_path: Path):
    sim = simulate(400, seed=2)
    write_tables(sim.tables(), tmp_path / "data", fmt="csv")
    out = tmp_path / "ts.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(tmp_path / "data"), "--out", str(out), "--horizon", "60"]
    )
    assert result.exit_code == 0, result.output
    ts = read_training_set(out)
    assert ts.metadata.horizon_days == 60 and ts.metadata.rows == len(ts.frame)
    assert len(ts.metadata.fingerprint) == 16 and sidecar_path(out).exists()


def test_reason_sentences_read_as_plain_language():
    from features.catalogue import by_name

    specs = by_name()
    assert specs["n_pricing_page_view_30d"].sentence(4.0) == (
        "Visited the pricing page 4 times in the last 30 days"
    )
    assert specs["n_pricing_page_view_30d"].sentence(0.0) == (
        "Has not visited the pricing page in the last 30 days"
    )
    assert specs["icp_seniority"].sentence(0.0) == "Is not a decision maker (below Director)"
    assert specs["email_ctr_90d"].sentence(0.25) == (
        "Clicked 25% of opened emails in the last 90 days"
    )
    assert specs["seniority"].sentence("VP") == "Seniority is VP"
    assert specs["days_since_last_activity"].sentence(None).endswith("not known")
