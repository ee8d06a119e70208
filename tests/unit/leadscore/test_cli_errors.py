"""The CLI's promises to people and scripts: a wrong input is one ``error: ...`` line on
stderr and exit status 2, never a traceback; ``--version``; ``--json`` prints one JSON
object on stdout and nothing else there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import leadscore
from leadscore.cli import app


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Right and wrong inputs: a data folder, a file, a folder, empty and garbled files."""
    root = tmp_path_factory.mktemp("inputs")
    result = CliRunner().invoke(
        app,
        ["simulate", "--out", str(root / "data"), "--leads", "300", "--months", "3"],
        env={"LEADSCORE_HOME": str(root)},
    )
    assert result.exit_code == 0, result.output
    (root / "folder").mkdir()
    (root / "empty.parquet").write_bytes(b"")
    (root / "empty.yaml").write_bytes(b"")
    (root / "garbage.parquet").write_text("this is not parquet\n")
    (root / "garbage.yaml").write_text("kind: [unclosed\n")
    (root / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    broken = root / "broken_data"
    broken.mkdir()
    for table in ("accounts", "activities", "conversions"):
        (broken / f"{table}.parquet").write_bytes((root / "data" / f"{table}.parquet").read_bytes())
    (broken / "leads.parquet").write_text("garbage")
    emptied = root / "empty_csv_data"
    emptied.mkdir()
    for table in ("leads", "accounts", "activities", "conversions"):
        (emptied / f"{table}.csv").write_bytes(b"")
    return {
        "root": root,
        "data": root / "data",
        "file": root / "data" / "leads.parquet",
        "folder": root / "folder",
        "missing": root / "missing.parquet",
        "empty": root / "empty.parquet",
        "empty_yaml": root / "empty.yaml",
        "garbage": root / "garbage.parquet",
        "garbage_yaml": root / "garbage.yaml",
        "latin1_yaml": root / "latin1.yaml",
        "broken_data": broken,
        "empty_csv_data": emptied,
    }


# (command line with {placeholders} from ``inputs``, text the error line must contain)
WRONG = [
    # simulate: a file where the output folder belongs, a format it cannot write
    ("simulate --out {file}", "is a file"),
    ("simulate --out {folder}/x --format xls", "--format"),
    ("simulate --out {folder}/x --drift sideways", "--drift"),
    ("simulate --out {folder}/x --drift-start-month 3", "--drift-start-month"),
    # simulate-sales: data without ground truth, a wrong output kind, a store without MQLs
    ("simulate-sales --data {folder} --out {root}/x.csv", "ground_truth"),
    ("simulate-sales --data {data} --out {root}/x.txt", ".csv"),
    ("simulate-sales --data {data} --out {root}/x.csv", "leadscore score"),
    # the score history: nothing stored yet, a window it does not keep, an unreadable date
    ("leads timeline nobody", "nobody"),
    ("leads momentum --days 9", "--days"),
    ("leads new --since someday", "--since"),
    # report: a wrong output kind, a capacity that is not MQLs per week, a missing folder
    ("report --out {root}/r.pdf", ".html"),
    ("report --out {root}/r.html --capacity lots", "--capacity"),
    ("report --out {root}/r.html --data {missing}", "does not exist"),
    # features: file for folder, missing folder, folder for file, wrong and empty files
    ("features --data {file} --out {root}/ts.parquet", "is a file"),
    ("features --data {missing} --out {root}/ts.parquet", "does not exist"),
    ("features --data {data} --out {folder}", ".parquet"),
    ("features --data {data} --out {data}/leads.parquet/ts.parquet", "is a file"),
    ("features --data {broken_data} --out {root}/ts.parquet", "cannot read"),
    ("features --data {empty_csv_data} --out {root}/ts.parquet", "cannot read"),
    ("features --data {data} --out {root}/ts.parquet --data-end someday", "--data-end"),
    # train: the usual mistake (a data folder), missing, empty and garbled training sets
    ("train --data {data}", "leadscore features --data"),
    ("train --data {folder}", "is a folder"),
    ("train --data {missing}", "does not exist"),
    ("train --data {empty}", "is empty"),
    ("train --data {garbage}", "cannot read"),
    ("train --data {garbage} --out {file}", "is a file"),
    ("train --data {garbage} --ground-truth {folder}", "is a folder"),
    ("train --config {folder}", "is a folder"),
    ("train --config {missing}", "does not exist"),
    ("train --config {garbage_yaml}", "cannot parse"),
    ("train", "give either --data"),
    # check: folder, missing, empty, unparsable and non-UTF-8 configs
    ("check --config {folder}", "is a folder"),
    ("check --config {missing}", "does not exist"),
    ("check --config {empty_yaml}", "is empty"),
    ("check --config {garbage_yaml}", "cannot parse"),
    ("check --config {latin1_yaml}", "UTF-8"),
    # promote: a data folder or a missing file for the training set; no registry at all
    ("promote --data {data}", "leadscore features --data"),
    ("promote --data {missing}", "does not exist"),
    ("promote --data {empty}", "is empty"),
    ("promote", "leadscore train"),
    # retrain and the account history: an option value they do not take
    ("retrain --data {data} --per-region-model sometimes", "--per-region-model"),
    ("accounts momentum --days 30", "--days"),
    ("accounts timeline nobody", "nobody"),
    # score: file for folder, missing folder, folder for file, an unknown output kind
    ("score --data {file} --out {root}/s.csv", "is a file"),
    ("score --data {missing} --out {root}/s.csv", "does not exist"),
    ("score --data {data} --out {folder}", ".csv or .parquet"),
    ("score --data {data} --out {root}/s.txt", ".csv or .parquet"),
    ("score --data {data} --out {root}/s.csv --no-store --weeks 2", "--weeks"),
    # serve: inputs that fail before any server starts
    ("serve --samples {file}", "is a file"),
    ("serve --samples {missing}", "does not exist"),
    ("serve --workers many", "LEADSCORE_WORKERS"),
    ("serve", "leadscore train"),
]


def _error_line(result) -> str:
    """The one ``error:`` line, which must also be the last line on stderr."""
    assert "Traceback" not in result.output, result.output
    assert result.stdout == "", result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


@pytest.mark.parametrize(
    "line,expected", WRONG, ids=[w[0].split(" {")[0] + ":" + w[1] for w in WRONG]
)
def test_a_wrong_input_is_one_line_and_exit_2(inputs, tmp_path, line, expected):
    args = [part.format(**inputs) for part in line.split()]
    result = CliRunner().invoke(
        app,
        args,
        env={
            "LEADSCORE_HOME": str(tmp_path / "home"),
            "MLFLOW_TRACKING_URI": None,
            "LEADSCORE_TRACKING_URI": None,
        },
    )
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert expected in _error_line(result)


@pytest.mark.parametrize(
    "variable,value",
    [
        ("LEADSCORE_TOP_REASONS", "lots"),
        ("LEADSCORE_RELOAD_SECONDS", "nan"),
        ("LEADSCORE_WORKERS", "0"),
        ("LEADSCORE_RECORD_SCORES", "maybe"),
        ("LEADSCORE_MQL_CAPACITY", "lots"),
        ("LEADSCORE_MQL_CAPACITY", "60,EMEA=40"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_the_variable(inputs, variable, value):
    result = CliRunner().invoke(
        app, ["check", "--config", str(inputs["missing"])], env={variable: value}
    )
    assert result.exit_code == 2
    assert variable in _error_line(result)


def test_a_data_folder_given_to_train_names_the_fix_in_a_real_process(inputs):
    """The mistake of issue 13, end to end through the console entry point."""
    result = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", "train", "--data", str(inputs["data"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {inputs['data']} is a folder of tables; build a training set first with "
        f"`leadscore features --data {inputs['data']} --out training_set.parquet`, or pass "
        "--config"
    ]


def test_a_contract_breach_lists_every_problem(inputs, tmp_path):
    """Several problems keep their list, one a line, under the one ``error:`` line."""
    result = CliRunner().invoke(
        app, ["features", "--data", str(inputs["folder"]), "--out", str(tmp_path / "ts.parquet")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    head, *problems = [
        line for line in result.stderr.splitlines() if line.startswith(("error:", "  - "))
    ]
    assert head.startswith("error: input data breaks the data contract")
    assert len(problems) == 4 and all("no " in p for p in problems)


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"leadscore {leadscore.__version__}\n"


def _json(result) -> dict:
    """The one JSON object a ``--json`` run printed: all of stdout."""
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


def test_json_of_simulate_features_and_check(tmp_path):
    runner = CliRunner()
    env = {"LEADSCORE_HOME": str(tmp_path / "home")}
    sim = _json(
        runner.invoke(
            app,
            [
                "simulate",
                "--out",
                str(tmp_path / "data"),
                "--leads",
                "300",
                "--months",
                "3",
                "--json",
            ],
            env=env,
        )
    )
    assert sim["leads"] == 300 and sim["out"] == str(tmp_path / "data")
    built = _json(
        runner.invoke(
            app,
            [
                "features",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "ts.parquet"),
                "--horizon",
                "30",
                "--json",
            ],
            env=env,
        )
    )
    assert built["out"] == str(tmp_path / "ts.parquet") and built["metadata"]["rows"] > 0

    rows = ["Id,Signed Up,Source,Converted"] + [
        f"L{i},2024-{1 + i % 12:02d}-{1 + i % 28:02d},{['web', 'ads'][i % 2]},{int(i % 3 == 0)}"
        for i in range(200)
    ]
    (tmp_path / "leads.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kind": "lead_snapshot",
                "name": "tiny",
                "source": {"file": "leads.csv"},
                "id": "Id",
                "outcome": {"column": "Converted", "positive": [1]},
                "time": {"column": "Signed Up", "format": "%Y-%m-%d"},
                "split": {"kind": "time", "at": "2024-10-01"},
                "features": [
                    {
                        "name": "source",
                        "column": "Source",
                        "group": "fit",
                        "dtype": "category",
                        "template": "Came from {value}",
                        "description": "Lead source",
                    }
                ],
            }
        )
    )
    checked = _json(runner.invoke(app, ["check", "--config", str(config), "--json"], env=env))
    assert checked["ok"] is True and checked["metadata"]["rows"] == 200


@pytest.mark.slow
def test_json_of_train_promote_and_score(tmp_path):
    """One small model end to end, each step read by a script from stdout."""
    runner = CliRunner()
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": None,
    }
    data, training_set = tmp_path / "data", tmp_path / "ts.parquet"
    _json(
        runner.invoke(app, ["simulate", "--out", str(data), "--leads", "1500", "--json"], env=env)
    )
    _json(
        runner.invoke(
            app, ["features", "--data", str(data), "--out", str(training_set), "--json"], env=env
        )
    )
    trained = _json(
        runner.invoke(
            app, ["train", "--data", str(training_set), "--threads", "1", "--json"], env=env
        )
    )
    assert trained["version"] == "1" and set(trained["aliases"]) == {"challenger", "champion"}
    assert 0 <= trained["metrics"]["test_roc_auc"] <= 1
    promoted = _json(runner.invoke(app, ["promote", "--json"], env=env))
    assert promoted["decision"] == "already_champion"
    scored = _json(
        runner.invoke(
            app,
            ["score", "--data", str(data), "--out", str(tmp_path / "scores.csv"), "--json"],
            env=env,
        )
    )
    assert scored["leads"] > 0 and 0 <= scored["mqls"] <= scored["leads"]
