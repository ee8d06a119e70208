"""Moving pandas frames in and out of the store quickly, on SQLite and PostgreSQL.

A scoring run writes up to millions of rows, so writes go below SQLAlchemy's per-row
type processing: SQLite gets one ``executemany`` of plain tuples (times in the text form
SQLAlchemy's ``DateTime`` reads back, JSON pre-serialised), PostgreSQL gets ``COPY``.
Reads come back as frames with proper ``datetime64`` columns on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy's SQLite ``DateTime`` stores a time; rows written here read back alike."""


def _json_text(values: pd.Series) -> list[str | None]:
    """Each value as JSON text (already-serialised strings kept), None for missing.

    One comprehension over the column: a run encodes two cards per lead, and a call per
    value through a helper costs as much as orjson itself.
    """
    dumps, numpy = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    return [
        v
        if isinstance(v, str)
        else None
        if v is None or (isinstance(v, float) and v != v)
        else dumps(v, option=numpy).decode()
        for v in values.tolist()
    ]


def _nullable(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    """``values`` as a list, with None where ``missing`` (drivers write None as NULL)."""
    out = values if not missing.any() else values.astype(object)
    if missing.any():
        out[missing] = None
    listed: list[Any] = out.tolist()
    return listed


def _column_values(table: sa.Table, name: str, values: pd.Series, dialect: str) -> list[Any]:
    """One column as the driver wants it: None for missing, times and JSON as text."""
    kind = table.c[name].type
    missing = values.isna().to_numpy()
    if isinstance(kind, sa.JSON):
        return _json_text(values)
    if isinstance(kind, sa.DateTime):
        stamps = pd.to_datetime(values)
        if dialect == "sqlite":
            unique = stamps.drop_duplicates()
            text = dict(zip(unique, unique.dt.strftime(SQLITE_TIME), strict=True))
            return _nullable(np.asarray(stamps.map(text), dtype=object), missing)
        return _nullable(np.asarray(stamps.dt.to_pydatetime(), dtype=object), missing)
    if isinstance(kind, sa.Boolean):
        return _nullable(values.to_numpy(dtype=object, na_value=False).astype(bool), missing)
    if isinstance(kind, sa.Integer):
        numbers = values.to_numpy(dtype="float64", na_value=0.0)
        return _nullable(np.where(missing, 0.0, numbers).astype(np.int64), missing)
    if isinstance(kind, sa.Float):
        return _nullable(values.to_numpy(dtype="float64", na_value=np.nan), missing)
    return _nullable(values.to_numpy(dtype=object).astype(str), missing)


def insert_frame(connection: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Append ``frame``'s rows to ``table`` in the open transaction of ``connection``.

    Only the frame's columns are written (the others take their defaults).

    Returns:
        The number of rows written.
    """
    if frame.empty:
        return 0
    dialect = connection.dialect.name
    names = list(frame.columns)
    columns = [_column_values(table, name, frame[name], dialect) for name in names]
    if dialect == "postgresql":
        _copy(connection, table, names, columns)
        return len(frame)
    rows = list(zip(*columns, strict=True))
    marks = ", ".join("?" for _ in names)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
    connection.exec_driver_sql(sql, rows)
    return len(rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
"""What COPY's text format escapes in a value (backslash, tab, newline, carriage return)."""


def _copy(
    connection: Connection, table: sa.Table, names: Sequence[str], columns: list[list[Any]]
) -> None:
    """PostgreSQL's ``COPY ... FROM STDIN`` in its text format, written in large chunks
    (psycopg's per-row ``write_row`` costs more than the server does)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    cells = [
        _copy_cells(table.c[name].type, values) for name, values in zip(names, columns, strict=True)
    ]
    sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        step = 20_000
        for start in range(0, len(cells[0]), step):
            rows = zip(*(column[start : start + step] for column in cells), strict=True)
            copy.write("".join("\t".join(row) + "\n" for row in rows))


def _copy_cells(kind: Any, values: list[Any]) -> list[str]:
    """One column as COPY text cells: ``\\N`` for NULL, ``t``/``f``, ISO times, escaped text."""
    if isinstance(kind, sa.Boolean):
        return ["\\N" if v is None else ("t" if v else "f") for v in values]
    if isinstance(kind, sa.DateTime):
        return ["\\N" if v is None else v.isoformat(sep=" ") for v in values]
    if isinstance(kind, sa.Integer | sa.Float):
        return ["\\N" if v is None else str(v) for v in values]
    return ["\\N" if v is None else str(v).translate(_COPY_ESCAPES) for v in values]


def read_frame(connection: Connection, query: sa.Select[Any]) -> pd.DataFrame:
    """Run ``query`` and return its rows as a frame, times as ``datetime64[ns]``.

    The rows come straight from the driver (SQLAlchemy's per-value result processing
    costs more than the query for a million rows) and are typed here per column, in
    bulk: times parsed, booleans made ``bool``, JSON text decoded.
    """
    raw = query.with_only_columns(
        *(sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in query.selected_columns),
        maintain_column_froms=True,
    )
    result = connection.execute(raw)
    names = list(result.keys())
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    frame = pd.DataFrame({name: list(values) for name, values in zip(names, columns, strict=True)})
    for column, name in zip(query.selected_columns, names, strict=True):
        kind = column.type
        if isinstance(kind, sa.DateTime):
            frame[name] = pd.to_datetime(frame[name], format="ISO8601").astype("datetime64[ns]")
        elif isinstance(kind, sa.Boolean):
            if frame[name].isna().any():
                frame[name] = frame[name].astype("boolean")
            else:
                frame[name] = frame[name].astype(bool)
        elif isinstance(kind, sa.JSON):
            frame[name] = [orjson.loads(v) if isinstance(v, str) else v for v in frame[name]]
    return frame
