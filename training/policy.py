"""Choosing the MQL policy on the validation period: thresholds, grade cuts, score knots.

The threshold comes from a rule the user states in business terms:

* ``capacity``: sales can work the top X% of leads, so the threshold is the probability
  above which X% of validation snapshots fall;
* ``precision``: an MQL must convert at least this often, so the threshold is the lowest
  one whose MQL→conversion rate on validation reaches the target.

With ``per_region`` each region large enough gets its own threshold from the same rule,
because engagement patterns (and so score levels) differ between markets. The grade cut
points are the quartiles of the summed SHAP contributions of the ``fit`` and the
``engagement`` features on validation, and the score knots are the 0th..100th
percentiles of validation probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.bundle import Policy

Rule = Literal["capacity", "precision"]


class PolicyError(ValueError):
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


def precision_threshold(probability: np.ndarray, y: np.ndarray, target: float,
                        min_mqls: int = 10) -> float:
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
            "target or use a capacity rule")
    return float(p_sorted[np.flatnonzero(ok)[-1]])


def choose_threshold(probability: np.ndarray, y: np.ndarray, config: PolicyConfig) -> float:
    """Apply the configured rule to one set of snapshots."""
    if config.rule == "capacity":
        return capacity_threshold(probability, config.target)
    return precision_threshold(probability, y, config.target)


def region_thresholds(probability: np.ndarray, y: np.ndarray, regions: np.ndarray,
                      config: PolicyConfig) -> dict[str, float]:
    """Per-region thresholds for regions with enough validation data.

    A region where a precision target is out of reach keeps the global threshold
    rather than failing the whole run.
    """
    out: dict[str, float] = {}
    for region in sorted({r for r in regions if r}):
        mask = regions == region
        if mask.sum() < config.min_region_rows or y[mask].sum() < config.min_region_positives:
            continue
        try:
            out[region] = choose_threshold(probability[mask], y[mask], config)
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


def fit_policy(
    probability: np.ndarray,
    y: np.ndarray,
    regions: np.ndarray,
    fit_sum: np.ndarray,
    engagement_sum: np.ndarray,
    config: PolicyConfig,
) -> Policy:
    """Choose the whole MQL policy on the validation period.

    Args:
        probability: Calibrated validation probabilities.
        y: Validation outcomes.
        regions: Region of each validation snapshot ("" when unknown).
        fit_sum: Summed SHAP contribution of the ``fit`` features per snapshot.
        engagement_sum: Same for the ``engagement`` features.
        config: The user's rule.
    """
    probability = np.asarray(probability, dtype=np.float64)
    y = np.asarray(y)
    regions = np.asarray(regions, dtype=object)
    threshold = choose_threshold(probability, y, config)
    per_region = region_thresholds(probability, y, regions, config) if config.per_region else {}
    return Policy(
        rule=config.rule,
        target=float(config.target),
        threshold=threshold,
        fit_cuts=quartile_cuts(fit_sum),
        engagement_cuts=quartile_cuts(engagement_sum),
        score_knots=score_knots(probability),
        region_thresholds=per_region,
        region_feature=config.region_feature,
    )
