"""Writing a scoring run: its scores, the MQL events it causes, and each lead's new state.

A lead *enters* MQL when a run scores it at or above the threshold and its previous state
was not MQL (or it had none), and *leaves* when a run scores it below, or when a full
(batch) run no longer scores it at all (it converted, or aged out of the population).
Events are computed against ``lead_states``, the latest state of each lead, so a run
costs one read of that table whatever the length of the history. A run older than a
lead's state (a backfill) is stored but neither changes the state nor causes events for
that lead: history is written in order, and a late run must not rewrite "today".

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
        states = read_states(connection, None if info.source == "batch" else frame["lead_id"])
        events, new_states = _transitions(frame, states, as_of, info, run_id)
        insert_frame(connection, mql_events, events)
        _upsert_states(connection, new_states, full=info.source == "batch")
    entered = int((events["event"] == "entered").sum()) if len(events) else 0
    return RunWritten(run_id=run_id, scores=len(frame), entered=entered, left=len(events) - entered)


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


def _transitions(
    frame: pd.DataFrame, states: pd.DataFrame, as_of: pd.Timestamp, info: RunInfo, run_id: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The MQL events this run causes, and the lead states it leaves behind."""
    prev = states.set_index("lead_id")
    now = frame.set_index("lead_id")
    last = prev["last_as_of"].reindex(now.index)
    current = ~(last > now["as_of"]).to_numpy()  # not a backfill behind the state
    was = prev["mql"].reindex(now.index).fillna(False).astype(bool).to_numpy()
    mql = now["mql"].astype(bool).to_numpy()
    entered = current & mql & ~was
    left = current & ~mql & was

    new = now.loc[current, [*_CARRIED, "score", "probability", "grade"]].copy()
    ent = pd.Series(entered[current], index=new.index)
    new["mql"] = mql[current]
    old = prev.reindex(new.index)
    stamp = now.loc[current, "as_of"]
    none = pd.Series(pd.NaT, index=new.index, dtype="datetime64[ns]")
    since = old["mql_since"].astype("datetime64[ns]").where(new["mql"], none)
    new["mql_since"] = stamp.where(ent, since)
    first = old["first_mql_at"].astype("datetime64[ns]")
    new["first_mql_at"] = first.where(first.notna() | ~ent, stamp)
    new["last_mql_at"] = stamp.where(ent, old["last_mql_at"].astype("datetime64[ns]"))
    new["mql_episodes"] = old["mql_episodes"].fillna(0).astype(int) + ent.astype(int)
    new["owner"] = old["owner"]
    new["last_run_id"] = run_id
    new["last_as_of"] = stamp

    events = [_events(now, entered, "entered", "score"), _events(now, left, "left", "score")]
    if info.source == "batch":
        scored = pd.Series(True, index=now.index).reindex(prev.index, fill_value=False)
        gone = prev[prev["mql"].astype(bool).to_numpy() & ~scored.to_numpy()]
        gone = gone[gone["last_as_of"] <= as_of]
        gone_events = _events(gone, np.ones(len(gone), dtype=bool), "left", "not_scored")
        gone_events["occurred_at"] = as_of
        gone_events["threshold"] = float(info.threshold)
        events.append(gone_events)
        cleared = gone.copy()
        cleared["mql"] = False
        cleared["mql_since"] = pd.NaT
        new = pd.concat([new, cleared[new.columns]]) if len(cleared) else new
    if info.source == "batch":  # a full run rewrites the table: keep the untouched leads
        touched = pd.Series(True, index=new.index).reindex(prev.index, fill_value=False)
        untouched = prev[~touched.to_numpy()]
        new = pd.concat([new, untouched[new.columns]]) if len(untouched) else new
    table = pd.concat(events, ignore_index=True)
    table["run_id"] = run_id
    table["model_version"] = info.model_version
    return table, new.rename_axis("lead_id").reset_index()


def _events(rows: pd.DataFrame, mask: np.ndarray, event: str, cause: str) -> pd.DataFrame:
    picked = rows.loc[mask]
    return pd.DataFrame(
        {
            "lead_id": picked.index.astype(str),
            "event": event,
            "cause": cause,
            "region": picked["region"].to_numpy(dtype=object),
            "score": picked["score"].to_numpy(),
            "probability": picked["probability"].to_numpy(),
            "grade": picked["grade"].to_numpy(dtype=object),
            "occurred_at": picked["as_of"].to_numpy() if "as_of" in picked else pd.NaT,
            "threshold": picked["threshold"].to_numpy(dtype=float)
            if "threshold" in picked
            else np.nan,
        }
    )


_CARRIED = ("created_at", "region", "lead_source")
"""What a state takes over from the lead's latest score, besides the score itself."""
_STATE_UPDATE = (
    "created_at",
    "region",
    "lead_source",
    "last_run_id",
    "last_as_of",
    "score",
    "probability",
    "grade",
    "mql",
    "mql_since",
    "first_mql_at",
    "last_mql_at",
    "mql_episodes",
)


def _upsert_states(connection: Connection, new: pd.DataFrame, full: bool) -> None:
    """Replace the states of ``new``'s leads (every state when ``full``)."""
    if full:
        connection.execute(sa.delete(lead_states))
    else:
        ids = new["lead_id"].astype(str).tolist()
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            connection.execute(sa.delete(lead_states).where(lead_states.c.lead_id.in_(chunk)))
    ordered = new.sort_values("lead_id", kind="stable")
    insert_frame(connection, lead_states, ordered[["lead_id", "owner", *_STATE_UPDATE]])
