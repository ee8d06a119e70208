"""Writing a scoring run: its scores, the MQL events it causes, and each lead's new state.

A lead *enters* MQL when a run scores it at or above the threshold and its previous state
was not MQL (or it had none), and *leaves* when a run scores it below, or when a full
(batch) run no longer scores it at all (it converted, or aged out of the population).
Events are computed in the database against ``lead_states``, the latest state of each
lead, so a run costs one pass over its own rows whatever the length of the history. A run
older than a lead's state (a backfill) is stored but neither changes the state nor causes
events for that lead: history is written in order, and a late run must not rewrite "today".

Everything of one run is one transaction: a run killed midway leaves no trace.

Accounts follow the same rules in their own tables (``write_account_run``: account runs,
account scores, MQA events, account states): one set of SQL, written once for both kinds
of subject (``_Subject``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadscore.errors import LeadscoreError
from store.frames import insert_frame, read_frame
from store.schema import (
    ACCOUNT_ID,
    LEAD_ID,
    account_runs,
    account_scores,
    account_states,
    lead_states,
    mqa_events,
    mql_events,
    scores,
    scoring_runs,
)

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
    "account_id",
)
"""What a run's frame may carry per lead (``REQUIRED`` ones must be there)."""
REQUIRED = ("lead_id", "probability", "score", "grade", "mql", "threshold")

ACCOUNT_SCORE_COLUMNS = (
    "account_id",
    "as_of",
    "probability",
    "probability_low",
    "probability_high",
    "score",
    "grade",
    "mqa",
    "threshold",
    "region",
    "leads",
    "engaged",
    "reasons",
    "buying_group",
)
"""What an account run's frame may carry per account (``ACCOUNT_REQUIRED`` ones must)."""
ACCOUNT_REQUIRED = ("account_id", "probability", "score", "grade", "mqa", "threshold")


@dataclass(frozen=True)
class _Subject:
    """What is scored (a lead or an account) and where its runs, scores, events and states
    live: the one place the two kinds differ, so both share every statement below."""

    name: str
    runs: sa.Table
    scores: sa.Table
    events: sa.Table
    states: sa.Table
    key: str
    key_length: int
    flag: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    counts: tuple[str, str, str]


LEADS = _Subject(
    name="scores",
    runs=scoring_runs,
    scores=scores,
    events=mql_events,
    states=lead_states,
    key="lead_id",
    key_length=LEAD_ID,
    flag="mql",
    columns=SCORE_COLUMNS,
    required=REQUIRED,
    optional=(
        "probability_low",
        "probability_high",
        "region",
        "lead_source",
        "created_at",
        "account_id",
    ),
    counts=("leads", "mqls", "open_leads"),
)
ACCOUNTS = _Subject(
    name="account scores",
    runs=account_runs,
    scores=account_scores,
    events=mqa_events,
    states=account_states,
    key="account_id",
    key_length=ACCOUNT_ID,
    flag="mqa",
    columns=ACCOUNT_SCORE_COLUMNS,
    required=ACCOUNT_REQUIRED,
    optional=("probability_low", "probability_high", "region", "leads", "engaged"),
    counts=("accounts", "mqas", "open_accounts"),
)


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
        open_leads: Open leads (for an account run: open accounts) at ``as_of`` (scored +
            skipped), batch runs only.
        skipped: Open leads (accounts) outside the model's population, left unscored.
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


