"""How activities are generated and recorded before they become a table.

Event times come from Poisson processes over each lead's life, thinned by the calendar
and expanded into click-stream sessions; events are collected as integer codes
(:class:`_Events`, :class:`_Details`) and only turned into strings once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.catalogue import ACTIVITY_TYPES
from features.simulate.arrays import _ragged
from features.simulate.timeline import _Calendar
from features.simulate.world import _FIXED_DETAILS, _MIN

_T = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
"""Code of each activity type: its index in the catalogue's ``ACTIVITY_TYPES``."""


@dataclass
class _Events:
    """Accumulates activity rows as parallel arrays before the DataFrame is built."""

    lead: list[np.ndarray]
    t: list[np.ndarray]
    kind: list[np.ndarray]
    detail: list[np.ndarray]

    def add(
        self, lead: np.ndarray, t: np.ndarray, kind: np.ndarray | int, detail: np.ndarray | int
    ) -> None:
        """Append events; scalars for ``kind``/``detail`` are broadcast."""
        n = len(lead)
        self.lead.append(np.asarray(lead, dtype=np.int64))
        self.t.append(np.asarray(t, dtype=np.float64))
        self.kind.append(np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,)))
        self.detail.append(np.broadcast_to(np.asarray(detail, dtype=np.int32), (n,)))


@dataclass(frozen=True)
class _Details:
    """Vocabulary of the ``detail`` column; events store integer codes into it."""

    values: tuple[str, ...]
    pages: int
    assets: int
    campaigns: int
    webinars: int
    fixed: int

    def code(self, value: str) -> int:
        """Code of a fixed detail such as ``/pricing``."""
        return self.fixed + _FIXED_DETAILS.index(value)


# --- Point processes -------------------------------------------------------------------


def _const_process(
    rng: np.random.Generator, owner: np.ndarray, lo: np.ndarray, hi: np.ndarray, rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events at constant ``rate`` per day on ``[lo, hi)`` for each owner."""
    span = np.maximum(hi - lo, 0.0)
    count = rng.poisson(rate * span)
    who, _ = _ragged(count)
    return owner[who], lo[who] + rng.random(len(who)) * span[who]


def _decay_process(
    rng: np.random.Generator,
    owner: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    total: np.ndarray,
    tau: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events with rate ``total / tau * exp(-(t - lo) / tau)`` on ``[lo, hi)``."""
    span = np.maximum(hi - lo, 0.0)
    mass = 1.0 - np.exp(-span / tau)
    count = rng.poisson(total * mass)
    who, _ = _ragged(count)
    u = rng.random(len(who))
    return owner[who], lo[who] - tau * np.log1p(-u * mass[who])


def _thin(
    rng: np.random.Generator, cal: _Calendar, lead: np.ndarray, t: np.ndarray, region: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keep candidates with probability modulation / peak (weekday, season, hours)."""
    keep = rng.random(len(t)) * cal.peak < cal.modulation(t, region[lead])
    return lead[keep], t[keep]


def _expand_sessions(
    rng: np.random.Generator, lead: np.ndarray, t: np.ndarray, p_more: float, gap_minutes: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each session becomes a few events minutes apart (a click-stream burst)."""
    size = rng.geometric(1.0 - p_more, len(t))
    who, pos = _ragged(size)
    gaps = np.where(pos > 0, rng.exponential(gap_minutes * _MIN, len(who)), 0.0)
    csum = np.cumsum(gaps)
    first = np.cumsum(size) - size
    offset = csum - csum[first][who]
    return lead[who], t[who] + offset
