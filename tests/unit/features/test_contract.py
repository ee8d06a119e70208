"""The data contract: every violation named, with table, column, count and examples."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import ContractError, rows_after, validate
from features.io import load_tables, write_tables
from leadscore.cli import app


def good_tables() -> dict[str, pd.DataFrame]:
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "account_id": ["A1", "A1", "A2"],
            "created_at": ["2024-01-05", "2024-02-10T10:00:00Z", "2024-03-01 08:30:00"],
            "job_title": ["VP Sales", None, "Analyst"],
            "seniority": ["VP", "Manager", "Individual Contributor"],
            "department": ["Sales", "IT", "Finance"],
            "country": ["US", "DE", "BR"],
            "region": ["NA", "EMEA", "LATAM"],
            "lead_source": ["webinar", "paid_search", "referral"],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "company_name": ["Acme", "Globex"],
            "industry": ["Software", "Retail"],
            "employee_count": [500, 20],
            "annual_revenue": [2e7, 1e6],
            "country": ["US", "BR"],
        }
    )
    activities = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L2", "L3"],
            "occurred_at": ["2024-01-06", "2024-01-20", "2024-02-11", "2024-03-02"],
            "activity_type": ["pricing_page_view", "email_open", "page_view", "demo_request"],
        }
    )
    conversions = pd.DataFrame({"lead_id": ["L1"], "converted_at": ["2024-03-15"]})
    return {
        "leads": leads,
        "accounts": accounts,
        "activities": activities,
        "conversions": conversions,
    }


def violations_of(tables: dict[str, pd.DataFrame], **kwargs) -> list[str]:
    with pytest.raises(ContractError) as info:
        validate(tables, **kwargs)
    return [str(v) for v in info.value.violations]


def test_valid_tables_are_typed():
    typed = validate(good_tables())
    assert str(typed["leads"]["created_at"].dtype) == "datetime64[us]"
    assert typed["leads"]["created_at"].iloc[1] == pd.Timestamp("2024-02-10 10:00:00")
    assert typed["accounts"]["employee_count"].dtype == "float64"
    assert "detail" in typed["activities"]


def test_missing_column_names_table_and_column():
    tables = good_tables()
    tables["leads"] = tables["leads"].drop(columns=["created_at"])
    assert violations_of(tables) == ["leads.created_at: required column is missing in 3 row(s)"]


def test_unparseable_timestamp_counts_rows_and_shows_keys():
    tables = good_tables()
    tables["activities"].loc[[1, 3], "occurred_at"] = ["yesterday", "2024-13-45"]
    (msg,) = violations_of(tables)
    assert msg.startswith("activities.occurred_at: unparseable timestamp in 2 row(s)")
    assert "lead_id=L1" in msg and "lead_id=L3" in msg


def test_wrong_type_in_numeric_column():
    tables = good_tables()
    tables["accounts"]["employee_count"] = ["500", "lots"]
    (msg,) = violations_of(tables)
    assert "accounts.employee_count: not a number" in msg and "account_id=A2" in msg


def test_duplicate_ids():
    tables = good_tables()
    tables["leads"].loc[2, "lead_id"] = "L2"
    tables["activities"].loc[3, "lead_id"] = "L2"
    (msg,) = violations_of(tables)
    assert msg.startswith("leads.lead_id: duplicate id in 2 row(s)") and "lead_id=L2" in msg


def test_orphans_are_reported_for_every_reference():
    tables = good_tables()
    tables["activities"].loc[0, "lead_id"] = "L999"
    tables["conversions"].loc[0, "lead_id"] = "L404"
    tables["leads"].loc[2, "account_id"] = "A9"
    msgs = violations_of(tables)
    assert any(
        m.startswith("activities.lead_id: points to an unknown leads.lead_id in 1 row")
        and "L999" in m
        for m in msgs
    )
    assert any(
        m.startswith("conversions.lead_id: points to an unknown leads.lead_id") and "L404" in m
        for m in msgs
    )
    assert any(
        m.startswith("leads.account_id: points to an unknown accounts.account_id") and "A9" in m
        for m in msgs
    )


def test_unknown_activity_type_rejected_or_kept_as_other():
    tables = good_tables()
    tables["activities"].loc[[0, 2], "activity_type"] = ["chat_started", "chat_started"]
    (msg,) = violations_of(tables)
    assert "activities.activity_type: unknown activity type (chat_started" in msg
    assert "in 2 row(s)" in msg
    typed = validate(tables, unknown_activity="other")
    assert (typed["activities"]["activity_type"] == "other").sum() == 2


def test_missing_required_value():
    tables = good_tables()
    tables["leads"].loc[0, "account_id"] = None
    (msg,) = violations_of(tables)
    assert msg.startswith("leads.account_id: missing value in 1 row(s)")


def test_all_problems_reported_at_once():
    tables = good_tables()
    tables["leads"].loc[0, "created_at"] = "not a date"
    tables["accounts"]["annual_revenue"] = ["x", "1e6"]
    assert len(violations_of(tables)) == 2


def test_csv_folder_round_trip_keeps_text_ids(tmp_path: Path):
    tables = good_tables()
    tables["leads"]["lead_id"] = ["007", "008", "009"]
    for name in ("activities", "conversions"):
        tables[name]["lead_id"] = tables[name]["lead_id"].map(
            {"L1": "007", "L2": "008", "L3": "009"}
        )
    write_tables(tables, tmp_path / "csv", fmt="csv")
    typed = load_tables(tmp_path / "csv")
    assert typed["leads"]["lead_id"].tolist() == ["007", "008", "009"]


def test_cli_writes_nothing_for_invalid_input(tmp_path: Path):
    tables = good_tables()
    tables["conversions"].loc[0, "lead_id"] = "nobody"
    write_tables(tables, tmp_path / "data")
    out = tmp_path / "ts.parquet"
    result = CliRunner().invoke(
        app, ["features", "--data", str(tmp_path / "data"), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "conversions.lead_id: points to an unknown leads.lead_id" in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_missing_table_file_is_named(tmp_path: Path):
    tables = good_tables()
    del tables["accounts"]
    write_tables(tables, tmp_path / "data")
    with pytest.raises(ContractError, match=r"accounts\.\*: no accounts.parquet or accounts.csv"):
        load_tables(tmp_path / "data")


def test_rows_after_the_data_end_are_a_warning_per_column_not_an_error():
    tables = good_tables()
    tables["activities"].loc[len(tables["activities"])] = ["L2", "2030-01-01", "email_open"]
    tables["leads"].loc[2, "created_at"] = "2030-02-01"
    typed = validate(tables)  # a future date alone stops nothing
    end = pd.Timestamp("2024-03-15")
    found = rows_after(typed, end)
    assert [v.level for v in found] == ["warning", "warning"]
    assert [str(v) for v in found] == [
        "leads.created_at: dated after the data end 2024-03-15 00:00:00 (left out of "
        "snapshots, features and labels) in 1 row(s) (e.g. lead_id=L3)",
        "activities.occurred_at: dated after the data end 2024-03-15 00:00:00 (left out of "
        "snapshots, features and labels) in 1 row(s) (e.g. lead_id=L2)",
    ]
    assert rows_after(typed, pd.Timestamp("2030-02-01")) == []
    assert [(v.table, v.count) for v in rows_after(typed, pd.Timestamp("2024-03-14"))] == [
        ("leads", 1),
        ("activities", 1),
        ("conversions", 1),
    ]
