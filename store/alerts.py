"""The alert outbox: alerts derived from the store, queued once, delivered until they go out.

Four things raise an alert: a lead entering MQL (one ``mql_events`` "entered" row: an
*episode*), an account entering MQA (one ``mqa_events`` "entered" row), a lead's score
rising by at least N points between two consecutive scores, and a ``leadscore monitor``
run with checks at ``alert``. ``derive_alerts`` turns the
scoring and monitor runs not derived yet (``alert_derived``) into outbox rows, one per
destination, in one transaction with the record of those runs; the outbox's unique
``(alert_key, destination)`` makes queueing the same event twice a no-op, so an MQL
episode is never announced twice even when two senders race.

Delivery (``serving.alerts``) takes the due rows, claims them (``claim``), sends, and
records the outcome: ``mark_sent``, or ``mark_failed``, which keeps the row ``pending``
with an exponentially later ``next_attempt_at`` and makes it ``dead`` after the last
attempt. ``revive_dead`` puts dead rows back in the queue (``leadscore alerts retry``).
Nothing here knows about Slack or HTTP: destinations are plain names chosen by a
``route`` function the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from store.frames import read_frame
from store.schema import (
    account_runs,
    account_scores,
    alert_derived,
    alert_outbox,
    lead_states,
    monitoring_results,
    mqa_events,
    mql_events,
    scores,
    scoring_runs,
)

Route = Callable[[str, str | None], list[str]]
"""``route(kind, region)``: the destinations an alert of ``kind`` for ``region`` goes to."""
TOP_REASONS = 3
"""Reasons an alert quotes (the strongest positive ones)."""
_CHUNK = 900
"""Ids per ``IN (...)``: under SQLite's 999 bound parameters."""


