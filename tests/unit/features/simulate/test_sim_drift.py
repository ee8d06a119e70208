"""Injected drift: it changes the world from its start on, and nothing without it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from features.simulate import (
    LowFitFlood,
    Simulation,
    SimulationInputError,
    SourceShift,
    simulate,
    simulate_sales,
)

N_LEADS = 2000
SEED = 4

# sha256 over the five tables of ``simulate(n, seed=seed, months=months)``, computed on main
# before drift and the sales process existed: the default simulation must not change.
DEFAULT_DIGESTS = {
    (300, 3, 18): "cc62175246521d207f29f026a087d760264c48b9f8d9c64bb4889d0179d393cb",
    (1200, 7, 12): "89b2eaffe7868a598a2c010f530999d2350552307ee7a8ccf516bc94789301a5",
}


def digest(sim: Simulation) -> str:
    h = hashlib.sha256()
    for name in ("leads", "accounts", "activities", "conversions", "ground_truth"):
        frame = getattr(sim, name)
        h.update(name.encode())
        h.update(str(list(frame.columns)).encode())
        h.update(str(list(map(str, frame.dtypes))).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def base() -> Simulation:
    return simulate(N_LEADS, seed=SEED)


@pytest.fixture(scope="module")
def shifted() -> Simulation:
    return simulate(N_LEADS, seed=SEED, drift=SourceShift())


@pytest.fixture(scope="module")
def flooded() -> Simulation:
    return simulate(N_LEADS, seed=SEED, drift=LowFitFlood())


def start_of(sim: Simulation) -> pd.Timestamp:
    return sim.ground_truth["drift_start_at"].iloc[0]


def paid_share(sim: Simulation, mask: pd.Series) -> float:
    sources = sim.leads.loc[mask, "lead_source"]
    return float(sources.isin(["paid_search", "content_syndication"]).mean())


@pytest.mark.parametrize(("n", "seed", "months"), list(DEFAULT_DIGESTS))
def test_default_simulation_is_unchanged(n: int, seed: int, months: int):
    sim = simulate(n, seed=seed, months=months)
    assert sim.drift is None
    assert digest(sim) == DEFAULT_DIGESTS[(n, seed, months)]


def test_ground_truth_marks_the_drift(shifted: Simulation):
    gt = shifted.ground_truth
    assert shifted.drift == SourceShift(start_month=12)
    assert start_of(shifted) == pd.Timestamp("2025-01-01")
    assert (gt["drift_start_at"] == start_of(shifted)).all()
    assert (gt["drift_scenario"] == "source_shift").all()
    assert gt["drifted"].dtype == bool
    assert not gt.loc[gt["created_at"] < start_of(shifted), "drifted"].any()
    late = gt["created_at"] >= start_of(shifted)
    assert 0.4 < gt.loc[late, "drifted"].mean() < 0.6


def test_flood_defaults_to_the_last_three_months(flooded: Simulation):
    assert flooded.drift == LowFitFlood(start_month=15)
    assert start_of(flooded) == pd.Timestamp("2025-04-01")
    assert (flooded.ground_truth["drift_scenario"] == "low_fit_flood").all()


@pytest.mark.parametrize("scenario", ["shifted", "flooded"])
def test_leads_before_the_start_are_untouched(
    scenario: str, base: Simulation, request: pytest.FixtureRequest
):
    drifted: Simulation = request.getfixturevalue(scenario)
    before = base.leads["created_at"] < start_of(drifted)
    assert before.sum() > N_LEADS // 2
    pd.testing.assert_frame_equal(drifted.leads[before], base.leads[before])
    pd.testing.assert_frame_equal(drifted.accounts, base.accounts)
    # Undrifted leads keep their attributes everywhere; only the drifted ones change.
    same = ~drifted.ground_truth["drifted"]
    pd.testing.assert_frame_equal(drifted.leads[same], base.leads[same])


def test_source_shift_moves_the_source_mix_after_the_start(base, shifted):
    after = base.leads["created_at"] >= start_of(shifted)
    assert paid_share(base, after) < 0.35
    assert paid_share(shifted, after) > paid_share(base, after) + 0.25
    assert paid_share(shifted, ~after) == paid_share(base, ~after)
    drifted = shifted.ground_truth["drifted"]
    assert (
        shifted.leads.loc[drifted, "lead_source"].isin(["paid_search", "content_syndication"]).all()
    )
    # Fit does not move: the same people, bought through other channels.
    fit = shifted.ground_truth["fit_score"]
    assert abs(fit[after].mean() - base.ground_truth["fit_score"][after].mean()) < 0.15


def test_low_fit_flood_lowers_fit_after_the_start(base, flooded):
    after = base.leads["created_at"] >= start_of(flooded)
    fit, base_fit = flooded.ground_truth["fit_score"], base.ground_truth["fit_score"]
    assert fit[after].mean() < base_fit[after].mean() - 0.5
    assert fit[~after].mean() == pytest.approx(base_fit[~after].mean(), abs=1e-12)
    drifted = flooded.ground_truth["drifted"].to_numpy()
    leads = flooded.leads[drifted]
    assert leads["seniority"].isin(["Student", "Individual Contributor"]).all()
    employees = leads["account_id"].map(flooded.accounts.set_index("account_id")["employee_count"])
    assert (employees <= 10).all()
    free = leads["email"].str.contains(
        "@(?:gmail|yahoo|outlook|hotmail|icloud|proton)\\.", regex=True
    )
    assert free.mean() > 0.7
    student_share = (flooded.leads.loc[after, "seniority"] == "Student").mean()
    assert student_share > 2 * (base.leads.loc[after, "seniority"] == "Student").mean()


def test_drifted_leads_convert_less(flooded: Simulation):
    gt = flooded.ground_truth
    after = gt["created_at"] >= start_of(flooded)
    assert (
        gt.loc[after & gt["drifted"], "p_convert"].mean()
        < 0.5 * gt.loc[~gt["drifted"], "p_convert"].mean()
    )
    # The world's base rate is set by the undrifted leads, so drift is not calibrated away.
    human = ~gt["is_bot"] & ~gt["drifted"]
    assert gt.loc[human, "p_convert"].mean() == pytest.approx(0.14, abs=1e-6)


def test_drift_is_deterministic(shifted: Simulation):
    again = simulate(N_LEADS, seed=SEED, drift=SourceShift())
    for name in ("leads", "activities", "conversions", "ground_truth"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(shifted, name))


def test_custom_start_and_share():
    sim = simulate(600, seed=1, months=12, drift=SourceShift(start_month=3, share=1.0))
    gt = sim.ground_truth
    after = gt["created_at"] >= pd.Timestamp("2024-04-01")
    assert (gt["drifted"] == after).all()
    assert sim.leads.loc[after, "lead_source"].isin(["paid_search", "content_syndication"]).all()


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (SourceShift(start_month=18), "start_month 18"),
        (LowFitFlood(start_month=-1), "start_month -1"),
        (LowFitFlood(share=1.5), "share 1.5"),
        (SourceShift(sources=(("carrier_pigeon", 1.0),)), "carrier_pigeon"),
    ],
)
def test_bad_scenarios_are_clear_errors(drift, message: str):
    with pytest.raises(SimulationInputError, match=message):
        simulate(100, seed=0, drift=drift)


def test_no_activity_before_creation_or_after_the_end_with_drift(flooded: Simulation):
    created = flooded.activities["lead_id"].map(flooded.leads.set_index("lead_id")["created_at"])
    assert (flooded.activities["occurred_at"] >= created).all()
    assert (flooded.activities["occurred_at"] < pd.Timestamp("2025-07-01")).all()
    assert np.isin(flooded.leads["account_id"], flooded.accounts["account_id"]).all()


def test_sales_rejects_the_flood_as_bad_fit(base: Simulation, flooded: Simulation):
    """Sales feedback sees the flood too: more bad-fit rejections after the start."""

    def bad_fit_share(sim: Simulation) -> float:
        mqls = pd.DataFrame({"lead_id": sim.leads["lead_id"], "mql_at": sim.leads["created_at"]})
        truth = simulate_sales(sim.leads, sim.accounts, sim.ground_truth, mqls, seed=1).truth
        after = truth["mql_at"] >= start_of(flooded)
        return float((truth.loc[after, "reason_code"] == "bad_fit").mean())

    assert bad_fit_share(flooded) > bad_fit_share(base) + 0.1
