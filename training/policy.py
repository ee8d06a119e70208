"""Choosing the MQL policy on the validation period: thresholds, grade cuts, score knots.

The threshold comes from a rule the user states in business terms:

* ``capacity``: sales can work the top X% of leads, so the threshold is the probability
  above which X% of the snapshots dated in the validation period fall (all open leads,
  as in production, not only the leads first seen then);
* ``precision``: an MQL must convert at least this often, so the threshold is the lowest
  one whose MQL→conversion rate on validation reaches the target.

With ``per_region`` each region large enough gets its own threshold from the same rule,
because engagement patterns (and so score levels) differ between markets. The grade cut
points are the quartiles of the summed SHAP contributions of the ``fit`` and the
``engagement`` features on validation, and the score knots are the 0th..100th
percentiles of validation probabilities, both over all open leads of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from leadscore.errors import LeadscoreError
from runtime.bundle import Policy, Predictions

Rule = Literal["capacity", "precision"]


class PolicyError(LeadscoreError, ValueError):
    """The asked-for MQL rule cannot be met on the validation period."""


@dataclass(frozen=True)
class PolicyConfig:
    """The user's MQL rule.

    Attributes:
        rule: ``capacity`` or ``precision``.
        target: Share of leads that become MQLs (capacity) or the minimum
            MQL→conversion rate (precision), between 0 and 1.
        per_region: Fit one threshold per region as well as the global one.
        min_region_rows: Regions with fewer validation snapshots use the global threshold.
        min_region_positives: Same, for validation conversions.
        region_feature: Feature that holds the region.
    """

    rule: Rule = "capacity"
    target: float = 0.1
    per_region: bool = False
    min_region_rows: int = 300
    min_region_positives: int = 10
    region_feature: str = "region"

    def __post_init__(self) -> None:
        if self.rule not in ("capacity", "precision"):
            raise ValueError(f"unknown MQL rule {self.rule!r}: use capacity or precision")
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"MQL target must be between 0 and 1, got {self.target}")


def capacity_threshold(probability: np.ndarray, share: float) -> float:
    """Probability at which the top ``share`` of snapshots are MQLs.

    Raises:
        PolicyError: when there are no snapshots.
    """
    p = np.sort(np.asarray(probability, dtype=np.float64))[::-1]
    if p.size == 0:
        raise PolicyError("cannot choose a capacity threshold on zero snapshots")
    k = max(1, int(np.ceil(share * p.size)))
    return float(p[k - 1])


def precision_threshold(
    probability: np.ndarray, y: np.ndarray, target: float, min_mqls: int = 10
) -> float:
    """Lowest threshold whose MQL→conversion rate on these snapshots is at least ``target``.

    Args:
        probability: Calibrated probabilities.
        y: 0/1 outcomes.
        target: Minimum MQL→conversion rate.
        min_mqls: Ignore thresholds that would make fewer MQLs than this (their
            precision is noise).

    Raises:
        PolicyError: naming the best rate reachable when the target is out of reach.
    """
    p = np.asarray(probability, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], np.asarray(y, dtype=np.float64)[order]
    # Only cut between distinct probabilities: leads with equal scores go together.
    last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    k = np.arange(1, p.size + 1)
    precision = np.cumsum(y_sorted) / k
    ok = last_of_value & (k >= min(min_mqls, p.size)) & (precision >= target)
    if not ok.any():
        eligible = last_of_value & (k >= min(min_mqls, p.size))
        best = float(precision[eligible].max()) if eligible.any() else 0.0
        raise PolicyError(
            f"no threshold reaches an MQL→conversion rate of {target:.1%} on the validation "
            f"period (best with at least {min_mqls} MQLs: {best:.1%}); lower the precision "
            "target or use a capacity rule"
        )
    return float(p_sorted[np.flatnonzero(ok)[-1]])


def choose_threshold(probability: np.ndarray, y: np.ndarray, config: PolicyConfig) -> float:
    """Apply the configured rule to one set of snapshots (used for baselines too)."""
    if config.rule == "capacity":
        return capacity_threshold(probability, config.target)
    return precision_threshold(probability, y, config.target)


@dataclass(frozen=True)
class Scored:
    """Policy-free model outputs for a set of snapshots, as fitting the policy needs them.

    Attributes:
        probability: Calibrated probabilities.
        regions: Region of each snapshot ("" when unknown).
        y: Outcomes, where known and usable (the lead-disjoint validation period).
        fit_sum: Summed SHAP contribution of the ``fit`` features.
        engagement_sum: Same for the ``engagement`` features.
    """

    probability: np.ndarray
    regions: np.ndarray
    y: np.ndarray | None = None
    fit_sum: np.ndarray | None = None
    engagement_sum: np.ndarray | None = None

    @classmethod
    def from_predictions(
        cls, predictions: Predictions, regions: np.ndarray, y: np.ndarray | None = None
    ) -> Scored:
        """From ``CalibratedModel.predict`` output (probabilities and SHAP group sums)."""
        return cls(
            predictions.probability,
            regions,
            y=y,
            fit_sum=predictions.fit_sum,
            engagement_sum=predictions.engagement_sum,
        )


def rule_threshold(
    labelled: Scored, population: Scored, config: PolicyConfig, region: str | None = None
) -> float:
    """Capacity: a quantile of the population; precision: a rate on labelled snapshots."""
    if config.rule == "capacity":
        p = population.probability
        if region is not None:
            p = p[population.regions == region]
        return capacity_threshold(p, config.target)
    mask = slice(None) if region is None else labelled.regions == region
    return precision_threshold(labelled.probability[mask], labelled.y[mask], config.target)


def region_thresholds(
    labelled: Scored, population: Scored, config: PolicyConfig
) -> dict[str, float]:
    """Per-region thresholds for regions with enough validation data.

    A region where a precision target is out of reach keeps the global threshold
    rather than failing the whole run.
    """
    out: dict[str, float] = {}
    for region in sorted({r for r in population.regions if r}):
        if (population.regions == region).sum() < config.min_region_rows:
            continue
        in_labelled = labelled.regions == region
        if config.rule == "precision" and (
            labelled.y[in_labelled].sum() < config.min_region_positives
        ):
            continue
        try:
            out[region] = rule_threshold(labelled, population, config, region)
        except PolicyError:
            continue
    return out


def quartile_cuts(values: np.ndarray) -> tuple[float, float, float]:
    """The 25th, 50th and 75th percentiles, as ascending grade cut points."""
    q = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75])
    return float(q[0]), float(q[1]), float(q[2])


def score_knots(probability: np.ndarray) -> tuple[float, ...]:
    """The 0th..100th percentiles of validation probabilities (101 knots)."""
    knots = np.quantile(np.asarray(probability, dtype=np.float64), np.linspace(0, 1, 101))
    return tuple(float(k) for k in np.maximum.accumulate(knots))


def fit_policy(labelled: Scored, population: Scored, config: PolicyConfig) -> Policy:
    """Choose the whole MQL policy on the validation period.

    Args:
        labelled: Lead-disjoint validation snapshots with outcomes (``y``); the
            precision rule is measured on them.
        population: Every snapshot dated in the validation period, with SHAP group
            sums (``Scored.from_predictions`` of the policy-free
            ``runtime.bundle.CalibratedModel.predict``); the capacity threshold, score
            knots and grade cuts come from it, because it is the mix of leads the model
            scores in production.
        config: The user's rule.

    Raises:
        PolicyError: when the rule cannot be met.
    """
    if population.fit_sum is None or population.engagement_sum is None:
        raise ValueError("the population needs fit_sum and engagement_sum for grade cuts")
    if config.rule == "precision" and labelled.y is None:
        raise ValueError("the precision rule needs outcomes (labelled.y)")
    threshold = rule_threshold(labelled, population, config)
    per_region = region_thresholds(labelled, population, config) if config.per_region else {}
    return Policy(
        rule=config.rule,
        target=float(config.target),
        threshold=threshold,
        fit_cuts=quartile_cuts(population.fit_sum),
        engagement_cuts=quartile_cuts(population.engagement_sum),
        score_knots=score_knots(population.probability),
        region_thresholds=per_region,
        region_feature=config.region_feature,
    )
