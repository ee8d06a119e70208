"""The lead store's migrations and connection rules, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.engine import StoreError, connect, current_revision, downgrade, head_revision, open_store
from store.schema import metadata

TABLES = {
    "scoring_runs",
    "scores",
    "mql_events",
    "lead_states",
    "dispositions",
    "monitoring_results",
}


def test_migrations_build_exactly_the_declared_schema_and_go_down_again(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        assert current_revision(engine) == head_revision()
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
        assert diff == []  # the migrations and store.schema describe the same tables
        downgrade(engine, "base")
        assert not TABLES & set(sa.inspect(engine).get_table_names())
        assert current_revision(engine) is None
        open_store(store_url).dispose()  # and up again
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_sqlite_store_uses_write_ahead_logging_and_foreign_keys(tmp_path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'nested' / 'leadscore.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # set before WAL fixed the file's page size, or it would silently stay 4 KB
        assert connection.exec_driver_sql("PRAGMA page_size").scalar() == 16_384
    engine.dispose()


def test_a_store_behind_the_release_is_named_with_the_command_that_fixes_it(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = connect(url)
    with engine.connect():  # an SQLite file with no migration in it
        pass
    engine.dispose()
    try:
        open_store(url, migrate=False)
    except StoreError as exc:
        assert "leadscore db upgrade" in str(exc) and "none" in str(exc)
    else:
        raise AssertionError("an unmigrated store was opened without migrating")


def test_an_unusable_url_is_an_error_that_hides_the_password() -> None:
    try:
        open_store("postgresql://alice:s3cret@127.0.0.1:1/leadscore")
    except StoreError as exc:
        assert "s3cret" not in str(exc) and "127.0.0.1" in str(exc)
    else:
        raise AssertionError("a closed port was accepted")
    try:
        connect("nosuchdb://x")
    except StoreError as exc:
        assert "LEADSCORE_DB_URL" in str(exc)
    else:
        raise AssertionError("an unknown driver was accepted")


def test_opening_without_migrating_never_creates_a_store(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "leadscore.db"
    try:
        open_store(f"sqlite:///{missing}", migrate=False)
    except StoreError as exc:
        assert "leadscore db upgrade" in str(exc) and str(missing) in str(exc)
    else:
        raise AssertionError("a missing store was opened")
    assert not missing.exists() and not missing.parent.exists()
