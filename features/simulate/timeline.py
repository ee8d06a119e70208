"""The time axis of one simulation and its activity modulation.

Every activity time is thinned by this calendar (weekday, month, Christmas and
regional business hours), so the realised event stream has the rhythms of a real CRM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import REGIONS
from features.simulate.world import _MONTH_FACTOR, _UTC_OFFSET_HOURS, _WEEKDAY_FACTOR


@dataclass(frozen=True)
class _Calendar:
    """Time axis of one simulation: days since ``start`` and activity modulation."""

    start: pd.Timestamp
    n_days: float
    day_factor: np.ndarray  # per calendar day, mean 1 (weekday x month x holidays)
    hour_factor: np.ndarray  # (region, UTC hour), mean 1 per region
    start_frac: float  # fraction of the day at which ``start`` falls

    @property
    def peak(self) -> float:
        """Upper bound of the modulation, the candidate multiplier for thinning."""
        return float(self.day_factor.max() * self.hour_factor.max())

    def modulation(self, t: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Relative activity level at times ``t`` for leads in ``region`` (mean 1)."""
        day = np.floor(t + self.start_frac).astype(np.int64)
        day = np.clip(day, 0, len(self.day_factor) - 1)
        hour = np.floor(((t + self.start_frac) % 1.0) * 24).astype(np.int64) % 24
        return self.day_factor[day] * self.hour_factor[region, hour]


def _calendar(start: str, months: int) -> _Calendar:
    """Day and hour modulation: weekdays, month seasonality, Christmas, business hours."""
    t0 = pd.Timestamp(start)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert("UTC").tz_localize(None)
    end = t0 + pd.DateOffset(months=months)
    n_days = (end - t0) / pd.Timedelta(days=1)
    days = pd.date_range(t0.normalize(), periods=int(np.ceil(n_days)) + 1, freq="D")
    factor = (
        np.asarray(_WEEKDAY_FACTOR)[days.day_of_week] * np.asarray(_MONTH_FACTOR)[days.month - 1]
    )
    holiday = ((days.month == 12) & (days.day >= 22)) | ((days.month == 1) & (days.day <= 2))
    factor = np.where(holiday, factor * 0.45, factor)
    hours = np.arange(24)
    local = np.array([[(h + _UTC_OFFSET_HOURS[r]) % 24 for h in hours] for r in REGIONS])
    business = (local >= 8) & (local < 18)
    profile = np.where(business, 1.0, 0.12) * np.where(local == 12, 0.8, 1.0)
    profile = np.where((local >= 18) & (local < 22), 0.35, profile)
    return _Calendar(
        start=t0,
        n_days=float(n_days),
        day_factor=factor / factor.mean(),
        hour_factor=profile / profile.mean(axis=1, keepdims=True),
        start_frac=float((t0 - t0.normalize()) / pd.Timedelta(days=1)),
    )
