"""Migration 0002_crm: the CRM sync tables come and go on their own."""

from __future__ import annotations

import sqlalchemy as sa

from store.engine import current_revision, downgrade, open_store, upgrade

CRM_TABLES = {"crm_sync", "crm_checkpoints"}


def test_crm_tables_go_down_to_0001_and_up_again(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= CRM_TABLES
        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        tables = set(sa.inspect(engine).get_table_names())
        assert not CRM_TABLES & tables and "dispositions" in tables
        upgrade(engine)
        assert current_revision(engine) == "0002_crm"
        assert set(sa.inspect(engine).get_table_names()) >= CRM_TABLES
    finally:
        engine.dispose()
