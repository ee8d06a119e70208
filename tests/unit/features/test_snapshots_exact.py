"""Exact snapshot planning and labels: which (lead, as_of) pairs a training set holds.

A handful of leads placed on purpose around each boundary (month starts, Mondays, the
maximum lead age, conversions at ``as_of`` and at ``as_of + horizon``, the data end), so
every snapshot can be listed by hand (fast tests ``make mutation`` runs against the
snapshot and label functions of ``features.pipeline``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.contract import TIMESTAMP_UNIT
from features.pipeline import (
    PipelineConfig,
    SnapshotRule,
    data_window,
    label_snapshots,
    make_snapshots,
    plan_snapshots,
)

T = pd.Timestamp


def _times(values: list[str | None]) -> pd.Series:
    return pd.Series([pd.Timestamp(v) for v in values], dtype=TIMESTAMP_UNIT)


# Most conversions tables here hold a row for a lead outside the test; an empty one is
# tested on its own (``test_no_conversions_at_all_still_plans_snapshots``).
NOBODY = {"Z": "2020-01-01"}


def tables(
    leads: dict[str, str],
    conversions: dict[str, str] | None = None,
    activities: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Minimal leads / conversions / activities tables (only the columns planning reads)."""
    conversions = conversions or {}
    activities = activities or []
    return {
        "leads": pd.DataFrame({"lead_id": list(leads), "created_at": _times(list(leads.values()))}),
        "conversions": pd.DataFrame(
            {
                "lead_id": pd.Series(list(conversions), dtype=object),
                "converted_at": _times(list(conversions.values())),
            }
        ),
        "activities": pd.DataFrame(
            {
                "lead_id": pd.Series(["a"] * len(activities), dtype=object),
                "occurred_at": _times(activities),
            }
        ),
    }


def pairs(snaps: pd.DataFrame) -> list[tuple[str, str]]:
    return [(lead, str(t.date())) for lead, t in zip(snaps["lead_id"], snaps["as_of"], strict=True)]


# --- the rule ----------------------------------------------------------------------------


def test_snapshot_rule_defaults():
    rule = SnapshotRule()
    assert (rule.kind, rule.offsets_days, rule.max_lead_age_days) == (
        "monthly",
        (7, 30, 60, 90),
        180,
    )


@pytest.mark.parametrize(
    ("text", "kind", "offsets"),
    [
        ("monthly", "monthly", (7, 30, 60, 90)),
        (" Weekly ", "weekly", (7, 30, 60, 90)),
        ("after-creation:7,30,60", "after_creation", (7, 30, 60)),
        ("AFTER_CREATION:14", "after_creation", (14,)),
        ("after-creation", "after_creation", (7, 30, 60, 90)),
    ],
)
def test_snapshot_rule_parses_its_text_forms(text, kind, offsets):
    rule = SnapshotRule.parse(text)
    assert (rule.kind, rule.offsets_days, rule.max_lead_age_days) == (kind, offsets, 180)
    assert SnapshotRule.parse(text, max_lead_age_days=30).max_lead_age_days == 30


def test_snapshot_rule_names_what_it_cannot_read():
    message = "unknown snapshot rule 'daily': use monthly, weekly or after-creation:7,30,60"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SnapshotRule.parse("daily")
    with pytest.raises(ValueError, match=r"^bad offsets in snapshot rule 'after-creation:7,x'$"):
        SnapshotRule.parse("after-creation:7,x")


# --- the data window ---------------------------------------------------------------------


def test_data_window_runs_from_the_first_lead_to_the_latest_timestamp_of_any_table():
    leads = {"A": "2024-01-10", "B": "2024-03-01"}
    start, end = data_window(tables(leads, {"A": "2024-03-05"}, ["2024-03-02"]))
    assert (start, end) == (T("2024-01-10"), T("2024-03-05"))
    start, end = data_window(tables(leads, {"A": "2024-03-05"}, ["2024-03-06 12:00"]))
    assert (start, end) == (T("2024-01-10"), T("2024-03-06 12:00"))
    assert data_window(tables(leads, {}, ["2024-02-01"]))[1] == T("2024-03-01")
    assert data_window(tables(leads))[1] == T("2024-03-01")  # no conversion, no activity
    assert isinstance(start, pd.Timestamp) and isinstance(end, pd.Timestamp)


# --- calendar snapshots ------------------------------------------------------------------

LEADS = {
    "A": "2024-01-15 09:00",  # converts exactly at the March snapshot: not snapshotted then
    "B": "2024-02-01 00:00:01",  # a second after the February snapshot: first seen in March
    "C": "2023-10-04 00:00",  # exactly 180 days old on 2024-04-01: still snapshotted then
    "D": "2023-10-03 23:59:59",  # a second older: its last snapshot is March
    "E": "2024-01-20",  # converts a second after the March snapshot
}
CONVERSIONS = {"A": "2024-03-01 00:00", "E": "2024-03-01 00:00:01"}


