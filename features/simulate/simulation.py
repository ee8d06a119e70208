"""The entry point: :func:`simulate` runs the stages in order into a :class:`Simulation`.

One random generator feeds every stage, in a fixed order (accounts, leads, latent
state, activities), so the same arguments always give identical tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from features.simulate.activities import _activities
from features.simulate.arrays import _ids, _to_datetime
from features.simulate.drift import Drift, _apply_drift, resolve_drift
from features.simulate.errors import SimulationInputError
from features.simulate.outcomes import _latent, _outcome_tables
from features.simulate.population import _accounts, _lead_table, _leads
from features.simulate.timeline import _calendar
from features.simulate.world import _REGION_WEIGHTS, _TARGET_HUMAN_CONVERSION


@dataclass(frozen=True, eq=False)
class Simulation:
    """The simulated tables plus the ground truth behind them.

    Attributes:
        leads: One row per lead (``lead_id``, ``account_id``, ``created_at``,
            ``job_title``, ``seniority``, ``department``, ``country``, ``region``,
            ``lead_source``, ``email``).
        accounts: One row per company (``account_id``, ``company_name``, ``industry``,
            ``employee_count``, ``annual_revenue``, ``country``).
        activities: Event stream sorted by ``(lead_id, occurred_at)``.
        conversions: At most one row per lead (``lead_id``, ``converted_at``).
        ground_truth: Latent quantities per lead; never a model input. ``p_convert`` is
            the probability used to draw the outcome; the episode columns are what
            :func:`oracle_probability` conditions on. With a drift scenario it also has
            ``drift_scenario``, ``drifted`` (the leads the scenario re-drew) and
            ``drift_start_at``.
        drift: The injected drift scenario with its start month resolved, or None.
    """

    leads: pd.DataFrame
    accounts: pd.DataFrame
    activities: pd.DataFrame
    conversions: pd.DataFrame
    ground_truth: pd.DataFrame
    drift: Drift | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the four tables a real CRM export would contain (no ground truth)."""
        return {
            "leads": self.leads,
            "accounts": self.accounts,
            "activities": self.activities,
            "conversions": self.conversions,
        }


def simulate(
    n_leads: int,
    seed: int = 0,
    start: str = "2024-01-01",
    months: int = 18,
    drift: Drift | None = None,
    region_weights: Mapping[str, float] | None = None,
    target_conversion: float | None = None,
    buying_groups: bool = False,
) -> Simulation:
    """Simulate a B2B lead funnel; the same arguments always give identical tables.

    Args:
        n_leads: Number of leads (accounts are about a quarter of that).
        seed: Seed of the single random generator every draw comes from.
        start: First day of the data (tz-naive UTC, or tz-aware and converted).
        months: Length of the data window; nothing happens at or after its end.
        drift: A drift scenario to inject (:mod:`features.simulate.drift`); None (the
            default) gives the undrifted world, table for table.
        region_weights: Share of companies per region (regions left out get none);
            None: the world's mix (``world._REGION_WEIGHTS``), table for table.
        target_conversion: Share of human leads that would convert given unlimited time
            (fewer do within the window); None: ``world._TARGET_HUMAN_CONVERSION``.
            Presets (:mod:`features.simulate.presets`) set both for a kind of company.
        buying_groups: Make the buying group matter (``features.simulate`` docstring:
            a shared account intent and a win effect per persona at the account; the
            ground truth gains ``persona``, ``buying_group_personas`` and
            ``buying_group_effect``). Off by default: the world, and every existing
            model's statistics on it, stay as they were.

    Returns:
        The four tables plus the ground truth (see the ``features.simulate`` docstring).

    Raises:
        SimulationInputError: A drift scenario that does not fit the window, an unknown
            region or negative weights, or a target conversion outside (0, 0.5].
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    weights = _check_region_weights(region_weights)
    target = _check_target(target_conversion)
    resolved = None if drift is None else resolve_drift(drift, months)
    # Every stage draws from ``rng`` in this order; reordering them changes the tables
    # a seed gives.
    rng = np.random.default_rng(seed)
    cal = _calendar(start, months)
    accounts, acc = _accounts(rng, max(1, n_leads // 4), weights)
    ld, text = _leads(rng, cal, n_leads, acc)
    drifted, drift_start = None, 0.0
    if resolved is not None:
        # Its own generator: the simulator's stream, and the leads before the start, stay.
        ld, text, drifted, drift_start = _apply_drift(resolved, seed, cal, ld, text, acc)
    lat = _latent(
        rng,
        cal,
        ld,
        calibrate=None if drifted is None else ~drifted,
        target_conversion=target,
        buying_groups=buying_groups,
    )

    lead_ids = _ids("L", n_leads, 6)
    created_at = _to_datetime(cal.start, ld.created)
    leads = _lead_table(ld, text, accounts, lead_ids, created_at)
    activities = _activities(rng, cal, ld, lat, lead_ids)
    conversions, ground_truth = _outcome_tables(cal, ld, lat, lead_ids, created_at, buying_groups)
    if resolved is not None:
        ground_truth["drift_scenario"] = resolved.name
        ground_truth["drifted"] = cast(np.ndarray, drifted)
        ground_truth["drift_start_at"] = _to_datetime(cal.start, np.full(n_leads, drift_start))
    return Simulation(
        leads=leads,
        accounts=accounts,
        activities=activities,
        conversions=conversions,
        ground_truth=ground_truth,
        drift=resolved,
    )


def _check_region_weights(weights: Mapping[str, float] | None) -> Mapping[str, float]:
    """The region mix to draw companies from, refused when it names an unknown region."""
    if weights is None:
        return _REGION_WEIGHTS
    unknown = sorted(set(weights) - set(_REGION_WEIGHTS))
    if unknown:
        raise SimulationInputError(
            f"region_weights: unknown region(s) {unknown}; known: {list(_REGION_WEIGHTS)}"
        )
    values = list(weights.values())
    if any(not np.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise SimulationInputError(
            f"region_weights: weights must be finite and >= 0, not all 0; got {dict(weights)}"
        )
    return weights


def _check_target(target: float | None) -> float:
    """The long-run conversion share the episode intercept is calibrated to."""
    if target is None:
        return _TARGET_HUMAN_CONVERSION
    if not 0.0 < target <= 0.5:
        raise SimulationInputError(f"target_conversion must be in (0, 0.5], got {target}")
    return float(target)