def _check(frame: pd.DataFrame, subject: _Subject = LEADS) -> None:
    """Refuse a frame the store cannot keep, naming the column and the first bad row."""
    what, key = subject.name, subject.key
    missing = [c for c in subject.required if c not in frame]
    if missing:
        raise ScoresFrameError(f"{what}: missing column(s) {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in subject.columns]
    if extra:
        raise ScoresFrameError(f"{what}: unknown column(s) {', '.join(map(str, extra))}")
    ids = frame[key].astype(str)
    if (long := ids.str.len() > subject.key_length).any():
        raise ScoresFrameError(
            f"{what}: {key} {ids[long].iloc[0]!r} is longer than {subject.key_length} characters"
        )
    if (dup := ids.duplicated()).any():
        raise ScoresFrameError(f"{what}: {key} {ids[dup].iloc[0]!r} appears twice in one run")
    for column in ("probability", "score", "threshold"):
        bad = pd.to_numeric(frame[column], errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            noun = key.removesuffix("_id")
            raise ScoresFrameError(
                f"{what}: row {row} ({noun} {ids.iloc[row]!r}): {column} is missing or not a number"
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
    return _write(engine, info, frame, LEADS)


def write_account_run(engine: Engine, info: RunInfo, frame: pd.DataFrame) -> RunWritten:
    """Store one account scoring run: the run, its account scores, MQA events and states.

    The same rules as ``write_run``, for accounts: an account *enters* MQA when a run
    scores it at or above its threshold and it was not an MQA, *leaves* when scored below
    or when a full run no longer scores it; a backfill changes no state.

    Args:
        engine: An open, migrated store (``store.engine.open_store``).
        info: The run's facts (``open_leads`` counts open accounts).
        frame: One row per scored account (``ACCOUNT_SCORE_COLUMNS``; ``reasons`` and
            ``buying_group`` as lists/dicts or JSON text).

    Returns:
        The run's id and counts (``entered`` and ``left`` count MQA events).

    Raises:
        ScoresFrameError: naming the column and row when the frame cannot be stored.
    """
    return _write(engine, info, frame, ACCOUNTS)


def _write(engine: Engine, info: RunInfo, frame: pd.DataFrame, subject: _Subject) -> RunWritten:
    _check(frame, subject)
    key = subject.key
    as_of = pd.Timestamp(info.as_of)
    frame = frame.copy()
    frame[key] = frame[key].astype(str)
    # in key order, the indexes on the key are written page after page, not at random
    frame = frame.sort_values(key, kind="stable").reset_index(drop=True)
    if "as_of" not in frame:
        frame["as_of"] = as_of
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    for optional in subject.optional:
        if optional not in frame:
            frame[optional] = None
    statements = _statements(subject)
    events = subject.events
    with engine.begin() as connection:
        run_id = _insert_run(connection, info, frame, subject)
        rows = frame.assign(run_id=run_id, model_version=info.model_version)
        insert_frame(connection, subject.scores, rows)
        params = {"run": run_id}
        connection.execute(statements.scored_events, params)
        connection.execute(statements.upsert_states, params)
        if info.source == "batch":
            connection.execute(statements.gone_events, params)
            connection.execute(statements.gone_states, params)
        counts: dict[str, int] = dict(
            connection.execute(
                sa.select(events.c.event, sa.func.count())
                .where(events.c.run_id == run_id)
                .group_by(events.c.event)
            ).all()
        )
    entered, left = int(counts.get("entered", 0)), int(counts.get("left", 0))
    return RunWritten(run_id=run_id, scores=len(frame), entered=entered, left=left)


def _insert_run(
    connection: Connection, info: RunInfo, frame: pd.DataFrame, subject: _Subject
) -> int:
    scored, qualified, open_ = subject.counts
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
        scored: len(frame),
        qualified: int(frame[subject.flag].astype(bool).sum()),
        open_: info.open_leads,
        "skipped": info.skipped,
        "data_location": info.data_location,
    }
    result = connection.execute(sa.insert(subject.runs).values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


# The MQL events and the new lead states are computed in the database, set-wise, from
# the run's scores and the states before it: no state is read into Python, and a run costs
# one pass over its own rows whatever the number of leads. A lead is *current* in a run
# when its state is not newer than the score (a backfill older than the state is stored
# but changes neither). The same SQL runs on SQLite (3.24+) and PostgreSQL, and, with the
# table and column names of ``_Subject``, for leads (MQL) and accounts (MQA) alike.


@dataclass(frozen=True)
class _Statements:
    scored_events: sa.TextClause
    upsert_states: sa.TextClause
    gone_events: sa.TextClause
    gone_states: sa.TextClause


@functools.cache
def _statements(subject: _Subject) -> _Statements:
    """The four statements of a run for ``subject``'s tables (built once per kind)."""
    key, flag = subject.key, subject.flag
    scores_, events, states, runs = (
        subject.scores.name,
        subject.events.name,
        subject.states.name,
        subject.runs.name,
    )
    event_columns = (
        f"run_id, {key}, event, occurred_at, cause, threshold, region, score, probability, "
        "grade, model_version"
    )
    # A subject entering (scored at or above its threshold, and not qualified before) or
    # leaving (scored below, and qualified before).
    scored_events = f"""
        INSERT INTO {events} ({event_columns})
        SELECT s.run_id, s.{key}, CASE WHEN s.{flag} THEN 'entered' ELSE 'left' END, s.as_of,
               'score', s.threshold, s.region, s.score, s.probability, s.grade, s.model_version
        FROM {scores_} s LEFT JOIN {states} ls ON ls.{key} = s.{key}
        WHERE s.run_id = :run
          AND (ls.{key} IS NULL OR ls.last_as_of <= s.as_of)
          AND s.{flag} <> COALESCE(ls.{flag}, false)
    """
    # Qualified subjects a full run did not score. Run after the states' upsert: every
    # subject the run scored and was current for has this run as its ``last_run_id`` by
    # then (a set-wise test that needs no per-subject lookup of the run's scores).
    gone = f"""
        FROM {states} ls, {runs} r
        WHERE r.id = :run AND ls.{flag} AND ls.last_run_id <> r.id AND ls.last_as_of <= r.as_of
    """
    gone_events = f"""
        INSERT INTO {events} ({event_columns})
        SELECT r.id, ls.{key}, 'left', r.as_of, 'not_scored', r.threshold, ls.region,
               ls.score, ls.probability, ls.grade, r.model_version
        {gone}
    """
    gone_states = f"""
        UPDATE {states} SET {flag} = false, {flag}_since = NULL
        WHERE {key} IN (SELECT ls.{key} {gone})
    """
    kept = [c for c in subject.optional if c in subject.states.c]  # attributes, not scores
    enters = f"(excluded.{flag} AND NOT {states}.{flag})"
    kept_updates = "".join(f"{c} = COALESCE(excluded.{c}, {states}.{c}),\n" for c in kept)
    # Each scored subject's new state; what only the CRM sets (a lead's owner) is never
    # touched here.
    upsert_states = f"""
        INSERT INTO {states} ({key}, {", ".join(kept)}, last_run_id, last_as_of,
                              score, probability, grade, {flag}, {flag}_since,
                              first_{flag}_at, last_{flag}_at, {flag}_episodes)
        SELECT s.{key}, {", ".join(f"s.{c}" for c in kept)}, s.run_id, s.as_of, s.score,
               s.probability, s.grade, s.{flag},
               CASE WHEN s.{flag} THEN s.as_of END, CASE WHEN s.{flag} THEN s.as_of END,
               CASE WHEN s.{flag} THEN s.as_of END, CASE WHEN s.{flag} THEN 1 ELSE 0 END
        FROM {scores_} s
        WHERE s.run_id = :run
        ON CONFLICT ({key}) DO UPDATE SET
            {kept_updates}
            last_run_id = excluded.last_run_id,
            last_as_of = excluded.last_as_of,
            score = excluded.score,
            probability = excluded.probability,
            grade = excluded.grade,
            {flag} = excluded.{flag},
            {flag}_since = CASE WHEN {enters} THEN excluded.last_as_of
                                WHEN excluded.{flag} THEN {states}.{flag}_since END,
            first_{flag}_at = CASE WHEN {enters} AND {states}.first_{flag}_at IS NULL
                                   THEN excluded.last_as_of ELSE {states}.first_{flag}_at END,
            last_{flag}_at = CASE WHEN {enters} THEN excluded.last_as_of
                                  ELSE {states}.last_{flag}_at END,
            {flag}_episodes = {states}.{flag}_episodes + CASE WHEN {enters} THEN 1 ELSE 0 END
        WHERE {states}.last_as_of <= excluded.last_as_of
    """
    return _Statements(
        scored_events=sa.text(scored_events),
        upsert_states=sa.text(upsert_states),
        gone_events=sa.text(gone_events),
        gone_states=sa.text(gone_states),
    )
