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
    for name in (
        "data",
        "training_set.parquet",
        "report",
        "mlflow.db",
        "scores.csv",
        "samples",
        "leadscore.db",
        "crm_export.csv",
        "report.html",
    ):
        assert (home / name).exists(), name
    scores = pd.read_csv(home / "scores.csv")
    assert len(scores) > 0 and scores["probability"].between(0, 1).all()
    assert_scores_are_the_champions(home, scores)
    assert len(list_samples(home / "samples")) == 6
    uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    with registry.tracking(uri) as client:
        assert (
            registry.version_info(client, registry.DEFAULT_MODEL_NAME, registry.CHAMPION).version
            == "1"
        )


def assert_scores_are_the_champions(home, scores: pd.DataFrame) -> None:
    """Every written score is the registered champion's, recomputed here from the data:
    point-in-time features of (lead, as_of), the downloaded bundle's probability, the
    policy's score, grade and MQL flag."""
    import numpy as np

    from features.io import load_tables
    from features.pipeline import compute_features
    from runtime.bundle import ModelBundle

    uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    bundle = ModelBundle.load(
        registry.download_bundle(uri, registry.DEFAULT_MODEL_NAME, registry.CHAMPION, home / "c")
    )
    tables = load_tables(home / "data")
    assert not scores["lead_id"].duplicated().any()
    snapshots = pd.DataFrame(
        {"lead_id": scores["lead_id"].astype(str), "as_of": pd.to_datetime(scores["as_of"])}
    ).astype({"as_of": "datetime64[us]"})
    frame = compute_features(tables["leads"], tables["accounts"], tables["activities"], snapshots)
    expected = bundle.score(frame)
    np.testing.assert_allclose(scores["probability"], expected.probability, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(scores["score"], expected.score)
    np.testing.assert_array_equal(scores["grade"], expected.grade)
    np.testing.assert_array_equal(scores["mql"], expected.mql)
    assert (scores["model_version"].astype(str) == "1").all()
    assert scores["probability"].is_monotonic_decreasing  # highest first
