"""Exact behaviour of the time split: period starts, who goes where, gaps and specs.

Frames of a handful of leads on dates a month apart, so that every boundary, every
dropped snapshot and every population can be listed by hand (fast tests that
``make mutation`` runs against ``training.split``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from training.split import (
    Boundaries,
    SplitConfig,
    SplitError,
    TimeSplit,
    apply_boundaries,
    choose_boundaries,
    split_by_time,
    split_from_spec,
)

DAY0 = pd.Timestamp("2024-01-01")


def month(k: int) -> pd.Timestamp:
    """The k-th snapshot date (30 days apart)."""
    return DAY0 + pd.Timedelta(days=30 * k)


def first_seen(counts: list[int]) -> pd.DataFrame:
    """One snapshot per lead: ``counts[k]`` new leads on date k."""
    rows = []
    for k, count in enumerate(counts):
        rows += [(f"L{len(rows) + i}", month(k)) for i in range(count)]
    return pd.DataFrame(rows, columns=["lead_id", "as_of"])


# --- configuration -----------------------------------------------------------------------


def test_split_config_defaults():
    config = SplitConfig()
    assert (config.valid_fraction, config.test_fraction, config.gap_days) == (0.2, 0.2, 0)


@pytest.mark.parametrize("name", ["valid_fraction", "test_fraction"])
@pytest.mark.parametrize("value", [0.0, 1.0, -0.2])
def test_split_config_refuses_fractions_outside_zero_one(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be between 0 and 1, got {value}$"):
        SplitConfig(**{name: value})


def test_split_config_leaves_at_least_ten_percent_to_train_on():
    message = "valid_fraction + test_fraction must leave at least 10% to train on"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SplitConfig(0.5, 0.4)
    with pytest.raises(ValueError, match=re.escape(message)):
        SplitConfig(0.45, 0.5)
    assert SplitConfig(0.45, 0.44).test_fraction == 0.44
    assert SplitConfig(0.01, 0.01).valid_fraction == 0.01


def test_split_config_refuses_a_negative_gap():
    with pytest.raises(ValueError, match=r"^gap_days must be >= 0, got -1$"):
        SplitConfig(gap_days=-1)
    assert SplitConfig(gap_days=0).gap_days == 0


# --- boundaries --------------------------------------------------------------------------


def test_boundaries_round_trip_as_json():
    boundaries = Boundaries(month(2), month(4), 7)
    assert boundaries.to_dict() == {
        "valid_start": "2024-03-01 00:00:00",
        "test_start": "2024-04-30 00:00:00",
        "gap_days": 7,
    }
    assert Boundaries.from_dict(boundaries.to_dict()) == boundaries
    old = Boundaries.from_dict({"valid_start": "2024-03-01", "test_start": "2024-04-30"})
    assert old == Boundaries(month(2), month(4), 0)
    assert Boundaries(month(1), month(2)).gap_days == 0
    assert Boundaries.from_dict({**boundaries.to_dict(), "gap_days": "3"}).gap_days == 3


@pytest.mark.parametrize(
    ("counts", "config", "valid", "test"),
    [
        # Ten leads on ten dates: the last 20 % are the test, the 30 % before validation.
        ([1] * 10, SplitConfig(0.3, 0.2), 5, 8),
        # A share exactly on the cut (1.0 - 0.2 - 0.2 is not 0.6 in floating point): 20 %.
        ([1] * 10, SplitConfig(0.2, 0.2), 6, 8),
        ([3, 1, 1, 1, 1, 1, 1, 1], SplitConfig(0.3, 0.25), 3, 6),
        ([2, 2, 2, 2, 1, 1], SplitConfig(), 3, 4),
        # Clamped: each period keeps at least one date, train included.
        ([1, 1, 8], SplitConfig(), 1, 2),
        ([8, 1, 1], SplitConfig(), 1, 2),
        ([1, 8, 1], SplitConfig(0.1, 0.1), 1, 2),
        ([6, 1, 1, 1, 1], SplitConfig(0.1, 0.1), 3, 4),
    ],
)
def test_choose_boundaries_gives_periods_the_asked_shares_of_leads(counts, config, valid, test):
    boundaries = choose_boundaries(first_seen(counts), config)
    assert boundaries == Boundaries(month(valid), month(test), 0)


def test_choose_boundaries_counts_leads_by_their_first_snapshot():
    # Each early lead has later snapshots too; only first-snapshot dates count.
    frame = first_seen([1] * 10)
    later = pd.DataFrame({"lead_id": ["L0"] * 9, "as_of": [month(k) for k in range(1, 10)]})
    boundaries = choose_boundaries(pd.concat([frame, later]), SplitConfig(0.3, 0.2, gap_days=5))
    assert boundaries == Boundaries(month(5), month(8), 5)


@pytest.mark.parametrize("dates", [1, 2])
def test_choose_boundaries_needs_three_dates(dates):
    message = f"need snapshots on at least 3 distinct dates to split by time, found {dates}"
    with pytest.raises(SplitError, match=f"^{re.escape(message)} \\(use a finer"):
        choose_boundaries(first_seen([5] * dates), SplitConfig())
    assert choose_boundaries(first_seen([5] * 3), SplitConfig()) == Boundaries(month(1), month(2))


# --- cutting -----------------------------------------------------------------------------


def _history() -> pd.DataFrame:
    """A on dates 0,1,2; B first on 1 then 2; C on 2; D on 0 only."""
    rows = [
        ("A", 0, 0),
        ("A", 1, 0),
        ("A", 2, 1),
        ("B", 1, 1),
        ("B", 2, 0),
        ("C", 2, 1),
        ("D", 0, 1),
    ]
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "as_of": [month(r[1]) for r in rows],
            "label": [r[2] for r in rows],
        }
    )


def _pairs(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return [
        (lead, (t - DAY0).days // 30)
        for lead, t in zip(frame["lead_id"], frame["as_of"], strict=True)
    ]


def test_each_lead_stays_in_the_period_of_its_first_snapshot():
    split = apply_boundaries(_history(), Boundaries(month(1), month(2)))
    assert _pairs(split.train) == [("A", 0), ("D", 0)]
    assert _pairs(split.valid) == [("B", 1)]
    assert _pairs(split.test) == [("C", 2)]
    assert split.dropped_rows == 3  # A on 1 and 2, B on 2
    assert _pairs(split.valid_population) == [("A", 1), ("B", 1)]
    assert _pairs(split.test_population) == [("A", 2), ("B", 2), ("C", 2)]
    for part in (split.train, split.valid, split.test, split.valid_population):
        assert part.index.tolist() == list(range(len(part)))
    assert split.boundaries == Boundaries(month(1), month(2))
    assert split.periods() == {"train": split.train, "valid": split.valid, "test": split.test}
    assert list(split.periods()) == ["train", "valid", "test"]


@pytest.mark.parametrize(
    ("gap_days", "train", "valid", "dropped"),
    [
        (0, [("A", 0), ("D", 0)], [("B", 1)], 3),
        (29, [("A", 0), ("D", 0)], [("B", 1)], 3),
        (30, [], [], 7 - 1),  # snapshots exactly gap_days before the next start go
    ],
)
def test_gap_purges_snapshots_up_to_gap_days_before_the_next_start(gap_days, train, valid, dropped):
    split = apply_boundaries(_history(), Boundaries(month(1), month(2), gap_days))
    assert _pairs(split.train) == train
    assert _pairs(split.valid) == valid
    assert _pairs(split.test) == [("C", 2)]
    assert split.dropped_rows == dropped
    assert len(split.valid_population) == 2  # the population ignores the gap


def test_window_summarises_each_period():
    split = apply_boundaries(_history(), Boundaries(month(1), month(2), 30))
    window = split.window()
    assert window["train"] == {
        "first_as_of": None,
        "last_as_of": None,
        "rows": 0,
        "leads": 0,
        "positives": 0,
    }
    assert window["test"] == {
        "first_as_of": "2024-03-01 00:00:00",
        "last_as_of": "2024-03-01 00:00:00",
        "rows": 1,
        "leads": 1,
        "positives": 1,
    }
    wide = apply_boundaries(_history(), Boundaries(month(1), month(2))).window()
    assert wide["train"]["first_as_of"] == "2024-01-01 00:00:00"
    assert wide["train"]["rows"] == 2 and wide["train"]["leads"] == 2
    assert wide["train"]["positives"] == 1
    unlabelled = apply_boundaries(_history().drop(columns="label"), Boundaries(month(1), month(2)))
    assert unlabelled.window()["valid"]["positives"] is None
    two_rows = pd.concat([_history(), _history().assign(lead_id="E").iloc[[0]]])
    assert apply_boundaries(two_rows, Boundaries(month(1), month(2))).window()["train"] == {
        "first_as_of": "2024-01-01 00:00:00",
        "last_as_of": "2024-01-01 00:00:00",
        "rows": 3,
        "leads": 3,
        "positives": 1,
    }


def test_window_last_as_of_is_the_latest_snapshot():
    frame = pd.DataFrame(
        {"lead_id": ["A", "A", "B", "C"], "as_of": [month(0), month(1), month(3), month(4)]}
    )
    window = apply_boundaries(frame, Boundaries(month(3), month(4))).window()
    assert window["train"]["first_as_of"] == "2024-01-01 00:00:00"
    assert window["train"]["last_as_of"] == "2024-01-31 00:00:00"
    assert window["train"]["rows"] == 2 and window["train"]["leads"] == 1


def test_split_by_time_chooses_then_applies_with_default_shares():
    frame = first_seen([1] * 10)
    split = split_by_time(frame)
    assert split.boundaries == choose_boundaries(frame, SplitConfig())
    assert len(split.test) == 2 and len(split.train) + len(split.valid) == 8
    gapped = split_by_time(frame, SplitConfig(0.3, 0.2, gap_days=30))
    assert gapped.boundaries == Boundaries(month(5), month(8), 30)
    assert (len(gapped.train), len(gapped.valid), len(gapped.test)) == (4, 2, 2)
    assert gapped.dropped_rows == 2


# --- dataset configs ---------------------------------------------------------------------


def _one_row_per_lead(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [f"L{i:02d}" for i in range(n)],
            "as_of": [DAY0 + pd.Timedelta(days=(7 * i) % 61) for i in range(n)],
            "label": [int(i % 4 == 0) for i in range(n)],
        }
    )


def test_stratified_spec_is_exactly_scikit_learns_split():
    frame = _one_row_per_lead()
    split = split_from_spec(frame, {"kind": "stratified", "test_fraction": 0.25, "seed": 5})
    y = frame["label"].to_numpy()
    rest, test = train_test_split(np.arange(40), test_size=0.25, stratify=y, random_state=5)
    train, valid = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=5)
    assert split.test["lead_id"].tolist() == frame["lead_id"].iloc[np.sort(test)].tolist()
    assert split.valid["lead_id"].tolist() == frame["lead_id"].iloc[np.sort(valid)].tolist()
    assert split.train["lead_id"].tolist() == frame["lead_id"].iloc[np.sort(train)].tolist()
    assert split.boundaries == Boundaries(DAY0, DAY0, 0)
    assert split.dropped_rows == 0
    assert split.valid_population is split.valid and split.test_population is split.test
    assert split.test.index.tolist() == list(range(len(split.test)))


def test_stratified_spec_defaults_and_seed_argument():
    frame = _one_row_per_lead()
    split = split_from_spec(frame, {"kind": "stratified"}, seed=3)
    assert (len(split.train), len(split.valid), len(split.test)) == (24, 6, 10)
    same = split_from_spec(frame, {"kind": "stratified", "seed": 3}, seed=99)
    assert split.test["lead_id"].tolist() == same.test["lead_id"].tolist()
    other = split_from_spec(frame, {"kind": "stratified"}, seed=4)
    assert split.test["lead_id"].tolist() != other.test["lead_id"].tolist()
    tenth = split_from_spec(frame, {"kind": "stratified", "valid_fraction": 0.1}, seed=3)
    assert (len(tenth.train), len(tenth.valid)) == (27, 3)


def test_time_spec_tests_on_rows_from_the_split_date_and_validates_on_the_latest_before():
    frame = first_seen([1] * 10)
    split = split_from_spec(frame, {"kind": "time", "at": str(month(8).date())})
    assert _pairs(split.test) == [("L8", 8), ("L9", 9)]
    # valid_fraction 0.2 of the 8 earlier rows: from row int(8 * 0.8) = 6 on.
    assert _pairs(split.valid) == [("L6", 6), ("L7", 7)]
    assert _pairs(split.train) == [(f"L{k}", k) for k in range(6)]
    assert split.boundaries == Boundaries(month(6), month(8), 0)
    assert split.valid_population is split.valid
    half = split_from_spec(frame, {"kind": "time", "at": month(8), "valid_fraction": 0.5})
    assert _pairs(half.valid) == [(f"L{k}", k) for k in range(4, 8)]


def test_time_spec_orders_rows_by_date_not_by_position():
    frame = first_seen([1] * 10).iloc[::-1].reset_index(drop=True)
    split = split_from_spec(frame, {"kind": "time", "at": month(8)})
    assert sorted(_pairs(split.valid)) == [("L6", 6), ("L7", 7)]
    assert split.boundaries.valid_start == month(6)


def test_spec_errors_name_the_problem():
    frame = first_seen([1] * 10)
    with pytest.raises(SplitError, match=r"^no rows before the split date 2024-01-01$"):
        split_from_spec(frame, {"kind": "time", "at": "2024-01-01"})
    with pytest.raises(SplitError, match=r"^the test part of the time split is empty$"):
        split_from_spec(frame, {"kind": "time", "at": "2030-01-01"})
    with pytest.raises(SplitError, match=r"^unknown split kind 'random': use stratified or time$"):
        split_from_spec(frame, {"kind": "random"})
    with pytest.raises(SplitError, match=r"^unknown split kind None"):
        split_from_spec(frame, {})
    one_before = first_seen([1, 5])
    with pytest.raises(SplitError, match=r"^the train part of the time split is empty$"):
        split_from_spec(one_before, {"kind": "time", "at": month(1)})


def test_time_split_is_a_timesplit_with_frames_reset():
    frame = first_seen([1] * 10)
    frame.index = frame.index + 100
    split = split_from_spec(frame, {"kind": "time", "at": month(8)})
    assert isinstance(split, TimeSplit)
    assert split.train.index.tolist() == list(range(6))
    assert split.test.index.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("counts", "config", "valid", "test"),
    [
        ([1, 8, 1, 1], SplitConfig(), 1, 2),  # the test period may start on the third date
        ([10, 1, 1, 1], SplitConfig(0.3, 0.1), 1, 3),  # validation may start on the second
    ],
)
def test_choose_boundaries_clamps_no_further_than_needed(counts, config, valid, test):
    assert choose_boundaries(first_seen(counts), config) == Boundaries(month(valid), month(test))


def test_parts_keep_the_frames_columns_and_nothing_else():
    frame = _history()
    frame.index = frame.index + 10
    split = apply_boundaries(frame, Boundaries(month(1), month(2)))
    parts = (split.train, split.valid, split.test, split.valid_population, split.test_population)
    for part in parts:
        assert list(part.columns) == ["lead_id", "as_of", "label"]
    for spec in ({"kind": "time", "at": month(2)}, {"kind": "stratified", "test_fraction": 0.3}):
        data = _one_row_per_lead()
        data.index = data.index + 7
        for part in split_from_spec(data, spec).periods().values():
            assert list(part.columns) == ["lead_id", "as_of", "label"]


def test_stratified_spec_reads_its_test_fraction_and_defaults_the_seed_to_zero():
    frame = _one_row_per_lead()
    split = split_from_spec(frame, {"kind": "stratified", "test_fraction": 0.3})
    assert len(split.test) == 12
    seeded = split_from_spec(frame, {"kind": "stratified", "test_fraction": 0.3}, seed=0)
    assert split.test["lead_id"].tolist() == seeded.test["lead_id"].tolist()
    y = frame["label"].to_numpy()
    _, test = train_test_split(np.arange(40), test_size=0.3, stratify=y, random_state=0)
    assert split.test["lead_id"].tolist() == frame["lead_id"].iloc[np.sort(test)].tolist()
