"""Reading the input tables and writing outputs atomically.

Outputs are always written to a temporary sibling and renamed into place, so a run
that fails or is killed half-way leaves the previous output exactly as it was.

Every location may also be an fsspec URL (``s3://bucket/data``, ``gs://…``,
``memory://…``): the same functions read and write it through fsspec, with no other
code path for callers. Local paths keep using ``pathlib`` and ``os.replace`` as before.
On object stores the final ``mv`` is a copy then a delete, so whether readers can see a
half-moved output depends on the store (S3 and GCS copy one object atomically, but not a
whole folder); the temporary name still guarantees a failed run never leaves a partial
file under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
import pandas as pd

from features.contract import TABLES, ContractError, UnknownActivity, Violation, validate

SUFFIXES: tuple[str, ...] = (".parquet", ".csv")


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is an fsspec URL (``s3://…``) rather than a local path."""
    return isinstance(location, str) and "://" in location


def join(location: str | Path, name: str) -> str | Path:
    """``location/name``; URLs stay strings, since ``Path`` would fold ``s3://`` to ``s3:/``."""
    if is_url(location):
        return f"{str(location).rstrip('/')}/{name}"
    return Path(location) / name


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def exists(location: str | Path) -> bool:
    """Whether a local path or an fsspec URL exists."""
    if not is_url(location):
        return Path(location).exists()
    fs, path = _fs(str(location))
    return fs.exists(path)


def read_bytes(location: str | Path) -> bytes:
    """Read a whole file from a local path or an fsspec URL."""
    if not is_url(location):
        return Path(location).read_bytes()
    with fsspec.open(str(location), "rb") as handle:
        return handle.read()


def write_bytes(location: str | Path, data: bytes) -> None:
    """Write a file (not atomically: wrap it in :func:`atomic_write`)."""
    if not is_url(location):
        Path(location).write_bytes(data)
        return
    with fsspec.open(str(location), "wb") as handle:
        handle.write(data)


def read_text(location: str | Path) -> str:
    """Read a small UTF-8 text file from a local path or an fsspec URL."""
    return read_bytes(location).decode("utf-8")


def write_text(location: str | Path, text: str) -> None:
    """Write a small UTF-8 text file (not atomically: wrap it in :func:`atomic_write`)."""
    write_bytes(location, text.encode("utf-8"))


def find_table_file(data_dir: str | Path, table: str) -> str | Path | None:
    """Return the file holding ``table`` in ``data_dir`` (Parquet preferred), if any."""
    for suffix in SUFFIXES:
        path = join(data_dir, f"{table}{suffix}")
        if exists(path):
            return path
    return None


CSV_NA_VALUES: tuple[str, ...] = tuple(
    sorted(
        {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"}
        | {"1.#QNAN", "<NA>", "N/A", "NULL", "NaN", "None", "n/a", "nan", "null"}
    )
)
"""Text a contract CSV cell reads as missing: pandas' defaults except ``NA``, which is a
region (North America) in text columns. In number and timestamp columns the contract
reads ``NA`` as missing too (R writes it so)."""


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read one Parquet or CSV file; CSV ids stay text so ``007`` is not ``7``.

    pandas resolves fsspec URLs itself, so a URL needs nothing more than a local path.
    """
    if str(path).endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=CSV_NA_VALUES)


def _is_dir(location: str | Path) -> bool:
    if not is_url(location):
        return Path(location).is_dir()
    fs, path = _fs(str(location))
    return fs.isdir(path)


def read_tables(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read the four raw tables from a folder or fsspec URL, without validating them.

    Raises:
        FileNotFoundError: if the folder or one of the table files is missing.
    """
    folder = data_dir if is_url(data_dir) else Path(data_dir)
    if not _is_dir(folder):
        raise FileNotFoundError(f"data folder not found: {folder}")
    tables: dict[str, pd.DataFrame] = {}
    missing: list[Violation] = []
    for table in TABLES:
        path = find_table_file(folder, table)
        if path is None:
            missing.append(
                Violation(table, "*", f"no {table}.parquet or {table}.csv in {folder}", 0)
            )
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


def _staging(url: str, kind: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """The filesystem, the final path and a hidden sibling name for a URL output."""
    fs, final = _fs(url)
    parent, _, name = final.rstrip("/").rpartition("/")
    return fs, final, f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.{kind}"


def _atomic_write_url(url: str, write: Callable[[str], None]) -> str:
    fs, final, tmp = _staging(url, "tmp")
    fs.makedirs(tmp.rpartition("/")[0], exist_ok=True)
    try:
        write(fs.unstrip_protocol(tmp))
        fs.mv(tmp, final)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return url


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    The temporary file sits in the same folder, so the rename is atomic on POSIX:
    readers see either the old file or the complete new one. For an fsspec URL,
    ``write`` receives the temporary URL as a string (pandas and :func:`write_text`
    accept both) and the rename is the store's ``mv`` (see the module notes).
    """
    if is_url(path):
        return _atomic_write_url(str(path), write)  # type: ignore[arg-type,return-value]
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
    return atomic_write(path, lambda tmp: write_text(tmp, text + "\n"))


def write_frame(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a frame atomically as Parquet or CSV, chosen by the suffix."""
    target = path if is_url(path) else Path(path)
    if str(target).endswith(".csv"):
        return atomic_write(target, lambda tmp: frame.to_csv(tmp, index=False))
    return atomic_write(target, lambda tmp: frame.to_parquet(tmp, index=False))


def replace_dir(target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder in a temporary sibling, then swap it in place of ``target``.

    The old folder is kept until the new one is complete, so a failure leaves it intact.
    For an fsspec URL, ``fill`` receives the staging URL as a string and the swap is the
    store's ``mv`` (see the module notes).
    """
    if is_url(target):
        return _replace_dir_url(str(target), fill)  # type: ignore[arg-type,return-value]
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


def _replace_dir_url(url: str, fill: Callable[[str], None]) -> str:
    fs, final, staging = _staging(url, "tmp")
    fs.makedirs(staging, exist_ok=True)
    try:
        fill(fs.unstrip_protocol(staging))
        old = None
        if fs.exists(final):
            old = _staging(url, "old")[2]
            fs.mv(final, old, recursive=True)
        fs.mv(staging, final, recursive=True)
        if old is not None:
            fs.rm(old, recursive=True)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    return url


def write_tables(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, fmt: str = "parquet"
) -> Path:
    """Write the contract's tables (and any extra frames) into a folder or URL, atomically."""

    def fill(folder: Path) -> None:
        for name, frame in tables.items():
            path = join(folder, f"{name}.{fmt}")
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)

    return replace_dir(out_dir, fill)
