"""The data-sufficiency report: counts, Wilson intervals, verdicts and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.simulate.presets import SMALL_COMPANY
from features.sufficiency import (
    MIN_CONVERSIONS,
    PURPOSES,
    SufficiencyInputError,
    assess,
    leads_of_training_set,
    report_rows,
    sufficiency_of_tables,
    sufficiency_of_training_set,
    wilson_interval,
)


def _leads(n: int, conversions: int, region: str = "NA") -> pd.DataFrame:
    converted = np.zeros(n, dtype=bool)
    converted[:conversions] = True
    return pd.DataFrame(
        {
            "time": pd.date_range("2025-01-01", periods=n, freq="h"),
            "converted": converted,
            "region": region,
        }
    )


def test_wilson_interval_matches_known_values() -> None:
    # 10 of 100: the textbook Wilson 95% interval is [5.52%, 17.44%].
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.0552291, abs=1e-6)
    assert high == pytest.approx(0.1743657, abs=1e-6)
    # None of 40 still leaves room for a rate of up to 8.8%.
    assert wilson_interval(0, 40) == (0.0, pytest.approx(0.0876216, abs=1e-6))
    assert wilson_interval(5, 5)[1] == 1.0


@pytest.mark.parametrize(("successes", "trials"), [(1, 0), (-1, 10), (11, 10)])
def test_wilson_interval_refuses_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(SufficiencyInputError):
        wilson_interval(successes, trials)


def test_tiny_data_is_not_enough_for_anything() -> None:
    report = assess(_leads(300, 5))
    overall = report.overall
    assert (overall.leads, overall.conversions) == (300, 5)
    assert overall.rate == pytest.approx(5 / 300)
    assert overall.rate_low < overall.rate < overall.rate_high
    assert not any(v.enough for v in overall.verdicts)
    train = overall.verdict("train")
    assert train.needed == MIN_CONVERSIONS["train"] and train.conversions == 5
    assert "needs" in train.sentence() and train.rule in train.sentence()


def test_adequate_data_is_enough_for_every_purpose() -> None:
    most = max(MIN_CONVERSIONS.values())
    report = assess(_leads(20 * most, most))
    assert all(v.enough for v in report.overall.verdicts)
    assert [v.purpose for v in report.overall.verdicts] == list(PURPOSES)
    assert report.overall.span_days == pytest.approx((20 * most - 1) / 24)


def test_verdicts_follow_each_purpose_threshold() -> None:
    train = MIN_CONVERSIONS["train"]
    report = assess(_leads(10 * train, train))
    for v in report.overall.verdicts:
        assert v.enough == (train >= MIN_CONVERSIONS[v.purpose])


def test_small_company_preset_reports_the_two_tiny_regions_as_not_enough() -> None:
    sim = SMALL_COMPANY.simulate(seed=0)
    report = sufficiency_of_tables(sim.tables())
    regions = report.scope("region")
    assert regions[0].group == "NA"  # largest first
    assert {g.group for g in regions} == {"NA", "EMEA", "LATAM"}
    assert sum(g.leads for g in regions) == report.overall.leads == SMALL_COMPANY.n_leads
    assert sum(g.conversions for g in regions) == report.overall.conversions
    for name in ("EMEA", "LATAM"):
        tiny = report.group("region", name)
        assert tiny.leads < 100
        assert not any(v.enough for v in tiny.verdicts), name
    assert report.overall.rate < 0.08  # a low base rate
    assert len(report_rows(report)) == 4


def test_segment_column_from_accounts_and_missing_values() -> None:
    sim = SMALL_COMPANY.simulate(seed=1)
    tables = sim.tables()
    leads = tables["leads"].copy()
    leads.loc[leads.index[:7], "region"] = None
    report = sufficiency_of_tables({**tables, "leads": leads}, segments=("industry",))
    assert report.group("region", "(missing)").leads == 7
    industries = report.scope("industry")
    assert sum(g.leads for g in industries) == len(leads)
    payload = report.to_dict()
    assert payload["groups"][0]["scope"] == "overall"
    assert set(payload["groups"][0]["verdicts"]) == set(PURPOSES)


def test_training_set_counts_each_lead_once() -> None:
    frame = pd.DataFrame(
        {
            "lead_id": ["a", "a", "a", "b", "b", "c"],
            "as_of": pd.to_datetime(
                ["2025-01-01", "2025-02-01", "2025-03-01", "2025-01-01", "2025-02-01", "2025-03-01"]
            ),
            "label": [0, 1, 1, 0, 0, 1],
            "region": ["NA", "NA", "NA", "EMEA", "EMEA", "NA"],
        }
    )
    leads = leads_of_training_set(frame)
    assert len(leads) == 3 and int(leads["converted"].sum()) == 2
    report = sufficiency_of_training_set(frame)
    assert (report.overall.leads, report.overall.conversions) == (3, 2)
    assert report.group("region", "EMEA").conversions == 0
    assert report.overall.span_days == pytest.approx(59.0)


def test_bad_input_names_what_is_wrong() -> None:
    with pytest.raises(SufficiencyInputError, match="no leads"):
        assess(_leads(0, 0))
    with pytest.raises(SufficiencyInputError, match=r"missing column\(s\) \['region'\]"):
        assess(_leads(10, 1).drop(columns="region"))
    bad = _leads(10, 1).assign(converted=["yes"] * 10)
    with pytest.raises(SufficiencyInputError, match="converted must be 0/1"):
        assess(bad)
    with pytest.raises(SufficiencyInputError, match="time must be a timestamp"):
        assess(_leads(10, 1).assign(time="2025"))
    sim = SMALL_COMPANY.simulate(seed=0, n_leads=50)
    with pytest.raises(SufficiencyInputError, match="'nope' is in neither"):
        sufficiency_of_tables(sim.tables(), segments=("nope",))
    with pytest.raises(SufficiencyInputError, match="conversions table is missing"):
        sufficiency_of_tables({"leads": sim.leads})
    with pytest.raises(SufficiencyInputError, match=r"lacks column\(s\) \['label'\]"):
        sufficiency_of_training_set(pd.DataFrame({"lead_id": ["a"], "as_of": [pd.Timestamp(0)]}))
