"""Writing a scoring run: its scores, the MQL events it causes, and each lead's new state.

A lead *enters* MQL when a run scores it at or above the threshold and its previous state
was not MQL (or it had none), and *leaves* when a run scores it below, or when a full
(batch) run no longer scores it at all (it converted, or aged out of the population).
Events are computed in the database against ``lead_states``, the latest state of each
lead, so a run costs one pass over its own rows whatever the length of the history. A run
older than a lead's state (a backfill) is stored but neither changes the state nor causes
events for that lead: history is written in order, and a late run must not rewrite "today".

Everything of one run is one transaction: a run killed midway leaves no trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadscore.errors import LeadscoreError
from store.frames import insert_frame, read_frame
from store.schema import LEAD_ID, lead_states, mql_events, scores, scoring_runs

SCORE_COLUMNS = (
    "lead_id",
    "as_of",
    "probability",
    "probability_low",
    "probability_high",
    "score",
    "grade",
    "mql",
    "threshold",
    "region",
    "lead_source",
    "created_at",
    "reasons",
    "next_best_actions",
)
"""What a run's frame may carry per lead (``REQUIRED`` ones must be there)."""
REQUIRED = ("lead_id", "probability", "score", "grade", "mql", "threshold")


class ScoresFrameError(LeadscoreError, ValueError):
    """A frame handed to the store lacks a column or holds a value the store cannot keep."""


@dataclass(frozen=True)
class RunInfo:
    """The facts of one scoring run, as ``scoring_runs`` keeps them.

    Attributes:
        source: ``batch`` (a full run over the population) or ``online`` (the service).
        as_of: The moment the leads were scored at (tz-naive UTC).
        model_name: Registered model name.
        model_version: Registry version (``local`` for a bare bundle).
        threshold: The MQL threshold on the probability.
        model_alias: Registry alias the model was loaded by, if any.
        policy_rule: ``capacity`` or ``precision``.
        policy_target: The policy's target share or precision.
        open_leads: Open leads at ``as_of`` (scored + skipped), batch runs only.
        skipped: Open leads outside the model's population, left unscored.
        data_location: Where the scored data came from, for the record.
    """

    source: str
    as_of: pd.Timestamp
    model_name: str
    model_version: str
    threshold: float
    model_alias: str | None = None
    policy_rule: str | None = None
    policy_target: float | None = None
    open_leads: int | None = None
    skipped: int | None = None
    data_location: str | None = None


