"""Input tables read and checked on the workers: the data contract, one partition at a time.

``features.contract.validate`` needs a whole table in memory. Here each table is a Dask
DataFrame (a hive-partitioned Parquet dataset, a single Parquet file or a CSV file, on
local disk or any fsspec URL), and the contract is checked where the data is:

* Per partition, on the workers: ``validate_table`` itself (columns, types, nulls) and
  the activity-type check. Each partition returns its violations (a count and up to
  three example keys each), never its rows; the client adds the counts up and keeps
  the first three examples in partition order, which is the row order of the dataset.
* Across partitions, as distributed aggregations and joins: duplicate ids (a
  ``value_counts`` of the key, then a join back to find the first duplicated rows) and
  orphan references (a left join of each foreign key onto the distinct target keys).

The result is the single-machine report exactly: same violations, same order, same
wording, same counts and the same example keys, for the tables read in dataset order
(files in path order, rows in file order). What the client holds: the list of
files (Dask's own planning), one small frame of facts per partition and the few example
rows of each violation; never a table.

The checks run in the two phases of ``validate``: table by table first (a failure there
stops before the cross-table checks), then activity types and references.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.catalogue import ACTIVITY_TYPES
from features.contract import (
    CONTRACT,
    TABLES,
    ContractError,
    UnknownActivity,
    Violation,
    _examples,
    validate_table,
)
from features.io import CSV_NA_VALUES, is_url, join
from features.partitioned import DATASET_NAMES, is_dataset, location_fs

if TYPE_CHECKING:
    import dask.dataframe as dd

ORDER = "_order"
"""Column numbering each row in dataset order: partition number << 40 | row in partition."""

_ROW_BITS = 40


def locate_table(data_dir: str | Path, table: str) -> str | None:
    """Where ``table`` lives in ``data_dir``: a dataset folder (``leads/``, or
    ``leads.parquet/`` as Spark writes it), else a Parquet or CSV file."""
    for name in DATASET_NAMES:
        location = join(data_dir, name.format(table=table))
        if is_dataset(location):
            return str(location)
    for name in (f"{table}.parquet", f"{table}.csv"):
        location = join(data_dir, name)
        fs, path = location_fs(location)
        if fs.isfile(path):
            return str(location)
    return None


def _hive_keys(location: str) -> list[str]:
    """The hive partition keys of a dataset folder (``month`` of ``month=2025-01/``)."""
    import pyarrow.dataset as pads

    fs, path = location_fs(location)
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    partitioning = getattr(dataset, "partitioning", None)
    return list(partitioning.schema.names) if partitioning is not None else []


def read_table(location: str, table: str) -> dd.DataFrame:
    """One table as a Dask DataFrame, read by the workers.

    Hive keys that are declared columns of the table (``region=EMEA/``) are data and
    kept; other keys (``month=2025-01/``) only say where rows are stored and are dropped,
    so the table has the columns its files have, as the single-machine reader sees it.
    CSV ids stay text, and ``NA`` is a value in text columns (``features.io``).
    """
    import dask.dataframe as dd

    if location.endswith(".csv"):
        return dd.read_csv(
            location, dtype=str, keep_default_na=False, na_values=list(CSV_NA_VALUES)
        )
    frame = dd.read_parquet(location)
    if is_dataset(location):
        declared = {c.name for c in CONTRACT[table].columns}
        extra = [k for k in _hive_keys(location) if k not in declared and k in frame.columns]
        if extra:
            frame = frame.drop(columns=extra)
    return frame


def read_raw_tables(data_dir: str | Path) -> dict[str, dd.DataFrame]:
    """The four tables of ``data_dir`` as lazy Dask DataFrames (nothing is read yet).

    Raises:
        FileNotFoundError: the folder does not exist.
        ContractError: a table is neither a dataset folder nor a file.
    """
    folder = data_dir if is_url(data_dir) else Path(data_dir)
    if not is_dataset(folder):
        raise FileNotFoundError(f"data folder not found: {folder}")
    tables, missing = {}, []
    for table in TABLES:
        location = locate_table(folder, table)
        if location is None:
            missing.append(
                Violation(
                    table,
                    "*",
                    f"no {table}/ dataset, {table}.parquet or {table}.csv in {folder}",
                    0,
                )
            )
            continue
        tables[table] = read_table(location, table)
    if missing:
        raise ContractError(missing)
    return tables


# -- per-partition work (runs on the workers) -------------------------------------------


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """A partition with text as pandas reads it on one machine (the ``str`` dtype).

    Dask reads text as ``string[pyarrow]``, whose missing value is ``pd.NA``; the
    contract's checks compare against ``str`` (e.g. ``NA`` in a number column is a
    missing value there), so each partition is given the single-machine dtype first.
    """
    text = [
        name
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA
    ]
    return frame.astype(dict.fromkeys(text, "str")) if text else frame


def typed_partition(
    frame: pd.DataFrame,
    number: int,
    name: str,
    timestamp_format: str | None,
    unknown_activity: UnknownActivity,
) -> pd.DataFrame:
    """One partition typed as ``validate`` types it, numbered in dataset order.

    Only meaningful once the checks have passed; unknown activity types become
    ``other`` when asked, as in ``validate``.
    """
    frame = as_read(frame)
    typed, _ = validate_table(name, frame, timestamp_format)
    typed = typed.copy() if typed is frame else typed
    if name == "activities" and unknown_activity == "other" and "activity_type" in typed:
        known = typed["activity_type"].isin(ACTIVITY_TYPES)
        if not known.all():
            typed = typed.copy()
            typed.loc[~known, "activity_type"] = "other"
    typed[ORDER] = (np.int64(number) << _ROW_BITS) + np.arange(len(typed), dtype=np.int64)
    return typed


def partition_checks(
    frame: pd.DataFrame, name: str, timestamp_format: str | None
) -> tuple[list[Violation], dict | None]:
    """The table checks of one partition: ``validate_table``'s violations and, for the
    activities, the facts of the activity-type check (counts of each unknown type, in
    order of first appearance, and the first three example keys)."""
    typed, found = validate_table(name, as_read(frame), timestamp_format)
    key = CONTRACT[name].key
    found = [v for v in found if not (v.column == key and v.problem == "duplicate id")]
    types = None
    if name == "activities" and not found:
        known = typed["activity_type"].isin(ACTIVITY_TYPES)
        unknown = typed.loc[~known.to_numpy(), "activity_type"].astype(str)
        types = {
            "count": int((~known).sum()),
            "values": unknown.value_counts(sort=False).to_dict(),
            "first": {v: i for i, v in reversed(list(enumerate(unknown.tolist())))},
            "examples": _examples(typed, ~known, "lead_id"),
        }
    return found, types


# -- combining what the partitions found (client, small) --------------------------------


def merge_violations(name: str, per_partition: list[list[Violation]]) -> list[Violation]:
    """One table's violations over all partitions, as ``validate_table`` reports them.

    Counts add up; examples are the first three in partition order; a column with an
    unparseable value anywhere reports that and not its missing values (``_coerce`` comes
    first in ``validate_table``); violations come in the order of the schema's columns.
    """
    schema = CONTRACT[name]
    merged: dict[tuple[str, str], Violation] = {}
    for found in per_partition:
        for v in found:
            key = (v.column, v.problem)
            old = merged.get(key)
            if old is None:
                merged[key] = v
            else:
                merged[key] = Violation(
                    v.table,
                    v.column,
                    v.problem,
                    old.count + v.count,
                    (old.examples + v.examples)[:3],
                    v.level,
                )
    coerce_failed = {c for c, p in merged if p != "missing value"}
    kept = [v for (c, p), v in merged.items() if not (p == "missing value" and c in coerce_failed)]
    columns = [c.name for c in schema.columns]
    if any(v.problem == "required column is missing" for v in kept):
        kept = [v for v in kept if v.problem == "required column is missing"]
    return sorted(kept, key=lambda v: columns.index(v.column) if v.column in columns else -1)


def merge_activity_types(
    per_partition: list[dict | None], unknown_activity: UnknownActivity
) -> list[Violation]:
    """The activity-type violation of ``validate`` from each partition's facts.

    The three unknown types named are the most frequent, ties broken by first appearance
    in the table, as pandas' ``value_counts`` orders them.
    """
    facts = [f for f in per_partition if f is not None]
    count = sum(f["count"] for f in facts)
    if count == 0 or unknown_activity == "other":
        return []
    totals: dict[str, int] = {}
    first: dict[str, tuple[int, int]] = {}
    examples: tuple[str, ...] = ()
    for number, f in enumerate(per_partition):
        if f is None:
            continue
        for value, n in f["values"].items():
            totals[value] = totals.get(value, 0) + n
            first.setdefault(value, (number, f["first"][value]))
        examples = (examples + tuple(f["examples"]))[:3]
    named = sorted(totals, key=lambda v: (-totals[v], first[v]))[:3]
    return [
        Violation(
            "activities",
            "activity_type",
            f"unknown activity type ({', '.join(named)}; known: {', '.join(ACTIVITY_TYPES)};"
            " set unknown_activity='other' to keep them as 'other')",
            count,
            examples,
        )
    ]


def _example_rows(frame: pd.DataFrame, column: str) -> tuple[str, ...]:
    """The first three ``column=value`` examples of rows numbered by ``ORDER``."""
    first = frame.sort_values(ORDER, kind="stable").head(3)
    return _examples(first, np.ones(len(first), dtype=bool), column)


# -- the distributed checks -------------------------------------------------------------


@dataclass(frozen=True)
class CheckedTables:
    """Typed tables, lazily: each partition is read and typed again wherever it is used.

    Attributes:
        tables: ``leads``, ``accounts``, ``activities``, ``conversions`` as Dask
            DataFrames typed as ``validate`` types them, plus the ``ORDER`` column.
    """

    tables: dict[str, dd.DataFrame]

    def __getitem__(self, name: str) -> dd.DataFrame:
        return self.tables[name]


def typed_tables(
    raw: dict[str, dd.DataFrame],
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
) -> CheckedTables:
    """The tables typed per partition, each row numbered in dataset order (lazy)."""
    import dask
    import dask.dataframe as dd

    typed = {}
    for name, frame in raw.items():
        meta = typed_partition(frame._meta, 0, name, timestamp_format, unknown_activity)
        parts = [
            dask.delayed(typed_partition)(part, i, name, timestamp_format, unknown_activity)
            for i, part in enumerate(frame.to_delayed())
        ]
        typed[name] = dd.from_delayed(parts, meta=meta, verify_meta=False)
    return CheckedTables(typed)


def _repeated(frame: dd.DataFrame, key: str) -> dd.Series:
    """Lazy: each key value that occurs more than once, with its count.

    ``split_out`` keeps the counts spread over the workers: one partition of them would
    put every distinct id of the table on one worker.
    """
    counts = frame[key].dropna().value_counts(split_out=frame.npartitions)
    return counts[counts > 1]


def _first_duplicates(frame: dd.DataFrame, key: str, repeated: dd.Series) -> pd.DataFrame:
    """The first three rows (in dataset order) whose key is repeated: a join, run only
    when there are duplicates."""
    keys = frame[[key, ORDER]].dropna(subset=[key])
    dup = keys.merge(repeated.rename("_n").to_frame(), left_on=key, right_index=True)
    return dup.nsmallest(3, ORDER).compute()


def _orphans(frame: dd.DataFrame, column: str, target: dd.DataFrame, target_col: str) -> tuple:
    """Lazy: rows whose ``column`` is not among ``target_col``'s values, count and first 3."""
    refs = frame[[column, ORDER]].dropna(subset=[column])
    known = target[[target_col]].dropna().drop_duplicates(subset=[target_col])
    known = known.rename(columns={target_col: column}).assign(_hit=np.int8(1))
    joined = refs.merge(known, on=column, how="left")
    orphan = joined[joined["_hit"].isna()][[column, ORDER]]
    return orphan.shape[0], orphan.nsmallest(3, ORDER)