@dataclass(frozen=True)
class Backoff:
    """When a failed delivery is tried again, and when it is given up.

    Attributes:
        base_seconds: Wait after the first failure; doubled after each further one.
        cap_seconds: The longest wait between two attempts.
        max_attempts: Attempts before a row is ``dead`` (1: no retry).
    """

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    max_attempts: int = 5

    def wait(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """The wait after the ``attempts``-th failure (at least the receiver's Retry-After)."""
        seconds = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return timedelta(seconds=max(seconds, retry_after or 0.0))


@dataclass(frozen=True)
class OutboxRow:
    """One alert for one destination, as ``alert_outbox`` keeps it."""

    id: int
    alert_key: str
    destination: str
    kind: str
    lead_id: str | None
    region: str | None
    occurred_at: datetime
    payload: dict[str, Any]
    attempts: int

    @property
    def idempotency_key(self) -> str:
        """What receivers deduplicate on: the event and the destination."""
        return f"{self.alert_key}@{self.destination}"


@dataclass(frozen=True)
class Derived:
    """Alerts queued by one ``derive_alerts`` (rows inserted, duplicates not counted)."""

    mql: int = 0
    jump: int = 0
    monitor: int = 0
    mqa: int = 0

    @property
    def total(self) -> int:
        """Rows queued."""
        return self.mql + self.jump + self.monitor + self.mqa


def utc_now() -> datetime:
    """Now, UTC, tz-naive (as the store keeps times)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _pending_runs(connection: Connection) -> list[int]:
    """Scoring runs whose alerts were not derived yet, oldest first."""
    done = sa.select(alert_derived.c.ref).where(alert_derived.c.source == "run")
    query = (
        sa.select(scoring_runs.c.id)
        .where(sa.cast(scoring_runs.c.id, sa.String).not_in(done))
        .order_by(scoring_runs.c.id)
    )
    return [int(r) for r in connection.execute(query).scalars()]


def _pending_account_runs(connection: Connection) -> list[int]:
    """Account scoring runs whose alerts were not derived yet, oldest first."""
    done = sa.select(alert_derived.c.ref).where(alert_derived.c.source == "account_run")
    query = (
        sa.select(account_runs.c.id)
        .where(sa.cast(account_runs.c.id, sa.String).not_in(done))
        .order_by(account_runs.c.id)
    )
    return [int(r) for r in connection.execute(query).scalars()]


def _pending_checks(connection: Connection) -> list[str]:
    """Monitor runs whose alerts were not derived yet."""
    done = sa.select(alert_derived.c.ref).where(alert_derived.c.source == "monitor")
    query = (
        sa.select(monitoring_results.c.check_run)
        .where(monitoring_results.c.check_run.not_in(done))
        .distinct()
    )
    return sorted(str(r) for r in connection.execute(query).scalars())


def _done(connection: Connection, source: str, refs: Sequence[Any], now: datetime) -> None:
    """Record ``refs`` as derived (a concurrent pass that recorded them first wins)."""
    if not refs:
        return
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    rows = [{"source": source, "ref": str(ref), "derived_at": now} for ref in refs]
    for start in range(0, len(rows), 500):
        statement = insert(alert_derived).on_conflict_do_nothing(index_elements=["source", "ref"])
        connection.execute(statement, rows[start : start + 500])


def _in_chunks(column: Any, values: Sequence[Any]) -> list[Any]:
    """``column IN (...)`` conditions of at most ``_CHUNK`` values each."""
    return [column.in_(values[i : i + _CHUNK]) for i in range(0, len(values), _CHUNK)]


def _card(reasons: Any, actions: Any) -> dict[str, Any]:
    """The parts of a stored card an alert quotes: top reasons and the next best action."""
    positive = reasons.get("positive", []) if isinstance(reasons, dict) else []
    top = [
        str(r.get("sentence") or r.get("signal") or "")
        for r in positive[:TOP_REASONS]
        if isinstance(r, dict)
    ]
    action = None
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        first = actions[0]
        action = str(first.get("sentence") or first.get("action") or "") or None
    return {"reasons": [t for t in top if t], "next_best_action": action}


def _plain(value: Any) -> Any:
    """A frame cell as JSON-ready Python (NaN and NaT as None, numpy numbers as numbers)."""
    if value is None:
        return None
    if isinstance(value, list | dict):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Queue ``rows``, skipping any whose (alert_key, destination) is queued already."""
    if not rows:
        return 0
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    count = sa.select(sa.func.count()).select_from(alert_outbox)
    before = int(connection.execute(count).scalar() or 0)
    for start in range(0, len(rows), 200):
        statement = insert(alert_outbox).on_conflict_do_nothing(
            index_elements=["alert_key", "destination"]
        )
        connection.execute(statement, rows[start : start + 200])
    return int(connection.execute(count).scalar() or 0) - before


def _rows(
    key: str,
    kind: str,
    region: str | None,
    lead_id: str | None,
    occurred_at: datetime,
    payload: dict[str, Any],
    route: Route,
    now: datetime,
) -> list[dict[str, Any]]:
    return [
        {
            "alert_key": key,
            "destination": destination,
            "kind": kind,
            "lead_id": lead_id,
            "region": region,
            "occurred_at": occurred_at,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for destination in route(kind, region)
    ]


def _cards(connection: Connection, pairs: pd.DataFrame) -> pd.DataFrame:
    """The stored score rows (card, source, owner) of ``pairs`` (run_id, lead_id)."""
    if pairs.empty:
        return pd.DataFrame(columns=["run_id", "lead_id", "reasons", "next_best_actions"])
    ids = sorted(set(pairs["lead_id"].astype(str)))
    runs = sorted({int(r) for r in pairs["run_id"]})
    half = _CHUNK // 2  # lead ids and run ids share one statement's parameters
    frames = [
        read_frame(
            connection,
            sa.select(
                scores.c.run_id,
                scores.c.lead_id,
                scores.c.lead_source,
                scores.c.reasons,
                scores.c.next_best_actions,
                lead_states.c.owner,
            )
            .outerjoin(lead_states, lead_states.c.lead_id == scores.c.lead_id)
            .where(
                scores.c.lead_id.in_(ids[lead : lead + half]),
                scores.c.run_id.in_(runs[run : run + half]),
            ),
        )
        for run in range(0, len(runs), half)
        for lead in range(0, len(ids), half)
    ]
    return pd.concat(frames, ignore_index=True)


def _derive_mqls(connection: Connection, runs: list[int], route: Route, now: datetime) -> int:
    parts = [
        read_frame(
            connection,
            sa.select(mql_events).where(mql_events.c.event == "entered", condition),
        )
        for condition in _in_chunks(mql_events.c.run_id, runs)
    ]
    if not parts:
        return 0
    entered = pd.concat(parts, ignore_index=True).sort_values("id")
    if entered.empty:
        return 0
    cards = _cards(connection, entered[["run_id", "lead_id"]])
    merged = entered.merge(cards, on=["run_id", "lead_id"], how="left")
    rows: list[dict[str, Any]] = []
    for event in merged.to_dict(orient="records"):
        at = pd.Timestamp(event["occurred_at"])
        payload = {
            "kind": "mql",
            "lead_id": str(event["lead_id"]),
            "occurred_at": at.isoformat(),
            **{
                k: _plain(event.get(k))
                for k in (
                    "score",
                    "grade",
                    "probability",
                    "threshold",
                    "region",
                    "lead_source",
                    "owner",
                    "model_version",
                )
            },
            **_card(event.get("reasons"), event.get("next_best_actions")),
        }
        key = f"mql:{event['lead_id']}:{at.isoformat()}"
        region = _plain(event.get("region"))
        rows += _rows(key, "mql", region, str(event["lead_id"]), at, payload, route, now)
    return _insert(connection, rows)


def _derive_jumps(
    connection: Connection, runs: list[int], route: Route, jump: int | None, now: datetime
) -> int:
    if jump is None or not runs:  # off: these runs are done all the same
        return 0
    fresh = pd.concat(
        [
            read_frame(connection, sa.select(scores.c.lead_id).where(condition).distinct())
            for condition in _in_chunks(scores.c.run_id, runs)
        ],
        ignore_index=True,
    )
    columns = [
        scores.c.id,
        scores.c.run_id,
        scores.c.lead_id,
        scores.c.as_of,
        scores.c.score,
        scores.c.grade,
        scores.c.probability,
        scores.c.region,
        scores.c.lead_source,
        scores.c.reasons,
        scores.c.next_best_actions,
        scores.c.model_version,
    ]
    ids = sorted(set(fresh["lead_id"].astype(str)))
    parts = [
        read_frame(connection, sa.select(*columns).where(condition))
        for condition in _in_chunks(scores.c.lead_id, ids)
    ]
    if not parts:
        return 0
    history = pd.concat(parts, ignore_index=True).sort_values(["lead_id", "as_of", "id"])
    history["previous"] = history.groupby("lead_id")["score"].shift(1)
    new = history["run_id"].isin(set(runs))
    rises = history[new & (history["score"] - history["previous"] >= jump)]
    rows: list[dict[str, Any]] = []
    for score in rises.to_dict(orient="records"):
        at = pd.Timestamp(score["as_of"])
        previous = int(score["previous"])
        payload = {
            "kind": "jump",
            "lead_id": str(score["lead_id"]),
            "occurred_at": at.isoformat(),
            "previous_score": previous,
            "change": int(score["score"]) - previous,
            **{
                k: _plain(score.get(k))
                for k in ("score", "grade", "probability", "region", "lead_source", "model_version")
            },
            **_card(score.get("reasons"), score.get("next_best_actions")),
        }
        key = f"jump:{score['lead_id']}:{int(score['id'])}"
        region = _plain(score.get("region"))
        rows += _rows(key, "jump", region, str(score["lead_id"]), at, payload, route, now)
    return _insert(connection, rows)


MISSING_PERSONAS = 3
"""Missing personas an MQA alert names (the buying group's first ones)."""


def _buying_group(group: Any) -> dict[str, Any]:
    """What an MQA alert quotes of the stored buying group: missing personas, who next."""
    if not isinstance(group, dict):
        return {"missing_personas": [], "next_contact": None}
    missing = [
        str(m.get("persona") or m.get("name") or "") if isinstance(m, dict) else str(m)
        for m in (group.get("missing") or [])[:MISSING_PERSONAS]
    ]
    contacts = group.get("next_contacts") or []
    first = contacts[0] if contacts else None
    contact = first.get("lead_id") if isinstance(first, dict) else first
    return {
        "missing_personas": [m for m in missing if m],
        "next_contact": None if contact is None else str(contact),
    }


def _derive_mqas(connection: Connection, runs: list[int], route: Route, now: datetime) -> int:
    """An alert per account that entered MQA in ``runs``, with its card's reasons."""
    parts = [
        read_frame(
            connection,
            sa.select(
                mqa_events,
                account_scores.c.leads,
                account_scores.c.engaged,
                account_scores.c.reasons,
                account_scores.c.buying_group,
            )
            .outerjoin(
                account_scores,
                sa.and_(
                    account_scores.c.run_id == mqa_events.c.run_id,
                    account_scores.c.account_id == mqa_events.c.account_id,
                ),
            )
            .where(mqa_events.c.event == "entered", condition),
        )
        for condition in _in_chunks(mqa_events.c.run_id, runs)
    ]
    if not parts:
        return 0
    entered = pd.concat(parts, ignore_index=True).sort_values("id")
    rows: list[dict[str, Any]] = []
    for event in entered.to_dict(orient="records"):
        at = pd.Timestamp(event["occurred_at"])
        account = str(event["account_id"])
        payload = {
            "kind": "mqa",
            "account_id": account,
            "occurred_at": at.isoformat(),
            **{
                k: _plain(event.get(k))
                for k in (
                    "score",
                    "grade",
                    "probability",
                    "threshold",
                    "region",
                    "leads",
                    "engaged",
                    "model_version",
                )
            },
            **_card(event.get("reasons"), None),
            **_buying_group(event.get("buying_group")),
        }
        region = _plain(event.get("region"))
        rows += _rows(
            f"mqa:{account}:{at.isoformat()}", "mqa", region, None, at, payload, route, now
        )
    return _insert(connection, rows)


def _derive_monitor(
    connection: Connection, check_runs: list[str], route: Route, now: datetime
) -> int:
    parts = [
        read_frame(
            connection,
            sa.select(monitoring_results)
            .where(monitoring_results.c.status == "alert", condition)
            .order_by(monitoring_results.c.id),
        )
        for condition in _in_chunks(monitoring_results.c.check_run, check_runs)
    ]
    if not parts:
        return 0
    alerts = pd.concat(parts, ignore_index=True)
    rows: list[dict[str, Any]] = []
    for check_run, checks in alerts.groupby("check_run", sort=False):
        first = checks.iloc[0]
        at = pd.Timestamp(first["checked_at"])
        payload = {
            "kind": "monitor",
            "check_run": str(check_run),
            "occurred_at": at.isoformat(),
            "model_name": _plain(first["model_name"]),
            "model_version": _plain(first["model_version"]),
            "checks": [
                {
                    "check": str(c["check_name"]),
                    "subject": str(c["subject"]),
                    "metric": str(c["metric"]),
                    "value": _plain(c["value"]),
                    "reference": _plain(c["reference"]),
                }
                for c in checks.to_dict(orient="records")
            ],
        }
        rows += _rows(f"monitor:{check_run}", "monitor", None, None, at, payload, route, now)
    return _insert(connection, rows)


def derive_alerts(
    engine: Engine, route: Route, jump: int | None = None, now: datetime | None = None
) -> Derived:
    """Queue the alerts of every scoring, account scoring and monitor run not derived yet.

    Args:
        engine: An open, migrated store.
        route: The destinations of an alert, by kind and region (none: not queued).
        jump: Points a score must rise between two consecutive scores of a lead to raise
            an alert (None: no jump alerts).
        now: The moment queued rows become due (default: now).

    Returns:
        Rows queued per kind.
    """
    now = now or utc_now()
    with engine.begin() as connection:
        runs, checks = _pending_runs(connection), _pending_checks(connection)
        account_runs_ = _pending_account_runs(connection)
        derived = Derived(
            mql=_derive_mqls(connection, runs, route, now),
            jump=_derive_jumps(connection, runs, route, jump, now),
            monitor=_derive_monitor(connection, checks, route, now),
            mqa=_derive_mqas(connection, account_runs_, route, now),
        )
        _done(connection, "run", runs, now)
        _done(connection, "monitor", checks, now)
        _done(connection, "account_run", account_runs_, now)
    return derived


def _row(record: Any) -> OutboxRow:
    payload = record.payload
    return OutboxRow(
        id=int(record.id),
        alert_key=str(record.alert_key),
        destination=str(record.destination),
        kind=str(record.kind),
        lead_id=record.lead_id,
        region=record.region,
        occurred_at=record.occurred_at,
        payload=dict(payload) if isinstance(payload, dict) else {},
        attempts=int(record.attempts),
    )


def due(engine: Engine, now: datetime, limit: int = 5000) -> list[OutboxRow]:
    """Pending rows whose next attempt is due, by destination then age."""
    query = (
        sa.select(alert_outbox)
        .where(alert_outbox.c.status == "pending", alert_outbox.c.next_attempt_at <= now)
        .order_by(alert_outbox.c.destination, alert_outbox.c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [_row(r) for r in connection.execute(query)]


def last_sent(engine: Engine, destination: str) -> datetime | None:
    """When ``destination`` was last sent anything (None: never)."""
    query = sa.select(sa.func.max(alert_outbox.c.sent_at)).where(
        alert_outbox.c.destination == destination
    )
    with engine.connect() as connection:
        value = connection.execute(query).scalar()
    return None if value is None else pd.Timestamp(value).to_pydatetime()


def claim(
    engine: Engine, rows: Sequence[OutboxRow], now: datetime, lease: float
) -> list[OutboxRow]:
    """Take ``rows`` for sending: each is pushed ``lease`` seconds ahead, so a second
    sender running meanwhile skips it. Rows another sender took first are left out."""
    until = now + timedelta(seconds=lease)
    taken = []
    with engine.begin() as connection:
        for row in rows:
            result = connection.execute(
                sa.update(alert_outbox)
                .where(
                    alert_outbox.c.id == row.id,
                    alert_outbox.c.status == "pending",
                    alert_outbox.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=until)
            )
            if result.rowcount == 1:
                taken.append(row)
    return taken


def mark_sent(engine: Engine, ids: Iterable[int], now: datetime) -> None:
    """Record rows as delivered."""
    chosen = list(ids)
    with engine.begin() as connection:
        for start in range(0, len(chosen), _CHUNK):
            connection.execute(
                sa.update(alert_outbox)
                .where(alert_outbox.c.id.in_(chosen[start : start + _CHUNK]))
                .values(
                    status="sent",
                    sent_at=now,
                    attempts=alert_outbox.c.attempts + 1,
                    last_error=None,
                )
            )


def mark_failed(
    engine: Engine,
    rows: Sequence[OutboxRow],
    now: datetime,
    error: str,
    backoff: Backoff,
    retry_after: float | None = None,
    permanent: bool = False,
) -> int:
    """Record a failed attempt: retried later, or ``dead`` after the last attempt (or at
    once when ``permanent``: the receiver refused the message itself).

    Returns:
        Rows that became dead.
    """
    dead = 0
    with engine.begin() as connection:
        for row in rows:
            attempts = row.attempts + 1
            gone = permanent or attempts >= backoff.max_attempts
            dead += gone
            connection.execute(
                sa.update(alert_outbox)
                .where(alert_outbox.c.id == row.id)
                .values(
                    status="dead" if gone else "pending",
                    attempts=attempts,
                    last_error=error[:2000],
                    next_attempt_at=now + backoff.wait(attempts, retry_after),
                )
            )
    return dead


def revive_dead(engine: Engine, now: datetime, destination: str | None = None) -> int:
    """Put dead rows back in the queue, due now, with their attempts reset.

    Returns:
        Rows revived.
    """
    query = sa.update(alert_outbox).where(alert_outbox.c.status == "dead")
    if destination is not None:
        query = query.where(alert_outbox.c.destination == destination)
    with engine.begin() as connection:
        result = connection.execute(query.values(status="pending", attempts=0, next_attempt_at=now))
    return int(result.rowcount)


def outbox(engine: Engine, status: str | None = None) -> pd.DataFrame:
    """The outbox as a frame (every row, or those with ``status``), oldest first."""
    query = sa.select(
        alert_outbox.c.id,
        alert_outbox.c.alert_key,
        alert_outbox.c.destination,
        alert_outbox.c.kind,
        alert_outbox.c.lead_id,
        alert_outbox.c.status,
        alert_outbox.c.attempts,
        alert_outbox.c.last_error,
        alert_outbox.c.next_attempt_at,
        alert_outbox.c.sent_at,
    ).order_by(alert_outbox.c.id)
    if status is not None:
        query = query.where(alert_outbox.c.status == status)
    with engine.connect() as connection:
        return read_frame(connection, query)