def test_monthly_snapshots_every_open_lead_younger_than_the_maximum_age():
    snaps = make_snapshots(
        tables(LEADS)["leads"],
        tables(LEADS, CONVERSIONS)["conversions"],
        SnapshotRule("monthly"),
        T("2024-05-01"),
    )
    by_date: dict[str, list[str]] = {}
    for lead, day in pairs(snaps):
        by_date.setdefault(day, []).append(lead)
    assert by_date == {
        "2023-11-01": ["C", "D"],
        "2023-12-01": ["C", "D"],
        "2024-01-01": ["C", "D"],
        "2024-02-01": ["A", "C", "D", "E"],
        "2024-03-01": ["B", "C", "D", "E"],
        "2024-04-01": ["B", "C"],
        "2024-05-01": ["B"],  # the end itself is a snapshot date
    }
    assert snaps["as_of"].dtype == TIMESTAMP_UNIT
    assert snaps.index.tolist() == list(range(len(snaps)))
    assert list(snaps.columns) == ["lead_id", "as_of"]


def test_monthly_snapshots_stop_at_the_end_and_honour_the_maximum_age():
    leads = tables(LEADS)["leads"]
    conversions = tables(LEADS, CONVERSIONS)["conversions"]
    snaps = make_snapshots(leads, conversions, SnapshotRule("monthly"), T("2024-04-30"))
    assert max(day for _, day in pairs(snaps)) == "2024-04-01"
    young = make_snapshots(
        leads, conversions, SnapshotRule("monthly", max_lead_age_days=30), T("2024-03-01")
    )
    # 30 days: C and D only on their first month start (28-29 days old).
    assert pairs(young) == [
        ("C", "2023-11-01"),
        ("D", "2023-11-01"),
        ("A", "2024-02-01"),
        ("E", "2024-02-01"),
        ("B", "2024-03-01"),
    ]


def test_weekly_snapshots_fall_on_the_mondays_after_the_first_lead():
    leads = tables({"A": "2024-01-01 10:00", "B": "2024-01-10"})["leads"]  # 1 Jan 2024: Monday
    conversions = tables({}, NOBODY)["conversions"]
    snaps = make_snapshots(leads, conversions, SnapshotRule("weekly"), T("2024-01-29"))
    assert pairs(snaps) == [
        ("A", "2024-01-08"),
        ("A", "2024-01-15"),
        ("B", "2024-01-15"),
        ("A", "2024-01-22"),
        ("B", "2024-01-22"),
        ("A", "2024-01-29"),
        ("B", "2024-01-29"),
    ]
    assert all(t.dayofweek == 0 for t in snaps["as_of"])


def test_after_creation_snapshots_at_each_offset_until_conversion_or_the_end():
    leads = tables({"A": "2024-01-01 08:00", "B": "2024-02-01", "C": "2024-01-01"})["leads"]
    conversions = tables({}, {"A": "2024-01-31 08:00", "C": "2024-01-08 00:00:01"})["conversions"]
    rule = SnapshotRule("after_creation", offsets_days=(7, 30, 60))
    snaps = make_snapshots(leads, conversions, rule, T("2024-03-02"))
    assert [(lead, str(t)) for lead, t in zip(snaps["lead_id"], snaps["as_of"], strict=True)] == [
        ("C", "2024-01-08 00:00:00"),
        ("A", "2024-01-08 08:00:00"),
        ("B", "2024-02-08 00:00:00"),
        ("B", "2024-03-02 00:00:00"),  # 30 days after 1 Feb is the end itself
    ]


def test_no_snapshot_gives_an_empty_typed_frame():
    leads = tables({"A": "2024-01-15"})["leads"]
    rule = SnapshotRule("after_creation", offsets_days=())
    conversions = tables({}, NOBODY)["conversions"]
    empty = make_snapshots(leads, conversions, rule, T("2024-12-01"))
    assert empty.empty and list(empty.columns) == ["lead_id", "as_of"]
    assert empty["as_of"].dtype == TIMESTAMP_UNIT
    none_yet = make_snapshots(leads, conversions, SnapshotRule(), T("2024-01-31"))
    assert none_yet.empty


# --- labels ------------------------------------------------------------------------------


def test_label_is_a_conversion_in_the_half_open_horizon_after_as_of():
    as_of = T("2024-03-01")
    leads = ["at", "next", "edge", "late", "before", "never"]
    snaps = pd.DataFrame({"lead_id": leads, "as_of": _times(["2024-03-01"] * 6)})
    conversions = tables(
        {},
        {
            "at": "2024-03-01",  # at as_of: already converted, not a future conversion
            "next": "2024-03-01 00:00:01",
            "edge": str(as_of + pd.Timedelta(days=30)),  # the last moment of the horizon
            "late": str(as_of + pd.Timedelta(days=30, seconds=1)),
            "before": "2024-02-01",
        },
    )["conversions"]
    labels = label_snapshots(snaps, conversions, 30)
    assert labels.tolist() == [0, 1, 1, 0, 0, 0]
    assert labels.dtype == np.int8
    assert label_snapshots(snaps, conversions, 31).tolist() == [0, 1, 1, 1, 0, 0]


