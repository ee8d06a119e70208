"""Reading the score history: a lead's timeline, score momentum and new MQLs.

Momentum is the change of a lead's score against its score on or before 7 (and 30) days
earlier, so a rep sees which leads are heating up; a lead with no score that old has no
momentum (None), not a change from zero. All three reads come back as frames.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.frames import read_frame
from store.schema import lead_states, mql_events, scores, scoring_runs

MOMENTUM_DAYS = (7, 30)


def timeline(engine: Engine, lead_id: str) -> pd.DataFrame:
    """Every stored score of ``lead_id``, oldest first (empty: never scored).

    Columns: ``as_of``, ``score``, ``probability``, ``grade``, ``mql``, ``threshold``,
    ``model_version``, ``run_id``, ``source``.
    """
    query = (
        sa.select(
            scores.c.as_of,
            scores.c.score,
            scores.c.probability,
            scores.c.grade,
            scores.c.mql,
            scores.c.threshold,
            scores.c.model_version,
            scores.c.run_id,
            scoring_runs.c.source,
        )
        .join(scoring_runs, scoring_runs.c.id == scores.c.run_id)
        .where(scores.c.lead_id == str(lead_id))
        .order_by(scores.c.as_of, scores.c.id)
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
    horizon = max(days)
    with engine.connect() as connection:
        end = _latest(connection) if as_of is None else pd.Timestamp(as_of)
        if end is None:
            return _empty_momentum(days)
        query = sa.select(scores.c.lead_id, scores.c.as_of, scores.c.score).where(
            scores.c.as_of <= end.to_pydatetime(),
            scores.c.as_of >= (end - pd.Timedelta(days=horizon + 366)).to_pydatetime(),
        )
        if lead_ids is not None:
            query = query.where(scores.c.lead_id.in_([str(i) for i in lead_ids]))
        history = read_frame(connection, query)
    if history.empty:
        return _empty_momentum(days)
    history = history.sort_values(["as_of", "lead_id"], kind="stable")
    latest = history.groupby("lead_id", sort=True).tail(1).sort_values("lead_id")
    out = latest.reset_index(drop=True)
    for window in days:
        probe = out[["lead_id", "as_of"]].assign(probe=out["as_of"] - pd.Timedelta(days=window))
        past = pd.merge_asof(
            probe.sort_values("probe"),
            history.rename(columns={"as_of": "probe", "score": "past"}).sort_values("probe"),
            on="probe",
            by="lead_id",
            direction="backward",
        ).set_index("lead_id")["past"]
        before = out["lead_id"].map(past)
        out[f"score_{window}d_ago"] = before.astype("Int64")
        out[f"momentum_{window}d"] = (out["score"] - before).astype("Int64")
    return out


def _latest(connection: Any) -> pd.Timestamp | None:
    value = connection.execute(sa.select(sa.func.max(scores.c.as_of))).scalar()
    return None if value is None else pd.Timestamp(value)


def _empty_momentum(days: tuple[int, ...]) -> pd.DataFrame:
    columns = ["lead_id", "as_of", "score"]
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
