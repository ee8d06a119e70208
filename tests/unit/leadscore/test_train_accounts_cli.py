"""``leadscore train-accounts``: wrong inputs are one ``error:`` line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("accounts_cli")
    result = CliRunner().invoke(
        app,
        ["simulate", "--out", str(root / "data"), "--leads", "300", "--months", "3"],
        env={"LEADSCORE_HOME": str(root)},
    )
    assert result.exit_code == 0, result.output
    return root / "data"


def _run(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train-accounts", *args], env={"LEADSCORE_HOME": str(tmp_path)})


def test_misspelt_personas_are_named_before_any_training(data, tmp_path):
    personas = tmp_path / "personas.yaml"
    personas.write_text(yaml.safe_dump({"personas": [{"name": "buyer", "seniorities": ["Vp"]}]}))
    result = _run(tmp_path, "--data", str(data), "--personas", str(personas))
    assert result.exit_code == 2
    assert "personas[0] (buyer): seniorities: 'Vp' is not a known seniority" in result.output
    assert "did you mean 'VP'?" in result.output


def test_a_personas_file_without_personas_and_a_missing_folder_are_errors(data, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("kind: tables\n")
    result = _run(tmp_path, "--data", str(data), "--personas", str(other))
    assert result.exit_code == 2 and "has no `personas:` list" in result.output
    result = _run(tmp_path, "--data", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "--data" in result.output


def test_simulate_buying_groups_records_the_group_in_the_ground_truth(tmp_path):
    """``--buying-groups`` is the world the account model is measured on: each lead's persona
    and the win effect of its account's group are in the ground truth, not in the tables."""
    import pandas as pd

    args = ["simulate", "--leads", "400", "--months", "3", "--seed", "3"]
    on = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "on"), "--buying-groups"])
    off = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "off")])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    truth = pd.read_parquet(tmp_path / "on" / "ground_truth.parquet")
    assert {"persona", "buying_group_personas", "buying_group_effect"} <= set(truth.columns)
    assert truth["buying_group_effect"].abs().max() > 0
    plain = pd.read_parquet(tmp_path / "off" / "ground_truth.parquet")
    assert "buying_group_effect" not in plain.columns
    leads_on = pd.read_parquet(tmp_path / "on" / "leads.parquet")
    leads_off = pd.read_parquet(tmp_path / "off" / "leads.parquet")
    pd.testing.assert_frame_equal(leads_on, leads_off)  # who the people are does not change
