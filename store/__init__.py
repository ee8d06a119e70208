"""The lead store: scoring runs, scores with a history, MQL events, sales dispositions and
monitoring results, in one SQL database (SQLAlchemy 2, Alembic migrations).

Embedded SQLite (``outputs/leadscore.db``, WAL) is the default so a laptop needs no
server; ``LEADSCORE_DB_URL`` points at PostgreSQL for a team. The schema is created and
changed only by the migrations in ``store/migrations`` (``store.engine.upgrade``), never
by ``create_all``, so a database made by an older release is brought up to date in place.

Modules: ``schema`` (the tables), ``engine`` (connecting, migrating), ``runs`` (writing a
scoring run, its MQL events and the lead states), ``history`` (timelines, momentum, new
MQLs). Nothing here imports the model runtime: the store takes plain frames and values.
"""
