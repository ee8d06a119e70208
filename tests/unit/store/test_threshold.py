"""Threshold diagnostics: volume, acceptance, precision, missed conversions and verdicts.

The hand-built store (two regions with their own thresholds, four weekly runs) is small
enough that every number below is counted by hand; the counts are written out next to
the assertions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from store.engine import open_store
from store.frames import insert_frame
from store.funnel import FunnelError
from store.runs import RunInfo, write_run
from store.schema import dispositions, mql_events
from store.threshold import ALL, GRID_COLUMNS, VERDICT_COLUMNS, Criteria, threshold_diagnostics

DAYS = ("2025-01-01", "2025-01-08", "2025-01-15", "2025-01-22")
THRESHOLDS = {"EMEA": 0.5, "NA": 0.4}
PROBABILITIES = {
    # lead: (region, probability in each weekly run; None = not scored)
    "E1": ("EMEA", (0.70, 0.70, 0.70, 0.70)),
    "E2": ("EMEA", (0.30, 0.45, 0.55, 0.65)),
    "E3": ("EMEA", (0.10, 0.10, 0.60, 0.20)),
    "E4": ("EMEA", (0.35, 0.35, 0.35, 0.35)),
    "N1": ("NA", (None, 0.45, 0.45, 0.45)),
    "N2": ("NA", (0.35, 0.35, 0.35, 0.35)),
}
MULTIPLIERS = (0.8, 1.0, 1.25)  # EMEA 0.4 / 0.5 / 0.625, NA 0.32 / 0.4 / 0.5
FEEDBACK = [
    ("E1", "accepted", "2025-01-02"),
    ("E1", "won", "2025-01-05"),
    ("E2", "won", "2025-01-20"),  # implies an accept 5 days after E2 entered (15 Jan)
    ("E3", "rejected", "2025-01-16"),
    ("E4", "won", "2025-01-20"),  # never scored 0.4 or more: missed at every threshold
    ("N1", "accepted", "2025-01-09"),
    ("N1", "won", "2025-01-12"),
    ("X9", "won", "2025-01-10"),  # a lead the store never scored
]
SETTINGS = {"weeks": 3, "horizon_days": 7, "acceptance_days": 7, "multipliers": MULTIPLIERS}


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _write(engine, runs: dict[str, tuple[str, tuple]], thresholds: dict[str, float]) -> None:
    for week, day in enumerate(DAYS):
        ids = [lead for lead, (_, p) in runs.items() if p[week] is not None]
        p = [runs[lead][1][week] for lead in ids]
        threshold = [thresholds[runs[lead][0]] for lead in ids]
        frame = pd.DataFrame(
            {
                "lead_id": ids,
                "probability": p,
                "probability_low": None,
                "probability_high": None,
                "score": [round(100 * x) for x in p],
                "grade": "B2",
                "mql": [x >= t for x, t in zip(p, threshold, strict=True)],
                "threshold": threshold,
                "region": [runs[lead][0] for lead in ids],
                "lead_source": "webinar",
            }
        )
        info = RunInfo(
            source="batch",
            as_of=pd.Timestamp(day),
            model_name="m",
            model_version="3",
            threshold=0.5,
        )
        write_run(engine, info, frame)


def _feedback(engine, rows) -> None:
    frame = pd.DataFrame(
        [(lead, stage, pd.Timestamp(day)) for lead, stage, day in rows],
        columns=["lead_id", "stage", "occurred_at"],
    )
    frame["event_key"] = [f"k{i}" for i in range(len(frame))]
    frame["recorded_by"] = "rep@example.com"
    frame["recorded_at"] = pd.Timestamp("2025-02-01")
    frame["source"] = "api"
    with engine.begin() as connection:
        insert_frame(connection, dispositions, frame)


@pytest.fixture
def store(engine):
    _write(engine, PROBABILITIES, THRESHOLDS)
    _feedback(engine, FEEDBACK)
    return engine


def _grid(report, region: str) -> pd.DataFrame:
    return report.grid[report.grid["region"] == region].set_index("multiplier")


def test_the_grid_counted_by_hand(store) -> None:
    report = threshold_diagnostics(
        store, capacity={"EMEA": 0.5, "NA": 10}, criteria=Criteria(min_count=1), **SETTINGS
    )
    assert report.as_of == pd.Timestamp("2025-01-22")
    assert list(report.grid.columns) == list(GRID_COLUMNS)
    assert list(report.grid["region"].unique()) == ["EMEA", "NA", ALL]
    emea, na, every = _grid(report, "EMEA"), _grid(report, "NA"), _grid(report, ALL)
    assert list(emea["threshold"]) == pytest.approx([0.4, 0.5, 0.625])
    assert list(na["threshold"]) == pytest.approx([0.32, 0.4, 0.5])
    assert list(emea["current"]) == [False, True, False]
    assert every["threshold"].isna().all()

    # volume over (1 Jan, 22 Jan], 3 weeks; the first run's entries are the backlog
    # EMEA: 0.4 -> E2 (8 Jan), E3 (15 Jan); 0.5 -> E2, E3 (15 Jan); 0.625 -> E2 (22 Jan)
    # NA: 0.32 -> N1 (8 Jan; N2 entered in the backlog); 0.4 -> N1; 0.5 -> none
    assert list(emea["mqls"]) == [2, 2, 1]
    assert list(na["mqls"]) == [1, 1, 0]
    assert list(every["mqls"]) == [3, 3, 1]
    assert (emea["weeks"] == 3).all()
    assert list(emea["mqls_per_week"]) == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert list(emea["capacity"]) == [0.5] * 3 and list(every["capacity"]) == [10.5] * 3
    assert list(emea["fits_capacity"]) == [False, False, True]

    # precision: entries by 15 Jan (7-day horizon), won within 7 days of the entry
    # EMEA 0.4: E1 (1 Jan, won 5 Jan), E2 (8 Jan, won 20 Jan: 12 days), E3 -> 1 of 3
    # EMEA 0.5: E1, E2 (15 Jan, won 20 Jan), E3 -> 2 of 3; 0.625: E1 only -> 1 of 1
    # NA 0.32: N2 (1 Jan), N1 (8 Jan, won 12 Jan) -> 1 of 2; 0.4: N1 -> 1 of 1; 0.5: none
    assert list(emea["mature_mqls"]) == [3, 3, 1]
    assert list(emea["converted"]) == [1, 2, 1]
    assert list(emea["precision"]) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert list(na["mature_mqls"]) == [2, 1, 0]
    assert list(na["converted"]) == [1, 1, 0]
    assert np.isnan(na.loc[1.25, "precision"])
    assert list(every["precision"]) == pytest.approx([2 / 5, 3 / 4, 1.0])

    # missed: best score in the 7 days before converting
    # E1 0.70 (1 Jan), E2 0.55 (15 Jan), E4 0.35; N1 0.45 (8 Jan); X9 never scored
    assert list(emea["conversions"]) == [3, 3, 3]
    assert list(emea["missed"]) == [1, 1, 2]
    assert list(na["missed"]) == [0, 0, 1]
    assert list(every["missed_share"]) == pytest.approx([1 / 4, 1 / 4, 3 / 4])
    assert list(every["unscored_conversions"]) == [1, 1, 1]
    assert emea["unscored_conversions"].isna().all()

    # acceptance: the real MQLs (E1 0.70, E2 0.55, E3 0.60, N1 0.45), all 7+ days old;
    # accepted within 7 days: E1, E2 (implied by its win), N1; E3 was rejected
    assert list(emea["acceptance_observed"]) == [False, True, True]
    assert np.isnan(emea.loc[0.8, "acceptance_rate"]) and emea.loc[0.8, "acceptance_n"] == 0
    assert list(emea["acceptance_n"]) == [0, 3, 1]
    assert list(emea["accepted"]) == [0, 2, 1]
    assert emea.loc[1.0, "acceptance_rate"] == pytest.approx(2 / 3)
    assert list(na["acceptance_n"]) == [0, 1, 0]
    assert every.loc[1.0, "acceptance_rate"] == pytest.approx(3 / 4)
    low, high = emea.loc[1.0, ["acceptance_low", "acceptance_high"]]
    assert low == pytest.approx(0.20766, abs=1e-5) and high == pytest.approx(0.93851, abs=1e-5)


def test_verdicts_too_low_and_about_right(store) -> None:
    report = threshold_diagnostics(
        store, capacity={"EMEA": 0.5, "NA": 10}, criteria=Criteria(min_count=1), **SETTINGS
    )
    assert list(report.verdicts.columns) == list(VERDICT_COLUMNS)
    verdicts = report.verdicts.set_index("region")
    # EMEA: 0.667 MQLs/week > 0.5 x 1.1; the lowest threshold within capacity is x1.25,
    # whose precision (1.0) is above the floor (half of 2/3) and acceptance (1 of 1) fine
    emea = verdicts.loc["EMEA"]
    assert emea["verdict"] == "too low"
    assert emea["message"] == (
        "too low: 0.667 MQLs/week against a capacity of 0.5, acceptance 67 %, yet 33 % of "
        "conversions never became MQLs (1 of 3): the scores separate poorly, a threshold "
        "cannot fix both. Recommended: 0.625 (×1.25): 0.333 MQLs/week, precision 100 %, "
        "67 % of conversions missed."
    )
    assert (emea["current_threshold"], emea["recommended_threshold"]) == (0.5, 0.625)
    # NA: within capacity, acceptance 1 of 1, no conversion missed; x0.8 keeps precision
    # at the floor (1/2 = half of 1/1) and fits: recommended
    na = verdicts.loc["NA"]
    assert na["verdict"] == "about right"
    assert na["message"].startswith(
        "about right: 0.333 MQLs/week against a capacity of 10, acceptance 100 %, "
        "0 % of conversions never became MQLs (0 of 1). Recommended: 0.32 (×0.8)"
    )
    assert na["recommended_multiplier"] == 0.8
    grid = report.grid.set_index(["region", "multiplier"])
    assert grid["recommended"].sum() == 3
    assert grid.loc[("EMEA", 1.25), "recommended"] and grid.loc[("NA", 0.8), "recommended"]
    # overall: 1 MQL/week against 10.5, acceptance 3 of 4, 1 of 4 conversions missed
    assert verdicts.loc[ALL, "verdict"] == "about right"
    assert "×0.8 of each region's threshold" in verdicts.loc[ALL, "message"]


def test_too_strict_when_conversions_are_missed_and_there_is_room(store) -> None:
    report = threshold_diagnostics(store, criteria=Criteria(min_count=1), **SETTINGS)
    emea = report.verdicts.set_index("region").loc["EMEA"]
    assert emea["verdict"] == "too strict"
    assert emea["message"].startswith(
        "too strict: 33 % of conversions never became MQLs (1 of 3); 0.667 MQLs/week. "
        "Recommended: 0.4 (×0.8)"
    )
    assert np.isnan(emea["capacity"])
    assert emea["precision_floor"] == pytest.approx(1 / 3)  # half of 2/3
    # with a precision floor of 50 %, x0.8 (1/3) is out and nothing lower is left
    strict = threshold_diagnostics(
        store, criteria=Criteria(min_count=1, min_precision=0.5), **SETTINGS
    ).verdicts.set_index("region")
    assert strict.loc["EMEA", "recommended_multiplier"] == 1.0
    assert strict.loc["EMEA", "message"].endswith(
        "Keep it for want of better: every lower threshold tried exceeds the capacity or "
        "drops precision below 50 %: 0.667 MQLs/week, precision 67 %, 33 % of conversions "
        "missed."
    )
    # a verdict needs min_count conversions / mature MQLs behind it
    quiet = threshold_diagnostics(store, **SETTINGS).verdicts.set_index("region")
    assert quiet.loc["EMEA", "verdict"] == "about right"


def test_low_acceptance_is_too_low_and_rules_out_lower_thresholds(engine) -> None:
    runs = {f"L{i}": ("EMEA", (0.1, 0.6, 0.6, 0.6)) for i in range(5)}
    _write(engine, runs, {"EMEA": 0.5})
    _feedback(engine, [("L0", "accepted", "2025-01-09"), ("L1", "rejected", "2025-01-09")])
    report = threshold_diagnostics(engine, capacity=100, criteria=Criteria(min_count=5), **SETTINGS)
    verdicts = report.verdicts.set_index("region")
    # 5 MQLs entered 8 Jan, 1 accepted within 7 days: 20 % < 60 %, no capacity problem
    assert verdicts.loc["EMEA", "verdict"] == "too low"
    assert verdicts.loc["EMEA", "message"].startswith("too low: 1.67 MQLs/week, acceptance 20 %.")
    assert verdicts.loc[ALL, "message"].startswith(
        "too low: 1.67 MQLs/week against a capacity of 100, acceptance 20 %."
    )
    # lower thresholds cannot do better than 20 %, higher ones have no acceptance measured
    # on 5 MQLs (none reach 0.625): the lowest acceptable one is x1.25
    assert verdicts.loc["EMEA", "recommended_multiplier"] == 1.25


def test_replayed_entries_at_the_current_threshold_are_the_stored_mql_events(engine) -> None:
    rng = np.random.default_rng(7)
    runs = {
        f"R{i:03d}": (
            str(rng.choice(["EMEA", "NA"])),
            tuple(float(x) for x in np.clip(rng.normal(0.45, 0.2) + rng.normal(0, 0.1, 4), 0, 1)),
        )
        for i in range(300)
    }
    _write(engine, runs, THRESHOLDS)
    report = threshold_diagnostics(engine, **SETTINGS)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(mql_events.c.region, sa.func.count())
            .where(
                mql_events.c.event == "entered",
                mql_events.c.occurred_at > pd.Timestamp(DAYS[0]).to_pydatetime(),
            )
            .group_by(mql_events.c.region)
        ).all()
    current = report.grid[report.grid["current"]].set_index("region")["mqls"]
    assert {region: count for region, count in stored} == current.drop(ALL).to_dict()
    assert current[ALL] > 50


def test_as_of_replays_the_past_and_since_narrows_the_outcomes(store) -> None:
    then = threshold_diagnostics(store, as_of="2025-01-15", **SETTINGS)
    emea = _grid(then, "EMEA").loc[1.0]
    # three runs by 15 Jan: E2 and E3 entered on the 15th, over 2 weeks since the first run
    assert (emea["mqls"], emea["weeks"], emea["mqls_per_week"]) == (2, 2.0, 1.0)
    # entries by 8 Jan are mature: E1, won on the 5th; E2's win (20 Jan) is not seen yet
    assert (emea["mature_mqls"], emea["converted"]) == (1, 1)
    assert (emea["conversions"], emea["missed"]) == (1, 0)
    assert _grid(then, ALL).loc[1.0, "unscored_conversions"] == 1  # X9 (10 Jan)

    later = threshold_diagnostics(store, since="2025-01-08", **SETTINGS)
    emea = _grid(later, "EMEA").loc[1.0]
    assert emea["mqls"] == 2  # volume still covers the last weeks
    # entries from 8 Jan, mature by 15 Jan: E2 (won 20 Jan) and E3 -> 1 of 2
    assert (emea["mature_mqls"], emea["converted"]) == (2, 1)
    # first conversions from 8 Jan: E2 (caught), E4 (missed); E1's (5 Jan) is out
    assert (emea["conversions"], emea["missed"]) == (2, 1)
    # episodes from 8 Jan: E2 accepted (implied), E3 rejected
    assert (emea["acceptance_n"], emea["accepted"]) == (2, 1)


def test_a_conversions_frame_adds_conversions_from_the_data(store) -> None:
    extra = pd.DataFrame({"lead_id": ["N2"], "converted_at": ["2025-01-10T00:00:00Z"]})
    report = threshold_diagnostics(
        store, conversions=extra, criteria=Criteria(min_count=1), **SETTINGS
    )
    na = _grid(report, "NA")
    # N2's best score before converting is 0.35: caught at 0.32, missed at 0.4 and 0.5
    assert list(na["conversions"]) == [2, 2, 2]
    assert list(na["missed"]) == [0, 1, 2]
    # its entry (1 Jan at 0.32) converted 9 days later: beyond the 7-day horizon
    assert list(na["converted"]) == [1, 1, 0]


def test_an_empty_store_gives_an_empty_report(engine) -> None:
    report = threshold_diagnostics(engine, capacity=10)
    assert report.as_of is None
    assert report.grid.empty and report.verdicts.empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "lost"}, "outcome must be one of"),
        ({"multipliers": (0.0, 1.0)}, "positive numbers"),
        ({"capacity": {"EMEA": -3}}, "capacity of EMEA"),
        ({"capacity": "lots"}, "capacity of all: 'lots' is not a number"),
        ({"weeks": 0}, "weeks must be"),
        ({"conversions": pd.DataFrame({"lead_id": ["a"]})}, "missing column.*converted_at"),
        (
            {
                "conversions": pd.DataFrame(
                    {"lead_id": ["a", "b"], "converted_at": ["2025-01-01", "soon"]}
                )
            },
            "row 1 \\(lead 'b'\\): converted_at 'soon'",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name(store, kwargs, message) -> None:
    with pytest.raises(FunnelError, match=message):
        threshold_diagnostics(store, **kwargs)


def test_criteria_are_checked() -> None:
    with pytest.raises(FunnelError, match="max_missed"):
        Criteria(max_missed=2)
