"""Funnel rates from the lead store: what sales did with each MQL, by grade, region and more.

The unit is the *MQL episode*: one entry of a lead into MQL (an ``entered`` row of
``mql_events``), with the lead's grade, score, probability, region and lead source at that
moment. An episode lasts until the same lead's next episode, so a disposition belongs to
the latest episode that began at or before it; a lead that leaves MQL and is won a month
later still credits the episode that sent it to sales. Dispositions dated before a lead's
first entry belong to no episode (sales worked the lead without the model's hand-off) and
are left out of the funnel; the threshold diagnostics (``store.threshold``) count a win
among them as a conversion the threshold missed.

Re-entries while sales still work the lead. A score that dips below the threshold and comes
back does not hand the lead to sales again while its episode is open: such an entry is
*absorbed* (kept in ``mql_episodes`` with ``absorbed`` set, left out of every rate) and the
episode goes on, as a CRM's lifecycle stage only moves forward. An episode is open from its
entry until it is rejected or lost; once won, for good (a customer is not a lead again); a
lead with no answer is open for ``RESPONSE_DAYS`` (the SLA), an accepted one that does not
become an SQL for ``RECYCLE_DAYS`` after the accept (then it is taken as recycled to
nurturing, which a CRM records nowhere). Read from the dispositions alone, this is what the
sales simulator (``features.simulate.sales``) does, except that its recycling delay is
drawn per lead.

Stages. ``accepted < sql < opportunity < won`` are progressive: reaching a later one implies
the earlier ones (a rep who records an SQL accepted the lead, whether or not the accept was
clicked), and the time to an implied stage is the time of its earliest evidence.
``rejected`` and ``lost`` count only when recorded. An episode rejected and later won (the
rep changed their mind) counts for both. Events flagged ``out_of_order`` by the feedback
import count like the others: the flag questions their order, not that they happened.

Censoring. An MQL that entered yesterday has had no time to be won, and counting it as "not
won" would make the newest cohorts look worst. So each stage has a window (``MATURITY_DAYS``:
14 days to accept or reject, the usual sales SLA; 30 to SQL, 60 to opportunity, 90 to won
or lost, the training horizon), and a stage's rate is the share of *mature* episodes (at
least that old at ``as_of``) that reached the stage *within* the window. Every cohort is so
measured over the same time, and ``mature`` says how many episodes the rate stands on;
``reached_any`` counts every episode that reached the stage so far, immature ones included
(what a CRM dashboard would show), for reference only. A window of None turns censoring off
for that stage (all episodes, stage reached at any time).

Intervals are Wilson score intervals, which stay inside [0, 1] and behave for the small
counts of a 16-cell grade grid.

``funnel_rates`` and ``rejection_reasons`` each read the store; a report that needs several
groupings reads the episodes once (``mql_episodes``) and calls ``rates_from_episodes`` and
``reasons_from_episodes`` on them.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadscore.errors import LeadscoreError
from store.schema import (
    REJECTION_REASONS,
    STAGES,
    account_runs,
    dispositions,
    lead_states,
    mqa_events,
    mql_events,
    scores,
    scoring_runs,
)

PROGRESSIVE = ("accepted", "sql", "opportunity", "won")
"""Stages in funnel order where a later one implies the earlier ones."""
MATURITY_DAYS: dict[str, int | None] = {
    "accepted": 14,
    "rejected": 14,
    "sql": 30,
    "opportunity": 60,
    "won": 90,
    "lost": 90,
}
"""Days an episode is given to reach each stage (see the module's note on censoring)."""
RESPONSE_DAYS = 14
"""Days an MQL with no answer from sales stays open (the usual SLA)."""
RECYCLE_DAYS = 30
"""Days an accepted MQL that is not yet an SQL stays open before it counts as recycled."""
DIMENSIONS = (
    "grade",
    "fit",
    "engagement",
    "region",
    "lead_source",
    "score_band",
    "cohort_month",
    "model_version",
)
"""What funnel rates can be grouped by: the A1–D4 grade, its fit letter and engagement
digit, region, lead source, score band (0-20 … 81-100), month of MQL entry, model version."""
SCORE_BANDS = ("0-20", "21-40", "41-60", "61-80", "81-100")
"""Score bands as Einstein-style conversion reports show them (they sort as text, too)."""
UNKNOWN = "unknown"
"""Group label for a missing grade, region, lead source or score."""
UNRECORDED = "unrecorded"
"""Rejection reason label for a rejection recorded without a reason code."""

RATE_COLUMNS = (
    "stage",
    "window_days",
    "episodes",
    "mature",
    "reached",
    "rate",
    "ci_low",
    "ci_high",
    "median_days",
    "reached_any",
)
"""Columns of ``funnel_rates`` after the grouping columns."""


class FunnelError(LeadscoreError, ValueError):
    """A funnel or threshold report was asked for something the store cannot answer."""


def wilson_interval(
    successes: np.ndarray | pd.Series | float,
    trials: np.ndarray | pd.Series | float,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (NaN where ``trials`` is 0).

    Args:
        successes: Counts of successes.
        trials: Counts of trials, same shape.
        confidence: Two-sided coverage, e.g. 0.95.

    Returns:
        Lower and upper bounds, as float arrays.
    """
    if not 0 < confidence < 1:
        raise FunnelError(f"confidence must lie between 0 and 1, got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def dimensions(by: str | Sequence[str] | None) -> list[str]:
    """``by`` as a list of known grouping columns.

    Raises:
        FunnelError: naming an unknown or repeated dimension.
    """
    keys = [by] if isinstance(by, str) else list(by or ())
    for key in keys:
        if key not in DIMENSIONS:
            raise FunnelError(f"cannot group funnel rates by {key!r}: use {', '.join(DIMENSIONS)}")
    if len(set(keys)) != len(keys):
        raise FunnelError(f"funnel grouping names a dimension twice: {', '.join(keys)}")
    return keys


def as_timestamp(value: pd.Timestamp | str | None, name: str) -> pd.Timestamp | None:
    """``value`` as a tz-naive UTC timestamp (None stays None)."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise FunnelError(f"{name}: {value!r} is not a date or time") from None
    if pd.isna(stamp):
        raise FunnelError(f"{name}: {value!r} is not a date or time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def read_columns(connection: Connection, query: sa.Select[Any]) -> pd.DataFrame:
    """Run ``query`` and return its rows as a frame, times as ``datetime64[ns]``.

    ``store.frames.read_frame`` for the large reads of a report (a million scores): the
    driver's rows are taken as plain tuples (no SQLAlchemy row objects, no per-value
    type processing), turned into one numpy array per column, text kept as Python
    objects (no Arrow strings built only to be hashed again), and SQLite's times fetched
    as their stored text and parsed once per distinct value. Only text, numbers, booleans
    and times are read this way (no JSON).
    """
    sqlite = connection.dialect.name == "sqlite"
    selected = list(query.selected_columns)
    times = {c.name for c in selected if isinstance(c.type, sa.DateTime)}
    if sqlite and times:
        query = query.with_only_columns(
            *(
                sa.type_coerce(c, sa.String).label(c.name) if c.name in times else c
                for c in selected
            )
        )
    with _no_gc():
        result = connection.execute(query)
        try:
            cursor = result.cursor
            rows = cursor.fetchall() if cursor is not None else []
        finally:
            result.close()
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in selected]
        del rows
        data = {
            column.name: _column(column.type, values)
            for column, values in zip(selected, columns, strict=True)
        }
        del columns
    return pd.DataFrame(data)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Python's cycle collector paused while a million row tuples are made and dropped:
    tuples hold no cycles, and the collector's passes over them cost more than the fetch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _column(kind: Any, values: Sequence[Any]) -> pd.Series:
    """One fetched column as a typed series."""
    if isinstance(kind, sa.DateTime):
        text = np.asarray(values, dtype=object)
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        stamps = pd.to_datetime(pd.Index(uniques, dtype=object), format="ISO8601")
        lookup = np.append(stamps.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))
        return pd.Series(lookup[codes], dtype="datetime64[ns]")
    if isinstance(kind, sa.Float):
        return pd.Series(np.asarray(values, dtype=np.float64))
    if isinstance(kind, sa.Integer):
        numbers = np.asarray(values, dtype=np.float64)
        if np.isnan(numbers).any():
            return pd.Series(numbers)
        return pd.Series(numbers.astype(np.int64))
    if isinstance(kind, sa.Boolean):
        return pd.Series(np.asarray(values, dtype=object), dtype=object).astype(bool)
    return pd.Series(np.asarray(values, dtype=object), dtype=object)


def latest_time(connection: Connection) -> pd.Timestamp | None:
    """The newest moment the store knows of: its latest scoring run, MQL event or
    disposition (each an indexed column: no scan of the scores)."""
    found = [
        connection.execute(sa.select(sa.func.max(column))).scalar()
        for column in (scoring_runs.c.as_of, mql_events.c.occurred_at, dispositions.c.occurred_at)
    ]
    stamps = [pd.Timestamp(value) for value in found if value is not None]
    return max(stamps) if stamps else None


def read_dispositions(
    connection: Connection, as_of: pd.Timestamp, stages: Sequence[str] | None = None
) -> pd.DataFrame:
    """Dispositions that happened by ``as_of`` (only ``stages`` when given).

    Columns: ``lead_id``, ``stage``, ``reason_code``, ``occurred_at``.
    """
    query = sa.select(
        dispositions.c.lead_id,
        dispositions.c.stage,
        dispositions.c.reason_code,
        dispositions.c.occurred_at,
    ).where(dispositions.c.occurred_at <= as_of.to_pydatetime())
    if stages is not None:
        query = query.where(dispositions.c.stage.in_(list(stages)))
    return read_columns(connection, query)


def read_entries(connection: Connection, as_of: pd.Timestamp) -> pd.DataFrame:
    """Every MQL entry by ``as_of``, with the lead source of the score that caused it."""
    # joined on the (lead_id, as_of) index: a condition on run_id as well makes SQLite
    # scan each event's whole run; two runs at one moment are told apart afterwards
    score_row = sa.and_(
        scores.c.lead_id == mql_events.c.lead_id,
        scores.c.as_of == mql_events.c.occurred_at,
    )
    query = (
        sa.select(
            mql_events.c.id,
            mql_events.c.run_id,
            scores.c.run_id.label("score_run_id"),
            mql_events.c.lead_id,
            mql_events.c.occurred_at.label("entered_at"),
            mql_events.c.threshold,
            mql_events.c.probability,
            mql_events.c.score,
            mql_events.c.grade,
            mql_events.c.region,
            mql_events.c.model_version,
            sa.func.coalesce(scores.c.lead_source, lead_states.c.lead_source).label("lead_source"),
        )
        .select_from(mql_events)
        .outerjoin(scores, score_row)
        .outerjoin(lead_states, lead_states.c.lead_id == mql_events.c.lead_id)
        .where(
            mql_events.c.event == "entered",
            mql_events.c.occurred_at <= as_of.to_pydatetime(),
        )
    )
    entries = read_columns(connection, query)
    if entries["id"].duplicated().any():
        own = entries["score_run_id"] == entries["run_id"]
        entries = entries.assign(_own=own).sort_values("_own", ascending=False, kind="stable")
        entries = entries.drop_duplicates("id").sort_index()
    return entries.drop(columns=["id", "run_id", "score_run_id", "_own"], errors="ignore")


def days_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Days from ``start`` to ``end`` as floats (NaN where either is missing)."""
    delta = end.astype("datetime64[ns]") - start.astype("datetime64[ns]")
    return delta.dt.total_seconds() / 86400.0


def _labels(values: pd.Series) -> pd.Series:
    """Text group labels, ``UNKNOWN`` where missing."""
    out = values.astype(object)
    return out.where(out.notna(), UNKNOWN).astype(str)


def score_bands(score: pd.Series) -> pd.Series:
    """Each 0–100 score's band (``SCORE_BANDS``), ``UNKNOWN`` where missing."""
    bins = [-math.inf, 20, 40, 60, 80, math.inf]
    banded = pd.cut(pd.to_numeric(score, errors="coerce"), bins=bins, labels=list(SCORE_BANDS))
    return _labels(banded)


def _stage_times(attached: pd.DataFrame, n: int) -> pd.DataFrame:
    """First time each episode reached each stage, with progressive stages implied."""
    first = attached.groupby(["episode", "stage"])["occurred_at"].min().unstack("stage")
    times = pd.DataFrame(
        {stage: first.get(stage, pd.NaT) for stage in STAGES},
        index=first.index,
    ).reindex(pd.RangeIndex(n))
    for stage in STAGES:
        times[stage] = times[stage].astype("datetime64[ns]")
    for earlier, later in zip(PROGRESSIVE[-2::-1], PROGRESSIVE[:0:-1], strict=True):
        times[earlier] = times[[earlier, later]].min(axis=1).astype("datetime64[ns]")
    return times


def mql_episodes(
    engine: Engine,
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | str | None = None,
    absorb: bool = True,
) -> pd.DataFrame:
    """One row per MQL episode that began in ``[since, until)``, with what sales did after.

    Args:
        engine: An open, migrated store.
        since: First entry time to include (default: the beginning).
        until: Entry times before this one only (default: no bound).
        as_of: The moment to look from: later entries and dispositions are ignored, as if
            the report ran then (default: the newest time in the store).
        absorb: Absorb re-entries while the lead's episode is open (module docstring);
            False makes every entry an episode of its own.

    Returns:
        Columns ``episode`` (numbered in entry order over the whole store), ``lead_id``,
        ``entered_at``, ``next_entered_at`` (the lead's next episode, NaT if none or
        absorbed), ``absorbed`` (a re-entry into an open episode: no stages), ``threshold``,
        ``probability``, ``score``, the ``DIMENSIONS`` (text, ``unknown`` where missing),
        ``age_days`` (days from entry to ``as_of``), for each stage ``<stage>_at`` and
        ``<stage>_days`` (first time reached, progressive stages implied; NaT/NaN when
        not reached) and ``reason_code`` (of the episode's first rejection, ``unrecorded``
        when it had none, missing when not rejected).
    """
    start = as_timestamp(since, "since")
    stop = as_timestamp(until, "until")
    with engine.connect() as connection:
        end = as_timestamp(as_of, "as_of") or latest_time(connection)
        if end is None:
            return _empty_episodes()
        entries = read_entries(connection, end)
        done = read_dispositions(connection, end)
    return episodes_from_frames(entries, done, end, start, stop, absorb)


def _empty_episodes() -> pd.DataFrame:
    columns = ["episode", "lead_id", "entered_at", "next_entered_at", "absorbed", "threshold"]
    columns += ["probability", "score", *DIMENSIONS, "age_days"]
    for stage in STAGES:
        columns += [f"{stage}_at", f"{stage}_days"]
    return pd.DataFrame(columns=[*columns, "reason_code"])


def episodes_from_frames(
    entries: pd.DataFrame,
    done: pd.DataFrame,
    as_of: pd.Timestamp,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    absorb: bool = True,
) -> pd.DataFrame:
    """``mql_episodes`` from frames already read (entries and dispositions by ``as_of``)."""
    if entries.empty:
        return _empty_episodes()
    episodes = entries.sort_values(["entered_at", "lead_id"], kind="stable").reset_index(drop=True)
    episodes["lead_id"] = episodes["lead_id"].astype(str)
    episodes.insert(0, "episode", np.arange(len(episodes), dtype=np.int64))
    absorbed = _absorbed(episodes, done) if absorb else np.zeros(len(episodes), dtype=bool)
    own = episodes[~absorbed]
    after = own.groupby("lead_id", sort=False)["entered_at"].shift(-1)
    episodes.insert(3, "next_entered_at", after.reindex(episodes.index).astype("datetime64[ns]"))
    episodes.insert(4, "absorbed", absorbed)

    attached = _attach(done, own)
    times = _stage_times(attached, len(episodes))
    for stage in STAGES:
        episodes[f"{stage}_at"] = times[stage].to_numpy()
        episodes[f"{stage}_days"] = days_between(episodes["entered_at"], times[stage])
    rejected = attached[attached["stage"] == "rejected"].drop_duplicates("episode")
    reason = _labels(rejected["reason_code"]).replace(UNKNOWN, UNRECORDED)
    episodes["reason_code"] = pd.Series(
        reason.to_numpy(), index=rejected["episode"].to_numpy(), dtype=object
    ).reindex(episodes.index)

    grade = _labels(episodes["grade"])
    episodes["grade"] = grade
    episodes["fit"] = grade.str[0].where(grade != UNKNOWN, UNKNOWN)
    episodes["engagement"] = grade.str[1:].where(grade != UNKNOWN, UNKNOWN)
    for column in ("region", "lead_source", "model_version"):
        episodes[column] = _labels(episodes[column])
    episodes["score_band"] = score_bands(episodes["score"])
    episodes["cohort_month"] = episodes["entered_at"].dt.strftime("%Y-%m").astype(str)
    episodes["age_days"] = days_between(
        episodes["entered_at"], pd.Series(as_of, index=episodes.index)
    )

    keep = np.ones(len(episodes), dtype=bool)
    if since is not None:
        keep &= (episodes["entered_at"] >= since).to_numpy()
    if until is not None:
        keep &= (episodes["entered_at"] < until).to_numpy()
    ordered = [
        "episode",
        "lead_id",
        "entered_at",
        "next_entered_at",
        "absorbed",
        "threshold",
        "probability",
        "score",
        *DIMENSIONS,
        "age_days",
    ]
    ordered += [f"{stage}_{part}" for stage in STAGES for part in ("at", "days")]
    return episodes.loc[keep, [*ordered, "reason_code"]].reset_index(drop=True)


_NEVER = np.iinfo(np.int64).max
_NS_PER_DAY = 86_400 * 10**9


def _absorbed(episodes: pd.DataFrame, done: pd.DataFrame) -> np.ndarray:
    """Which entries (rows of ``episodes``, in entry order) come while the lead's episode
    is still open (module docstring). Only leads with several entries are looked at."""
    out = np.zeros(len(episodes), dtype=bool)
    lead = episodes["lead_id"]
    multi = lead.duplicated(keep=False).to_numpy()
    if not multi.any() or done.empty:
        return out
    ids = lead[multi]
    events = done[done["lead_id"].astype(str).isin(set(ids))]
    events = events.sort_values("occurred_at", kind="stable")
    times = events["occurred_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    stages = events["stage"].to_numpy(dtype=object)
    per_lead = events["lead_id"].astype(str).groupby(events["lead_id"].astype(str)).indices
    entered = episodes["entered_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    rows = np.flatnonzero(multi)
    for name, positions in ids.groupby(ids, sort=False).indices.items():
        mine = per_lead.get(name)
        if mine is None:
            continue
        open_until: int | None = None
        for row in rows[positions]:
            start = int(entered[row])
            if open_until is not None and start < open_until:
                out[row] = True
                continue
            open_until = _closes(start, times[mine], stages[mine])
    return out


def _closes(start: int, times: np.ndarray, stages: np.ndarray) -> int:
    """When an episode entered at ``start`` stops being worked (ns; ``_NEVER``: won, or a
    deal still going), from the lead's dispositions in time order."""
    accepted: int | None = None
    deal = False
    first = int(np.searchsorted(times, start))
    unanswered = start + RESPONSE_DAYS * _NS_PER_DAY
    for when, stage in zip(times[first:], stages[first:], strict=True):
        if not deal and accepted is None and when > unanswered:
            return unanswered
        if not deal and accepted is not None and when > accepted + RECYCLE_DAYS * _NS_PER_DAY:
            return accepted + RECYCLE_DAYS * _NS_PER_DAY
        if stage in ("rejected", "lost"):
            return int(when)
        if stage == "won":
            return _NEVER
        if stage in ("sql", "opportunity"):
            deal = True
        elif stage == "accepted" and accepted is None:
            accepted = int(when)
    if deal:
        return _NEVER
    if accepted is not None:
        return accepted + RECYCLE_DAYS * _NS_PER_DAY
    return unanswered


def _attach(done: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """Each disposition with the episode it belongs to (the lead's latest entry at or
    before it); dispositions before a lead's first entry are dropped."""
    if done.empty:
        return pd.DataFrame(
            {
                "episode": pd.Series(dtype=np.int64),
                "stage": pd.Series(dtype=object),
                "reason_code": pd.Series(dtype=object),
                "occurred_at": pd.Series(dtype="datetime64[ns]"),
            }
        )
    left = done.assign(lead_id=done["lead_id"].astype(str)).sort_values(
        "occurred_at", kind="stable"
    )
    left["occurred_at"] = left["occurred_at"].astype("datetime64[ns]")
    right = episodes[["lead_id", "entered_at", "episode"]].sort_values("entered_at", kind="stable")
    right = right.assign(entered_at=right["entered_at"].astype("datetime64[ns]"))
    joined = pd.merge_asof(
        left,
        right,
        left_on="occurred_at",
        right_on="entered_at",
        by="lead_id",
        direction="backward",
    )
    joined = joined[joined["episode"].notna()]
    return joined.assign(episode=joined["episode"].astype(np.int64))


def _windows(maturity_days: Mapping[str, int | None] | None) -> dict[str, int | None]:
    """``MATURITY_DAYS`` overridden by ``maturity_days``, checked."""
    windows = dict(MATURITY_DAYS)
    for stage, days in (maturity_days or {}).items():
        if stage not in windows:
            raise FunnelError(f"maturity_days: unknown stage {stage!r}: use {', '.join(STAGES)}")
        if days is not None and days < 0:
            raise FunnelError(f"maturity_days: {stage} window must be ≥ 0 days, got {days}")
        windows[stage] = days
    return windows


def _handed_over(episodes: pd.DataFrame) -> pd.DataFrame:
    """The episodes sales got: absorbed re-entries left out."""
    if "absorbed" not in episodes or episodes.empty:
        return episodes
    return episodes[~episodes["absorbed"].astype(bool).to_numpy()]


def rates_from_episodes(
    episodes: pd.DataFrame,
    by: str | Sequence[str] | None = ("grade",),
    maturity_days: Mapping[str, int | None] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Funnel rates of ``episodes`` (a ``mql_episodes`` frame); see ``funnel_rates``."""
    keys = dimensions(by)
    windows = _windows(maturity_days)
    episodes = _handed_over(episodes)
    parts = []
    for stage in STAGES:
        window = windows[stage]
        days = pd.to_numeric(episodes[f"{stage}_days"], errors="coerce")
        if window is None:
            mature = pd.Series(True, index=episodes.index)
            reached = days.notna()
        else:
            mature = episodes["age_days"] >= window
            reached = mature & (days <= window)
        frame = pd.DataFrame(
            {
                "episodes": 1,
                "mature": mature.astype(np.int64),
                "reached": reached.astype(np.int64),
                "reached_any": days.notna().astype(np.int64),
                "days": days.where(reached),
            },
            index=episodes.index,
        )
        for key in keys:
            frame[key] = episodes[key].astype(str)
        grouped = frame.groupby(keys or (lambda _: 0), sort=True)
        summed = grouped[["episodes", "mature", "reached", "reached_any"]].sum()
        summed["median_days"] = grouped["days"].median()
        summed = summed.reset_index() if keys else summed.reset_index(drop=True)
        summed.insert(len(keys), "stage", stage)
        summed.insert(len(keys) + 1, "window_days", window)
        parts.append(summed)
    if episodes.empty:
        empty = pd.DataFrame(columns=[*keys, *RATE_COLUMNS])
        return empty
    out = pd.concat(parts, ignore_index=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rate"] = np.where(out["mature"] > 0, out["reached"] / out["mature"], np.nan)
    out["ci_low"], out["ci_high"] = wilson_interval(out["reached"], out["mature"], confidence)
    out["window_days"] = out["window_days"].astype("Int64")
    order = {stage: i for i, stage in enumerate(STAGES)}
    out = out.sort_values([*keys, "stage"], key=_stage_order(order), kind="stable")
    return out[[*keys, *RATE_COLUMNS]].reset_index(drop=True)


def _stage_order(order: dict[str, int]) -> Any:
    """Sort key: stages in funnel order, other columns as they are."""

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "stage" else column

    return key


def funnel_rates(
    engine: Engine,
    by: str | Sequence[str] | None = ("grade",),
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | str | None = None,
    maturity_days: Mapping[str, int | None] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """MQL→stage rates, median days to each stage, counts and Wilson intervals, by group.

    Absorbed re-entries (see the module docstring) are not episodes sales got and are
    left out. Censoring is handled by maturity windows (module docstring): ``rate`` is the
    share of the ``mature`` episodes (at least ``window_days`` old at ``as_of``) that
    reached the stage within ``window_days`` of entry; an episode too recent for a stage
    is left out of that stage's rate but still counted in ``episodes`` and, if it
    already got there, in ``reached_any``.

    Args:
        engine: An open, migrated store.
        by: Grouping dimensions (``DIMENSIONS``); empty or None for one overall row per
            stage.
        since: First MQL entry time to include.
        until: Entry times before this one only.
        as_of: Look from this moment (default: the newest time in the store).
        maturity_days: Per-stage windows overriding ``MATURITY_DAYS`` (None: no censoring
            for that stage).
        confidence: Coverage of the Wilson intervals.

    Returns:
        One row per group and stage (stages in funnel order): the ``by`` columns, then
        ``stage``, ``window_days``, ``episodes`` (all episodes of the group), ``mature``,
        ``reached`` (mature episodes that reached the stage in time), ``rate``,
        ``ci_low``, ``ci_high``, ``median_days`` (over the ``reached`` episodes),
        ``reached_any``. Only groups with at least one episode appear.

    Raises:
        FunnelError: for an unknown dimension or stage, or a bad time.
    """
    dimensions(by)
    episodes = mql_episodes(engine, since=since, until=until, as_of=as_of)
    return rates_from_episodes(episodes, by, maturity_days, confidence)


def reasons_from_episodes(
    episodes: pd.DataFrame, by: str | Sequence[str] | None = ("grade",)
) -> pd.DataFrame:
    """Rejection reasons of ``episodes`` (a ``mql_episodes`` frame); see
    ``rejection_reasons``."""
    keys = dimensions(by)
    codes = list(REJECTION_REASONS)
    episodes = _handed_over(episodes)
    if episodes.empty:
        return pd.DataFrame(columns=[*keys, "reason_code", "rejections", "share", "episodes"])
    rejected = episodes[episodes["reason_code"].notna()]
    if (rejected["reason_code"] == UNRECORDED).any():
        codes.append(UNRECORDED)
    group = episodes[keys].astype(str) if keys else pd.DataFrame(index=episodes.index)
    if keys:
        sizes = group.groupby(keys, sort=True).size().rename("episodes").reset_index()
    else:
        sizes = pd.DataFrame({"episodes": [len(episodes)]})
    grid = sizes.merge(pd.DataFrame({"reason_code": codes}), how="cross")
    counted = (
        group.loc[rejected.index]
        .assign(reason_code=rejected["reason_code"].astype(str))
        .groupby([*keys, "reason_code"], sort=False)
        .size()
        .rename("rejections")
        .reset_index()
    )
    out = grid.merge(counted, on=[*keys, "reason_code"], how="left")
    out["rejections"] = out["rejections"].fillna(0).astype(np.int64)
    total = out.groupby(keys or (lambda _: 0))["rejections"].transform("sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["share"] = np.where(total > 0, out["rejections"] / total, np.nan)
    return out[[*keys, "reason_code", "rejections", "share", "episodes"]]


def rejection_reasons(
    engine: Engine,
    by: str | Sequence[str] | None = ("grade",),
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Why sales rejected MQLs, per group: counts and shares of each reason code.

    Each rejected episode counts once, with the reason of its first rejection (a
    rejection without a code is ``unrecorded``). Shares are of the group's rejections,
    which need no censoring: a reason's share does not grow with an episode's age the way
    a rate does.

    Args:
        engine: An open, migrated store.
        by: Grouping dimensions (``DIMENSIONS``), ``grade`` by default.
        since: First MQL entry time to include.
        until: Entry times before this one only.
        as_of: Look from this moment (default: the newest time in the store).

    Returns:
        Every group with an episode × every reason code (zeros included, so a grade ×
        reason heatmap has all its cells): the ``by`` columns, ``reason_code``,
        ``rejections``, ``share`` (NaN for a group with no rejection) and ``episodes``
        (all episodes of the group).
    """
    dimensions(by)
    episodes = mql_episodes(engine, since=since, until=until, as_of=as_of)
    return reasons_from_episodes(episodes, by)


ACCOUNT_DIMENSIONS = ("grade", "fit", "engagement", "region", "score_band", "cohort_month")
"""What account funnel rates can be grouped by (an account has no single lead source)."""


def account_episodes(
    engine: Engine,
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """One row per MQA episode: an account's entry into MQA and what sales did after.

    The rules are the MQL episode's (module docstring), with the account as the unit: an
    account reaches a stage when any of its people does (the lead's account is the one the
    lead store keeps in ``lead_states.account_id``), so one rep's opportunity at the
    account counts for the account's episode. Dispositions of leads with no account, or
    dated before the account's first MQA entry, belong to no episode.

    Returns:
        ``mql_episodes``' columns with ``account_id`` in place of ``lead_id`` (no
        ``lead_source``: always ``unknown``).
    """
    start = as_timestamp(since, "since")
    stop = as_timestamp(until, "until")
    with engine.connect() as connection:
        end = as_timestamp(as_of, "as_of") or _latest_account_time(connection)
        if end is None:
            return _empty_episodes().rename(columns={"lead_id": "account_id"})
        entries = read_columns(
            connection,
            sa.select(
                mqa_events.c.account_id.label("lead_id"),
                mqa_events.c.occurred_at.label("entered_at"),
                mqa_events.c.threshold,
                mqa_events.c.probability,
                mqa_events.c.score,
                mqa_events.c.grade,
                mqa_events.c.region,
                mqa_events.c.model_version,
                sa.null().label("lead_source"),
            ).where(
                mqa_events.c.event == "entered",
                mqa_events.c.occurred_at <= end.to_pydatetime(),
            ),
        )
        done = read_columns(
            connection,
            sa.select(
                lead_states.c.account_id.label("lead_id"),
                dispositions.c.stage,
                dispositions.c.reason_code,
                dispositions.c.occurred_at,
            )
            .join(lead_states, lead_states.c.lead_id == dispositions.c.lead_id)
            .where(
                lead_states.c.account_id.is_not(None),
                dispositions.c.occurred_at <= end.to_pydatetime(),
            ),
        )
    episodes = episodes_from_frames(entries, done, end, start, stop)
    return episodes.rename(columns={"lead_id": "account_id"})


def _latest_account_time(connection: Connection) -> pd.Timestamp | None:
    """The newest account run, MQA event or disposition (indexed columns only)."""
    found = [
        connection.execute(sa.select(sa.func.max(column))).scalar()
        for column in (account_runs.c.as_of, mqa_events.c.occurred_at, dispositions.c.occurred_at)
    ]
    stamps = [pd.Timestamp(value) for value in found if value is not None]
    return max(stamps) if stamps else None


def account_funnel_rates(
    engine: Engine,
    by: str | Sequence[str] | None = ("grade",),
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    as_of: pd.Timestamp | str | None = None,
    maturity_days: Mapping[str, int | None] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """MQA→stage rates (accepted, SQL, opportunity, won, ...) by group, as ``funnel_rates``
    computes MQL→stage rates: same windows, same Wilson intervals, accounts as the unit.

    Raises:
        FunnelError: for a dimension accounts do not have (``ACCOUNT_DIMENSIONS``).
    """
    keys = dimensions(by)
    if unknown := [k for k in keys if k not in ACCOUNT_DIMENSIONS]:
        raise FunnelError(
            f"accounts cannot be grouped by {', '.join(unknown)}; "
            f"choose from {', '.join(ACCOUNT_DIMENSIONS)}"
        )
    episodes = account_episodes(engine, since=since, until=until, as_of=as_of)
    return rates_from_episodes(episodes, keys, maturity_days, confidence)
