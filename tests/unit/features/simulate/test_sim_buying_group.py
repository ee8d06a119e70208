"""The simulator's buying groups: multi-threaded deals close more often, in the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from features.personas import persona_of
from features.simulate import simulate


@pytest.fixture(scope="module")
def sim():
    return simulate(6000, seed=11, buying_groups=True)


def _logit(p):
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def test_ground_truth_records_each_leads_persona_and_buying_group(sim):
    gt = sim.ground_truth
    expected = persona_of(sim.leads["seniority"].to_numpy(), sim.leads["department"].to_numpy())
    assert (gt["persona"].fillna("").to_numpy() == expected).all()
    # The group a lead joins is known when it arrives: never more than its account has then.
    leads = sim.leads.assign(persona=gt["persona"], human=~gt["is_bot"])
    for _, people in list(leads.groupby("account_id"))[:200]:
        seen: set[str] = set()
        for i, row in people.sort_values("created_at").iterrows():
            if row["human"] and isinstance(row["persona"], str):
                seen.add(row["persona"])
            assert gt.at[i, "buying_group_personas"] == len(seen)


def test_multi_threaded_deals_win_more_often_because_of_the_group(sim):
    gt = sim.ground_truth
    human = ~gt["is_bot"]
    episode = human & gt["decided_at"].notna()
    single = episode & (gt["buying_group_personas"] <= 1)
    multi = episode & (gt["buying_group_personas"] >= 3)
    assert multi.sum() > 300 and single.sum() > 300
    won_single, won_multi = gt.loc[single, "won"].mean(), gt.loc[multi, "won"].mean()
    assert won_multi > won_single + 0.1
    # The recorded effect is what separates them: without it the win chances barely differ.
    without = 1 / (1 + np.exp(-(_logit(gt["p_win"]) - gt["buying_group_effect"])))
    gap_with = gt.loc[multi, "p_win"].mean() - gt.loc[single, "p_win"].mean()
    gap_without = without[multi].mean() - without[single].mean()
    assert gap_with > 0.15 and gap_without < gap_with / 2
    # Centred over the human leads: the conversion rate stays on target.
    assert gt.loc[human, "buying_group_effect"].mean() == pytest.approx(0.0, abs=1e-9)
    assert gt.loc[human, "p_convert"].mean() == pytest.approx(0.14, abs=0.005)
