"""Reading the input tables and writing outputs atomically.

Outputs are always written to a temporary sibling and renamed into place, so a run
that fails or is killed half-way leaves the previous output exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.contract import TABLES, ContractError, UnknownActivity, Violation, validate

SUFFIXES: tuple[str, ...] = (".parquet", ".csv")


def find_table_file(data_dir: Path, table: str) -> Path | None:
    """Return the file holding ``table`` in ``data_dir`` (Parquet preferred), if any."""
    for suffix in SUFFIXES:
        path = data_dir / f"{table}{suffix}"
        if path.exists():
            return path
    return None


def read_frame(path: Path) -> pd.DataFrame:
    """Read one Parquet or CSV file; CSV ids stay text so ``007`` is not ``7``."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=True)


def read_tables(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read the four raw tables from a folder, without validating them.

    Raises:
        FileNotFoundError: if the folder or one of the table files is missing.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}")
    tables: dict[str, pd.DataFrame] = {}
    missing: list[Violation] = []
    for table in TABLES:
        path = find_table_file(folder, table)
        if path is None:
            missing.append(Violation(table, "*", f"no {table}.parquet or {table}.csv in {folder}",
                                     0))
            continue
        tables[table] = read_frame(path)
    if missing:
        raise ContractError(missing)
    return tables


def load_tables(
    data_dir: str | Path,
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Read and validate the four tables of the data contract from a folder."""
    return validate(read_tables(data_dir), unknown_activity, timestamp_format)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    The temporary file sits in the same folder, so the rename is atomic on POSIX:
    readers see either the old file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_json(path: str | Path, payload: object) -> Path:
    """Write JSON atomically, with stable key order for diffable artifacts."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def write_frame(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a frame atomically as Parquet or CSV, chosen by the suffix."""
    target = Path(path)
    if target.suffix == ".csv":
        return atomic_write(target, lambda tmp: frame.to_csv(tmp, index=False))
    return atomic_write(target, lambda tmp: frame.to_parquet(tmp, index=False))


def replace_dir(target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder in a temporary sibling, then swap it in place of ``target``.

    The old folder is kept until the new one is complete, so a failure leaves it intact.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        fill(staging)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(final, old)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def write_tables(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, fmt: str = "parquet"
) -> Path:
    """Write the contract's tables (and any extra frames) into a folder, atomically."""
    def fill(folder: Path) -> None:
        for name, frame in tables.items():
            path = folder / f"{name}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)

    return replace_dir(out_dir, fill)
