"""Funnel rates from the store: episodes, stages, censoring, groupings, rejection reasons.

Every expected number is counted by hand from the runs and dispositions each test writes;
the last test checks the rates of a few hundred random episodes against a direct count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from store.engine import open_store
from store.frames import insert_frame
from store.funnel import (
    MATURITY_DAYS,
    PROGRESSIVE,
    FunnelError,
    funnel_rates,
    mql_episodes,
    rates_from_episodes,
    rejection_reasons,
    wilson_interval,
)
from store.runs import RunInfo, write_run
from store.schema import STAGES, dispositions, mql_events

HALF = (0.094531, 0.905469)
"""95 % Wilson interval of 1 in 2 (tabulated)."""
NONE_OF_TWO = (0.0, 0.657620)
"""95 % Wilson interval of 0 in 2: [0, z²/(2 + z²)]."""


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _run(
    engine, day: str, rows: dict[str, dict], threshold: float = 0.5, source: str = "batch"
) -> None:
    """A batch run: lead -> {p, grade, region?, source?}; MQL when p >= threshold."""
    ids = list(rows)
    p = [rows[i]["p"] for i in ids]
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "probability": p,
            "probability_low": None,
            "probability_high": None,
            "score": [round(100 * x) for x in p],
            "grade": [rows[i]["grade"] for i in ids],
            "mql": [x >= threshold for x in p],
            "threshold": threshold,
            "region": [rows[i].get("region", "EMEA") for i in ids],
            "lead_source": [rows[i].get("source", "webinar") for i in ids],
        }
    )
    info = RunInfo(
        source=source,
        as_of=pd.Timestamp(day),
        model_name="m",
        model_version="3",
        threshold=threshold,
    )
    write_run(engine, info, frame)


def _feedback(engine, rows: list[tuple]) -> None:
    """Dispositions (lead, stage, time[, reason]) written straight into the table."""
    frame = pd.DataFrame(
        [(r[0], r[1], pd.Timestamp(r[2]), r[3] if len(r) > 3 else None) for r in rows],
        columns=["lead_id", "stage", "occurred_at", "reason_code"],
    )
    frame["event_key"] = [f"k{i}" for i in range(len(frame))]
    frame["recorded_by"] = "rep@example.com"
    frame["recorded_at"] = pd.Timestamp("2025-12-31")
    frame["source"] = "api"
    with engine.begin() as connection:
        insert_frame(connection, dispositions, frame)


@pytest.fixture
def january(engine):
    """Four MQLs on 1 January (two A1, two B2) and a C3 lead that never was one."""
    _run(
        engine,
        "2025-01-01",
        {
            "L1": {"p": 0.90, "grade": "A1"},
            "L2": {"p": 0.85, "grade": "A1"},
            "L3": {"p": 0.60, "grade": "B2"},
            "L4": {"p": 0.55, "grade": "B2"},
            "L5": {"p": 0.30, "grade": "C3"},
        },
    )
    _feedback(
        engine,
        [
            ("L1", "accepted", "2025-01-03"),
            ("L1", "sql", "2025-01-10"),
            ("L1", "opportunity", "2025-02-01"),
            ("L1", "won", "2025-03-01"),
            ("L2", "rejected", "2025-01-05", "no_budget"),
            ("L3", "sql", "2025-01-20"),  # accepted implied, but 19 days in: not within 14
            ("L5", "won", "2025-02-01"),  # never an MQL: in no episode
        ],
    )
    return engine


def _row(rates: pd.DataFrame, stage: str, **keys: str) -> pd.Series:
    mask = rates["stage"] == stage
    for key, value in keys.items():
        mask &= rates[key] == value
    assert mask.sum() == 1, (stage, keys)
    return rates[mask].iloc[0]


def test_rates_by_grade_counted_by_hand(january) -> None:
    rates = funnel_rates(january, by="grade", as_of="2025-06-01")
    assert list(rates["grade"].unique()) == ["A1", "B2"]  # C3 had no episode
    assert list(rates["stage"][:6]) == list(STAGES)
    expected = {
        # grade, stage: reached of 2 mature, median days
        ("A1", "accepted"): (1, 2.0),
        ("A1", "rejected"): (1, 4.0),
        ("A1", "sql"): (1, 9.0),
        ("A1", "opportunity"): (1, 31.0),
        ("A1", "won"): (1, 59.0),
        ("A1", "lost"): (0, None),
        ("B2", "accepted"): (0, None),
        ("B2", "rejected"): (0, None),
        ("B2", "sql"): (1, 19.0),
        ("B2", "opportunity"): (0, None),
        ("B2", "won"): (0, None),
        ("B2", "lost"): (0, None),
    }
    for (grade, stage), (reached, median) in expected.items():
        row = _row(rates, stage, grade=grade)
        assert (row["episodes"], row["mature"], row["reached"]) == (2, 2, reached)
        assert row["rate"] == reached / 2
        low, high = HALF if reached else NONE_OF_TWO
        assert row["ci_low"] == pytest.approx(low, abs=1e-6)
        assert row["ci_high"] == pytest.approx(high, abs=1e-6)
        assert row["window_days"] == MATURITY_DAYS[stage]
        if median is None:
            assert np.isnan(row["median_days"])
        else:
            assert row["median_days"] == median
    # L3's accept is implied by its SQL (19 days): reached, but outside the 14-day window
    assert _row(rates, "accepted", grade="B2")["reached_any"] == 1


def test_young_episodes_are_left_out_of_the_rates_they_had_no_time_for(january) -> None:
    rates = funnel_rates(january, by=None, as_of="2025-02-15")  # episodes 45 days old
    assert "grade" not in rates
    by_stage = rates.set_index("stage")
    assert list(by_stage["episodes"]) == [4] * 6
    assert list(by_stage["mature"]) == [4, 4, 4, 0, 0, 0]  # windows 14, 14, 30 | 60, 90, 90
    assert list(by_stage["reached"]) == [1, 1, 2, 0, 0, 0]
    assert by_stage.loc["sql", "rate"] == 0.5
    assert by_stage.loc["sql", "median_days"] == 14.0  # 9 and 19 days
    assert np.isnan(by_stage.loc["opportunity", "rate"])
    assert np.isnan(by_stage.loc["won", "ci_low"])
    # L1's opportunity (1 Feb) is seen, its win (1 Mar) is after as_of and is not
    assert by_stage.loc["opportunity", "reached_any"] == 1
    assert by_stage.loc["won", "reached_any"] == 0
    # no censoring for won: every episode counts, 0 of 4 won by 15 February
    free = funnel_rates(january, by=None, as_of="2025-02-15", maturity_days={"won": None})
    won = free.set_index("stage").loc["won"]
    assert (won["mature"], won["reached"], won["rate"]) == (4, 0, 0.0)
    assert pd.isna(won["window_days"])


def test_a_disposition_belongs_to_the_episode_it_follows(engine) -> None:
    _run(engine, "2025-01-01", {"L1": {"p": 0.8, "grade": "A2"}})
    _run(engine, "2025-01-08", {"L1": {"p": 0.3, "grade": "B3"}})  # leaves
    _run(engine, "2025-01-15", {"L1": {"p": 0.7, "grade": "A1"}})  # enters again
    _feedback(
        engine,
        [
            ("L1", "accepted", "2024-12-20"),  # before any entry: no episode
            ("L1", "rejected", "2025-01-10", "bad_timing"),  # after leaving: still episode 1
            ("L1", "accepted", "2025-01-15"),  # at the second entry: episode 2
            ("L1", "won", "2025-02-20"),
        ],
    )
    episodes = mql_episodes(engine, as_of="2025-06-01")
    assert list(episodes["grade"]) == ["A2", "A1"]
    first, second = episodes.iloc[0], episodes.iloc[1]
    assert first["next_entered_at"] == pd.Timestamp("2025-01-15")
    assert pd.isna(second["next_entered_at"])
    assert first["rejected_at"] == pd.Timestamp("2025-01-10") and first["rejected_days"] == 9
    assert first["reason_code"] == "bad_timing"
    assert pd.isna(first["accepted_at"]) and pd.isna(first["won_at"])
    assert second["accepted_days"] == 0 and second["won_days"] == 36
    assert second["sql_at"] == second["opportunity_at"] == pd.Timestamp("2025-02-20")
    assert pd.isna(second["reason_code"])
    # since/until select episodes by entry time; dispositions stay with their episode
    later = mql_episodes(engine, since="2025-01-02", as_of="2025-06-01")
    assert list(later["entered_at"]) == [pd.Timestamp("2025-01-15")]
    earlier = mql_episodes(engine, until="2025-01-15", as_of="2025-06-01")
    assert list(earlier["reason_code"]) == ["bad_timing"]


def test_a_re_entry_while_sales_still_work_the_lead_is_absorbed(engine) -> None:
    weeks = pd.date_range("2025-01-01", periods=7, freq="7D")  # 1 Jan .. 12 Feb
    path = {
        "L1": (0.8, 0.3, 0.8, 0.8, 0.8, 0.8, 0.8),  # accepted, SQL after the re-entry
        "L2": (0.8, 0.3, 0.3, 0.3, 0.3, 0.3, 0.8),  # accepted, no SQL: recycled by 12 Feb
        "L3": (0.8, 0.3, 0.8, 0.8, 0.8, 0.8, 0.8),  # won before the re-entry
        "L4": (0.8, 0.3, 0.8, 0.8, 0.8, 0.8, 0.8),  # never answered: open for 14 days
    }
    for week, day in enumerate(weeks):
        _run(engine, str(day), {lead: {"p": p[week], "grade": "A1"} for lead, p in path.items()})
    _feedback(
        engine,
        [
            ("L1", "accepted", "2025-01-02"),
            ("L1", "sql", "2025-01-20"),
            ("L2", "accepted", "2025-01-02"),
            ("L2", "accepted", "2025-02-13"),
            ("L3", "won", "2025-01-05"),
        ],
    )
    episodes = mql_episodes(engine, as_of="2025-06-01")
    table = episodes.set_index(["lead_id", episodes["entered_at"].dt.strftime("%m-%d")])
    assert table["absorbed"].to_dict() == {
        ("L1", "01-01"): False,
        ("L2", "01-01"): False,
        ("L3", "01-01"): False,
        ("L4", "01-01"): False,
        ("L1", "01-15"): True,  # accepted 13 days earlier, no SQL yet: still worked
        ("L3", "01-15"): True,  # a customer is not handed over again
        ("L4", "01-15"): False,  # 14 days without an answer: a new hand-off
        ("L2", "02-12"): False,  # accepted 2 Jan, no SQL in 30 days: recycled
    }
    assert table.loc[("L1", "01-01"), "sql_days"] == 19  # the SQL stays with the episode
    assert pd.isna(table.loc[("L1", "01-15"), "sql_at"])
    assert pd.isna(table.loc[("L1", "01-01"), "next_entered_at"])
    assert table.loc[("L2", "01-01"), "next_entered_at"] == pd.Timestamp("2025-02-12")
    assert table.loc[("L2", "02-12"), "accepted_days"] == 1
    overall = funnel_rates(engine, by=None, as_of="2025-06-01").set_index("stage")
    assert overall.loc["accepted", "episodes"] == 6  # the two absorbed entries left out
    assert overall.loc["sql", "reached"] == 2  # L1, and L3 (implied by its win)
    # without absorbing, the re-entry takes L1's SQL and L3 counts twice
    separate = mql_episodes(engine, as_of="2025-06-01", absorb=False)
    assert not separate["absorbed"].any() and len(separate) == 8
    assert (
        separate.set_index(["lead_id", "entered_at"]).loc[
            ("L1", pd.Timestamp("2025-01-15")), "sql_days"
        ]
        == 5
    )


def test_rates_group_by_region_source_band_cohort_and_grade_parts(engine) -> None:
    _run(
        engine,
        "2025-01-06",
        {
            "E1": {"p": 0.95, "grade": "A1", "region": "EMEA", "source": "webinar"},
            "E2": {"p": 0.55, "grade": "B1", "region": "EMEA", "source": "paid"},
            "N1": {"p": 0.75, "grade": "A3", "region": "NA", "source": "webinar"},
        },
    )
    _run(
        engine,
        "2025-02-03",
        {
            "E1": {"p": 0.95, "grade": "A1", "region": "EMEA", "source": "webinar"},
            "E2": {"p": 0.55, "grade": "B1", "region": "EMEA", "source": "paid"},
            "N1": {"p": 0.75, "grade": "A3", "region": "NA", "source": "webinar"},
            "N2": {"p": 0.65, "grade": "A1", "region": "NA", "source": "paid"},
        },
    )
    _run(  # N2's source changes after it entered: the episode keeps the one at entry
        engine,
        "2025-02-10",
        {"N2": {"p": 0.66, "grade": "A1", "region": "NA", "source": "events"}},
    )
    _feedback(
        engine,
        [
            ("E1", "accepted", "2025-01-07"),
            ("N1", "accepted", "2025-01-20"),  # 14 days: within the window
            ("N2", "accepted", "2025-02-04"),
            ("E2", "rejected", "2025-01-08", "bad_fit"),
        ],
    )
    as_of = "2025-07-01"
    rates = funnel_rates(engine, by=("region", "lead_source"), as_of=as_of)
    accepted = rates[rates["stage"] == "accepted"].set_index(["region", "lead_source"])
    assert accepted["episodes"].to_dict() == {
        ("EMEA", "paid"): 1,
        ("EMEA", "webinar"): 1,
        ("NA", "paid"): 1,
        ("NA", "webinar"): 1,
    }
    assert accepted["rate"].to_dict() == {
        ("EMEA", "paid"): 0.0,
        ("EMEA", "webinar"): 1.0,
        ("NA", "paid"): 1.0,
        ("NA", "webinar"): 1.0,
    }
    bands = funnel_rates(engine, by="score_band", as_of=as_of)
    accepted = bands[bands["stage"] == "accepted"].set_index("score_band")
    assert accepted["episodes"].to_dict() == {"41-60": 1, "61-80": 2, "81-100": 1}
    assert accepted["reached"].to_dict() == {"41-60": 0, "61-80": 2, "81-100": 1}
    cohorts = funnel_rates(engine, by=("cohort_month", "fit"), as_of=as_of)
    rejected = cohorts[cohorts["stage"] == "rejected"].set_index(["cohort_month", "fit"])
    assert rejected["episodes"].to_dict() == {
        ("2025-01", "A"): 2,
        ("2025-01", "B"): 1,
        ("2025-02", "A"): 1,
    }
    assert rejected["reached"].to_dict() == {
        ("2025-01", "A"): 0,
        ("2025-01", "B"): 1,
        ("2025-02", "A"): 0,
    }
    digits = funnel_rates(engine, by="engagement", as_of=as_of)
    assert digits[digits["stage"] == "won"].set_index("engagement")["episodes"].to_dict() == {
        "1": 3,
        "3": 1,
    }


def test_an_entry_takes_the_lead_source_of_its_own_run(engine) -> None:
    # a batch run and an online run score L1 at the same moment: one episode, the
    # online run's (the one that made it an MQL)
    _run(engine, "2025-03-03", {"L1": {"p": 0.3, "grade": "C3", "source": "webinar"}})
    _run(
        engine,
        "2025-03-03",
        {"L1": {"p": 0.8, "grade": "A1", "source": "chat"}},
        source="online",
    )
    episodes = mql_episodes(engine)
    assert list(episodes[["grade", "lead_source"]].itertuples(index=False)) == [("A1", "chat")]


def test_rejection_reasons_by_grade_have_every_code_and_shares(engine) -> None:
    _run(
        engine,
        "2025-03-03",
        {
            "A": {"p": 0.9, "grade": "A1"},
            "B": {"p": 0.9, "grade": "A1"},
            "C": {"p": 0.9, "grade": "A1"},
            "D": {"p": 0.9, "grade": "A1"},
            "E": {"p": 0.7, "grade": "B2"},
            "F": {"p": 0.6, "grade": "C3"},
        },
    )
    _feedback(
        engine,
        [
            ("A", "rejected", "2025-03-04", "bad_fit"),
            ("A", "rejected", "2025-03-09", "spam"),  # the first rejection's reason counts
            ("B", "rejected", "2025-03-05", "bad_fit"),
            ("C", "rejected", "2025-03-05", "no_budget"),
            ("E", "rejected", "2025-03-06"),  # no reason code: unrecorded
        ],
    )
    reasons = rejection_reasons(engine, by="grade")
    assert list(reasons.columns) == ["grade", "reason_code", "rejections", "share", "episodes"]
    assert len(reasons) == 3 * 9  # three grades x eight codes + unrecorded
    table = reasons.set_index(["grade", "reason_code"])
    assert table.loc[("A1", "bad_fit"), "rejections"] == 2
    assert table.loc[("A1", "bad_fit"), "share"] == pytest.approx(2 / 3)
    assert table.loc[("A1", "no_budget"), "share"] == pytest.approx(1 / 3)
    assert table.loc[("A1", "spam"), "rejections"] == 0
    assert table.loc[("A1", "bad_fit"), "episodes"] == 4
    assert table.loc[("B2", "unrecorded"), "share"] == 1.0
    assert np.isnan(table.loc[("C3", "bad_fit"), "share"])  # no rejection to share out
    overall = rejection_reasons(engine, by=None).set_index("reason_code")
    assert overall["rejections"].sum() == 4
    assert overall.loc["bad_fit", "share"] == 0.5


def test_an_empty_store_gives_empty_frames(engine) -> None:
    assert mql_episodes(engine).empty
    rates = funnel_rates(engine, by=("grade", "region"))
    assert rates.empty and list(rates.columns[:3]) == ["grade", "region", "stage"]
    assert rejection_reasons(engine).empty


def test_bad_requests_are_refused_with_what_is_wrong(engine) -> None:
    with pytest.raises(FunnelError, match="'colour'"):
        funnel_rates(engine, by=("grade", "colour"))
    with pytest.raises(FunnelError, match="twice"):
        funnel_rates(engine, by=("grade", "grade"))
    with pytest.raises(FunnelError, match="unknown stage 'signed'"):
        funnel_rates(engine, maturity_days={"signed": 3})
    with pytest.raises(FunnelError, match="since: 'last tuesday'"):
        funnel_rates(engine, since="last tuesday")
    with pytest.raises(FunnelError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def _still_open(start: pd.Timestamp, own: pd.DataFrame) -> pd.Timestamp:
    """When an episode entered at ``start`` stops being worked, walking its lead's events:
    rejected or lost closes it, won never does, no answer closes it after 14 days, an
    accept with no SQL after 30."""
    answered = deal = None
    for _, event in own[own["occurred_at"] >= start].iterrows():
        when, stage = event["occurred_at"], event["stage"]
        if deal is None and answered is None and when > start + pd.Timedelta(days=14):
            break
        if deal is None and answered is not None and when > answered + pd.Timedelta(days=30):
            return answered + pd.Timedelta(days=30)
        if stage in ("rejected", "lost"):
            return when
        if stage == "won":
            return pd.Timestamp.max
        if stage in ("sql", "opportunity"):
            deal = when
        elif stage == "accepted" and answered is None:
            answered = when
    if deal is not None:
        return pd.Timestamp.max
    if answered is not None:
        return answered + pd.Timedelta(days=30)
    return start + pd.Timedelta(days=14)


def _direct_rates(
    entries: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, absorb: bool
) -> dict:
    """Rates per (grade, stage) counted episode by episode, without the module's joins."""
    entries = entries.sort_values(["entered_at", "lead_id"]).reset_index(drop=True)
    events = events.sort_values("occurred_at", kind="stable")
    kept = []
    for lead, group in entries.groupby("lead_id"):
        own = events[events["lead_id"] == lead]
        closes = None
        for index, start in group["entered_at"].items():
            if absorb and closes is not None and start < closes:
                continue  # re-entered while the episode was still worked
            kept.append(index)
            closes = _still_open(start, own)
    episodes = entries.loc[sorted(kept)]
    counts: dict = {}
    for _, episode in episodes.iterrows():
        lead, start = episode["lead_id"], episode["entered_at"]
        later = episodes[(episodes["lead_id"] == lead) & (episodes["entered_at"] > start)]
        stop = later["entered_at"].min() if len(later) else pd.Timestamp.max
        own = events[
            (events["lead_id"] == lead)
            & (events["occurred_at"] >= start)
            & (events["occurred_at"] < stop)
        ]
        age = (as_of - start).total_seconds() / 86400
        for stage in STAGES:
            accepted = PROGRESSIVE[PROGRESSIVE.index(stage) :] if stage in PROGRESSIVE else [stage]
            times = own.loc[own["stage"].isin(accepted), "occurred_at"]
            days = (times.min() - start).total_seconds() / 86400 if len(times) else None
            window = MATURITY_DAYS[stage]
            key = (episode["grade"], stage)
            n, mature, reached, spent = counts.get(key, (0, 0, 0, []))
            ok = age >= window
            hit = ok and days is not None and days <= window
            counts[key] = (n + 1, mature + ok, reached + hit, [*spent, days] if hit else spent)
    return counts


