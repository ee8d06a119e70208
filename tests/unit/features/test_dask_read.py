"""Combining what each partition found into the single-machine report (no cluster)."""

from __future__ import annotations

import pandas as pd

from features.contract import ContractError, Violation, validate_table
from features.dask_read import merge_activity_types, merge_violations, partition_checks


def test_counts_add_examples_keep_partition_order_and_coercion_wins():
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6"],
            "account_id": ["A1", None, "A1", None, None, "A1"],
            "created_at": ["2024-01-01", "2024-01-02", "soon", None, "2024-01-03", "later"],
            **{c: None for c in ("job_title", "seniority", "department", "country")},
            **{c: None for c in ("region", "lead_source")},
        }
    )
    parts = [leads.iloc[:2], leads.iloc[2:3], leads.iloc[3:5], leads.iloc[5:]]
    per_partition = [partition_checks(p, "leads", None)[0] for p in parts]
    _, want = validate_table("leads", leads)
    assert merge_violations("leads", per_partition) == want
    # One partition alone reports missing created_at; the whole table reports the
    # unparseable ones instead, because coercion is checked first.
    assert any(v.problem == "missing value" and v.column == "created_at" for v in per_partition[2])
    assert str(ContractError(merge_violations("leads", per_partition))) == str(ContractError(want))


def test_unknown_types_named_by_count_then_first_appearance():
    activities = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6", "L7"],
            "occurred_at": ["2024-01-01"] * 7,
            "activity_type": ["fax", "page_view", "telex", "zoom", "telex", "fax", "memo"],
        }
    )
    parts = [activities.iloc[:3], activities.iloc[3:5], activities.iloc[5:]]
    facts = [partition_checks(p, "activities", None)[1] for p in parts]
    [got] = merge_activity_types(facts, "reject")
    assert got.count == 6
    assert got.problem.startswith("unknown activity type (fax, telex, zoom; known:")
    assert got.examples == ("lead_id=L1", "lead_id=L3", "lead_id=L4")
    assert merge_activity_types(facts, "other") == []


def test_a_missing_required_column_is_reported_once_with_every_row():
    frame = pd.DataFrame({"lead_id": ["L1", "L2", "L3"]})
    found = [partition_checks(frame.iloc[:1], "conversions", None)[0]]
    found.append(partition_checks(frame.iloc[1:], "conversions", None)[0])
    assert merge_violations("conversions", found) == [
        Violation("conversions", "converted_at", "required column is missing", 3)
    ]


def test_text_read_by_dask_is_checked_as_pandas_reads_it():
    """``NA`` in a number or time column is a missing value, whatever the text dtype."""
    conversions = pd.DataFrame({"lead_id": ["L1", "L2"], "converted_at": ["2024-01-01", "NA"]})
    accounts = pd.DataFrame(
        {"account_id": ["A1", "A2"], "employee_count": ["NA", "12"]}
        | {c: None for c in ("company_name", "industry", "annual_revenue", "country")}
    )
    expected = {"conversions": ["missing value"], "accounts": []}
    for name, frame in (("conversions", conversions), ("accounts", accounts)):
        _, want = validate_table(name, frame.astype("str"))
        got, _ = partition_checks(frame.astype("string[pyarrow]"), name, None)
        assert got == want
        assert [v.problem for v in want] == expected[name]
