"""What every CRM sync shares: values to send, changes, checkpoint, pulled statuses.

Push. Each lead's latest state (``lead_states`` and its latest ``scores`` row, for the
reasons and the next best action) becomes six values (``FIELDS``). A CRM gets them in
its own spelling; the SHA-256 of what was sent is kept per lead and CRM in ``crm_sync``,
so a run sends only what changed. Every batch the CRM accepts is committed at once, with
the checkpoint (``crm_checkpoints``): a run stopped by a revoked token, a crash or ^C
loses nothing, and the next run sends exactly what was not sent yet.

Pull. A CRM's status fields (HubSpot's lifecycle stage and lead status, Salesforce's
Lead Status and conversion) are mapped onto dispositions and recorded with
``store.feedback.record_dispositions``. A status value is dated the first time a pull
sees it (or by the CRM's own date of the event when it has one) and that date is kept in
``crm_sync.pulled``, so a status read again gives the same event and the store's dedup
makes pulling idempotent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from leadscore.errors import LeadscoreError
from store.feedback import FeedbackResult, record_dispositions, set_owners
from store.frames import read_frame
from store.schema import crm_checkpoints, crm_sync, lead_states, scores

FIELDS = ("probability", "score", "grade", "mql", "reasons", "next_action")
"""What leadscore writes onto a CRM record (each CRM names them its own way)."""
MAX_REASONS = 3
"""Positive reasons written (the strongest first)."""
MAX_TEXT = 1000
"""Longest reasons or next-action text written (CRM text fields are limited)."""
OWNER = "owner"
"""The ``Pulled.field`` of a record's owner: it sets the lead's owner in the store (what
the worklist filters by), not a disposition."""
MAX_RETRIES = 5
"""Attempts at one request the CRM rate-limits (429) before giving up."""
MAX_WAIT = 60.0
"""Longest wait for one ``Retry-After`` (seconds)."""

T = TypeVar("T")


class CrmError(LeadscoreError, RuntimeError):
    """A CRM refused the sync, or cannot be reached; the message says what to do."""


class CrmAuthError(CrmError):
    """The CRM refused the credentials (401): revoked, expired, or missing a scope."""


class CrmSchemaError(CrmError):
    """A CRM field leadscore writes exists with another type, or cannot be created."""


class RateLimited(Exception):
    """A CRM answered 429 (or 502-504, busy): try again after ``retry_after`` seconds
    (its ``Retry-After``; None: absent, back off)."""

    def __init__(self, retry_after: float | None, status: int = 429) -> None:
        super().__init__(f"answered {status} (Retry-After: {retry_after})")
        self.retry_after = retry_after
        self.status = status


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def with_retries(
    system: str,
    call: Callable[[], T],
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = MAX_RETRIES,
) -> T:
    """Run ``call``; on ``RateLimited`` wait as the CRM asks (else 1, 2, 4 ... s) and retry.

    Raises:
        CrmError: when the CRM still rate-limits after ``attempts`` tries.
    """
    status = 429
    for attempt in range(attempts):
        try:
            return call()
        except RateLimited as limited:
            status = limited.status
            if attempt == attempts - 1:
                break
            wait = limited.retry_after if limited.retry_after is not None else 2.0**attempt
            sleep(min(wait, MAX_WAIT))
    raise CrmError(
        f"{system}: still answering {status} (busy) after {attempts} tries; nothing is lost, "
        "run the sync again later (it resumes where it stopped)"
    )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _text(items: Iterable[str]) -> str:
    text = "; ".join(s.strip() for s in items if s and s.strip())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _as_obj(value: Any) -> Any:
    """A JSON column's value (SQLite may hand back text)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def card_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """The six values a lead's latest state sends (``FIELDS``), CRM-neutral.

    ``reasons`` is the strongest positive reasons' sentences, ``next_action`` the best
    action's sentence (its name when it has none); missing values are None.
    """
    reasons = _as_obj(row.get("reasons")) or {}
    actions = _as_obj(row.get("next_best_actions")) or []
    positive = reasons.get("positive", []) if isinstance(reasons, dict) else []
    first = actions[0] if actions else {}
    probability = row.get("probability")
    score = row.get("score")
    return {
        "probability": None if pd.isna(probability) else round(float(probability), 4),
        "score": None if pd.isna(score) else int(score),
        "grade": row.get("grade") or None,
        "mql": bool(row.get("mql")),
        "reasons": _text(
            str(r.get("sentence") or r.get("signal") or "") for r in positive[:MAX_REASONS]
        )
        or None,
        "next_action": (_text([str(first.get("sentence") or first.get("action") or "")]) or None)
        if first
        else None,
    }


def latest_values(engine: Engine) -> pd.DataFrame:
    """Every lead's latest state with its latest card: ``lead_id`` then ``FIELDS``,
    sorted by lead id (the order a push goes in, so its cursor means something)."""
    last = (
        sa.select(scores.c.lead_id, sa.func.max(scores.c.id).label("score_id"))
        .select_from(
            scores.join(
                lead_states,
                sa.and_(
                    scores.c.lead_id == lead_states.c.lead_id,
                    scores.c.run_id == lead_states.c.last_run_id,
                ),
            )
        )
        .group_by(scores.c.lead_id)
        .subquery()
    )
    query = (
        sa.select(
            lead_states.c.lead_id,
            lead_states.c.probability,
            lead_states.c.score,
            lead_states.c.grade,
            lead_states.c.mql,
            scores.c.reasons,
            scores.c.next_best_actions,
        )
        .select_from(
            lead_states.outerjoin(last, last.c.lead_id == lead_states.c.lead_id).outerjoin(
                scores, scores.c.id == last.c.score_id
            )
        )
        .order_by(lead_states.c.lead_id)
    )
    with engine.connect() as connection:
        frame = read_frame(connection, query)
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    rows = [card_values(r) for r in records]
    out = pd.DataFrame(rows, columns=list(FIELDS))
    out.insert(0, "lead_id", frame["lead_id"].astype(str).to_numpy() if len(frame) else [])
    return out


def fingerprint(values: Mapping[str, Any]) -> str:
    """SHA-256 of the values as sent (sorted keys), what tells a change."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Change:
    """One record to write: the lead (= CRM id), the values as the CRM takes them, and
    what was sent last time (None: never)."""

    lead_id: str
    values: dict[str, Any]
    before: dict[str, Any] | None

    @property
    def changed(self) -> dict[str, Any]:
        """Only the fields whose value differs from what was sent last time."""
        if self.before is None:
            return dict(self.values)
        return {k: v for k, v in self.values.items() if self.before.get(k) != v}


