"""Reading the score history: a lead's timeline, score momentum and new MQLs.

Momentum is the change of a lead's score against its score on or before 7 (and 30) days
earlier, so a rep sees which leads are heating up; a lead with no score that old has no
momentum (None), not a change from zero. All three reads come back as frames. Accounts
have the same three reads (``account_timeline``, ``account_momentum``, ``new_mqas``),
from their own tables; account momentum compares with 7 and 28 days back (this week
against the three before it).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.frames import read_frame
from store.runs import ACCOUNTS, LEADS, _Subject
from store.schema import account_states, lead_states, mqa_events, mql_events

MOMENTUM_DAYS = (7, 30)
ACCOUNT_MOMENTUM_DAYS = (7, 28)


def timeline(engine: Engine, lead_id: str) -> pd.DataFrame:
    """Every stored score of ``lead_id``, oldest first (empty: never scored).

    Columns: ``as_of``, ``score``, ``probability``, ``grade``, ``mql``, ``threshold``,
    ``model_version``, ``run_id``, ``source``.
    """
    return _timeline(engine, LEADS, lead_id)


def account_timeline(engine: Engine, account_id: str) -> pd.DataFrame:
    """Every stored score of ``account_id``, oldest first (``mqa`` in place of ``mql``)."""
    return _timeline(engine, ACCOUNTS, account_id)


def _timeline(engine: Engine, subject: _Subject, key: str) -> pd.DataFrame:
    table, runs = subject.scores, subject.runs
    query = (
        sa.select(
            table.c.as_of,
            table.c.score,
            table.c.probability,
            table.c.grade,
            table.c[subject.flag],
            table.c.threshold,
            table.c.model_version,
            table.c.run_id,
            runs.c.source,
        )
        .join(runs, runs.c.id == table.c.run_id)
        .where(table.c[subject.key] == str(key))
        .order_by(table.c.as_of, table.c.id)
    )
    with engine.connect() as connection:
        return read_frame(connection, query)


def momentum(
    engine: Engine,
    as_of: pd.Timestamp | str | None = None,
    lead_ids: list[str] | None = None,
    days: tuple[int, ...] = MOMENTUM_DAYS,
) -> pd.DataFrame:
    """Each lead's latest score at ``as_of`` and its change over ``days``.

    Args:
        engine: An open store.
        as_of: The moment to look from (default: the latest score in the store).
        lead_ids: Only these leads (default: every lead with a score).
        days: Look-back windows, in days.

    Returns:
        One row per lead: ``lead_id``, ``as_of`` (of its latest score), ``score``, and for
        each window ``score_<d>d_ago`` and ``momentum_<d>d`` (None when the lead has no
        score that old).
    """
    return _momentum(engine, LEADS, as_of, lead_ids, days)


def account_momentum(
    engine: Engine,
    as_of: pd.Timestamp | str | None = None,
    account_ids: list[str] | None = None,
    days: tuple[int, ...] = ACCOUNT_MOMENTUM_DAYS,
) -> pd.DataFrame:
    """Each account's latest score at ``as_of`` and its change over ``days`` (as
    ``momentum``, keyed by ``account_id``)."""
    return _momentum(engine, ACCOUNTS, as_of, account_ids, days)


def _momentum(
    engine: Engine,
    subject: _Subject,
    as_of: pd.Timestamp | str | None,
    keys: list[str] | None,
    days: tuple[int, ...],
) -> pd.DataFrame:
    table, key = subject.scores, subject.key
    horizon = max(days)
    with engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.max(table.c.as_of))).scalar()
        end = (None if value is None else pd.Timestamp(value)) if as_of is None else as_of
        if end is None:
            return _empty_momentum(key, days)
        end = pd.Timestamp(end)
        query = sa.select(table.c[key], table.c.as_of, table.c.score).where(
            table.c.as_of <= end.to_pydatetime(),
            table.c.as_of >= (end - pd.Timedelta(days=horizon + 366)).to_pydatetime(),
        )
        if keys is not None:
            query = query.where(table.c[key].in_([str(i) for i in keys]))
        history = read_frame(connection, query)
    if history.empty:
        return _empty_momentum(key, days)
    history = history.sort_values(["as_of", key], kind="stable")
    latest = history.groupby(key, sort=True).tail(1).sort_values(key)
    out = latest.reset_index(drop=True)
    for window in days:
        probe = out[[key, "as_of"]].assign(probe=out["as_of"] - pd.Timedelta(days=window))
        past = pd.merge_asof(
            probe.sort_values("probe"),
            history.rename(columns={"as_of": "probe", "score": "past"}).sort_values("probe"),
            on="probe",
            by=key,
            direction="backward",
        ).set_index(key)["past"]
        before = out[key].map(past)
        out[f"score_{window}d_ago"] = before.astype("Int64")
        out[f"momentum_{window}d"] = (out["score"] - before).astype("Int64")
    return out


def _empty_momentum(key: str, days: tuple[int, ...]) -> pd.DataFrame:
    columns = [key, "as_of", "score"]
    for window in days:
        columns += [f"score_{window}d_ago", f"momentum_{window}d"]
    return pd.DataFrame(columns=columns)


def new_mqls(engine: Engine, since: pd.Timestamp | str) -> pd.DataFrame:
    """Leads that entered MQL after ``since`` and are MQLs still, newest first.

    Columns: ``lead_id``, ``entered_at``, ``score``, ``probability``, ``grade``, ``region``,
    ``lead_source``, ``owner``, ``mql_episodes`` (2+: an MQL again after leaving).
    """
    entered = (
        sa.select(
            mql_events.c.lead_id,
            sa.func.max(mql_events.c.occurred_at).label("entered_at"),
        )
        .where(
            mql_events.c.event == "entered",
            mql_events.c.occurred_at > pd.Timestamp(since).to_pydatetime(),
        )
        .group_by(mql_events.c.lead_id)
        .subquery()
    )
    query = (
        sa.select(
            lead_states.c.lead_id,
            sa.type_coerce(entered.c.entered_at, sa.DateTime).label("entered_at"),
            lead_states.c.score,
            lead_states.c.probability,
            lead_states.c.grade,
            lead_states.c.region,
            lead_states.c.lead_source,
            lead_states.c.owner,
            lead_states.c.mql_episodes,
        )
        .join(entered, entered.c.lead_id == lead_states.c.lead_id)
        .where(lead_states.c.mql.is_(True))
        .order_by(entered.c.entered_at.desc(), lead_states.c.lead_id)
    )
    with engine.connect() as connection:
        return read_frame(connection, query)


def new_mqas(engine: Engine, since: pd.Timestamp | str) -> pd.DataFrame:
    """Accounts that entered MQA after ``since`` and are MQAs still, newest first.

    Columns: ``account_id``, ``entered_at``, ``score``, ``probability``, ``grade``,
    ``region``, ``leads``, ``engaged``, ``mqa_episodes``.
    """
    entered = (
        sa.select(
            mqa_events.c.account_id,
            sa.func.max(mqa_events.c.occurred_at).label("entered_at"),
        )
        .where(
            mqa_events.c.event == "entered",
            mqa_events.c.occurred_at > pd.Timestamp(since).to_pydatetime(),
        )
        .group_by(mqa_events.c.account_id)
        .subquery()
    )
    query = (
        sa.select(
            account_states.c.account_id,
            sa.type_coerce(entered.c.entered_at, sa.DateTime).label("entered_at"),
            account_states.c.score,
            account_states.c.probability,
            account_states.c.grade,
            account_states.c.region,
            account_states.c.leads,
            account_states.c.engaged,
            account_states.c.mqa_episodes,
        )
        .join(entered, entered.c.account_id == account_states.c.account_id)
        .where(account_states.c.mqa.is_(True))
        .order_by(entered.c.entered_at.desc(), account_states.c.account_id)
    )
    with engine.connect() as connection:
        return read_frame(connection, query)
