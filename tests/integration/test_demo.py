"""``leadscore demo`` — the main job behind ``make demo`` — end to end, without serving."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from runtime import registry
from serving.samples import list_samples


@pytest.mark.slow
def test_demo_runs_the_whole_job_into_its_home(tmp_path, monkeypatch):
    home = tmp_path / "outputs"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LEADSCORE_TRACKING_URI", raising=False)
    monkeypatch.setenv("LEADSCORE_HOME", str(home))
    out = CliRunner().invoke(app, ["demo", "--leads", "1500", "--no-serve"])
    assert out.exit_code == 0, out.output
    for name in ("data", "training_set.parquet", "report", "mlflow.db", "scores.csv", "samples"):
        assert (home / name).exists(), name
    scores = pd.read_csv(home / "scores.csv")
    assert len(scores) > 0 and scores["probability"].between(0, 1).all()
    assert len(list_samples(home / "samples")) == 6
    uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    with registry.tracking(uri) as client:
        assert (
            registry.version_info(client, registry.DEFAULT_MODEL_NAME, registry.CHAMPION).version
            == "1"
        )
