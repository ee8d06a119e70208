"""Migration 0002_crm: the CRM sync tables come and go on their own."""

from __future__ import annotations

import sqlalchemy as sa

from store.engine import (
    MIGRATIONS,
    current_revision,
    downgrade,
    head_revision,
    open_store,
    upgrade,
)

CRM_TABLES = {"crm_sync", "crm_checkpoints"}


def _before_crm() -> str:
    """The revision 0002_crm revises (0001 today; whatever it is chained after later)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    down = ScriptDirectory.from_config(config).get_revision("0002_crm").down_revision
    assert isinstance(down, str)
    return down


def test_crm_tables_go_down_and_up_again(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= CRM_TABLES
        downgrade(engine, _before_crm())
        assert current_revision(engine) == _before_crm()
        tables = set(sa.inspect(engine).get_table_names())
        assert not CRM_TABLES & tables and "dispositions" in tables
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert set(sa.inspect(engine).get_table_names()) >= CRM_TABLES
    finally:
        engine.dispose()
