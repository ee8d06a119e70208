"""Simulator presets: the small-company world, chosen by name, and its checks."""

from __future__ import annotations

import pandas as pd
import pytest

from features.simulate import SimulationInputError, simulate
from features.simulate.presets import PRESETS, SMALL_COMPANY, preset


def test_small_company_is_a_few_hundred_leads_one_large_region_two_tiny() -> None:
    sim = preset("small-company").simulate(seed=3)
    leads = sim.leads
    assert len(leads) == SMALL_COMPANY.n_leads == 600
    span = leads["created_at"].max() - leads["created_at"].min()
    assert span <= pd.Timedelta(days=366)
    shares = leads["region"].value_counts(normalize=True)
    assert set(shares.index) == {"NA", "EMEA", "LATAM"}
    assert shares["NA"] > 0.75 and shares["EMEA"] < 0.15 and shares["LATAM"] < 0.15
    rate = leads["lead_id"].isin(sim.conversions["lead_id"]).mean()
    assert 0.01 < rate < 0.08  # low base rate, a few dozen conversions


def test_preset_is_deterministic_and_overridable() -> None:
    a = SMALL_COMPANY.simulate(seed=5, n_leads=200, months=6)
    b = SMALL_COMPANY.simulate(seed=5, n_leads=200, months=6)
    assert len(a.leads) == 200
    pd.testing.assert_frame_equal(a.leads, b.leads)
    pd.testing.assert_frame_equal(a.conversions, b.conversions)


def test_lower_target_conversion_lowers_the_rate() -> None:
    low = simulate(1500, seed=2, target_conversion=0.03)
    base = simulate(1500, seed=2)
    assert len(low.conversions) < 0.5 * len(base.conversions)


def test_unknown_preset_and_bad_settings_are_named() -> None:
    with pytest.raises(SimulationInputError, match=r"preset 'big'.*small-company"):
        preset("big")
    with pytest.raises(SimulationInputError, match=r"unknown region\(s\) \['MARS'\]"):
        simulate(50, region_weights={"NA": 1.0, "MARS": 0.1})
    with pytest.raises(SimulationInputError, match="not all 0"):
        simulate(50, region_weights={"NA": 0.0})
    with pytest.raises(SimulationInputError, match="target_conversion"):
        simulate(50, target_conversion=0.0)
    assert set(PRESETS) == {"small-company"}
