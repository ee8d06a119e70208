"""Sales feedback: what reps did with each lead (a *disposition*), recorded idempotently.

Every way in (``POST /feedback``, ``leadscore feedback import`` of a CRM export, the
page) hands ``record_dispositions`` a frame of events and gets the same rules:

* **Validated whole.** Every row is checked (stage, reason code, time, lead) and every
  bad row is reported at once, naming its row and column, in one ``FeedbackError``;
  when any row is bad nothing is written, so a fixed file can simply be imported again.
* **Idempotent.** An event's ``event_key`` is a hash of lead, stage, time and reason
  code; the table's unique constraint on it makes recording the same event twice (a
  re-sent request, a re-imported export) one row, counted as a duplicate.
* **One transaction.** An import killed midway leaves nothing half-written.
* **Out of order is kept, and flagged.** CRMs are edited after the fact, so a stage
  that contradicts the funnel order (``sql`` with no ``accepted`` before it in the same
  episode, ``sql`` after ``opportunity``) is real information, not an error: it is kept
  with ``flag = 'out_of_order'``, and each import re-derives the flags of the leads it
  touches, since a late-recorded ``accepted`` can put a stored ``sql`` back in order.

Only leads the store knows (``lead_states``: scored at least once) take feedback, and no
stage may predate the lead's creation: both point at a wrong id or a wrong date column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from features.dataset_config.feedback import FeedbackConfig
from features.dataset_config.schema import did_you_mean
from leadscore.errors import LeadscoreError
from store.frames import read_frame
from store.schema import LEAD_ID, REJECTION_REASONS, STAGES, dispositions, lead_states

FEEDBACK_COLUMNS = (
    "lead_id",
    "stage",
    "occurred_at",
    "reason_code",
    "reason_text",
    "recorded_by",
    "owner",
)
"""What an event may carry (``lead_id``, ``stage`` and ``occurred_at`` are required;
``owner`` sets the lead's owner in ``lead_states``)."""
REQUIRED_COLUMNS = FEEDBACK_COLUMNS[:3]
SOURCES = ("api", "import", "page")
"""Where an event came from (``dispositions.source``)."""
OUT_OF_ORDER = "out_of_order"
MAX_LISTED = 20
"""Bad rows spelled out in an error's message; the count says how many there are in all."""
MAX_TEXT = 4000
"""Longest free-text reason kept."""
MAX_NAME = 200
"""Longest ``recorded_by`` and ``owner`` (the columns' width)."""
FUTURE_SLACK = pd.Timedelta(days=1)
"""How far after "now" an event may be dated (clocks and time zones differ), no further."""
CHUNK = 500
"""Rows per insert statement (and per ``IN`` list of a read)."""

_RANK = {"accepted": 1, "rejected": 1, "sql": 2, "opportunity": 3, "won": 4, "lost": 4}
_ENDS_EPISODE = frozenset({"rejected", "won", "lost"})


@dataclass(frozen=True)
class Naming:
    """How messages name what they are about, in the words of whoever sent the events.

    Attributes:
        where: What the events are (a file name, ``body``); starts the message.
        rows: Each row's label (e.g. its CSV row number); default: its 0-based position.
        columns: Each canonical column's name in the source (``stage`` -> ``Status``).
    """

    where: str = "feedback"
    rows: Sequence[int] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)

    def row(self, position: int) -> int:
        """The label of the row at ``position``."""
        return int(self.rows[position]) if self.rows is not None else position

    def column(self, name: str) -> str:
        """The source's name of canonical column ``name``."""
        return self.columns.get(name, name)


@dataclass(frozen=True)
class FeedbackProblem:
    """One thing wrong with the events.

    Attributes:
        position: The row's 0-based position in the frame (None: about the whole frame).
        column: The canonical column it is about (None: the row as a whole).
        message: What is wrong, and what would be right.
        lead_id: The row's lead, when it has one.
    """

    position: int | None
    column: str | None
    message: str
    lead_id: str | None = None

    def describe(self, naming: Naming) -> str:
        """``row 5 (lead 'L9'), column 'Status': ...`` in the source's words."""
        parts = []
        if self.position is not None:
            lead = f" (lead {self.lead_id!r})" if self.lead_id else ""
            parts.append(f"row {naming.row(self.position)}{lead}")
        if self.column is not None:
            parts.append(f"column {naming.column(self.column)!r}")
        where = ", ".join(parts)
        return f"{where}: {self.message}" if where else self.message