def _sync_rows(connection: Connection, system: str) -> dict[str, tuple[str, Any]]:
    rows = connection.execute(
        sa.select(crm_sync.c.lead_id, crm_sync.c.fingerprint, crm_sync.c.sent_values).where(
            crm_sync.c.system == system
        )
    )
    return {r.lead_id: (r.fingerprint, _as_obj(r.sent_values)) for r in rows}


def changes(
    engine: Engine, system: str, spell: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[Change]:
    """The leads whose values, spelt for the CRM by ``spell``, differ from those last
    sent (or were never sent), in lead id order."""
    latest = latest_values(engine)
    with engine.connect() as connection:
        sent = _sync_rows(connection, system)
    out = []
    for row in latest.to_dict("records"):
        values = spell({k: row[k] for k in FIELDS})
        lead = str(row["lead_id"])
        before = sent.get(lead)
        if before is None or before[0] != fingerprint(values):
            out.append(Change(lead, values, before[1] if before else None))
    return out


def _upsert(
    connection: Connection, table: sa.Table, keys: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """Insert ``rows``, updating the non-key columns of those whose ``keys`` exist."""
    if not rows:
        return
    dialect = connection.dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    columns = [c for c in rows[0] if c not in keys]
    statement = insert.on_conflict_do_update(
        index_elements=list(keys), set_={c: insert.excluded[c] for c in columns}
    )
    connection.execute(statement, rows)


def _checkpoint(connection: Connection, system: str, **values: Any) -> None:
    _upsert(
        connection,
        crm_checkpoints,
        ["system"],
        [{"system": system, "updated_at": _utc_now(), **values}],
    )


def read_checkpoint(engine: Engine, system: str) -> dict[str, Any] | None:
    """The checkpoint of ``system`` as a dict (None: never synced)."""
    with engine.connect() as connection:
        row = (
            connection.execute(sa.select(crm_checkpoints).where(crm_checkpoints.c.system == system))
            .mappings()
            .first()
        )
    return dict(row) if row else None


@dataclass
class BatchOutcome:
    """What the CRM did with one batch: the ids it updated, and why it refused others."""

    accepted: list[str]
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class PushResult:
    """What a push did (or, in a dry run, would do)."""

    system: str
    changed: int = 0
    sent: int = 0
    batches: int = 0
    refused: dict[str, str] = field(default_factory=dict)
    resumed_after: str | None = None
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The counts, for ``--json``."""
        return {
            "system": self.system,
            "changed": self.changed,
            "sent": self.sent,
            "batches": self.batches,
            "refused": dict(list(self.refused.items())[:100]),
            "refused_count": len(self.refused),
            "resumed_after": self.resumed_after,
            "dry_run": self.dry_run,
        }


def push(
    engine: Engine,
    system: str,
    pending: Sequence[Change],
    send: Callable[[Sequence[Change]], BatchOutcome],
    batch_size: int,
) -> PushResult:
    """Send ``pending`` in batches of ``batch_size``, committing each accepted batch.

    Every batch the CRM accepts is written to ``crm_sync`` (fingerprint, values, time)
    with the checkpoint in one transaction before the next is sent, so an error
    (``CrmAuthError`` for a revoked token) leaves the store exactly in step with the CRM.

    Raises:
        CrmError: whatever ``send`` raised, with how far the run got; the checkpoint says
            ``stopped`` and the next run sends only what is still pending.
    """
    result = PushResult(system=system, changed=len(pending))
    before = read_checkpoint(engine, system)
    if before and before["push_status"] in ("running", "stopped"):
        result.resumed_after = before["push_cursor"]
    with engine.begin() as connection:
        _checkpoint(
            connection,
            system,
            push_status="running",
            push_started_at=_utc_now(),
            push_cursor=None,
            push_sent=0,
            message=None,
        )
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        try:
            outcome = send(batch)
        except CrmError as exc:
            message = (
                f"{exc}; {result.sent:,} of {len(pending):,} changed records were sent and "
                "kept; the next run sends the rest"
            )
            with engine.begin() as connection:
                _checkpoint(connection, system, push_status="stopped", message=message)
            raise type(exc)(message) from exc
        result.batches += 1
        result.refused.update(outcome.refused)
        accepted = set(outcome.accepted)
        now = _utc_now()
        rows = [
            {
                "system": system,
                "lead_id": c.lead_id,
                "fingerprint": fingerprint(c.values),
                "sent_values": c.values,
                "sent_at": now,
            }
            for c in batch
            if c.lead_id in accepted
        ]
        result.sent += len(rows)
        with engine.begin() as connection:
            _upsert(connection, crm_sync, ["system", "lead_id"], rows)
            _checkpoint(connection, system, push_cursor=batch[-1].lead_id, push_sent=result.sent)
    with engine.begin() as connection:
        _checkpoint(connection, system, push_status="done")
    return result


@dataclass(frozen=True)
class Disposition:
    """A stage (one of ``store.schema.STAGES``) and, for ``rejected``, its reason code."""

    stage: str
    reason_code: str | None = None


@dataclass(frozen=True)
class Pulled:
    """One status field of one CRM record, as a pull read it.

    Attributes:
        lead_id: The record's id (= the lead id).
        field: The CRM's field (``hs_lead_status``, ``Status`` ...).
        value: Its value.
        modified_at: When the CRM last changed the record (tz-naive UTC): the date of a
            value seen for the first time.
        occurred_at: The CRM's own date of the event, when it has one (a conversion date).
    """

    lead_id: str
    field: str
    value: str
    modified_at: datetime
    occurred_at: datetime | None = None


@dataclass
class PullResult:
    """What a pull did: records read, statuses mapped, dispositions recorded."""

    system: str
    records: int = 0
    statuses: int = 0
    unknown_leads: int = 0
    before_creation: int = 0
    recorded: int = 0
    duplicates: int = 0
    owners: int = 0
    cursor: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The counts, for ``--json``."""
        return {
            "system": self.system,
            "records": self.records,
            "statuses": self.statuses,
            "unknown_leads": self.unknown_leads,
            "before_creation": self.before_creation,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "owners": self.owners,
            "cursor": self.cursor.isoformat() if self.cursor else None,
        }


def _known(connection: Connection, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = connection.execute(
            sa.select(lead_states.c.lead_id, lead_states.c.created_at).where(
                lead_states.c.lead_id.in_(chunk)
            )
        )
        out.update({r.lead_id: r.created_at for r in rows})
    return out


def _pulled(connection: Connection, system: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        rows = connection.execute(
            sa.select(crm_sync.c.lead_id, crm_sync.c.pulled).where(
                crm_sync.c.system == system, crm_sync.c.lead_id.in_(ids[start : start + 500])
            )
        )
        out.update({r.lead_id: _as_obj(r.pulled) or {} for r in rows})
    return out


def record_pulled(
    engine: Engine,
    system: str,
    statuses: Sequence[Pulled],
    mapping: Callable[[Pulled], Disposition | None],
    records: int,
) -> PullResult:
    """Record what a pull read: each status value dated once, mapped, made a disposition.

    First the dates (``crm_sync.pulled``) are committed, then the dispositions recorded:
    a pull killed between the two records the same events next time, which the store's
    dedup counts as duplicates. Leads the store never scored, and events dated before a
    lead's creation, are counted and skipped (a CRM holds more records than leadscore
    scores). A ``Pulled`` of field ``OWNER`` sets the lead's owner instead. The
    checkpoint's ``pull_cursor`` moves to the newest modification read.
    """
    owners = {s.lead_id: s.value for s in statuses if s.field == OWNER}
    statuses = [s for s in statuses if s.field != OWNER]
    result = PullResult(system=system, records=records, statuses=len(statuses))
    ids = sorted({s.lead_id for s in statuses})
    now = _utc_now()
    events = []
    with engine.begin() as connection:
        known = _known(connection, ids)
        seen = _pulled(connection, system, [i for i in ids if i in known])
        changed: dict[str, dict[str, Any]] = {}
        for status in statuses:
            if status.lead_id not in known:
                result.unknown_leads += 1
                continue
            fields = seen.setdefault(status.lead_id, {})
            before = fields.get(status.field)
            if before and before.get("value") == status.value:
                when = pd.Timestamp(before["at"]).to_pydatetime()
            else:
                when = status.occurred_at or status.modified_at
                fields[status.field] = {"value": status.value, "at": when.isoformat()}
                changed[status.lead_id] = fields
            target = mapping(status)
            if target is None:
                continue
            created = known[status.lead_id]
            if created is not None and pd.Timestamp(when) < pd.Timestamp(created):
                result.before_creation += 1
                continue
            events.append(
                {
                    "lead_id": status.lead_id,
                    "stage": target.stage,
                    "occurred_at": when,
                    "reason_code": target.reason_code,
                    "reason_text": f"{system} {status.field} = {status.value}",
                }
            )
        rows = [
            {"system": system, "lead_id": lead, "pulled": fields, "pulled_at": now}
            for lead, fields in changed.items()
        ]
        _upsert(connection, crm_sync, ["system", "lead_id"], rows)
    if events:
        recorded: FeedbackResult = record_dispositions(
            engine, pd.DataFrame(events), "import", recorded_by_default=f"sync:{system}"
        )
        result.recorded, result.duplicates = recorded.recorded, recorded.duplicates
    if owners:
        result.owners = set_owners(engine, owners)
    newest = max((s.modified_at for s in statuses), default=None)
    if newest is not None:
        result.cursor = newest
        with engine.begin() as connection:
            _checkpoint(connection, system, pull_cursor=newest)
    return result


StatusMap = dict[str, dict[str, Disposition | None]]
"""Per CRM status field, each value's disposition (None: the value is not one)."""


def parse_target(text: str | None) -> Disposition | None:
    """``stage`` or ``rejected:reason_code`` (None, ``""`` or ``none``: not a disposition).

    Raises:
        ValueError: naming what is wrong (an unknown stage or reason code, a rejection
            without a reason, a reason on another stage).
    """
    from store.schema import REJECTION_REASONS, STAGES

    if text is None or str(text).strip().lower() in ("", "none"):
        return None
    head, _, tail = str(text).strip().partition(":")
    stage, reason = head.strip().lower(), tail.strip().lower() or None
    if stage not in STAGES:
        raise ValueError(f"{text!r}: the stage must be one of {', '.join(STAGES)}")
    if stage == "rejected" and reason is None:
        raise ValueError(f"{text!r}: a rejection needs a reason: rejected:<reason code>")
    if reason is not None and stage != "rejected":
        raise ValueError(f"{text!r}: only rejected takes a reason code")
    if reason is not None and reason not in REJECTION_REASONS:
        raise ValueError(f"{text!r}: the reason code must be one of {', '.join(REJECTION_REASONS)}")
    return Disposition(stage, reason)


def read_status_map(path: str | Path, defaults: StatusMap) -> StatusMap:
    """The default status mapping with a YAML file's entries over it.

    The file maps each status field to ``value: stage`` entries (``rejected:reason``
    for a rejection, ``none`` for a value that is no disposition), e.g.
    ``hs_lead_status: {MY_STATUS: "rejected:no_budget"}``.

    Raises:
        CrmError: naming the file and every bad entry.
    """
    import yaml

    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CrmError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CrmError(f"{source}: expected a mapping of status field -> {{value: stage}}")
    merged = {name: dict(values) for name, values in defaults.items()}
    problems = []
    for name, values in data.items():
        if name not in defaults:
            problems.append(
                f"{name!r} is not a status field leadscore pulls (one of {', '.join(defaults)})"
            )
            continue
        if not isinstance(values, dict):
            problems.append(f"{name}: expected value: stage entries")
            continue
        for value, target in values.items():
            try:
                merged[name][str(value)] = parse_target(None if target is None else str(target))
            except ValueError as exc:
                problems.append(f"{name}.{value}: {exc}")
    if problems:
        raise CrmError(f"{source}: " + "; ".join(problems))
    return merged


def status(engine: Engine) -> list[dict[str, Any]]:
    """Per CRM: its checkpoint and how many leads it holds values and statuses of."""
    from store.schema import CRM_SYSTEMS

    out = []
    with engine.connect() as connection:
        for system in CRM_SYSTEMS:
            row = (
                connection.execute(
                    sa.select(crm_checkpoints).where(crm_checkpoints.c.system == system)
                )
                .mappings()
                .first()
            )
            counts = connection.execute(
                sa.select(
                    sa.func.count(crm_sync.c.sent_at), sa.func.count(crm_sync.c.pulled_at)
                ).where(crm_sync.c.system == system)
            ).one()
            out.append(
                {
                    "system": system,
                    **({k: v for k, v in row.items() if k != "system"} if row else {}),
                    "leads_sent": int(counts[0]),
                    "leads_pulled": int(counts[1]),
                }
            )
    return out


def pull_cursor(engine: Engine, system: str) -> datetime | None:
    """Where the last pull of ``system`` got to (None: pull everything)."""
    checkpoint = read_checkpoint(engine, system)
    return checkpoint["pull_cursor"] if checkpoint else None


def print_changes(pending: Sequence[Change], limit: int = 50) -> list[str]:
    """``--dry-run``'s lines: each record and the fields that would change, old -> new."""
    lines = []
    for change in pending[:limit]:
        before = change.before or {}
        parts = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in change.changed.items()]
        lines.append(f"{change.lead_id}: " + ", ".join(parts))
    if len(pending) > limit:
        lines.append(f"... and {len(pending) - limit:,} more")
    return lines


@dataclass
class SyncResult:
    """A whole ``leadscore sync hubspot|salesforce``: what was created, pushed and pulled."""

    created: list[str] = field(default_factory=list)
    push: PushResult | None = None
    pull: PullResult | None = None
    dry_lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "created": self.created,
            "push": self.push.to_dict() if self.push else None,
            "pull": self.pull.to_dict() if self.pull else None,
        }