def _compute(*values: object) -> tuple:
    """``dask.compute`` of delayed tasks and collections together, in one graph.

    Dask warns that mixing them turns off expression optimisation (column projection);
    every check reads whole partitions anyway, so reading each file once matters more.
    """
    import dask

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Computing mixed collections", UserWarning)
        return dask.compute(*values)


def check_tables(
    raw: dict[str, dd.DataFrame],
    unknown_activity: UnknownActivity = "reject",
    timestamp_format: str | None = None,
) -> CheckedTables:
    """``features.contract.validate`` on the workers, with the same report.

    Runs on whatever Dask scheduler is current (a ``distributed.Client`` when one is).

    Raises:
        ContractError: listing every violation found, as ``validate`` would list it.
    """
    import dask

    absent = [name for name in TABLES if name not in raw]
    if absent:
        raise ContractError([Violation(n, "*", "table is missing", 0) for n in absent])
    typed = typed_tables(raw, unknown_activity, timestamp_format)
    # Phase 1: every table on its own (validate_table), duplicate ids included.
    checks = {
        name: [
            dask.delayed(partition_checks, nout=2)(part, name, timestamp_format)
            for part in raw[name].to_delayed()
        ]
        for name in TABLES
    }
    repeated = {}
    for name in TABLES:
        key = CONTRACT[name].key
        if key and key in raw[name].columns:
            repeated[name] = _repeated(typed[name], key)
    found, dup_rows = _compute(checks, {name: r.sum() for name, r in repeated.items()})
    violations: list[Violation] = []
    type_facts: list[dict | None] = []
    for name in TABLES:
        table = merge_violations(name, [f for f, _ in found[name]])
        key = CONTRACT[name].key
        if dup_rows.get(name) and not any(v.column == key for v in table):
            first = _first_duplicates(typed[name], key, repeated[name])
            table.append(
                Violation(name, key, "duplicate id", int(dup_rows[name]), _example_rows(first, key))
            )
        violations += table
        if name == "activities":
            type_facts = [t for _, t in found[name]]
    if violations:
        raise ContractError(violations)
    # Phase 2: activity types (already counted per partition) and references (joins).
    violations = merge_activity_types(type_facts, unknown_activity)
    refs = {
        (name, column): _orphans(typed[name], column, typed[target], target_col)
        for name, schema in CONTRACT.items()
        for column, target, target_col in schema.references
    }
    (orphans,) = _compute(refs)
    for name, schema in CONTRACT.items():
        for column, target, target_col in schema.references:
            rows, first = orphans[(name, column)]
            if rows:
                violations.append(
                    Violation(
                        name,
                        column,
                        f"points to an unknown {target}.{target_col}",
                        int(rows),
                        _example_rows(first, column),
                    )
                )
    if violations:
        raise ContractError(violations)
    return typed
