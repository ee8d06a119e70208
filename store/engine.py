"""Connecting to the lead store and migrating it, for SQLite and PostgreSQL alike.

SQLite gets write-ahead logging (readers never block the nightly writer), foreign keys
(off by default in SQLite), a busy timeout and, for a new file, 16 KB pages (rows carry
~1.2 KB of JSON card each), on every connection. Alembic is driven
from code with the migrations shipped inside the package, so an installed leadscore
needs no ``alembic.ini`` and the CLI, the service and the tests migrate the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from leadscore.errors import LeadscoreError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_MS = 30_000
SQLITE_PAGE_BYTES = 16_384


class StoreError(LeadscoreError, RuntimeError):
    """The lead store cannot be reached, is not migrated, or refused a write."""


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite file (made absolute, its folder created)."""
    file = Path(path).resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def _normalise(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's default would be psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Before the first table exists only (an existing file keeps its size): a score row
    # with its card is ~1.2 KB, and 16 KB pages write a run ~25 % faster than 4 KB ones.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB: a run rewrites its indexes
    cursor.close()


def connect(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql://user@host/db``).

    Raises:
        StoreError: naming the URL when it is malformed or its driver is missing.
    """
    url = _normalise(url)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreError(f"LEADSCORE_DB_URL: cannot use {_masked(url)}: {exc}") from None
    return engine


def _masked(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "an unparsable URL"


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema up to ``revision`` (every migration, by default).

    Raises:
        StoreError: when the database cannot be reached.
    """
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(
            f"cannot migrate the lead store at {_masked(str(engine.url))}: {exc.orig}"
        ) from None


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to ``revision`` (``base``: no tables left)."""
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this release."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def _need_sqlite_file(url: str) -> None:
    """Refuse an SQLite store that does not exist yet (connecting would create it empty)."""
    try:
        parsed = make_url(_normalise(url))
    except ArgumentError:
        return  # ``connect`` names the problem
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return
    if not Path(str(database)).exists():
        raise StoreError(
            f"no lead store at {database}: create it with `leadscore db upgrade` "
            "(or `leadscore score`)"
        )


def open_store(url: str, migrate: bool = True) -> Engine:
    """Connect to the lead store and make sure its schema is current.

    Args:
        url: The database URL (``Settings.store_url``).
        migrate: Upgrade to the newest migration (True), or only check it is current.

    Raises:
        StoreError: when the database cannot be reached, or is behind and ``migrate``
            is off.
    """
    if not migrate:
        _need_sqlite_file(url)
    engine = connect(url)
    try:
        if migrate:
            upgrade(engine)
        else:
            at, head = current_revision(engine), head_revision()
            if at != head:
                raise StoreError(
                    f"the lead store at {_masked(url)} is at migration {at or 'none'}, this "
                    f"release needs {head}: run `leadscore db upgrade`"
                )
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the lead store at {_masked(url)}: {exc.orig}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def store(url: str, migrate: bool = True) -> Iterator[Engine]:
    """``open_store`` as a context: the engine's connections are closed at the end."""
    engine = open_store(url, migrate)
    try:
        yield engine
    finally:
        engine.dispose()
