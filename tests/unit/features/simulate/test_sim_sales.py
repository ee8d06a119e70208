"""The simulated sales process: deterministic, well-formed, and consistent with the world."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.simulate import (
    SalesProcess,
    Simulation,
    SimulationInputError,
    oracle_mqls,
    simulate,
    simulate_sales,
)
from features.simulate.sales import DISPOSITION_COLUMNS, REASON_CODES, STAGES
from leadscore.errors import LeadscoreError

N_LEADS = 2500


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(N_LEADS, seed=21)


@pytest.fixture(scope="module")
def mqls(sim: Simulation) -> pd.DataFrame:
    """MQLs a (perfect) weekly scorer hands over: some leads more than once."""
    return oracle_mqls(sim.ground_truth, threshold=0.1)


@pytest.fixture(scope="module")
def sales(sim: Simulation, mqls: pd.DataFrame) -> SalesProcess:
    return simulate_sales(sim.leads, sim.accounts, sim.ground_truth, mqls, seed=3)


@pytest.fixture(scope="module")
def every_lead(sim: Simulation) -> SalesProcess:
    """Every lead handed over three days after creation (a threshold of zero)."""
    mqls = pd.DataFrame(
        {"lead_id": sim.leads["lead_id"], "mql_at": sim.leads["created_at"] + pd.Timedelta(days=3)}
    )
    return simulate_sales(sim.leads, sim.accounts, sim.ground_truth, mqls, seed=3)


def run(sim: Simulation, mqls: pd.DataFrame, **kwargs: Any) -> SalesProcess:
    return simulate_sales(sim.leads, sim.accounts, sim.ground_truth, mqls, **kwargs)


def worked(sales: SalesProcess) -> pd.DataFrame:
    """MQLs a rep actually decided (not absorbed into an earlier open one)."""
    return sales.truth[~sales.truth["absorbed"]]


# --- Determinism -----------------------------------------------------------------------


def test_same_inputs_give_identical_tables(sim: Simulation, mqls: pd.DataFrame, sales):
    again = run(sim, mqls, seed=3)
    pd.testing.assert_frame_equal(again.dispositions, sales.dispositions)
    pd.testing.assert_frame_equal(again.truth, sales.truth)


def test_row_order_of_the_mqls_does_not_matter(sim: Simulation, mqls: pd.DataFrame, sales):
    shuffled = mqls.sample(frac=1.0, random_state=0).reset_index(drop=True)
    again = run(sim, shuffled, seed=3)
    pd.testing.assert_frame_equal(again.dispositions, sales.dispositions)


def test_seed_changes_the_draws(sim: Simulation, mqls: pd.DataFrame, sales):
    other = run(sim, mqls, seed=4)
    assert not other.dispositions.equals(sales.dispositions)


# --- Schema ----------------------------------------------------------------------------


def test_disposition_columns_and_dtypes(sales: SalesProcess):
    d = sales.dispositions
    assert tuple(d.columns) == DISPOSITION_COLUMNS
    assert d["occurred_at"].dtype == np.dtype("datetime64[ns]")
    assert d["occurred_at"].dt.tz is None
    for column in ("lead_id", "stage", "recorded_by"):
        assert pd.api.types.is_string_dtype(d[column]), column
        assert d[column].notna().all(), column
    assert set(d["stage"]) == set(STAGES)
    assert d["recorded_by"].str.fullmatch(r"rep-\d{2}").all()


def test_reason_code_only_on_rejections(sales: SalesProcess):
    d = sales.dispositions
    rejected = d["stage"] == "rejected"
    assert d.loc[rejected, "reason_code"].isin(REASON_CODES).all()
    assert d.loc[~rejected, "reason_code"].map(lambda v: v is None).all()
    # Free text is None or a non-empty note, never NaN; "other" always says why.
    text = d["reason_text"]
    assert text.map(lambda v: v is None or (isinstance(v, str) and v != "")).all()
    assert text[d["reason_code"] == "other"].map(lambda v: isinstance(v, str)).all()
    assert text[d["stage"].isin(["accepted", "sql", "opportunity", "won"])].isna().all()


def test_sorted_by_time_lead_and_stage(sales: SalesProcess):
    d = sales.dispositions
    key = pd.DataFrame(
        {
            "t": d["occurred_at"],
            "lead": d["lead_id"].astype(str),
            "stage": d["stage"].map({s: i for i, s in enumerate(STAGES)}),
        }
    )
    assert key.equals(key.sort_values(["t", "lead", "stage"], kind="stable"))
    assert d.index.equals(pd.RangeIndex(len(d)))


def test_truth_has_one_row_per_mql(sales: SalesProcess, mqls: pd.DataFrame):
    t = sales.truth
    assert len(t) == len(mqls)
    assert sorted(t["mql_row"]) == list(range(len(mqls)))
    back = mqls.iloc[t["mql_row"]]
    assert (back["lead_id"].to_numpy() == t["lead_id"].to_numpy()).all()
    for stage in STAGES:
        assert t[stage].dtype == bool
        assert t[f"{stage}_at"].dtype == np.dtype("datetime64[ns]")
        assert (t[stage] == t[f"{stage}_at"].notna()).all()
    assert t["p_accept"].between(0, 1).all() and t["p_sql"].between(0, 1).all()


def test_empty_mqls_give_empty_tables(sim: Simulation):
    empty = pd.DataFrame(
        {"lead_id": pd.Series(dtype=str), "mql_at": pd.Series(dtype="datetime64[us]")}
    )
    out = run(sim, empty)
    assert out.dispositions.empty and tuple(out.dispositions.columns) == DISPOSITION_COLUMNS
    assert out.truth.empty


# --- The funnel ------------------------------------------------------------------------


def test_each_mql_follows_the_funnel_in_order(sales: SalesProcess):
    """accepted -> sql -> opportunity -> won|lost, or rejected alone; times non-decreasing."""
    t = worked(sales)
    path = pd.Series("", index=t.index)
    for stage in STAGES:
        path = path + np.where(t[stage], stage[0], "")
    # a=accepted r=rejected s=sql o=opportunity w=won l=lost
    allowed = re.compile(r"r|a|as|asl|aso|asow|asol")
    bad = path[~path.map(lambda p: bool(allowed.fullmatch(p)))]
    assert bad.empty, bad.value_counts()
    chain = ["mql_at", "accepted_at", "sql_at", "opportunity_at"]
    for end in ("won_at", "lost_at", "rejected_at"):
        times = t[[*chain, end]].to_numpy()
        last = times[:, 0]
        for j in range(1, times.shape[1]):
            col = times[:, j]
            ok = np.isnat(col) | (col >= last)
            assert ok.all(), [*chain, end][j]
            last = np.where(np.isnat(col), last, col)


def test_absorbed_mqls_emit_nothing(sales: SalesProcess):
    t = sales.truth
    absorbed = t[t["absorbed"]]
    assert len(absorbed) > 0  # the oracle re-hands some leads over while still worked
    assert not absorbed[list(STAGES)].any().any()
    assert absorbed["reason_code"].isna().all()
    # Each worked MQL emits exactly its reached stages before the data end.
    counted = sum(int((t[f"{s}_at"] < sales.data_end).sum()) for s in STAGES)
    assert counted == len(sales.dispositions)


def test_rejection_share_is_in_the_band_reps_report(sales, every_lead):
    """Domain notes: reps reject roughly 20-40 % of MQLs; more when everyone is an MQL."""
    rejected = 1.0 - worked(sales)["accepted"].mean()
    assert 0.20 <= rejected <= 0.40
    assert 1.0 - every_lead.truth["accepted"].mean() > rejected + 0.1


def test_won_events_are_the_observed_conversions_of_accepted_mqls(
    sim: Simulation, sales: SalesProcess
):
    t = worked(sales)
    conversions = sim.conversions.set_index("lead_id")["converted_at"]
    converted_at = t["lead_id"].map(conversions)
    accepted_before = t[t["accepted"] & (t["mql_at"] < converted_at)]
    expected = (
        conversions[sorted(set(accepted_before["lead_id"]))].astype("datetime64[ns]").sort_index()
    )
    won = sales.dispositions[sales.dispositions["stage"] == "won"]
    assert won["lead_id"].is_unique
    got = won.set_index(won["lead_id"].astype(str))["occurred_at"].sort_index()
    assert len(expected) > 20
    pd.testing.assert_series_equal(got, expected, check_names=False, check_index_type=False)


def test_every_won_deal_went_through_sql_and_opportunity(sales: SalesProcess):
    t = worked(sales)
    won = t[t["won"]]
    assert won[["accepted", "sql", "opportunity"]].all().all()
    assert (won["opportunity_at"] <= won["won_at"]).all()


def test_lost_deals_close_at_the_ground_truth_decision(sim: Simulation, sales: SalesProcess):
    t = worked(sales)
    gt = sim.ground_truth.set_index("lead_id")
    deals = t[t["lost"] & t["opportunity"]]
    assert len(deals) > 10
    decided = deals["lead_id"].map(gt["decided_at"]).astype("datetime64[ns]")
    assert (deals["lost_at"] == decided).all()
    assert not deals["lead_id"].map(gt["won"]).any()


def test_rejected_winners_still_convert_but_get_no_won(sim: Simulation, sales: SalesProcess):
    """A missed good lead: the conversion happens, sales just has no record of it."""
    t = worked(sales)
    missed = t[t["rejected"] & t["will_win"]]
    assert len(missed) > 0
    single = missed[~missed["lead_id"].isin(t.loc[t["accepted"], "lead_id"])]
    won_leads = set(sales.dispositions.loc[sales.dispositions["stage"] == "won", "lead_id"])
    assert not set(single["lead_id"]) & won_leads
    gt = sim.ground_truth.set_index("lead_id")
    assert single["lead_id"].map(gt["won"]).all()


def test_nothing_at_or_after_the_data_end(sim: Simulation, mqls: pd.DataFrame, sales):
    end = sim.ground_truth["observed_until"].max()
    assert sales.data_end == end
    assert (sales.dispositions["occurred_at"] < end).all()
    assert (sales.truth[list(f"{s}_at" for s in STAGES)] >= end).any().any()  # censored ones
    early_end = pd.Timestamp("2025-01-01")
    early = run(sim, mqls, seed=3, data_end=early_end)
    assert (early.dispositions["occurred_at"] < early_end).all()
    # Censoring drops events, it does not redraw them.
    kept = sales.dispositions[sales.dispositions["occurred_at"] < early_end]
    pd.testing.assert_frame_equal(early.dispositions, kept.reset_index(drop=True))


def test_funnel_counts_match_the_truth(sales: SalesProcess):
    """What a product counts from the dispositions is what the simulator drew."""
    d, t = sales.dispositions, sales.truth
    observed = sales.observed()
    assert len(observed) == len(t)
    for stage in STAGES:
        assert (d["stage"] == stage).sum() == observed[stage].sum(), stage
        assert (observed[stage] <= t[stage]).all()  # censoring only removes


# --- Realism ---------------------------------------------------------------------------


def test_reasons_follow_the_lead(sim: Simulation, every_lead: SalesProcess):
    t = every_lead.truth
    gt = sim.ground_truth.set_index("lead_id")
    bot = t["lead_id"].map(gt["is_bot"]).to_numpy(dtype=bool)
    invalid = t["lead_id"].map(gt["invalid_email"]).to_numpy(dtype=bool) & ~bot
    assert (t.loc[bot, "reason_code"] == "spam").mean() > 0.85
    assert (t.loc[invalid, "reason_code"] == "no_contact").mean() > 0.7
    low_fit = t["fit_score"] < t["fit_score"].quantile(0.2)
    high_fit = t["fit_score"] > t["fit_score"].quantile(0.8)
    assert (t.loc[low_fit, "reason_code"] == "bad_fit").mean() > 3 * (
        t.loc[high_fit, "reason_code"] == "bad_fit"
    ).mean()
    assert set(t["reason_code"].dropna()) == set(REASON_CODES)
    # Nobody buys from bots.
    assert not t.loc[bot, "sql"].any()


def test_most_answers_within_the_sla_some_late(every_lead: SalesProcess):
    t = every_lead.truth
    days = t["response_days"]
    assert days.median() < 3.0
    assert 0.0 < t["late"].mean() < 0.05


def test_enterprise_deals_move_slower(sim: Simulation, every_lead: SalesProcess):
    t = every_lead.truth
    scale = t["lead_id"].map(sim.ground_truth.set_index("lead_id")["decision_scale_days"])
    to_sql = (t["sql_at"] - t["accepted_at"]).dt.total_seconds() / 86_400
    small = to_sql[t["sql"] & (scale <= 5.5)].median()
    large = to_sql[t["sql"] & (scale >= 14.0)].median()
    assert large > 1.5 * small


def test_sql_rate_rises_with_intent(every_lead: SalesProcess):
    t = every_lead.truth
    accepted = t[t["accepted"]]
    high = accepted["intent"] > accepted["intent"].median()
    assert accepted.loc[high, "sql"].mean() > accepted.loc[~high, "sql"].mean() + 0.1


def test_an_account_keeps_its_rep(sim: Simulation, every_lead: SalesProcess):
    t = every_lead.truth
    account = t["lead_id"].map(sim.leads.set_index("lead_id")["account_id"])
    region = t["lead_id"].map(sim.leads.set_index("lead_id")["region"])
    assert (t.groupby(account.to_numpy())["recorded_by"].nunique() == 1).all()
    reps_of = t.groupby(region.to_numpy())["recorded_by"].agg(set)
    for a, b in [("NA", "EMEA"), ("NA", "APAC"), ("EMEA", "LATAM")]:
        assert not reps_of[a] & reps_of[b]
    assert len(reps_of["NA"]) > len(reps_of["LATAM"])


def test_an_mql_while_the_lead_is_worked_is_absorbed(sim: Simulation):
    lead = sim.leads.iloc[0]
    created = lead["created_at"]
    mqls = pd.DataFrame(
        {
            "lead_id": [lead["lead_id"]] * 3,
            "mql_at": [created, created + pd.Timedelta(hours=1), created + pd.Timedelta(days=200)],
            "grade": ["B2", "B2", "A1"],
        }
    )
    t = run(sim, mqls, seed=0).truth
    assert not t["absorbed"].iloc[0] and t["absorbed"].iloc[1]  # still being worked
    assert not t["absorbed"].iloc[2]  # long after: a new episode
    assert list(t["grade"]) == ["B2", "B2", "A1"]


# --- Bad input -------------------------------------------------------------------------


def test_unknown_lead_is_a_clear_error(sim: Simulation):
    mqls = pd.DataFrame({"lead_id": ["L999999"], "mql_at": [pd.Timestamp("2024-06-01")]})
    with pytest.raises(SimulationInputError, match="L999999"):
        run(sim, mqls)


def test_mql_before_the_lead_existed_is_an_error(sim: Simulation):
    lead = sim.leads.iloc[-1]
    mqls = pd.DataFrame(
        {"lead_id": [lead["lead_id"]], "mql_at": [lead["created_at"] - pd.Timedelta(days=1)]}
    )
    with pytest.raises(SimulationInputError, match=rf"row 0.*{lead['lead_id']}"):
        run(sim, mqls)


def test_missing_column_is_named(sim: Simulation):
    with pytest.raises(LeadscoreError, match="mql_at"):
        run(sim, pd.DataFrame({"lead_id": ["L000001"]}))
    with pytest.raises(ValueError, match="mqls row 0: mql_at is missing"):
        run(sim, pd.DataFrame({"lead_id": ["L000001"], "mql_at": [pd.NaT]}))


def test_tz_aware_mql_times_are_converted(sim: Simulation, mqls: pd.DataFrame, sales):
    aware = mqls.assign(mql_at=mqls["mql_at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin"))
    pd.testing.assert_frame_equal(run(sim, aware, seed=3).dispositions, sales.dispositions)


def test_oracle_mqls_shape(sim: Simulation, mqls: pd.DataFrame):
    assert list(mqls.columns) == ["lead_id", "mql_at", "score"]
    assert (mqls["score"] >= 0.1).all()
    created = mqls["lead_id"].map(sim.leads.set_index("lead_id")["created_at"])
    assert (mqls["mql_at"] >= created).all()
    assert mqls["lead_id"].duplicated().any()  # re-entries after leaving the MQL band


def test_good_fit_qualifies_faster(every_lead: SalesProcess):
    t = every_lead.truth
    to_sql = (t["sql_at"] - t["accepted_at"]).dt.total_seconds() / 86_400
    high = t["fit_score"] > t["fit_score"].quantile(0.75)
    low = t["fit_score"] < t["fit_score"].quantile(0.25)
    assert to_sql[t["sql"] & high].median() < to_sql[t["sql"] & low].median()


def test_dispositions_per_lead_read_as_episodes(sales: SalesProcess):
    """Per lead: episodes each opening with accepted or rejected; nothing after a win."""
    d = sales.dispositions
    letters = {"accepted": "a", "rejected": "r", "sql": "s", "opportunity": "o"}
    letters |= {"won": "w", "lost": "l"}
    paths = d.groupby(d["lead_id"].astype(str))["stage"].agg(
        lambda s: "".join(letters[v] for v in s)
    )
    episode = r"(?:r|a|as|asl|aso|asol)"
    allowed = re.compile(rf"{episode}*(?:asow)?")
    bad = paths[~paths.map(lambda p: bool(allowed.fullmatch(p)))]
    assert bad.empty, bad.head()
    assert (paths.str.len() > 4).any()  # some leads come back after an earlier episode


def test_reps_answer_in_their_working_hours(sim: Simulation, sales: SalesProcess):
    d = sales.dispositions
    answers = d[d["stage"].isin(["accepted", "rejected"])]
    region = answers["lead_id"].map(sim.leads.set_index("lead_id")["region"])
    offset = region.map({"NA": -6, "EMEA": 1, "APAC": 7, "LATAM": -4})
    local = answers["occurred_at"] + pd.to_timedelta(offset, unit="h")
    inside = local.dt.hour.between(8, 17) & (local.dt.day_of_week < 5)
    assert inside.mean() > 0.97  # the rest closed a deal before the next working day
