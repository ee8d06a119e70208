"""The reps' account list and account drawer, read from the lead store in SQL.

``GET /accounts`` pages through ``account_states`` (each account's latest state) with
filters and a sort; ``GET /accounts/{account_id}`` gathers one account's latest card (its
reasons and buying group: personas engaged and missing, the contacts to reach next), its
score timeline, its people (each lead the CRM links to the account, with the lead's latest
state) and their dispositions.

Momentum is ``store.history.account_momentum``'s: the account's latest score minus its
latest score on or before 7 (28) days before that one — this week against the three before
it — computed in the database as the lead worklist computes a lead's
(``serving.worklist``): one index seek per account and window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from serving.worklist import WorklistError, iso_time, momentum_column, records
from store.feedback import leads_dispositions
from store.history import ACCOUNT_MOMENTUM_DAYS, account_timeline
from store.schema import account_runs, account_scores, account_states, lead_states

SORTS = ("score", "momentum_7d", "momentum_28d", "mqa_since", "probability", "engaged")
"""What the account list can be sorted by (ties by ``account_id``)."""
MAX_LIMIT = 500
"""Most accounts one page holds."""
FACETS = ("region", "grade")
"""Columns whose distinct values the page offers as filters."""
PEOPLE_LIMIT = 200
"""Most people the drawer lists for one account (best scores first; ``people_total``
counts them all)."""
ACCOUNT_COLUMNS = (
    "account_id",
    "score",
    "probability",
    "grade",
    "mqa",
    "mqa_since",
    "region",
    "leads",
    "engaged",
    "last_as_of",
    "mqa_episodes",
)
"""What each row of the list carries from ``account_states`` (plus momentum)."""
_WINDOWS = ACCOUNT_MOMENTUM_DAYS


@dataclass(frozen=True)
class AccountQuery:
    """What a rep asked the account list for.

    Attributes:
        mqa: True: MQAs only; False: the others only; None: every account.
        region, grade: Keep accounts with one of these values (empty: any).
        new_since: Only accounts whose current MQA episode began after this time.
        sort: One of ``SORTS``.
        descending: Largest first (accounts without a value come last either way).
        limit: Accounts in the page (1 to ``MAX_LIMIT``).
        offset: Accounts skipped before the page.
    """

    mqa: bool | None = None
    region: tuple[str, ...] = ()
    grade: tuple[str, ...] = ()
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
class AccountPage:
    """One page of the account list: its accounts, how many match, and the store's time."""

    total: int
    accounts: list[dict[str, Any]]
    as_of: pd.Timestamp | None
    query: AccountQuery = field(default_factory=AccountQuery)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``GET /accounts``."""
        return {
            "total": self.total,
            "limit": self.query.limit,
            "offset": self.query.offset,
            "sort": self.query.sort,
            "order": "desc" if self.query.descending else "asc",
            "as_of": iso_time(self.as_of),
            "accounts": self.accounts,
        }


def _momentum(days: int, end: pd.Timestamp | None) -> ColumnElement[Any]:
    return momentum_column(account_scores, account_states, "account_id", days, end, _WINDOWS)


def _filters(query: AccountQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.mqa is not None:
        where.append(account_states.c.mqa.is_(query.mqa))
    for name in FACETS:
        values = getattr(query, name)
        if values:
            where.append(account_states.c[name].in_(list(values)))
    if query.new_since is not None:
        where.append(account_states.c.mqa_since > query.new_since.to_pydatetime())
    return where


def _latest(connection: sa.Connection) -> pd.Timestamp | None:
    value = connection.execute(sa.select(sa.func.max(account_states.c.last_as_of))).scalar()
    return None if value is None else pd.Timestamp(value)


def _row(mapping: Any) -> dict[str, Any]:
    names = (*ACCOUNT_COLUMNS, *(f"momentum_{d}d" for d in _WINDOWS))
    row = {name: mapping[name] for name in names}
    for name in ("mqa_since", "last_as_of"):
        row[name] = iso_time(row[name])
    row["mqa"] = bool(row["mqa"])
    return row


def account_list(engine: Engine, query: AccountQuery) -> AccountPage:
    """One page of accounts, filtered and sorted, with each one's momentum.

    As ``serving.worklist.worklist``: the count, the page (momentum selected with it only
    when the page is sorted by it), then the page's momentum.
    """
    where = _filters(query)
    columns: list[ColumnElement[Any]] = [account_states.c[name] for name in ACCOUNT_COLUMNS]
    with engine.connect() as connection:
        end = _latest(connection)
        total = connection.execute(
            sa.select(sa.func.count()).select_from(account_states).where(*where)
        ).scalar_one()
        if query.sort.startswith("momentum"):
            days = int(query.sort.removeprefix("momentum_").removesuffix("d"))
            columns.append(_momentum(days, end))
            key: ColumnElement[Any] = sa.literal_column(query.sort)
        else:
            key = account_states.c[query.sort]
        direction = key.desc() if query.descending else key.asc()
        statement = (
            sa.select(*columns)
            .where(*where)
            .order_by(direction.nulls_last(), account_states.c.account_id.asc())
            .limit(query.limit)
            .offset(query.offset)
        )
        page = [dict(r) for r in connection.execute(statement).mappings()]
        moves = _page_momentum(connection, [r["account_id"] for r in page], end)
    rows = [_row({**r, **moves.get(r["account_id"], {})}) for r in page]
    return AccountPage(total=int(total), accounts=rows, as_of=end, query=query)


def _page_momentum(
    connection: sa.Connection, ids: list[str], end: pd.Timestamp | None
) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    statement = sa.select(
        account_states.c.account_id, *(_momentum(d, end) for d in _WINDOWS)
    ).where(account_states.c.account_id.in_(ids))
    return {
        r["account_id"]: {f"momentum_{d}d": r[f"momentum_{d}d"] for d in _WINDOWS}
        for r in connection.execute(statement).mappings()
    }


def account_facets(engine: Engine) -> dict[str, list[str]]:
    """The distinct regions and grades of the store's accounts, for the page's selects."""
    out: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for name in FACETS:
            column = account_states.c[name]
            values = connection.execute(
                sa.select(column).where(column.is_not(None)).distinct().order_by(column)
            ).scalars()
            out[name] = [str(v) for v in values]
    return out


def _latest_card(connection: sa.Connection, account_id: str) -> dict[str, Any] | None:
    statement = (
        sa.select(
            account_scores.c.as_of,
            account_scores.c.run_id,
            account_runs.c.source,
            account_scores.c.model_version,
            account_scores.c.probability,
            account_scores.c.probability_low,
            account_scores.c.probability_high,
            account_scores.c.score,
            account_scores.c.grade,
            account_scores.c.mqa,
            account_scores.c.threshold,
            account_scores.c.region,
            account_scores.c.leads,
            account_scores.c.engaged,
            account_scores.c.reasons,
            account_scores.c.buying_group,
        )
        .join(account_runs, account_runs.c.id == account_scores.c.run_id)
        .where(account_scores.c.account_id == account_id)
        .order_by(account_scores.c.as_of.desc(), account_scores.c.id.desc())
        .limit(1)
    )
    found = connection.execute(statement).mappings().first()
    if found is None:
        return None
    card = dict(found)
    card["as_of"] = iso_time(card["as_of"])
    card["mqa"] = bool(card["mqa"])
    card["reasons"] = card["reasons"] or {"positive": [], "negative": []}
    card["buying_group"] = card["buying_group"] or {}
    return card


def _state(connection: sa.Connection, account_id: str) -> dict[str, Any] | None:
    end = _latest(connection)
    statement = sa.select(
        *(account_states.c[name] for name in ACCOUNT_COLUMNS),
        account_states.c.first_mqa_at,
        *(_momentum(d, end) for d in _WINDOWS),
    ).where(account_states.c.account_id == account_id)
    found = connection.execute(statement).mappings().first()
    if found is None:
        return None
    state = _row(found)
    state["first_mqa_at"] = iso_time(found["first_mqa_at"])
    return state


def _people(connection: sa.Connection, account_id: str) -> tuple[int, list[dict[str, Any]]]:
    """The account's leads (latest state each), best score first, and how many in all."""
    where = lead_states.c.account_id == account_id
    total = connection.execute(
        sa.select(sa.func.count()).select_from(lead_states).where(where)
    ).scalar_one()
    statement = (
        sa.select(
            lead_states.c.lead_id,
            lead_states.c.score,
            lead_states.c.probability,
            lead_states.c.grade,
            lead_states.c.mql,
            lead_states.c.mql_since,
            lead_states.c.owner,
            lead_states.c.last_as_of,
        )
        .where(where)
        .order_by(lead_states.c.score.desc().nulls_last(), lead_states.c.lead_id)
        .limit(PEOPLE_LIMIT)
    )
    people = []
    for found in connection.execute(statement).mappings():
        person = dict(found)
        person["mql"] = bool(person["mql"])
        person["mql_since"] = iso_time(person["mql_since"])
        person["last_as_of"] = iso_time(person["last_as_of"])
        people.append(person)
    return int(total), people


def account_detail(engine: Engine, account_id: str) -> dict[str, Any] | None:
    """Everything the account drawer shows, or None when the store never scored it.

    Keys: ``account_id``, ``state`` (its ``account_states`` row with momentum; None only
    for an account whose every score is a backfill), ``card`` (the latest stored account
    card: reasons and ``buying_group``), ``timeline``, ``people`` (best first, at most
    ``PEOPLE_LIMIT``), ``people_total``, ``dispositions`` (of its people, with
    ``lead_id``).
    """
    with engine.connect() as connection:
        card = _latest_card(connection, account_id)
        if card is None:
            return None
        state = _state(connection, account_id)
        total, people = _people(connection, account_id)
    history = account_timeline(engine, account_id).drop(columns=["run_id"])
    ids = [p["lead_id"] for p in people]
    events = (
        leads_dispositions(engine, lead_ids=ids).drop(columns=["event_key"])
        if ids
        else pd.DataFrame(columns=["lead_id"])
    )
    return {
        "account_id": account_id,
        "state": state,
        "card": card,
        "timeline": records(history, ("as_of",)),
        "people": people,
        "people_total": total,
        "dispositions": records(events, ("occurred_at", "recorded_at")),
    }
