"""``leadscore feedback import``: a CRM export into the lead store, mapped by the dataset
config, all or nothing, errors naming file, row (as the file numbers it) and column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app
from store.engine import open_store
from store.feedback import leads_dispositions
from store.runs import RunInfo, read_states, write_run

CONFIG = {
    "kind": "lead_snapshot",  # a dataset config; the import reads only its feedback section
    "source": {"file": "leads.csv"},
    "id": "Lead ID",
    "outcome": {"column": "Converted"},
    "as_of": "2025-06-01",
    "features": [{"name": "Lead Source"}],
    "feedback": {
        "columns": {
            "lead_id": "Lead ID",
            "stage": "Status",
            "occurred_at": "Status Date",
            "reason_code": "Reason",
            "recorded_by": "Rep",
            "owner": "Lead Owner",
        },
        "timestamp_format": "%d/%m/%Y %H:%M",
        "stages": {
            "Sales Accepted": "accepted",
            "Disqualified - No Budget": {"stage": "rejected", "reason_code": "no_budget"},
            "Disqualified": "rejected",
            "Closed Won": "won",
            "Open": None,
        },
        "reasons": {"Wrong timing": "bad_timing"},
    },
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A leadscore home whose store knows the leads L1 to L3."""
    engine = open_store(f"sqlite:///{tmp_path / 'leadscore.db'}")
    frame = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "probability": 0.7,
            "probability_low": 0.6,
            "probability_high": 0.8,
            "score": 70,
            "grade": "A1",
            "mql": True,
            "threshold": 0.5,
            "created_at": pd.Timestamp("2025-01-01"),
        }
    )
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-01"),
        model_name="m",
        model_version="1",
        threshold=0.5,
    )
    write_run(engine, info, frame)
    engine.dispose()
    return tmp_path


def _run(home: Path, *args: str):
    return CliRunner().invoke(app, ["feedback", "import", *args], env={"LEADSCORE_HOME": str(home)})


def _stored(home: Path) -> pd.DataFrame:
    engine = open_store(f"sqlite:///{home / 'leadscore.db'}")
    try:
        return leads_dispositions(engine)
    finally:
        engine.dispose()


def test_canonical_columns_import_once_and_again_as_duplicates(home: Path) -> None:
    export = home / "export.csv"
    export.write_text(
        "lead_id,stage,occurred_at,reason_code,recorded_by\n"
        "L1,accepted,2025-03-02T09:00:00,,ann\n"
        "L1,won,2025-03-01T09:00:00,,ann\n"  # before its accepted: kept, flagged
        "L2,rejected,2025-03-03,spam,\n"
    )
    result = _run(home, "--file", str(export), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["recorded"], counts["duplicates"], counts["flagged"]) == (3, 0, 1)
    again = _run(home, "--file", str(export), "--json")
    assert json.loads(again.stdout)["duplicates"] == 3
    stored = _stored(home)
    assert len(stored) == 3
    assert stored.set_index("stage").loc["rejected", "recorded_by"] == "import:export.csv"


def test_a_config_maps_columns_and_values(home: Path) -> None:
    config = home / "dataset.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    export = home / "crm.csv"
    export.write_text(
        "Lead ID,Status,Status Date,Reason,Rep,Lead Owner,Other\n"
        "L1,Sales Accepted,02/03/2025 09:30,,Ann,Ann,x\n"
        "L1,closed won,20/03/2025 16:00,,Ann,Bob,x\n"  # any case
        "L2,Disqualified - No Budget,03/03/2025 10:00,,Cy,,x\n"
        "L3,Disqualified,04/03/2025 10:00,Wrong timing,Cy,,x\n"
        "L3,Open,01/03/2025 10:00,,Cy,,x\n"  # not a disposition: skipped
    )
    result = _run(home, "--file", str(export), "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["recorded"], counts["skipped"], counts["owners"]) == (4, 1, 1)
    stored = _stored(home)
    codes = stored["reason_code"].fillna("-")
    assert list(zip(stored["lead_id"], stored["stage"], codes, strict=True)) == [
        ("L1", "accepted", "-"),
        ("L1", "won", "-"),
        ("L2", "rejected", "no_budget"),
        ("L3", "rejected", "bad_timing"),
    ]
    assert stored["occurred_at"].iloc[0] == pd.Timestamp("2025-03-02 09:30")
    engine = open_store(f"sqlite:///{home / 'leadscore.db'}")
    with engine.connect() as c:
        assert read_states(c).set_index("lead_id").loc["L1", "owner"] == "Bob"
    engine.dispose()


def test_bad_rows_are_named_as_the_file_shows_them_and_nothing_is_written(home: Path) -> None:
    config = home / "dataset.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    export = home / "crm.csv"
    export.write_text(
        "Lead ID,Status,Status Date,Reason,Rep,Lead Owner\n"
        "L1,Sales Accepted,02/03/2025 09:30,,Ann,\n"
        "L2,Sales Acepted,02/03/2025 09:30,,Ann,\n"
        "L9,Sales Accepted,02/03/2025 09:30,,Ann,\n"
        "L3,Sales Accepted,last week,,Ann,\n"
    )
    result = _run(home, "--file", str(export), "--config", str(config))
    assert result.exit_code == 2
    err = result.stderr
    assert f"error: {export}: 3 of 4 row(s) refused, nothing recorded" in err
    assert "row 3 (lead 'L2'), column 'Status': 'Sales Acepted' is not a stage" in err
    assert "row 4 (lead 'L9'), column 'Lead ID': unknown lead 'L9'" in err
    assert "row 5 (lead 'L3'), column 'Status Date': 'last week' is not a date" in err
    assert "Traceback" not in result.output
    assert _stored(home).empty


def test_a_wrong_mapping_or_a_missing_column_is_a_clear_error(home: Path) -> None:
    config = home / "dataset.yaml"
    wrong = json.loads(json.dumps(CONFIG))
    wrong["feedback"]["stages"]["Sales Accepted"] = "acepted"
    wrong["feedback"]["columns"]["stge"] = "Status"
    config.write_text(yaml.safe_dump(wrong))
    export = home / "crm.csv"
    export.write_text("Lead ID,Status\nL1,Sales Accepted\n")
    result = _run(home, "--file", str(export), "--config", str(config))
    assert result.exit_code == 2
    assert "feedback.columns: 'stge' is not one of lead_id, stage" in result.stderr
    wrong["feedback"]["columns"].pop("stge")
    config.write_text(yaml.safe_dump(wrong))
    result = _run(home, "--file", str(export), "--config", str(config))
    assert result.exit_code == 2
    assert "feedback.stages['Sales Accepted']: 'acepted' is not a stage" in result.stderr
    result = _run(home, "--file", str(export))
    assert result.exit_code == 2
    assert "column(s) 'lead_id', 'stage', 'occurred_at' not in the file" in result.stderr
    assert "--config" in result.stderr


def test_leadscore_check_reports_the_feedback_section_with_the_rest() -> None:
    from features.dataset_config import validate_config

    wrong = json.loads(json.dumps(CONFIG))
    wrong["feedback"]["stages"]["Disqualified"] = {"stage": "rejected", "reason": "spam"}
    wrong["feedback"]["sepp"] = ";"
    _, problems = validate_config(wrong)
    assert (
        "feedback.stages['Disqualified']: unknown key 'reason' (did you mean 'reason_code'?)"
        in (problems)
    )
    assert "feedback: unknown key 'sepp' (did you mean 'sep'?)" in problems
    assert validate_config(CONFIG)[1] == []
