"""The reps' worklist and lead drawer, read from the lead store in SQL.

``GET /worklist`` pages through ``lead_states`` (each lead's latest state) with filters and
a sort; ``GET /leads/{lead_id}`` gathers one lead's latest card, timeline and dispositions.

Momentum is ``store.history.momentum``'s, computed in the database instead of pandas: a
lead's latest score minus its latest score on or before 7 (30) days before that one, None
when it has no score that old. A correlated sub-query per lead walks the
``scores(lead_id, as_of)`` index backwards to the first score old enough: a page of 50
costs 100 index seeks (7 and 30 days), sorting 50,000 leads by momentum one seek per lead,
and no history is read into Python (``benchmarks/bench_worklist.py``). Timestamps differ
between the two databases (text on SQLite, ``timestamp`` on PostgreSQL), hence
``DaysBefore``, which SQLAlchemy compiles per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from leadscore.errors import LeadscoreError
from store.feedback import leads_dispositions
from store.history import MOMENTUM_DAYS, timeline
from store.schema import lead_states, scores, scoring_runs

SORTS = ("score", "momentum_7d", "momentum_30d", "mql_since", "probability", "lead_id")
"""What the worklist can be sorted by."""
MAX_LIMIT = 500
"""Most leads one page holds."""
MOMENTUM_LOOKBACK_DAYS = 366
"""``store.history.momentum`` ignores scores older than its longest window plus this."""
FACETS = ("region", "grade", "lead_source", "owner")
"""Columns whose distinct values the page offers as filters."""


class WorklistError(LeadscoreError, ValueError):
    """A worklist request the store cannot answer as asked (the message names the field)."""


class DaysBefore(ColumnElement[Any]):
    """``column`` minus ``days`` whole days, in the column's own storage form.

    On SQLite a time is text ``YYYY-MM-DD HH:MM:SS.ffffff`` (``store.frames.SQLITE_TIME``):
    the date part is shifted with ``strftime`` and the original fraction appended, so the
    result compares as text exactly as the stored times do (7 days before a weekly run
    equals the previous run, to the microsecond).
    """

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any], days: int) -> None:
        self.column = column
        self.days = int(days)
        self.type = sa.DateTime()


@compiles(DaysBefore)
def _days_before_default(element: DaysBefore, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"({column} - INTERVAL '{element.days} days')"


@compiles(DaysBefore, "sqlite")
def _days_before_sqlite(element: DaysBefore, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '-{element.days} days') || substr({column}, 20))"
    )


@dataclass(frozen=True)
class WorklistQuery:
    """What a rep asked the worklist for.

    Attributes:
        mql: True: MQLs only; False: non-MQLs only; None: every lead.
        region, grade, lead_source, owner: Keep leads with one of these values (empty: any).
        new_since: Only leads whose current MQL episode began after this time.
        sort: One of ``SORTS``.
        descending: Largest first (leads without a value come last either way).
        limit: Leads in the page (1 to ``MAX_LIMIT``).
        offset: Leads skipped before the page.
    """

    mql: bool | None = None
    region: tuple[str, ...] = ()
    grade: tuple[str, ...] = ()
    lead_source: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    new_since: pd.Timestamp | None = None
    sort: str = "score"
    descending: bool = True
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise WorklistError(f"sort: {self.sort!r} is not one of {', '.join(SORTS)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise WorklistError(f"limit: {self.limit} is not between 1 and {MAX_LIMIT}")
        if self.offset < 0:
            raise WorklistError(f"offset: {self.offset} is negative")


@dataclass
class WorklistPage:
    """One page of the worklist: its leads, how many match in all, and the store's time."""

    total: int
    leads: list[dict[str, Any]]
    as_of: pd.Timestamp | None
    query: WorklistQuery = field(default_factory=WorklistQuery)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``GET /worklist``."""
        return {
            "total": self.total,
            "limit": self.query.limit,
            "offset": self.query.offset,
            "sort": self.query.sort,
            "order": "desc" if self.query.descending else "asc",
            "as_of": iso_time(self.as_of),
            "leads": self.leads,
        }


def parse_time(value: str | None, name: str) -> pd.Timestamp | None:
    """An ISO date or time from a query string, as tz-naive UTC (the store's form).

    Raises:
        WorklistError: naming ``name`` when the value is not a date.
    """
    if value is None or not value.strip():
        return None
    try:
        stamp = pd.Timestamp(value.strip())
    except (ValueError, TypeError):
        raise WorklistError(f"{name}: {value!r} is not an ISO date or time") from None
    if pd.isna(stamp):
        raise WorklistError(f"{name}: {value!r} is not an ISO date or time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def iso_time(value: Any) -> str | None:
    """A stored time as ISO text (UTC, no zone: the store keeps tz-naive UTC)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.isoformat()


def momentum_column(
    scores_table: sa.Table,
    states: sa.Table,
    key: str,
    days: int,
    end: pd.Timestamp | None,
    windows: tuple[int, ...],
) -> ColumnElement[Any]:
    """A subject's latest score minus its latest on or before ``days`` before that one.

    A correlated sub-query walking the ``(key, as_of)`` index backwards; scores older than
    the longest of ``windows`` plus ``MOMENTUM_LOOKBACK_DAYS`` before ``end`` are ignored,
    as ``store.history`` does. Shared by leads and accounts (``serving.account_view``).
    """
    past = (
        sa.select(scores_table.c.score)
        .where(
            scores_table.c[key] == states.c[key],
            scores_table.c.as_of <= DaysBefore(states.c.last_as_of, days),
        )
        .order_by(scores_table.c.as_of.desc(), scores_table.c.id.desc())
        .limit(1)
    )
    if end is not None:
        oldest = end - pd.Timedelta(days=max(windows) + MOMENTUM_LOOKBACK_DAYS)
        past = past.where(scores_table.c.as_of >= oldest.to_pydatetime())
    return (states.c.score - past.scalar_subquery()).label(f"momentum_{days}d")


def _momentum(days: int, end: pd.Timestamp | None) -> ColumnElement[Any]:
    return momentum_column(scores, lead_states, "lead_id", days, end, MOMENTUM_DAYS)


def _filters(query: WorklistQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.mql is not None:
        where.append(lead_states.c.mql.is_(query.mql))
    for name in FACETS:
        values = getattr(query, name)
        if values:
            where.append(lead_states.c[name].in_(list(values)))
    if query.new_since is not None:
        where.append(lead_states.c.mql_since > query.new_since.to_pydatetime())
    return where


def _latest(connection: sa.Connection) -> pd.Timestamp | None:
    value = connection.execute(sa.select(sa.func.max(lead_states.c.last_as_of))).scalar()
    return None if value is None else pd.Timestamp(value)


LEAD_COLUMNS = (
    "lead_id",
    "score",
    "probability",
    "grade",
    "mql",
    "mql_since",
    "region",
    "lead_source",
    "owner",
    "created_at",
    "last_as_of",
    "mql_episodes",
)
"""What each worklist row carries from ``lead_states`` (plus ``momentum_7d``/``_30d``)."""


def _row(mapping: Any) -> dict[str, Any]:
    row = {name: mapping[name] for name in (*LEAD_COLUMNS, "momentum_7d", "momentum_30d")}
    for name in ("mql_since", "created_at", "last_as_of"):
        row[name] = iso_time(row[name])
    row["mql"] = bool(row["mql"])
    return row


def worklist(engine: Engine, query: WorklistQuery) -> WorklistPage:
    """One page of leads, filtered and sorted, with each one's momentum.

    Three statements: the count of matching leads, the page, and the momentum of the
    page's leads (a database computes a selected sub-query for every row it sorts, so
    momentum is selected with the page only when the page is sorted by it). Ties are
    broken by ``lead_id`` so paging never shows a lead twice or skips one.
    """
    where = _filters(query)
    columns: list[ColumnElement[Any]] = [lead_states.c[name] for name in LEAD_COLUMNS]
    with engine.connect() as connection:
        end = _latest(connection)
        total = connection.execute(
            sa.select(sa.func.count()).select_from(lead_states).where(*where)
        ).scalar_one()
        tie = lead_states.c.lead_id.asc()
        if query.sort.startswith("momentum"):
            # Sorted by the sub-query's label: it runs once per lead, not twice.
            days = int(query.sort.removeprefix("momentum_").removesuffix("d"))
            columns.append(_momentum(days, end))
            key: ColumnElement[Any] = sa.literal_column(query.sort)
        else:
            key = lead_states.c[query.sort]
        direction = key.desc() if query.descending else key.asc()
        order = [direction] if query.sort == "lead_id" else [direction.nulls_last(), tie]
        statement = (sa.select(*columns).where(*where).order_by(*order).limit(query.limit)).offset(
            query.offset
        )
        page = [dict(r) for r in connection.execute(statement).mappings()]
        moves = _page_momentum(connection, [r["lead_id"] for r in page], end)
    rows = [_row({**r, **moves.get(r["lead_id"], {})}) for r in page]
    return WorklistPage(total=int(total), leads=rows, as_of=end, query=query)


def _page_momentum(
    connection: sa.Connection, lead_ids: list[str], end: pd.Timestamp | None
) -> dict[str, dict[str, Any]]:
    """``momentum_7d`` and ``momentum_30d`` of these leads, by lead."""
    if not lead_ids:
        return {}
    statement = sa.select(lead_states.c.lead_id, _momentum(7, end), _momentum(30, end)).where(
        lead_states.c.lead_id.in_(lead_ids)
    )
    return {
        r["lead_id"]: {"momentum_7d": r["momentum_7d"], "momentum_30d": r["momentum_30d"]}
        for r in connection.execute(statement).mappings()
    }


def facets(engine: Engine) -> dict[str, list[str]]:
    """The distinct values of each filter column, for the page's selects."""
    out: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for name in FACETS:
            column = lead_states.c[name]
            values = connection.execute(
                sa.select(column).where(column.is_not(None)).distinct().order_by(column)
            ).scalars()
            out[name] = [str(v) for v in values]
    return out


def _latest_card(connection: sa.Connection, lead_id: str) -> dict[str, Any] | None:
    statement = (
        sa.select(
            scores.c.as_of,
            scores.c.run_id,
            scoring_runs.c.source,
            scores.c.model_version,
            scores.c.probability,
            scores.c.probability_low,
            scores.c.probability_high,
            scores.c.score,
            scores.c.grade,
            scores.c.mql,
            scores.c.threshold,
            scores.c.region,
            scores.c.lead_source,
            scores.c.created_at,
            scores.c.reasons,
            scores.c.next_best_actions,
        )
        .join(scoring_runs, scoring_runs.c.id == scores.c.run_id)
        .where(scores.c.lead_id == lead_id)
        .order_by(scores.c.as_of.desc(), scores.c.id.desc())
        .limit(1)
    )
    found = connection.execute(statement).mappings().first()
    if found is None:
        return None
    card = dict(found)
    for name in ("as_of", "created_at"):
        card[name] = iso_time(card[name])
    card["mql"] = bool(card["mql"])
    card["reasons"] = card["reasons"] or {"positive": [], "negative": []}
    card["next_best_actions"] = card["next_best_actions"] or []
    return card


def _state(connection: sa.Connection, lead_id: str) -> dict[str, Any] | None:
    end = _latest(connection)
    statement = sa.select(
        *(lead_states.c[name] for name in LEAD_COLUMNS),
        lead_states.c.first_mql_at,
        lead_states.c.last_mql_at,
        _momentum(7, end),
        _momentum(30, end),
    ).where(lead_states.c.lead_id == lead_id)
    found = connection.execute(statement).mappings().first()
    if found is None:
        return None
    state = _row(found)
    state["first_mql_at"] = iso_time(found["first_mql_at"])
    state["last_mql_at"] = iso_time(found["last_mql_at"])
    return state


def records(frame: pd.DataFrame, times: tuple[str, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record in frame.to_dict(orient="records"):
        clean = {str(k): (None if _missing(v) else v) for k, v in record.items()}
        for name in times:
            clean[name] = iso_time(clean.get(name))
        out.append(clean)
    return out


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def activity_summary(card: dict[str, Any] | None) -> dict[str, Any]:
    """What the latest card says about the lead's activity: its engagement signals.

    The store keeps scores, not the activity log, so this is the model's own reading of
    the activity at the latest score: each engagement signal's sentence, and whether it
    raised or lowered the score. ``source`` says so, for the page to show.
    """
    signals: list[dict[str, Any]] = []
    if card is not None:
        for side in ("positive", "negative"):
            for reason in card["reasons"].get(side, []):
                if reason.get("group") == "engagement":
                    signals.append(
                        {
                            "signal": reason.get("signal"),
                            "sentence": reason.get("sentence"),
                            "effect": "raises" if side == "positive" else "lowers",
                        }
                    )
    return {
        "source": "the engagement reasons of the latest score card (the store keeps no "
        "activity log)",
        "as_of": None if card is None else card["as_of"],
        "signals": signals,
    }


def lead_detail(engine: Engine, lead_id: str) -> dict[str, Any] | None:
    """Everything the drawer shows about one lead, or None when the store never scored it.

    Keys: ``lead_id``, ``state`` (its ``lead_states`` row with momentum; None only for a
    lead whose every score is a backfill), ``card`` (the latest stored score card),
    ``timeline``, ``dispositions``, ``activity`` (``activity_summary``).
    """
    with engine.connect() as connection:
        card = _latest_card(connection, lead_id)
        if card is None:
            return None
        state = _state(connection, lead_id)
    history = timeline(engine, lead_id)
    history = history.drop(columns=["run_id"])
    events = leads_dispositions(engine, lead_ids=[lead_id]).drop(columns=["lead_id", "event_key"])
    return {
        "lead_id": lead_id,
        "state": state,
        "card": card,
        "timeline": records(history, ("as_of",)),
        "dispositions": records(events, ("occurred_at", "recorded_at")),
        "activity": activity_summary(card),
    }
