"""Exact values of the MQL policy: thresholds, per-region rules, grade cuts and score knots.

Small hand-made inputs whose answers can be worked out on paper, so that an off-by-one,
a flipped comparison or a wrong quantile changes a number these tests pin down (they
are the fast tests ``make mutation`` runs against the policy).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from runtime.bundle import Predictions
from training.policy import (
    PolicyConfig,
    PolicyError,
    Scored,
    capacity_threshold,
    choose_threshold,
    fit_policy,
    precision_threshold,
    quartile_cuts,
    region_thresholds,
    rule_threshold,
    score_knots,
)

# --- the user's rule ---------------------------------------------------------------------


def test_policy_config_defaults_are_a_ten_percent_capacity_rule():
    config = PolicyConfig()
    assert (config.rule, config.target, config.per_region) == ("capacity", 0.1, False)
    assert (config.min_region_rows, config.min_region_positives) == (300, 10)
    assert config.region_feature == "region"


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5])
def test_policy_config_refuses_a_target_outside_zero_one(target):
    with pytest.raises(ValueError, match=re.escape(f"between 0 and 1, got {target}")):
        PolicyConfig("capacity", target)


@pytest.mark.parametrize("target", [1e-9, 0.5, 0.999999])
def test_policy_config_accepts_a_target_inside_zero_one(target):
    assert PolicyConfig("precision", target).target == target


def test_policy_config_refuses_an_unknown_rule_by_name():
    with pytest.raises(ValueError, match=r"^unknown MQL rule 'top': use capacity or precision$"):
        PolicyConfig("top", 0.1)  # type: ignore[arg-type]


# --- capacity ----------------------------------------------------------------------------

TEN = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 1.0, 0.4, 0.8, 0.6])


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.3, 0.8), (0.25, 0.8), (0.21, 0.8), (0.2, 0.9), (0.1, 1.0), (0.05, 1.0), (1e-6, 1.0)],
)
def test_capacity_threshold_is_the_kth_highest_probability_rounding_up(share, expected):
    # ceil(share * 10) leads are MQLs, and at least one.
    assert capacity_threshold(TEN, share) == expected
    assert (capacity_threshold(TEN, share) <= TEN).sum() == max(1, int(np.ceil(share * 10)))


def test_capacity_threshold_of_all_leads_is_the_lowest_probability():
    assert capacity_threshold(TEN, 0.999) == 0.1
    assert capacity_threshold([0.3], 0.5) == 0.3


def test_capacity_threshold_refuses_zero_snapshots():
    message = r"^cannot choose a capacity threshold on zero snapshots$"
    with pytest.raises(PolicyError, match=message):
        capacity_threshold(np.array([]), 0.1)


# --- precision ---------------------------------------------------------------------------

# Sorted by probability: precision after k MQLs is 1, 1, 2/3, 3/4, 3/5, 1/2.
P6 = np.array([0.5, 0.9, 0.7, 0.4, 0.8, 0.6])
Y6 = np.array([0, 1, 0, 0, 1, 1])


@pytest.mark.parametrize(
    ("target", "min_mqls", "expected"),
    [
        (0.7, 1, 0.6),  # k=4 reaches 75 %: the lowest threshold that does
        (0.75, 1, 0.6),  # exactly on the target counts
        (0.76, 1, 0.8),  # only the top two reach it
        (1.0, 1, 0.8),
        (0.6, 5, 0.5),  # k=5 (60 %) is the first with five MQLs
        (0.5, 6, 0.4),
        (0.5, 10, 0.4),  # min_mqls above the number of snapshots: all of them
        (0.55, 3, 0.5),
    ],
)
def test_precision_threshold_is_the_lowest_that_reaches_the_target(target, min_mqls, expected):
    assert precision_threshold(P6, Y6, target, min_mqls=min_mqls) == expected


def test_precision_threshold_counts_at_least_ten_mqls_by_default():
    p = np.linspace(1.0, 0.01, 100)
    y = np.zeros(100)
    y[:9] = 1  # nine top leads convert: 100 % precision, but only nine MQLs
    y[20] = 1
    # Ten MQLs: 9/10 = 90 %; eleven to twenty: less; the first with 10 % is k=100.
    assert precision_threshold(p, y, 0.9) == p[9]
    assert precision_threshold(p, y, 0.5) == p[17]  # 9/18 = 50 %
    assert choose_threshold(p, y, PolicyConfig("precision", 0.9)) == p[9]


def test_precision_threshold_never_splits_equal_probabilities():
    p = np.array([0.9, 0.8, 0.8, 0.7])
    y = np.array([1, 1, 0, 0])
    # Cutting between the two 0.8 leads would give 100 %: they go together (2/3).
    assert precision_threshold(p, y, 1.0, min_mqls=1) == 0.9
    assert precision_threshold(p, y, 0.6, min_mqls=1) == 0.8
    assert precision_threshold(p, y, 0.5, min_mqls=3) == 0.7


def test_precision_threshold_out_of_reach_names_the_best_rate():
    message = (
        "no threshold reaches an MQL→conversion rate of 80.0% on the validation period "
        "(best with at least 5 MQLs: 60.0%); lower the precision target or use a capacity rule"
    )
    with pytest.raises(PolicyError, match=f"^{re.escape(message)}$"):
        precision_threshold(P6, Y6, 0.8, min_mqls=5)
    with pytest.raises(PolicyError, match=re.escape("(best with at least 10 MQLs: 50.0%)")):
        precision_threshold(P6, Y6, 0.6)
    with pytest.raises(PolicyError, match=re.escape("(best with at least 10 MQLs: 0.0%)")):
        precision_threshold(np.array([]), np.array([]), 0.5)


def test_choose_threshold_applies_the_configured_rule():
    assert choose_threshold(TEN, np.zeros(10), PolicyConfig("capacity", 0.3)) == 0.8
    with pytest.raises(PolicyError):  # default min_mqls=10 over 6 snapshots: 50 %
        choose_threshold(P6, Y6, PolicyConfig("precision", 0.6))
    assert choose_threshold(P6, Y6, PolicyConfig("precision", 0.5)) == 0.4


# --- regions -----------------------------------------------------------------------------


def _regional() -> tuple[Scored, Scored]:
    """NA: 6 snapshots, EMEA: 4, APAC: 3, unknown: 2 (labelled = population)."""
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.95, 0.85, 0.75, 0.65, 0.3, 0.2, 0.1, 0.99, 0.01])
    regions = np.array(["NA"] * 6 + ["EMEA"] * 4 + ["APAC"] * 3 + ["", ""], dtype=object)
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0])
    scored = Scored(p, regions, y=y, fit_sum=np.arange(15.0), engagement_sum=-np.arange(15.0))
    return scored, scored


def test_rule_threshold_of_a_region_looks_at_that_region_only():
    labelled, population = _regional()
    capacity = PolicyConfig("capacity", 0.5)
    assert rule_threshold(labelled, population, capacity) == 0.65  # 8th highest of 15
    assert rule_threshold(labelled, population, capacity, "NA") == 0.7  # 3rd of 6
    assert rule_threshold(labelled, population, capacity, "EMEA") == 0.85  # 2nd of 4
    precision = PolicyConfig("precision", 0.5)
    # Precision over NA alone (at least min(10, 6) = 6 MQLs): 3/6.
    assert rule_threshold(labelled, population, precision, "NA") == 0.4
    with pytest.raises(PolicyError):  # EMEA: 1/4 < 50 %
        rule_threshold(labelled, population, precision, "EMEA")


def test_capacity_rule_reads_the_population_not_the_labelled_snapshots():
    labelled = Scored(np.array([0.1, 0.2]), np.array(["NA", "NA"], dtype=object))
    population = Scored(TEN, np.array(["NA"] * 10, dtype=object))
    assert rule_threshold(labelled, population, PolicyConfig("capacity", 0.3)) == 0.8
    assert rule_threshold(labelled, population, PolicyConfig("capacity", 0.3), "NA") == 0.8


def test_region_thresholds_need_enough_rows_counting_the_boundary():
    labelled, population = _regional()
    config = PolicyConfig("capacity", 0.5, per_region=True, min_region_rows=4)
    # NA (6) and EMEA (4, exactly the minimum) qualify; APAC (3) and "" do not.
    assert region_thresholds(labelled, population, config) == {"EMEA": 0.85, "NA": 0.7}
    assert list(region_thresholds(labelled, population, config)) == ["EMEA", "NA"]
    fewer = PolicyConfig("capacity", 0.5, per_region=True, min_region_rows=3)
    assert region_thresholds(labelled, population, fewer) == {
        "APAC": 0.2,
        "EMEA": 0.85,
        "NA": 0.7,
    }
    more = PolicyConfig("capacity", 0.5, per_region=True, min_region_rows=7)
    assert region_thresholds(labelled, population, more) == {}


def test_capacity_regions_need_no_outcomes():
    _, population = _regional()
    unlabelled = Scored(population.probability, population.regions)
    config = PolicyConfig("capacity", 0.5, per_region=True, min_region_rows=4)
    assert region_thresholds(unlabelled, population, config) == {"EMEA": 0.85, "NA": 0.7}


def test_precision_regions_need_enough_conversions_and_a_reachable_target():
    labelled, population = _regional()
    # NA has 3 conversions, APAC 3, EMEA 1; EMEA's 25 % misses the target and keeps
    # the global threshold instead of failing the run.
    config = PolicyConfig(
        "precision", 0.5, per_region=True, min_region_rows=3, min_region_positives=3
    )
    assert region_thresholds(labelled, population, config) == {"APAC": 0.1, "NA": 0.4}
    stricter = PolicyConfig(
        "precision", 0.5, per_region=True, min_region_rows=3, min_region_positives=4
    )
    assert region_thresholds(labelled, population, stricter) == {}
    one = PolicyConfig("precision", 0.2, per_region=True, min_region_rows=3, min_region_positives=1)
    assert region_thresholds(labelled, population, one) == {"APAC": 0.1, "EMEA": 0.65, "NA": 0.4}


# --- grades and score --------------------------------------------------------------------


def test_quartile_cuts_are_the_25th_50th_and_75th_percentiles():
    assert quartile_cuts(np.array([4.0, 0.0, 2.0, 1.0, 3.0])) == (1.0, 2.0, 3.0)
    assert quartile_cuts([0, 10]) == (2.5, 5.0, 7.5)
    assert all(isinstance(c, float) for c in quartile_cuts([1, 2, 3]))


def test_score_knots_are_the_101_percentiles():
    knots = score_knots(np.arange(101)[::-1])
    assert knots == pytest.approx(tuple(range(101)), abs=1e-12)
    assert score_knots([0, 1]) == pytest.approx(tuple(np.linspace(0, 1, 101)), abs=1e-15)
    assert score_knots([0.2, 0.4])[::25] == pytest.approx((0.2, 0.25, 0.3, 0.35, 0.4))
    assert all(type(k) is float for k in knots)


def test_score_knots_never_decrease():
    # Quantiles of values that differ below rounding may come out a hair lower than
    # the previous knot; the running maximum keeps them sorted for searchsorted.
    p = np.full(50, 0.1) + np.arange(50) * 1e-17
    knots = np.array(score_knots(np.r_[p, 0.3, 0.1 + 1e-16]))
    assert np.all(np.diff(knots) >= 0)


# --- the whole policy --------------------------------------------------------------------


def test_fit_policy_assembles_threshold_regions_cuts_and_knots():
    labelled, population = _regional()
    config = PolicyConfig(
        "capacity", 0.5, per_region=True, min_region_rows=4, region_feature="country"
    )
    policy = fit_policy(labelled, population, config)
    assert policy.rule == "capacity"
    assert policy.target == 0.5 and type(policy.target) is float
    assert policy.threshold == 0.65
    assert policy.region_thresholds == {"EMEA": 0.85, "NA": 0.7}
    assert policy.region_feature == "country"
    assert policy.fit_cuts == (3.5, 7.0, 10.5)
    assert policy.engagement_cuts == (-10.5, -7.0, -3.5)
    assert policy.score_knots == score_knots(population.probability)
    assert len(policy.score_knots) == 101


def test_fit_policy_without_per_region_has_no_region_thresholds():
    labelled, population = _regional()
    policy = fit_policy(labelled, population, PolicyConfig("capacity", 0.5, min_region_rows=1))
    assert policy.region_thresholds == {}
    assert policy.region_feature == "region"


def test_fit_policy_precision_rule_measures_the_labelled_snapshots():
    labelled, population = _regional()
    policy = fit_policy(labelled, population, PolicyConfig("precision", 0.4))
    # 15 labelled snapshots, at least 10 MQLs: k=10 has 6/10 (60 %), k=13 6/13 < 0.4? no:
    # 6/13 = 46 %, k=15 6/15 = 40 % reaches 0.4 exactly.
    assert policy.threshold == 0.01
    assert policy.rule == "precision" and policy.target == 0.4


def test_fit_policy_refuses_missing_group_sums_or_outcomes():
    labelled, population = _regional()
    no_fit = Scored(population.probability, population.regions, engagement_sum=np.zeros(15))
    no_engagement = Scored(population.probability, population.regions, fit_sum=np.zeros(15))
    for bad in (no_fit, no_engagement):
        with pytest.raises(ValueError, match=r"^the population needs fit_sum and engagement_sum"):
            fit_policy(labelled, bad, PolicyConfig())
    unlabelled = Scored(population.probability, population.regions)
    with pytest.raises(ValueError, match=r"^the precision rule needs outcomes \(labelled.y\)$"):
        fit_policy(unlabelled, population, PolicyConfig("precision", 0.5))
    assert fit_policy(unlabelled, population, PolicyConfig("capacity", 0.5)).threshold == 0.65


def test_scored_from_predictions_takes_probability_and_group_sums():
    predictions = Predictions(
        raw=np.array([0.0, 1.0]),
        probability=np.array([0.2, 0.7]),
        shap=np.zeros((2, 2)),
        fit_sum=np.array([1.0, 2.0]),
        engagement_sum=np.array([3.0, 4.0]),
        X=np.zeros((2, 2)),
        base_value=0.0,
    )
    regions = np.array(["NA", ""], dtype=object)
    y = np.array([0, 1])
    scored = Scored.from_predictions(predictions, regions, y=y)
    assert scored.probability is predictions.probability
    assert scored.regions is regions and scored.y is y
    assert scored.fit_sum is predictions.fit_sum
    assert scored.engagement_sum is predictions.engagement_sum
    assert Scored.from_predictions(predictions, regions).y is None


def test_a_region_out_of_reach_does_not_stop_the_regions_after_it():
    labelled, population = _regional()
    # EMEA (1 conversion in 4) cannot reach 50 %; NA, after it in order, still gets its own.
    config = PolicyConfig(
        "precision", 0.5, per_region=True, min_region_rows=3, min_region_positives=1
    )
    assert region_thresholds(labelled, population, config) == {"APAC": 0.1, "NA": 0.4}
