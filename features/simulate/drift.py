"""Drift scenarios: the world changes from some month on, so monitoring has something to find.

A scenario re-draws the attributes of a share of the leads created from its start on,
with a random generator of its own, after the population is drawn and before the
latent state: the simulator's own stream of draws is untouched, so the leads created
before the start are exactly those of the same simulation without drift. The drifted
leads then live in the same world as the others (the same fit, intent, conversion and
behaviour model, applied to their new attributes); the conversion intercept is
calibrated on the other leads, so drift moves the conversion rate instead of being
absorbed by it.

Scenarios:

* :class:`SourceShift`: a new budget buys leads from a few sources (paid search and
  content syndication by default): the lead-source mix shifts, and with it intent.
* :class:`LowFitFlood`: a giveaway campaign floods the funnel with students and juniors
  at tiny firms, mostly with free mail: fit drops.

``Simulation.ground_truth`` then has ``drift_scenario``, ``drifted`` (the leads whose
attributes the scenario re-drew) and ``drift_start_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, cast

import numpy as np
import pandas as pd

from features.catalogue import (
    ICP_INDUSTRIES,
    ICP_SIZE_BANDS,
    INDUSTRIES,
    LEAD_SOURCES,
    SENIORITIES,
    SIZE_BANDS,
    SIZE_EDGES,
)
from features.simulate.arrays import _draw, _draw_rows, _text
from features.simulate.errors import SimulationInputError
from features.simulate.population import _emails, _job_titles, _Leads
from features.simulate.timeline import _Calendar
from features.simulate.world import (
    _DEPT_GIVEN_SENIORITY,
    _FLOOD_FREE_EMAIL,
    _FLOOD_MAX_EMPLOYEES,
    _FLOOD_SENIORITY,
    _FLOOD_SHARE,
    _FLOOD_SOURCES,
    _SOURCE_SHIFT_SHARE,
    _SOURCE_SHIFT_SOURCES,
)

_DRIFT_STREAM = 0xD21F7
"""Second word of the drift generator's seed: a stream apart from the simulator's."""


@dataclass(frozen=True)
class SourceShift:
    """From ``start_month`` on, ``share`` of the new leads come from ``sources``.

    Attributes:
        start_month: Months after the simulation start; None: two thirds into the window.
        share: Share of the leads created from the start on whose source is re-drawn.
        sources: (lead source, weight) pairs the re-drawn sources come from.
    """

    start_month: int | None = None
    share: float = _SOURCE_SHIFT_SHARE
    sources: tuple[tuple[str, float], ...] = _SOURCE_SHIFT_SOURCES
    name: ClassVar[str] = "source_shift"


@dataclass(frozen=True)
class LowFitFlood:
    """From ``start_month`` on, ``share`` of the new leads are a campaign's low-fit crowd.

    Attributes:
        start_month: Months after the simulation start; None: the last three months.
        share: Share of the leads created from the start on that the campaign brought.
    """

    start_month: int | None = None
    share: float = _FLOOD_SHARE
    name: ClassVar[str] = "low_fit_flood"


Drift = SourceShift | LowFitFlood
"""A drift scenario :func:`features.simulate.simulate` can inject."""


def resolve_drift(drift: Drift, months: int) -> Drift:
    """The scenario with its default start filled in, checked against the window.

    Raises:
        SimulationInputError: An unknown scenario, a start outside ``[0, months)``, a
            share outside ``[0, 1]`` or an unknown lead source.
    """
    if not isinstance(drift, SourceShift | LowFitFlood):
        raise SimulationInputError(f"unknown drift scenario: {drift!r}")
    start = drift.start_month
    if start is None:
        start = months * 2 // 3 if isinstance(drift, SourceShift) else max(months - 3, 0)
    if not 0 <= start < months:
        raise SimulationInputError(
            f"drift {drift.name}: start_month {start} is outside the window [0, {months})"
        )
    if not 0.0 <= drift.share <= 1.0:
        raise SimulationInputError(f"drift {drift.name}: share {drift.share} is not in [0, 1]")
    if isinstance(drift, SourceShift):
        unknown = [s for s, _ in drift.sources if s not in LEAD_SOURCES]
        if unknown or not drift.sources:
            raise SimulationInputError(f"drift source_shift: unknown lead source(s) {unknown}")
        if any(w < 0 for _, w in drift.sources) or sum(w for _, w in drift.sources) <= 0:
            raise SimulationInputError("drift source_shift: weights must be >= 0, not all 0")
    return replace(drift, start_month=start)


def _start_days(cal: _Calendar, start_month: int) -> float:
    start = cal.start + pd.DateOffset(months=start_month)
    return float((start - cal.start) / pd.Timedelta(days=1))


def _weights(pairs: tuple[tuple[str, float], ...], vocab: tuple[str, ...]) -> np.ndarray:
    weights = dict(pairs)
    return np.array([weights.get(name, 0.0) for name in vocab], dtype=np.float64)


def _flood(
    rng: np.random.Generator,
    ld: _Leads,
    text: dict[str, pd.Series],
    acc: dict[str, np.ndarray],
    rows: np.ndarray,
) -> tuple[_Leads, dict[str, pd.Series]]:
    """Students and juniors at tiny firms, mostly on free mail, from social and syndication."""
    n = len(rows)
    employees = acc["employees"]
    small = np.flatnonzero(employees <= _FLOOD_MAX_EMPLOYEES)
    if not len(small):  # a tiny simulation may have no tiny firm: take the smallest
        small = np.flatnonzero(employees == employees.min())
    account = small[rng.integers(0, len(small), n)]
    seniority = _draw(rng, _weights(_FLOOD_SENIORITY, SENIORITIES), n)
    dept_w = np.array([_DEPT_GIVEN_SENIORITY[s] for s in SENIORITIES])
    department = _draw_rows(rng, dept_w[seniority])
    source = _draw(rng, _weights(_FLOOD_SOURCES, LEAD_SOURCES), n)
    free = rng.random(n) < _FLOOD_FREE_EMAIL
    invalid = rng.random(n) < np.where(ld.is_bot[rows], 0.5, np.where(free, 0.05, 0.025))
    band = np.searchsorted(np.asarray(SIZE_EDGES), employees[account], side="left")
    icp_industry = np.isin(np.asarray(INDUSTRIES)[acc["industry"][account]], list(ICP_INDUSTRIES))

    def put(values: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = values.copy()
        out[rows] = new
        return out

    drifted = replace(
        ld,
        account=put(ld.account, account),
        seniority=put(ld.seniority, seniority),
        department=put(ld.department, department),
        region=put(ld.region, acc["region"][account]),
        source=put(ld.source, source),
        free_email=put(ld.free_email, free),
        invalid_email=put(ld.invalid_email, invalid),
        icp_size=put(ld.icp_size, np.isin(np.asarray(SIZE_BANDS)[band], list(ICP_SIZE_BANDS))),
        icp_industry=put(ld.icp_industry, icp_industry),
        size_band=put(ld.size_band, band),
    )
    titles = text["job_title"].copy()
    titles.iloc[rows] = _job_titles(rng, seniority, department).to_numpy()
    emails = text["email"].copy()
    emails.iloc[rows] = _emails(rng, free, acc["domain"][account]).to_numpy()
    country = np.asarray(text["country"]).copy()
    country[rows] = acc["country"][account]
    new_text = {
        "job_title": _text(titles),
        "email": _text(emails),
        "country": cast(pd.Series, country),  # country codes, as ``_leads`` keeps them
    }
    return drifted, new_text


def _apply_drift(
    drift: Drift,
    seed: int,
    cal: _Calendar,
    ld: _Leads,
    text: dict[str, pd.Series],
    acc: dict[str, np.ndarray],
) -> tuple[_Leads, dict[str, pd.Series], np.ndarray, float]:
    """Re-draw the drifted leads; returns the leads, their text, the mask and the start.

    ``drift`` must be resolved (:func:`resolve_drift`). Every draw comes from a generator
    seeded with ``(seed, _DRIFT_STREAM)``, never from the simulator's own.
    """
    assert drift.start_month is not None
    rng = np.random.default_rng([seed, _DRIFT_STREAM])
    start = _start_days(cal, drift.start_month)
    drifted = (ld.created >= start) & (rng.random(len(ld.created)) < drift.share)
    rows = np.flatnonzero(drifted)
    if isinstance(drift, SourceShift):
        source = ld.source.copy()
        source[rows] = _draw(rng, _weights(drift.sources, LEAD_SOURCES), len(rows))
        return replace(ld, source=source), text, drifted, start
    new_ld, new_text = _flood(rng, ld, text, acc, rows)
    return new_ld, new_text, drifted, start
