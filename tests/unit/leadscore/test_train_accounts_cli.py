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
