"""The tournament per region: re-run on a region's own rows when it has enough conversions,
left to the pooled model otherwise, and told in the card."""

from __future__ import annotations

import numpy as np

from training import choice
from training.card import region_choice_lines


def _world() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Region NA (big): only the logistic margins know anything. EMEA (small): too few
    conversions for a choice of its own."""
    rng = np.random.default_rng(0)
    n_na, n_emea = 3000, 300
    regions = np.array(["NA"] * n_na + ["EMEA"] * n_emea, dtype=object)
    signal = rng.normal(size=n_na + n_emea)
    y = (rng.random(len(signal)) < 1 / (1 + np.exp(-(-2.0 + 1.5 * signal)))).astype(int)
    eval_raw = {
        choice.POINTS: rng.normal(size=len(y)),  # hand-set points that say nothing here
        choice.LOGISTIC: signal,
    }
    return eval_raw, y, regions


def test_a_region_with_enough_conversions_gets_its_own_tournament():
    eval_raw, y, regions = _world()
    na, emea = choice.choose_by_region(eval_raw, y, regions, pooled=choice.LOGISTIC)
    assert (na.region, emea.region) == ("NA", "EMEA")  # the largest first
    assert na.conversions >= choice.MIN_REGION_CONVERSIONS > emea.conversions
    assert na.own_best == choice.LOGISTIC and na.serving == choice.LOGISTIC
    assert set(na.scores) == {choice.POINTS, choice.LOGISTIC}
    assert "on its own rows the pooled choice is also the best" in na.reason
    assert emea.own_best is None and emea.scores == {} and emea.serving == choice.LOGISTIC
    assert f"fewer than the {choice.MIN_REGION_CONVERSIONS}" in emea.reason


def test_a_region_whose_own_rows_prefer_another_candidate_says_so():
    eval_raw, y, regions = _world()
    (na, _) = choice.choose_by_region(eval_raw, y, regions, pooled=choice.POINTS)
    assert na.own_best == choice.LOGISTIC and na.serving == choice.POINTS
    assert "on its own rows logistic does better" in na.reason
    assert "one pooled model for every region" in na.reason
    text = "\n".join(region_choice_lines([na]))
    assert "## Model by region" in text
    assert "| NA | 3,000 |" in text and "| Points score (pooled) | Logistic regression (" in text


def test_no_region_no_section():
    assert region_choice_lines([]) == []
