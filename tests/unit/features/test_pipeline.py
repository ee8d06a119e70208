"""The point-in-time pipeline: no leakage, no skew, deterministic, correct labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import read_training_set, sidecar_path, write_training_set
from features.catalogue import CATALOGUE, feature_names
from features.contract import validate
from features.eligibility import OPEN_LEADS, Population
from features.io import load_tables, write_tables
from features.pipeline import (
    TAIL_SHARE,
    DataWindowError,
    Icp,
    PipelineConfig,
    SnapshotRule,
    _before_tail,
    build_training_set,
    compute_features,
    data_window,
    features_frame,
    icp_of,
    label_snapshots,
    lead_arrays,
    make_snapshots,
    plan_snapshots,
    resolve_window,
)
from features.simulate import simulate
from leadscore.cli import app


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validate(simulate(1500, seed=7).tables())


@pytest.fixture(scope="module")
def training(tables):
    return build_training_set(tables, PipelineConfig())


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame, skip: tuple[str, ...] = ()) -> None:
    cols = [c for c in feature_names() if c not in skip]
    left = a[cols].reset_index(drop=True)
    right = b[cols].reset_index(drop=True)
    for spec in CATALOGUE:
        if spec.dtype == "category" and spec.name in cols:
            left[spec.name] = left[spec.name].astype("string")
            right[spec.name] = right[spec.name].astype("string")
    pd.testing.assert_frame_equal(left, right, check_dtype=False, check_exact=True)


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


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_skew_tables_written_and_reread_as_batch_reads_them(tables, training, tmp_path, fmt):
    """Tables written to a folder and re-read the way batch scoring reads them
    (``load_tables``, then ``serving.batch.score_frame``'s two calls) keep every microsecond:
    a lead's features equal its training row's exactly, ``days_since_*`` included."""
    write_tables(tables, tmp_path / "data", fmt=fmt)
    read = load_tables(tmp_path / "data")
    for name, column in (("leads", "created_at"), ("activities", "occurred_at")):
        assert read[name][column].dtype == tables[name][column].dtype
        assert (read[name][column].to_numpy() == tables[name][column].to_numpy()).all()
    rows = training.frame.sample(300, random_state=5).reset_index(drop=True)
    snapshots = rows[["lead_id", "as_of"]]
    arrays = lead_arrays(read["leads"], read["accounts"], read["activities"], snapshots)
    batch = features_frame(arrays, snapshots, icp_of(training.metadata.icp))
    assert_same_features(batch, rows)


def test_csv_keeps_the_north_america_region(tables, tmp_path):
    """``NA`` is North America in a text column, and missing in a number column."""
    assert (tables["leads"]["region"] == "NA").any()
    write_tables(tables, tmp_path / "data", fmt="csv")
    read = load_tables(tmp_path / "data")
    pd.testing.assert_series_equal(read["leads"]["region"], tables["leads"]["region"])
    path = tmp_path / "data" / "accounts.csv"
    accounts = pd.read_csv(path, dtype=str, keep_default_na=False)
    accounts.loc[0, "employee_count"] = "NA"
    accounts.to_csv(path, index=False)
    assert pd.isna(load_tables(tmp_path / "data")["accounts"]["employee_count"].iloc[0])


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


# --- The data end: explicit or robust, never stretched by a future-dated row ----------


@pytest.fixture(scope="module")
def small_tables() -> dict[str, pd.DataFrame]:
    return validate(simulate(800, seed=11).tables())


def with_future_activity(tables: dict[str, pd.DataFrame], when: str) -> dict[str, pd.DataFrame]:
    """The tables plus one activity of their first lead, dated ``when``."""
    lead = tables["leads"]["lead_id"].iloc[0]
    extra = pd.DataFrame(
        {"lead_id": [lead], "occurred_at": [when], "activity_type": ["email_open"]}
    )
    activities = pd.concat([tables["activities"], extra], ignore_index=True)
    return validate({**tables, "activities": activities})


def test_plain_data_ends_at_its_latest_timestamp(small_tables):
    window = resolve_window(small_tables)
    latest = max(
        small_tables["leads"]["created_at"].max(),
        small_tables["activities"]["occurred_at"].max(),
        small_tables["conversions"]["converted_at"].max(),
    )
    assert (window.end, window.latest, window.rule) == (latest, latest, "latest")
    assert window.after_end == ()


@pytest.mark.parametrize(
    ("export_time", "rule"), [(None, "before_export"), ("2040-01-01", "before_outliers")]
)
def test_one_activity_dated_2030_changes_no_row_and_is_reported(small_tables, export_time, rule):
    """The 2030 row lies after the export time (now), or far beyond the bulk of the data
    when the export time is later still: either way the training set is the one built
    without it, and the report names the row."""
    config = PipelineConfig(export_time=export_time)
    clean = build_training_set(small_tables, config)
    tampered = with_future_activity(small_tables, "2030-01-01")
    got = build_training_set(tampered, config)
    pd.testing.assert_frame_equal(got.frame, clean.frame, check_exact=True)
    meta = got.metadata
    assert meta.data_end == clean.metadata.data_end and meta.data_end_rule == rule
    assert meta.latest_timestamp == "2030-01-01 00:00:00"
    lead = small_tables["leads"]["lead_id"].iloc[0]
    ((late,),) = [meta.rows_after_data_end]
    assert (late.table, late.column, late.count) == ("activities", "occurred_at", 1)
    assert late.examples == (f"lead_id={lead}",)
    assert meta.activities == clean.metadata.activities  # counted up to the data end
    assert clean.metadata.rows_after_data_end == ()
    # Batch scoring's default as_of is this same data end.
    assert data_window(tampered, export_time)[1] == pd.Timestamp(clean.metadata.data_end)


def test_a_quiet_spell_followed_by_real_activity_is_not_an_outlier(small_tables):
    """More than a tiny share of rows after a gap is data, not a typo: the data end moves."""
    lead = small_tables["leads"]["lead_id"].iloc[0]
    n = int(len(small_tables["activities"]) * TAIL_SHARE) + 5
    late = pd.DataFrame(
        {
            "lead_id": [lead] * n,
            "occurred_at": pd.Timestamp("2026-06-01") + pd.to_timedelta(np.arange(n), "h"),
            "activity_type": ["email_open"] * n,
        }
    )
    tables = validate({**small_tables, "activities": pd.concat([small_tables["activities"], late])})
    window = resolve_window(tables, export_time="2026-12-01")
    assert window.rule == "latest" and window.end == late["occurred_at"].max()


def test_outlier_tail_needs_a_gap_and_a_tiny_share():
    day = 86_400_000_000
    bulk = np.arange(5_000, dtype=np.int64) * (day // 10)
    assert _before_tail(bulk) == (int(bulk[-1]), 0)
    far = np.append(bulk, [bulk[-1] + 31 * day, bulk[-1] + 400 * day])
    assert _before_tail(far) == (int(bulk[-1]), 2)
    near = np.append(bulk, bulk[-1] + 29 * day)  # less than TAIL_GAP: not isolated
    assert _before_tail(near) == (int(near[-1]), 0)
    assert _before_tail(far[-900:]) == (int(far[-1]), 0)  # under 1,000 rows: no tail cut


def test_a_data_end_after_the_export_time_is_refused(small_tables):
    with pytest.raises(DataWindowError, match="after the export time"):
        resolve_window(small_tables, "2025-03-01", export_time="2025-02-01")
    with pytest.raises(DataWindowError, match="after now"):
        resolve_window(small_tables, "2199-01-01")
    with pytest.raises(DataWindowError, match="every timestamp in the data is after"):
        resolve_window(small_tables, export_time="2000-01-01")


def test_cli_explicit_data_end_is_used_stated_and_recorded(tmp_path: Path):
    sim = simulate(400, seed=2)
    write_tables(sim.tables(), tmp_path / "data")
    out = tmp_path / "ts.parquet"
    result = CliRunner().invoke(
        app,
        [
            "features",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(out),
            "--horizon",
            "60",
            "--data-end",
            "2025-03-01",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "data end 2025-03-01 00:00:00: given with --data-end" in result.output
    assert "warning: activities.occurred_at:" in result.output
    ts = read_training_set(out)
    meta = ts.metadata
    assert (meta.data_end, meta.data_end_rule) == ("2025-03-01 00:00:00", "given")
    assert (ts.frame["as_of"] + pd.Timedelta(days=60) <= pd.Timestamp("2025-03-01")).all()
    assert ts.frame["as_of"].max() == pd.Timestamp("2024-12-01")
    late = {(r.table, r.column): r.count for r in meta.rows_after_data_end}
    acts = validate(sim.tables())["activities"]
    assert late[("activities", "occurred_at")] == int(
        (acts["occurred_at"] > pd.Timestamp("2025-03-01")).sum()
    )
    refused = CliRunner().invoke(
        app,
        [
            "features",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "no.parquet"),
            "--data-end",
            "2025-03-01",
            "--export-time",
            "2025-01-01",
        ],
    )
    assert refused.exit_code == 2 and "is after the export time" in refused.output
    assert not (tmp_path / "no.parquet").exists()


# --- One time resolution: microseconds, for features, labels and the lead form ---------


def one_lead_tables(occurred_at: list[pd.Timestamp]) -> dict[str, pd.DataFrame]:
    return validate(
        {
            "leads": pd.DataFrame(
                {
                    "lead_id": ["L1"],
                    "account_id": ["A1"],
                    "created_at": ["2024-01-01"],
                    "job_title": [None],
                    "seniority": ["VP"],
                    "department": ["IT"],
                    "country": ["US"],
                    "region": ["NA"],
                    "lead_source": ["event"],
                }
            ),
            "accounts": pd.DataFrame(
                {
                    "account_id": ["A1"],
                    "company_name": ["X"],
                    "industry": ["Software"],
                    "employee_count": [50],
                    "annual_revenue": [1e7],
                    "country": ["US"],
                }
            ),
            "activities": pd.DataFrame(
                {
                    "lead_id": ["L1"] * len(occurred_at),
                    "occurred_at": occurred_at,
                    "activity_type": ["demo_request"] * len(occurred_at),
                }
            ),
            "conversions": pd.DataFrame({"lead_id": [], "converted_at": []}),
        }
    )


AS_OF = pd.Timestamp("2024-03-01 12:00:00")


@pytest.mark.parametrize(
    ("offset", "counted"),
    [
        (pd.Timedelta(0), 1),
        (pd.Timedelta(milliseconds=400), 0),
        (pd.Timedelta(microseconds=1), 0),
        (pd.Timedelta(microseconds=-1), 1),
    ],
)
def test_an_activity_counts_at_as_of_and_not_a_fraction_of_a_second_after(offset, counted):
    tables = one_lead_tables([AS_OF + offset])
    snaps = pd.DataFrame({"lead_id": ["L1"], "as_of": [AS_OF]})
    row = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)
    row = row.iloc[0]
    assert row["n_demo_request_7d"] == counted and row["n_high_intent_30d"] == counted
    if counted:
        assert row["days_since_last_activity"] == pytest.approx(-offset / pd.Timedelta(days=1))
    else:
        assert np.isnan(row["days_since_last_activity"])


def test_window_edges_and_ages_are_exact_to_the_microsecond():
    seven = pd.Timedelta(days=7)
    tables = one_lead_tables([AS_OF - seven, AS_OF - seven + pd.Timedelta(microseconds=1)])
    snaps = pd.DataFrame({"lead_id": ["L1"], "as_of": [AS_OF]})
    row = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)
    row = row.iloc[0]
    assert row["n_demo_request_7d"] == 1 and row["n_demo_request_30d"] == 2
    half = pd.DataFrame({"lead_id": ["L1"], "as_of": [pd.Timestamp("2024-01-01 00:00:00.5")]})
    early = compute_features(tables["leads"], tables["accounts"], tables["activities"], half)
    assert early["days_since_created"].iloc[0] == 0.5 / 86_400


def test_label_boundaries_to_the_microsecond():
    """A conversion at as_of is not a positive (the lead had converted: no snapshot is
    even taken); one at as_of + horizon is; one a microsecond later is not."""
    horizon = 90
    offsets = [
        pd.Timedelta(0),
        pd.Timedelta(microseconds=1),
        pd.Timedelta(days=horizon),
        pd.Timedelta(days=horizon, microseconds=1),
        pd.Timedelta(microseconds=-1),
    ]
    ids = [f"L{i}" for i in range(len(offsets))]
    as_of = pd.Timestamp("2024-03-01")  # a monthly snapshot time
    snaps = pd.DataFrame({"lead_id": ids, "as_of": [as_of] * len(ids)})
    conversions = pd.DataFrame({"lead_id": ids, "converted_at": [as_of + o for o in offsets]})
    assert label_snapshots(snaps, conversions, horizon).tolist() == [0, 1, 1, 0, 0]
    leads = pd.DataFrame({"lead_id": ids, "created_at": [pd.Timestamp("2024-01-15")] * len(ids)})
    taken = make_snapshots(leads, conversions, SnapshotRule(), as_of)
    taken = taken[taken["as_of"] == as_of]
    assert sorted(taken["lead_id"]) == ["L1", "L2", "L3"]  # converted at or before: none


@pytest.mark.parametrize("kind", ["microseconds", "whole seconds", "wide", "sorted"])
def test_activities_are_ordered_by_lead_then_microsecond_whatever_the_packing(kind):
    from features.engagement import SECOND, _lead_time_order

    rng = np.random.default_rng(4)
    lead = rng.integers(0, 500, 5_000)
    t = (1_700_000_000 + rng.integers(0, 10**6, lead.size)) * SECOND
    t += rng.integers(0, 3, lead.size)  # ties and sub-second steps
    if kind == "whole seconds":  # too many leads and years for microseconds, not seconds
        lead = lead << 20
        t = (t // SECOND + rng.integers(0, 10**8, lead.size)) * SECOND
    elif kind == "wide":  # too wide to pack lead and microseconds into one int64
        t[::7] += 10**17
    want = np.lexsort((t, lead))
    if kind == "sorted":
        assert _lead_time_order(lead[want], t[want]) is None
    else:
        assert (_lead_time_order(lead, t) == want).all()


def test_the_population_rule_by_hand():
    rule = Population(max_lead_age_days=180)
    created = pd.Series(pd.to_datetime(["2024-01-01"] * 5))
    converted = pd.Series(pd.to_datetime([None, None, "2024-03-01", "2024-03-02", None]))
    as_of = pd.Series(
        pd.to_datetime(
            [
                "2024-06-29 00:00:00",  # exactly 180 days old: in
                "2024-06-29 00:00:01",  # a second older: out
                "2024-03-01 00:00:00",  # converted at as_of: out
                "2024-03-01 00:00:00",  # converts the day after: in
                "2023-12-31 00:00:00",  # not created yet: out
            ]
        )
    )
    assert rule.eligible(created, converted, as_of).tolist() == [True, False, False, True, False]
    assert OPEN_LEADS.eligible(created, converted, as_of).tolist() == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert rule.eligible(created, converted, pd.Timestamp("2024-01-01")).tolist() == [True] * 5
    day = 86_400
    assert rule.age_warning(180 * day) is None and rule.age_warning(0) is None
    assert rule.age_warning(240.5 * day) == (
        "lead is 240 days old; the model was trained on leads up to 180 days old"
    )
    assert rule.age_warning(180 * day + 1) == (
        "lead is more than 180 days old; the model was trained on leads up to 180 days old"
    )
    assert "created 2 days after as_of" in rule.age_warning(-2.5 * day)
    assert OPEN_LEADS.age_warning(10_000 * day) is None


@pytest.mark.parametrize("rule", ["monthly", "weekly", "after-creation:7,30,200"])
def test_snapshots_are_exactly_the_rules_population(tables, rule):
    """Training plans its snapshots with the rule batch scoring and the service apply."""
    parsed = SnapshotRule.parse(rule, max_lead_age_days=60)
    end = pd.Timestamp("2030-01-01")
    snaps = make_snapshots(tables["leads"], tables["conversions"], parsed, end)
    population = parsed.population()
    assert population.max_lead_age_days == (200 if rule.startswith("after") else 60)
    leads = tables["leads"].set_index("lead_id")
    converted = snaps["lead_id"].map(tables["conversions"].set_index("lead_id")["converted_at"])
    created = snaps["lead_id"].map(leads["created_at"])
    assert population.eligible(created, converted, snaps["as_of"]).all()
    age = (snaps["as_of"] - created).dt.total_seconds() / 86_400
    assert (
        age.max() <= population.max_lead_age_days and age.max() > population.max_lead_age_days - 8
    )
    if rule == "monthly":  # and every lead in the population at a snapshot date is snapshotted
        conv_all = tables["leads"]["lead_id"].map(
            tables["conversions"].set_index("lead_id")["converted_at"]
        )
        for as_of, group in snaps.groupby("as_of"):
            ok = population.eligible(tables["leads"]["created_at"], conv_all, as_of)
            assert set(group["lead_id"]) == set(tables["leads"]["lead_id"][ok])


def test_the_population_and_the_icp_are_recorded(tables, tmp_path):
    icp = Icp(
        industries=frozenset({"Retail", "Education"}),
        size_bands=frozenset({"1-10"}),
        seniorities=frozenset({"Manager"}),
    )
    config = PipelineConfig(snapshots=SnapshotRule("monthly", max_lead_age_days=120), icp=icp)
    ts = build_training_set(tables, config)
    assert ts.metadata.population == Population(max_lead_age_days=120)
    assert ts.metadata.icp is not None and icp_of(ts.metadata.icp) == icp
    assert ts.metadata.icp.industries == ("Education", "Retail")
    default = build_training_set(tables, PipelineConfig()).metadata
    assert default.population == Population(max_lead_age_days=180)
    assert icp_of(default.icp) == Icp() == icp_of(None)
    again = read_training_set(write_training_set(ts, tmp_path / "ts.parquet"))
    assert again.metadata.population == ts.metadata.population
    assert again.metadata.icp == ts.metadata.icp


def test_no_conversions_yet_gives_snapshots_all_negative():
    """A team with no conversions yet still gets its training set (every label 0), not a
    pandas error: the same snapshots as with conversions, minus the converted leads' rows."""
    tables = simulate(300, seed=1).tables()
    none = validate({**tables, "conversions": tables["conversions"].iloc[0:0]})
    ts = build_training_set(none, PipelineConfig())
    assert len(ts.frame) > 0 and int(ts.frame["label"].sum()) == 0
    with_conv = build_training_set(validate(tables), PipelineConfig())
    assert set(with_conv.frame["lead_id"]) <= set(ts.frame["lead_id"])