def test_random_episodes_match_a_direct_count(engine) -> None:
    rng = np.random.default_rng(16)
    grades = ["".join(g) for g in itertools.product("AB", "12")]
    leads = [f"R{i:03d}" for i in range(120)]
    start = pd.Timestamp("2025-01-06")
    for week in range(6):
        chosen = [lead for lead in leads if rng.random() < 0.85]
        _run(
            engine,
            str(start + pd.Timedelta(weeks=week)),
            {lead: {"p": float(rng.random()), "grade": str(rng.choice(grades))} for lead in chosen},
        )
    n = 500
    times = start + pd.to_timedelta(rng.integers(-5 * 24, 200 * 24, n), unit="h")
    times = times.where(rng.random(n) > 0.1, start + pd.Timedelta(weeks=2))  # some at an entry
    stage = rng.choice(list(STAGES), n)
    reason = np.where(stage == "rejected", rng.choice(["bad_fit", "spam"], n), None)
    rows = [
        (str(rng.choice(leads)), str(s), t, r) for s, t, r in zip(stage, times, reason, strict=True)
    ]
    _feedback(engine, rows)
    as_of = pd.Timestamp("2025-05-01")

    with engine.connect() as connection:
        entries = pd.DataFrame(
            connection.execute(
                sa.select(mql_events.c.lead_id, mql_events.c.occurred_at, mql_events.c.grade).where(
                    mql_events.c.event == "entered"
                )
            ).all(),
            columns=["lead_id", "entered_at", "grade"],
        )
    entries["entered_at"] = pd.to_datetime(entries["entered_at"])
    assert len(entries) > 150
    events = pd.DataFrame(rows, columns=["lead_id", "stage", "occurred_at", "reason"])
    events = events[events["occurred_at"] <= as_of]
    separate = mql_episodes(engine, as_of=as_of, absorb=False)
    for absorb, rates in (
        (True, funnel_rates(engine, by="grade", as_of=as_of)),
        (False, rates_from_episodes(separate, by="grade")),
    ):
        expected = _direct_rates(entries, events, as_of, absorb)
        assert len(rates) == len(expected)
        for _, row in rates.iterrows():
            n_all, mature, reached, spent = expected[(row["grade"], row["stage"])]
            assert (row["episodes"], row["mature"], row["reached"]) == (n_all, mature, reached)
            if mature:
                assert row["rate"] == pytest.approx(reached / mature)
            if spent:
                assert row["median_days"] == pytest.approx(float(np.median(spent)))
            else:
                assert np.isnan(row["median_days"])
        assert rates.groupby("stage")["reached"].sum().sum() > 50
    absorbed = mql_episodes(engine, as_of=as_of)["absorbed"]
    assert 10 < absorbed.sum() < len(absorbed) / 2