def test_labels_follow_each_snapshots_own_as_of():
    snaps = pd.DataFrame(
        {"lead_id": ["A", "A", "A"], "as_of": _times(["2024-01-01", "2024-02-01", "2024-03-01"])}
    )
    conversions = tables({}, {"A": "2024-03-15"})["conversions"]
    assert label_snapshots(snaps, conversions, 30).tolist() == [0, 0, 1]
    assert label_snapshots(snaps, conversions, 45).tolist() == [0, 1, 1]
    assert label_snapshots(snaps, conversions, 90).tolist() == [1, 1, 1]


# --- planning a build --------------------------------------------------------------------


def test_plan_snapshots_stops_a_horizon_before_the_data_end():
    data = tables(LEADS, CONVERSIONS, ["2024-05-31"])
    config = PipelineConfig(horizon_days=30, data_end=T("2024-05-31"))
    snaps, start, end = plan_snapshots(data, config)
    assert (start, end) == (T("2023-10-03 23:59:59"), T("2024-05-31"))
    # The last snapshot date whose 30-day window is observed is 1 May (31 May - 30 days).
    assert max(day for _, day in pairs(snaps)) == "2024-05-01"
    expected = make_snapshots(data["leads"], data["conversions"], SnapshotRule(), T("2024-05-01"))
    assert pairs(snaps) == pairs(expected)
    shorter = PipelineConfig(horizon_days=31, data_end="2024-05-31")
    snaps31, _, end31 = plan_snapshots(data, shorter)
    assert end31 == T("2024-05-31")
    assert max(day for _, day in pairs(snaps31)) == "2024-04-01"


def test_plan_snapshots_defaults_the_end_to_the_latest_timestamp():
    data = tables(LEADS, CONVERSIONS, ["2024-04-30 12:00"])
    snaps, _, end = plan_snapshots(data, PipelineConfig(horizon_days=29))
    assert end == T("2024-04-30 12:00")
    assert max(day for _, day in pairs(snaps)) == "2024-04-01"  # 30 Apr 12:00 - 29 days
    snaps28, _, _ = plan_snapshots(data, PipelineConfig(horizon_days=30))
    assert max(day for _, day in pairs(snaps28)) == "2024-03-01"


def test_plan_snapshots_refuses_a_window_with_no_complete_label():
    data = tables({"A": "2024-01-15"}, NOBODY, ["2024-03-01"])
    message = (
        "no snapshot has a complete 90-day label window: the data runs from 2024-01-15 "
        "to 2024-03-01; use a shorter horizon or more history"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        plan_snapshots(data, PipelineConfig())
    snaps, _, _ = plan_snapshots(data, PipelineConfig(horizon_days=29))
    assert pairs(snaps) == [("A", "2024-02-01")]


def test_weekly_snapshots_start_on_the_first_monday_after_a_midweek_lead():
    leads = tables({"A": "2024-01-03 10:00"})["leads"]  # a Wednesday
    conversions = tables({}, NOBODY)["conversions"]
    snaps = make_snapshots(leads, conversions, SnapshotRule("weekly"), T("2024-01-22"))
    assert pairs(snaps) == [("A", "2024-01-08"), ("A", "2024-01-15"), ("A", "2024-01-22")]


def test_a_given_data_end_wins_over_the_latest_timestamp():
    data = tables(LEADS, CONVERSIONS, ["2024-06-15"])
    snaps, _, end = plan_snapshots(data, PipelineConfig(horizon_days=30, data_end="2024-05-31"))
    assert end == T("2024-05-31")
    assert max(day for _, day in pairs(snaps)) == "2024-05-01"


def test_a_lead_created_exactly_at_a_snapshot_time_is_in_that_snapshot():
    """Age 0 is inside the population (created at or before ``as_of``); a microsecond later
    is not."""
    leads = tables({"W": "2024-01-10", "X": "2024-02-01", "Y": "2024-02-01 00:00:00.000001"})[
        "leads"
    ]
    snaps = make_snapshots(
        leads, tables({}, NOBODY)["conversions"], SnapshotRule("monthly"), T("2024-03-01")
    )
    assert sorted(pairs(snaps)) == [
        ("W", "2024-02-01"),
        ("W", "2024-03-01"),
        ("X", "2024-02-01"),
        ("X", "2024-03-01"),
        ("Y", "2024-03-01"),
    ]


def test_no_conversions_at_all_still_plans_snapshots():
    leads = tables({"X": "2024-01-15"})["leads"]
    snaps = make_snapshots(
        leads, tables({})["conversions"], SnapshotRule("monthly"), T("2024-03-01")
    )
    assert pairs(snaps) == [("X", "2024-02-01"), ("X", "2024-03-01")]