class FeedbackError(LeadscoreError, ValueError):
    """Feedback refused, nothing written: lists the bad rows, each naming row and column.

    Attributes:
        details: Every problem, as ``FeedbackProblem``.
        problems: The first ``MAX_LISTED`` problems in words (and how many more there are).
        bad_rows: How many rows are refused.
    """

    def __init__(self, details: list[FeedbackProblem], rows: int, naming: Naming) -> None:
        self.details = details
        self.naming = naming
        positions = {d.position for d in details}
        self.bad_rows = len(positions - {None})
        self.problems = [d.describe(naming) for d in details[:MAX_LISTED]]
        if len(details) > MAX_LISTED:
            self.problems.append(f"... and {len(details) - MAX_LISTED} more")
        if None in positions:
            head = f"{naming.where}: cannot record this feedback, nothing recorded"
        else:
            head = f"{naming.where}: {self.bad_rows} of {rows} row(s) refused, nothing recorded"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}\n{lines}")


@dataclass(frozen=True)
class FeedbackResult:
    """What recording a batch of events did.

    Attributes:
        received: Rows handed in.
        recorded: New events written.
        duplicates: Rows already stored (or repeated in the batch): not written again.
        flagged: New events written with a flag (``out_of_order``).
        reflagged: Stored events whose flag changed because of the new ones.
        owners: Leads whose owner was set or changed.
    """

    received: int
    recorded: int
    duplicates: int
    flagged: int
    reflagged: int = 0
    owners: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counts as a plain mapping (JSON answers, ``--json``)."""
        return asdict(self)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def event_key(lead_id: str, stage: str, occurred_at: pd.Timestamp, reason_code: str | None) -> str:
    """The stable identity of one event: SHA-256 of lead, stage, time and reason code.

    The time is written to the microsecond in ISO form, so the same moment read from a
    CSV, a JSON body or the store gives the same key.
    """
    when = pd.Timestamp(occurred_at).strftime("%Y-%m-%dT%H:%M:%S.%f")
    text = "\x1f".join((lead_id, stage, when, reason_code or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(values: pd.Series | None, n: int) -> pd.Series:
    """Stripped text, missing and empty values as None, as an object column (so None
    stays None whatever pandas' string inference would make of it)."""
    out: list[str | None] = [None] * n
    if values is not None:
        for i, value in enumerate(values.tolist()):
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            out[i] = str(value).strip() or None
    return pd.Series(out, dtype=object)


def _canonical(values: pd.Series, words: Sequence[str]) -> pd.Series:
    """Each value as the word of ``words`` it spells in any case (``SQL``: ``sql``); a
    value that spells none stays as given, for the message that refuses it."""
    known = set(words)
    return pd.Series(
        [v.lower() if v is not None and v.lower() in known else v for v in values],
        dtype=object,
    )


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def _clean(
    frame: pd.DataFrame, recorded_by_default: str | None, now: datetime
) -> tuple[pd.DataFrame, list[FeedbackProblem]]:
    """The events in canonical form, and every problem a row has on its own."""
    problems: list[FeedbackProblem] = []
    n = len(frame)
    clean = pd.DataFrame(
        {c: _text(frame.get(c), n) for c in FEEDBACK_COLUMNS if c != "occurred_at"}
    )
    clean["stage"] = _canonical(clean["stage"], STAGES)
    clean["reason_code"] = _canonical(clean["reason_code"], REJECTION_REASONS)
    given = [
        None if v is None or (not isinstance(v, str) and pd.isna(v)) else v
        for v in frame["occurred_at"].tolist()
    ]
    raw_times = pd.Series(given, dtype=object)
    times = pd.to_datetime(raw_times, errors="coerce", utc=True, format="ISO8601")
    clean["occurred_at"] = times.dt.tz_convert(None).astype("datetime64[ns]")
    if recorded_by_default:
        clean["recorded_by"] = pd.Series(
            [who or recorded_by_default for who in clean["recorded_by"]], dtype=object
        )
    latest = pd.Timestamp(now) + FUTURE_SLACK
    records: list[dict[str, Any]] = clean.to_dict("records")  # type: ignore[assignment]
    for i, row in enumerate(records):
        problems += [
            FeedbackProblem(i, column, message, row["lead_id"])
            for column, message in _row_problems(row, given[i], latest)
        ]
    return clean.reset_index(drop=True), problems


def _row_problems(
    row: dict[str, Any], given_time: Any, latest: pd.Timestamp
) -> list[tuple[str, str]]:
    """(column, message) for each thing wrong with one cleaned row on its own."""
    out: list[tuple[str, str]] = []
    lead: str | None = row["lead_id"]
    if lead is None:
        out.append(("lead_id", "lead_id is missing"))
    elif len(lead) > LEAD_ID:
        out.append(("lead_id", f"lead_id is longer than {LEAD_ID} characters"))
    stage: str | None = row["stage"]
    if stage is None:
        out.append(("stage", f"stage is missing: give one of {_choices(STAGES)}"))
    elif stage not in STAGES:
        out.append(
            (
                "stage",
                f"{stage!r} is not a stage: one of {_choices(STAGES)}{did_you_mean(stage, STAGES)}",
            )
        )
    when = row["occurred_at"]
    if pd.isna(when):
        out.append(
            (
                "occurred_at",
                "occurred_at is missing"
                if given_time is None
                else f"{str(given_time)[:60]!r} is not a date and time (ISO 8601, e.g. "
                "2025-03-01T14:30:00, UTC unless it carries an offset)",
            )
        )
    elif pd.Timestamp(when) > latest:
        out.append(("occurred_at", f"{pd.Timestamp(when)} is in the future"))
    code: str | None = row["reason_code"]
    if stage == "rejected":
        if code is None:
            out.append(
                (
                    "reason_code",
                    f"a rejection needs a reason_code: one of {_choices(REJECTION_REASONS)}",
                )
            )
        elif code not in REJECTION_REASONS:
            out.append(
                (
                    "reason_code",
                    f"{code!r} is not a rejection reason: one of "
                    f"{_choices(REJECTION_REASONS)}{did_you_mean(code, REJECTION_REASONS)}",
                )
            )
    elif code is not None and stage in STAGES:
        out.append(
            (
                "reason_code",
                f"a reason_code is only for rejected leads, not for stage {stage!r} "
                "(put notes in reason_text)",
            )
        )
    text: str | None = row["reason_text"]
    if text is not None and len(text) > MAX_TEXT:
        out.append(("reason_text", f"reason_text is longer than {MAX_TEXT} characters"))
    who: str | None = row["recorded_by"]
    if who is None:
        out.append(("recorded_by", "recorded_by is missing: who recorded this event?"))
    elif len(who) > MAX_NAME:
        out.append(("recorded_by", f"recorded_by is longer than {MAX_NAME} characters"))
    owner: str | None = row["owner"]
    if owner is not None and len(owner) > MAX_NAME:
        out.append(("owner", f"owner is longer than {MAX_NAME} characters"))
    return out


def _frame_problems(frame: pd.DataFrame) -> list[FeedbackProblem]:
    """Missing and unknown columns: the frame cannot be read at all."""
    problems = [
        FeedbackProblem(None, c, f"column {c!r} is missing (needed: {_choices(REQUIRED_COLUMNS)})")
        for c in REQUIRED_COLUMNS
        if c not in frame
    ]
    problems += [
        FeedbackProblem(
            None,
            None,
            f"unknown column {c!r}{did_you_mean(c, FEEDBACK_COLUMNS)} "
            f"(known: {_choices(FEEDBACK_COLUMNS)})",
        )
        for c in frame.columns
        if c not in FEEDBACK_COLUMNS
    ]
    return problems


def _known_leads(connection: Connection, ids: list[str]) -> pd.DataFrame:
    """``lead_id`` and ``created_at`` of the leads among ``ids`` the store knows."""
    parts = [
        read_frame(
            connection,
            sa.select(lead_states.c.lead_id, lead_states.c.created_at).where(
                lead_states.c.lead_id.in_(ids[start : start + CHUNK])
            ),
        )
        for start in range(0, len(ids), CHUNK)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _store_problems(clean: pd.DataFrame, known: pd.DataFrame) -> list[FeedbackProblem]:
    """Rows about a lead the store does not know, or dated before the lead existed."""
    created = dict(zip(known["lead_id"], known["created_at"], strict=True)) if len(known) else {}
    problems = []
    for i, (lead, when) in enumerate(zip(clean["lead_id"], clean["occurred_at"], strict=True)):
        if lead is None or len(lead) > LEAD_ID:  # already refused on its own
            continue
        if lead not in created:
            problems.append(
                FeedbackProblem(
                    i,
                    "lead_id",
                    f"unknown lead {lead!r}: the lead store has never scored it "
                    "(leads enter the store when `leadscore score` scores them)",
                    lead,
                )
            )
        elif not pd.isna(when) and not pd.isna(start := created[lead]) and when < start:
            problems.append(
                FeedbackProblem(
                    i,
                    "occurred_at",
                    f"{when} is before the lead was created ({start})",
                    lead,
                )
            )
    return problems


def out_of_order_flags(events: pd.DataFrame) -> pd.Series:
    """``out_of_order`` for each event that contradicts its lead's funnel, else None.

    A lead's events are walked in time order (equal times in funnel order). An
    *episode* runs until ``rejected``, ``won`` or ``lost`` (an MQL can come back later and
    be accepted again). Within an episode, ``sql``, ``opportunity``, ``won`` and ``lost``
    need an ``accepted`` before them, and may not step back (``sql`` after
    ``opportunity``).

    Args:
        events: ``lead_id``, ``stage``, ``occurred_at`` (any index).

    Returns:
        The flags, on ``events``' index.
    """
    flags = pd.Series([None] * len(events), index=events.index, dtype=object)
    if events.empty:
        return flags
    order = events.assign(_rank=events["stage"].map(_RANK)).sort_values(
        ["lead_id", "occurred_at", "_rank"], kind="stable"
    )
    current: object = None
    accepted, highest = False, 0
    for index, lead, stage, rank in zip(
        order.index, order["lead_id"], order["stage"], order["_rank"], strict=True
    ):
        if lead != current:
            current, accepted, highest = lead, False, 0
        if stage == "accepted":
            accepted = True
        elif stage != "rejected" and (not accepted or rank < highest):
            flags.at[index] = OUT_OF_ORDER
        highest = max(highest, int(rank))
        if stage in _ENDS_EPISODE:
            accepted, highest = False, 0
    return flags


def _stored(connection: Connection, ids: list[str]) -> pd.DataFrame:
    """The stored events of the leads ``ids`` (what the flags are derived from)."""
    columns = (
        dispositions.c.id,
        dispositions.c.event_key,
        dispositions.c.lead_id,
        dispositions.c.stage,
        dispositions.c.occurred_at,
        dispositions.c.flag,
    )
    parts = [
        read_frame(
            connection,
            sa.select(*columns).where(dispositions.c.lead_id.in_(ids[start : start + CHUNK])),
        )
        for start in range(0, len(ids), CHUNK)
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in columns])
    return frame


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert new events, a chunk at a time, skipping any key another writer stored
    meanwhile (the unique constraint on ``event_key`` decides, not this process)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(dispositions).on_conflict_do_nothing(index_elements=["event_key"])
    for start in range(0, len(rows), CHUNK):
        _insert_chunk(connection, statement, rows[start : start + CHUNK])


def _insert_chunk(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    connection.execute(statement, rows)


def _set_owners(connection: Connection, owners: Mapping[str, str]) -> int:
    """Set ``lead_states.owner`` of each lead in ``owners``; returns how many changed."""
    if not owners:
        return 0
    current = {}
    ids = list(owners)
    for start in range(0, len(ids), CHUNK):
        query = sa.select(lead_states.c.lead_id, lead_states.c.owner).where(
            lead_states.c.lead_id.in_(ids[start : start + CHUNK])
        )
        current.update({r.lead_id: r.owner for r in connection.execute(query)})
    changed = [
        {"b_lead": lead, "b_owner": owner}
        for lead, owner in owners.items()
        if lead in current and current[lead] != owner
    ]
    if changed:
        connection.execute(
            sa.update(lead_states)
            .where(lead_states.c.lead_id == sa.bindparam("b_lead"))
            .values(owner=sa.bindparam("b_owner")),
            changed,
        )
    return len(changed)


def record_dispositions(
    engine: Engine,
    frame: pd.DataFrame,
    source: str,
    recorded_by_default: str | None = None,
    now: datetime | pd.Timestamp | None = None,
    naming: Naming | None = None,
) -> FeedbackResult:
    """Record sales dispositions: validated whole, idempotent, in one transaction.

    Args:
        engine: An open, migrated store (``store.engine.open_store``).
        frame: One event a row: ``lead_id``, ``stage`` (one of ``STAGES``, any case),
            ``occurred_at`` (a time, or ISO 8601 text; UTC unless it carries an offset),
            and optionally ``reason_code`` (required for ``rejected``, one of
            ``REJECTION_REASONS``; refused for other stages), ``reason_text``,
            ``recorded_by`` and ``owner`` (sets the lead's owner: its latest event's wins).
        source: Where the events came from: one of ``SOURCES``.
        recorded_by_default: Who recorded the rows that do not say.
        now: The time of recording (default: now, UTC); events may not be later than
            a day after it.
        naming: How errors name rows and columns (default: 0-based positions, canonical
            column names).

    Returns:
        The counts: recorded, duplicates, flagged, reflagged, owners.

    Raises:
        FeedbackError: listing every bad row (unknown lead or stage, a missing or wrong
            reason code, a time that is not one or is before the lead existed ...);
            nothing is written then.
    """
    naming = naming or Naming()
    if source not in SOURCES:
        raise FeedbackError(
            [FeedbackProblem(None, None, f"source must be one of {_choices(SOURCES)}")],
            len(frame),
            naming,
        )
    if problems := _frame_problems(frame):
        raise FeedbackError(problems, len(frame), naming)
    if frame.empty:
        return FeedbackResult(received=0, recorded=0, duplicates=0, flagged=0)
    recorded_at = pd.Timestamp(now if now is not None else _utc_now()).to_pydatetime()
    clean, problems = _clean(frame, recorded_by_default, recorded_at)
    ids = sorted({lead for lead in clean["lead_id"] if lead is not None and len(lead) <= LEAD_ID})
    with engine.begin() as connection:
        problems += _store_problems(clean, _known_leads(connection, ids))
        if problems:
            problems.sort(key=lambda p: -1 if p.position is None else p.position)
            raise FeedbackError(problems, len(frame), naming)
        return _write(connection, clean, ids, source, recorded_at)


def _flag(value: object) -> str | None:
    """A flag as text, or None (pandas may hand a missing one over as NaN)."""
    return value if isinstance(value, str) else None


def _write(
    connection: Connection, clean: pd.DataFrame, ids: list[str], source: str, recorded_at: datetime
) -> FeedbackResult:
    """Write the validated events (``clean``) in the open transaction of ``connection``."""
    clean = clean.assign(
        event_key=[
            event_key(lead, stage, when, code)
            for lead, stage, when, code in zip(
                clean["lead_id"],
                clean["stage"],
                clean["occurred_at"],
                clean["reason_code"],
                strict=True,
            )
        ]
    )
    stored = _stored(connection, ids)
    fresh = clean.drop_duplicates("event_key")
    fresh = fresh[~fresh["event_key"].isin(set(stored["event_key"]))]
    events = pd.concat(
        [
            stored[["lead_id", "stage", "occurred_at"]].assign(_new=False),
            fresh[["lead_id", "stage", "occurred_at"]].assign(_new=True),
        ],
        ignore_index=True,
    )
    flags = out_of_order_flags(events)
    new_flags = [_flag(f) for f in flags[events["_new"].to_numpy()]]
    old_flags = [_flag(f) for f in flags[~events["_new"].to_numpy()]]
    changed = [
        {"b_id": int(i), "b_flag": f}
        for i, f, was in zip(stored["id"], old_flags, stored["flag"], strict=True)
        if f != _flag(was)
    ]
    records: list[dict[str, Any]] = fresh.to_dict("records")  # type: ignore[assignment]
    rows = [
        {
            "event_key": r["event_key"],
            "lead_id": r["lead_id"],
            "stage": r["stage"],
            "reason_code": r["reason_code"],
            "reason_text": r["reason_text"],
            "occurred_at": pd.Timestamp(r["occurred_at"]).to_pydatetime(),
            "recorded_by": r["recorded_by"],
            "recorded_at": recorded_at,
            "source": source,
            "flag": flag,
        }
        for r, flag in zip(records, new_flags, strict=True)
    ]
    _insert(connection, rows)
    if changed:
        connection.execute(
            sa.update(dispositions)
            .where(dispositions.c.id == sa.bindparam("b_id"))
            .values(flag=sa.bindparam("b_flag")),
            changed,
        )
    with_owner = clean[clean["owner"].notna()].sort_values("occurred_at", kind="stable")
    owners = dict(zip(with_owner["lead_id"], with_owner["owner"], strict=True))
    return FeedbackResult(
        received=len(clean),
        recorded=len(rows),
        duplicates=len(clean) - len(rows),
        flagged=int(sum(f is not None for f in new_flags)),
        reflagged=len(changed),
        owners=_set_owners(connection, owners),
    )


def config_problems(config: FeedbackConfig) -> list[str]:
    """The problems of a dataset config's ``feedback:`` mapping that only the store can
    see: a value mapped onto a stage or reason code that does not exist, or a reason code
    given to a stage other than ``rejected``; worded as the config's other problems."""
    problems = []
    for value, target in config.stages.items():
        if target is None:
            continue
        where = f"feedback.stages[{value!r}]"
        if target.stage not in STAGES:
            problems.append(
                f"{where}: {target.stage!r} is not a stage: one of {_choices(STAGES)}"
                f"{did_you_mean(target.stage, STAGES)}"
            )
        code = target.reason_code
        if code is not None and code not in REJECTION_REASONS:
            problems.append(
                f"{where}: reason_code {code!r} is not one of "
                f"{_choices(REJECTION_REASONS)}{did_you_mean(code, REJECTION_REASONS)}"
            )
        elif target.reason_code is not None and target.stage != "rejected":
            problems.append(f"{where}: a reason_code is only for the stage rejected")
    for value, code in config.reasons.items():
        if code not in REJECTION_REASONS:
            problems.append(
                f"feedback.reasons[{value!r}]: {code!r} is not one of "
                f"{_choices(REJECTION_REASONS)}{did_you_mean(code, REJECTION_REASONS)}"
            )
    return problems


def set_owners(engine: Engine, owners: Mapping[str, str]) -> int:
    """Set the owner of known leads (``lead_id -> owner``), e.g. from a CRM export.

    Leads the store does not know are skipped. Returns how many owners changed.
    """
    with engine.begin() as connection:
        return _set_owners(connection, {str(k): str(v) for k, v in owners.items()})


def leads_dispositions(
    engine: Engine,
    lead_ids: Sequence[str] | None = None,
    since: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    stages: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The stored dispositions as a frame, by lead and time (what funnels count from).

    Args:
        engine: An open store.
        lead_ids: Only these leads (default: all).
        since: Only events at or after this time.
        until: Only events before this time.
        stages: Only these stages.

    Returns:
        Columns ``lead_id``, ``stage``, ``reason_code``, ``reason_text``, ``occurred_at``,
        ``recorded_by``, ``recorded_at``, ``source``, ``flag``, ``event_key``; sorted by
        lead, then time.
    """
    columns = [
        dispositions.c.lead_id,
        dispositions.c.stage,
        dispositions.c.reason_code,
        dispositions.c.reason_text,
        dispositions.c.occurred_at,
        dispositions.c.recorded_by,
        dispositions.c.recorded_at,
        dispositions.c.source,
        dispositions.c.flag,
        dispositions.c.event_key,
    ]
    query = sa.select(*columns).order_by(
        dispositions.c.lead_id, dispositions.c.occurred_at, dispositions.c.id
    )
    if since is not None:
        query = query.where(dispositions.c.occurred_at >= pd.Timestamp(since).to_pydatetime())
    if until is not None:
        query = query.where(dispositions.c.occurred_at < pd.Timestamp(until).to_pydatetime())
    if stages is not None:
        query = query.where(dispositions.c.stage.in_(list(stages)))
    with engine.connect() as connection:
        if lead_ids is None or len(lead_ids) <= CHUNK:
            if lead_ids is not None:
                query = query.where(dispositions.c.lead_id.in_([str(i) for i in lead_ids]))
            frame = read_frame(connection, query)
        else:
            frame = read_frame(connection, query)
            frame = frame[frame["lead_id"].isin({str(i) for i in lead_ids})]
    if frame.empty:
        frame = pd.DataFrame({c.name: pd.Series(dtype=object) for c in columns})
        for name in ("occurred_at", "recorded_at"):
            frame[name] = frame[name].astype("datetime64[ns]")
    return frame.reset_index(drop=True)
