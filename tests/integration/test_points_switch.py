"""The planned switch: a points champion serves until a learned challenger beats it on the
challenger's own test period, by log loss and by ROC AUC; the decision is in the registry
(version tags, the ``champion`` alias) and in the challenger's model card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest

from features.contract import validate
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from features.simulate import simulate
from runtime import registry
from training.promote import promote
from training.retrain import record_in_card, retrain
from training.split import split_by_time
from training.train import TrainConfig, TrainingResult, run_training

pytestmark = pytest.mark.slow

TINY = TrainConfig(num_boost_round=60, early_stopping_rounds=10, num_threads=1)
NAME = registry.DEFAULT_MODEL_NAME


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A small simulated funnel and an empty registry (SQLite) for it."""
    tables = validate(simulate(1500, seed=3).tables())
    root = tmp_path_factory.mktemp("switch")
    return {
        "tables": tables,
        "data": build_training_set(tables, PipelineConfig()),
        "uri": f"sqlite:///{root}/mlflow.db",
        "home": root,
    }


def _train(world: dict, data: TrainingSet, model: str, name: str) -> TrainingResult:
    old = Path.cwd()
    os.chdir(world["home"])
    try:
        config = TINY.model_copy(update={"model": model})
        return run_training(data, config=config, tracking_uri=world["uri"], run_name=name)
    finally:
        os.chdir(old)


def _champion(world: dict) -> str:
    return registry.get_version_info(world["uri"], alias="champion").version


def _noise_before_the_test_period(data: TrainingSet, seed: int = 0) -> TrainingSet:
    """Outcomes shuffled in the periods a model learns from, true in the test period: a
    learned model fitted on it learned nothing, and is judged on real outcomes."""
    frame = data.frame.copy()
    test_start = split_by_time(frame, TINY.split).boundaries.test_start
    before = (frame["as_of"] < test_start).to_numpy()
    labels = frame["label"].to_numpy().copy()
    labels[before] = np.random.default_rng(seed).permutation(labels[before])
    frame["label"] = labels
    return TrainingSet(frame, data.metadata)


def test_a_points_champion_stays_until_a_learned_model_beats_it(world):
    client = mlflow.MlflowClient(world["uri"])
    first = _train(world, world["data"], "points", "points")
    assert first.bundle.kind == "points" and "champion" in first.aliases
    assert "## Points rules" in first.card and "- seniority: C-Level +20" in first.card
    assert "## Model by region" in first.card and "| NA |" in first.card

    # A learned challenger that does not beat the points: it stays a challenger.
    noise = _train(world, _noise_before_the_test_period(world["data"]), "lightgbm", "noise")
    assert noise.bundle.kind == "tree" and noise.aliases == ["challenger"]
    kept = promote(world["uri"], metrics=("log_loss", "roc_auc"))
    assert kept.decision == "rejected" and not kept.promoted
    assert kept.metrics == ("log_loss", "roc_auc") and kept.metric == "log_loss"
    assert kept.challenger_model == "lightgbm" and kept.champion_model == "points"
    assert kept.scores["log_loss"]["challenger"] > kept.scores["log_loss"]["champion"]
    assert "the challenger must be better on log_loss and roc_auc" in (kept.reason or "")
    assert _champion(world) == first.version
    tags = client.get_model_version(NAME, noise.version).tags
    assert tags["promotion.decision"] == "rejected"
    assert tags["promotion.metrics"] == "log_loss,roc_auc"
    assert json.loads(tags["promotion.scores"]) == kept.scores
    assert tags["promotion.champion_model"] == "points"
    card = record_in_card(world["uri"], noise, kept)
    assert "## Promotion" in card and "did not replace the champion" in card
    assert f"The champion v{first.version} (Points score) stays in service." in card
    logged = Path(
        client.download_artifacts(noise.run_id, "report/model_card.md", str(world["home"]))
    )
    assert logged.read_text() == card
    assert client.get_run(noise.run_id).data.tags["mlflow.note.content"] == registry.run_note(card)

    # New outcomes: retrain runs the tournament, a learned model wins it and replaces the
    # points, on log loss and ROC AUC both, on the challenger's test period.
    result = retrain(
        world["tables"],
        tracking_uri=world["uri"],
        store_dir=world["home"],
        config=TINY,
    )
    switched = result.promotion
    assert switched is not None
    assert result.training.bundle.metadata.model_choice.chosen != "points"
    assert switched.decision == "promoted" and switched.promoted, switched.reason
    assert switched.metrics == ("roc_auc", "log_loss")
    assert switched.scores["roc_auc"]["challenger"] > switched.scores["roc_auc"]["champion"]
    assert switched.scores["log_loss"]["challenger"] < switched.scores["log_loss"]["champion"]
    assert switched.champion_model == "points" and switched.champion_version == first.version
    assert _champion(world) == result.training.version
    tags = client.get_model_version(NAME, result.training.version).tags
    assert tags["promotion.decision"] == "promoted" and tags["promotion.champion_model"] == "points"
    assert "replaced the champion" in result.training.card
    assert "| Log loss |" in result.training.card and "| ROC AUC |" in result.training.card
    assert result.to_dict()["promotion"]["scores"] == switched.scores
