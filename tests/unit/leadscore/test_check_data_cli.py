"""`leadscore simulate --preset` and `leadscore check --data`: the report, and its errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.cli import app


def test_check_data_reports_the_small_company_by_region(tmp_path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    made = runner.invoke(
        app, ["simulate", "--out", str(data), "--preset", "small-company", "--seed", "2", "--json"]
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["leads"] == 600

    result = runner.invoke(app, ["check", "--data", str(data), "--segment", "industry", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    overall = payload["groups"][0]
    assert (overall["scope"], overall["leads"]) == ("overall", 600)
    low, high = overall["rate_ci95"]
    assert low < overall["conversion_rate"] < high
    regions = {g["group"]: g for g in payload["groups"] if g["scope"] == "region"}
    assert set(regions) == {"NA", "EMEA", "LATAM"}
    for tiny in ("EMEA", "LATAM"):
        assert not any(v["enough"] for v in regions[tiny]["verdicts"].values())
    assert any(g["scope"] == "industry" for g in payload["groups"])
    assert "Is the data enough?" in result.output and "calibrate: at least" in result.output


def test_check_data_errors_are_one_line(tmp_path) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["check"])
    assert neither.exit_code == 2 and "give --config" in neither.output
    missing = runner.invoke(app, ["check", "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["check", "--data", str(empty)])
    assert nothing.exit_code == 2 and "error:" in nothing.output
    preset = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--preset", "huge"])
    assert preset.exit_code == 2 and "--preset: give none or one of small-company" in preset.output