@dataclass(frozen=True)
class RunWritten:
    """What writing a run did: its id, rows written, and the MQL events it caused."""

    run_id: int
    scores: int
    entered: int
    left: int


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check(frame: pd.DataFrame) -> None:
    """Refuse a frame the store cannot keep, naming the column and the first bad row."""
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ScoresFrameError(f"scores: missing column(s) {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in SCORE_COLUMNS]
    if extra:
        raise ScoresFrameError(f"scores: unknown column(s) {', '.join(map(str, extra))}")
    ids = frame["lead_id"].astype(str)
    if (long := ids.str.len() > LEAD_ID).any():
        raise ScoresFrameError(
            f"scores: lead_id {ids[long].iloc[0]!r} is longer than {LEAD_ID} characters"
        )
    if (dup := ids.duplicated()).any():
        raise ScoresFrameError(f"scores: lead_id {ids[dup].iloc[0]!r} appears twice in one run")
    for column in ("probability", "score", "threshold"):
        bad = pd.to_numeric(frame[column], errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ScoresFrameError(
                f"scores: row {row} (lead {ids.iloc[row]!r}): {column} is missing or not a number"
            )


def read_states(connection: Connection, lead_ids: pd.Series | None = None) -> pd.DataFrame:
    """``lead_states`` as a frame (every lead, or those in ``lead_ids``)."""
    query = sa.select(lead_states)
    if lead_ids is not None and len(lead_ids) <= 1000:
        query = query.where(lead_states.c.lead_id.in_(lead_ids.astype(str).tolist()))
    frame = read_frame(connection, query)
    if lead_ids is not None and len(lead_ids) > 1000:
        frame = frame[frame["lead_id"].isin(set(lead_ids.astype(str)))]
    return frame.reset_index(drop=True)


def write_run(engine: Engine, info: RunInfo, frame: pd.DataFrame) -> RunWritten:
    """Store one scoring run: the run, its scores, its MQL events and the new lead states.

    Args:
        engine: An open, migrated store (``store.engine.open_store``).
        info: The run's facts.
        frame: One row per scored lead (``SCORE_COLUMNS``; ``reasons`` and
            ``next_best_actions`` as lists/dicts or JSON text). Without an ``as_of``
            column every lead was scored at ``info.as_of``; with one (online scores,
            each at its own moment) each row has its own.

    Returns:
        The run's id and counts.

    Raises:
        ScoresFrameError: naming the column and row when the frame cannot be stored.
    """
    _check(frame)
    as_of = pd.Timestamp(info.as_of)
    frame = frame.copy()
    frame["lead_id"] = frame["lead_id"].astype(str)
    # in key order, the indexes on lead_id are written page after page, not at random
    frame = frame.sort_values("lead_id", kind="stable").reset_index(drop=True)
    if "as_of" not in frame:
        frame["as_of"] = as_of
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    for optional in ("probability_low", "probability_high", "region", "lead_source", "created_at"):
        if optional not in frame:
            frame[optional] = None
    with engine.begin() as connection:
        run_id = _insert_run(connection, info, frame)
        rows = frame.assign(run_id=run_id, model_version=info.model_version)
        insert_frame(connection, scores, rows)
        params = {"run": run_id}
        connection.execute(_SCORED_EVENTS, params)
        connection.execute(_UPSERT_STATES, params)
        if info.source == "batch":
            connection.execute(_GONE_EVENTS, params)
            connection.execute(_GONE_STATES, params)
        counts: dict[str, int] = dict(
            connection.execute(
                sa.select(mql_events.c.event, sa.func.count())
                .where(mql_events.c.run_id == run_id)
                .group_by(mql_events.c.event)
            ).all()
        )
    entered, left = int(counts.get("entered", 0)), int(counts.get("left", 0))
    return RunWritten(run_id=run_id, scores=len(frame), entered=entered, left=left)


def _insert_run(connection: Connection, info: RunInfo, frame: pd.DataFrame) -> int:
    values: dict[str, Any] = {
        "source": info.source,
        "as_of": pd.Timestamp(info.as_of).to_pydatetime(),
        "started_at": _utc_now(),
        "model_name": info.model_name,
        "model_version": info.model_version,
        "model_alias": info.model_alias,
        "threshold": float(info.threshold),
        "policy_rule": info.policy_rule,
        "policy_target": info.policy_target,
        "leads": len(frame),
        "mqls": int(frame["mql"].astype(bool).sum()),
        "open_leads": info.open_leads,
        "skipped": info.skipped,
        "data_location": info.data_location,
    }
    result = connection.execute(sa.insert(scoring_runs).values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


# The MQL events and the new lead states are computed in the database, set-wise, from
# the run's scores and the states before it: no state is read into Python, and a run costs
# one pass over its own rows whatever the number of leads. A lead is *current* in a run
# when its state is not newer than the score (a backfill older than the state is stored
# but changes neither). The same SQL runs on SQLite (3.24+) and PostgreSQL.

_SCORED_EVENTS = sa.text(
    """
    INSERT INTO mql_events (run_id, lead_id, event, occurred_at, cause, threshold, region,
                            score, probability, grade, model_version)
    SELECT s.run_id, s.lead_id, CASE WHEN s.mql THEN 'entered' ELSE 'left' END, s.as_of,
           'score', s.threshold, s.region, s.score, s.probability, s.grade, s.model_version
    FROM scores s LEFT JOIN lead_states ls ON ls.lead_id = s.lead_id
    WHERE s.run_id = :run
      AND (ls.lead_id IS NULL OR ls.last_as_of <= s.as_of)
      AND s.mql <> COALESCE(ls.mql, false)
    """
)
"""A lead entering MQL (scored at or above its threshold, and not an MQL before) or leaving
it (scored below, and an MQL before)."""

_GONE = """
    FROM lead_states ls, scoring_runs r
    WHERE r.id = :run AND ls.mql AND ls.last_run_id <> r.id AND ls.last_as_of <= r.as_of
"""
"""MQLs a full run did not score. Run after the states' upsert: every lead the run scored
and was current for has this run as its ``last_run_id`` by then (a set-wise test that needs
no per-lead lookup of the run's scores)."""
_GONE_EVENTS = sa.text(
    f"""
    INSERT INTO mql_events (run_id, lead_id, event, occurred_at, cause, threshold, region,
                            score, probability, grade, model_version)
    SELECT r.id, ls.lead_id, 'left', r.as_of, 'not_scored', r.threshold, ls.region, ls.score,
           ls.probability, ls.grade, r.model_version
    {_GONE}
    """
)
"""A full (batch) run no longer scores an MQL: it converted, or aged out of the population."""
_GONE_STATES = sa.text(
    f"""
    UPDATE lead_states SET mql = false, mql_since = NULL
    WHERE lead_id IN (SELECT ls.lead_id {_GONE})
    """
)

_ENTERS = "(excluded.mql AND NOT lead_states.mql)"
_UPSERT_STATES = sa.text(
    f"""
    INSERT INTO lead_states (lead_id, created_at, region, lead_source, last_run_id, last_as_of,
                             score, probability, grade, mql, mql_since, first_mql_at,
                             last_mql_at, mql_episodes)
    SELECT s.lead_id, s.created_at, s.region, s.lead_source, s.run_id, s.as_of, s.score,
           s.probability, s.grade, s.mql,
           CASE WHEN s.mql THEN s.as_of END, CASE WHEN s.mql THEN s.as_of END,
           CASE WHEN s.mql THEN s.as_of END, CASE WHEN s.mql THEN 1 ELSE 0 END
    FROM scores s
    WHERE s.run_id = :run
    ON CONFLICT (lead_id) DO UPDATE SET
        created_at = COALESCE(excluded.created_at, lead_states.created_at),
        region = COALESCE(excluded.region, lead_states.region),
        lead_source = COALESCE(excluded.lead_source, lead_states.lead_source),
        last_run_id = excluded.last_run_id,
        last_as_of = excluded.last_as_of,
        score = excluded.score,
        probability = excluded.probability,
        grade = excluded.grade,
        mql = excluded.mql,
        mql_since = CASE WHEN {_ENTERS} THEN excluded.last_as_of
                         WHEN excluded.mql THEN lead_states.mql_since END,
        first_mql_at = CASE WHEN {_ENTERS} AND lead_states.first_mql_at IS NULL
                            THEN excluded.last_as_of ELSE lead_states.first_mql_at END,
        last_mql_at = CASE WHEN {_ENTERS} THEN excluded.last_as_of
                           ELSE lead_states.last_mql_at END,
        mql_episodes = lead_states.mql_episodes + CASE WHEN {_ENTERS} THEN 1 ELSE 0 END
    WHERE lead_states.last_as_of <= excluded.last_as_of
    """
)
"""Each scored lead's new state; the owner (set from the CRM) is never touched here."""
