"""Alembic's environment: runs the migrations on the engine ``store.engine`` hands over.

Online mode only: leadscore always migrates a live database, from code, with the engine
it already made (``config.attributes["engine"]``).
"""

from __future__ import annotations

from alembic import context

from store.schema import metadata


def _run() -> None:
    engine = context.config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


_run()
