"""Promotion compares only comparable models, needs a strictly better one, and every failure
is a clear error (in the API and as ``error: ...``, exit 2, from ``leadscore promote``).

One champion is trained into a store for the module; each test registers its own
challenger against it. Only the last test moves the champion (with ``force``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from features.catalogue import CATALOGUE
from features.pipeline import TrainingSet
from runtime import registry
from training.promote import PromotionError, promote
from training.train import TrainConfig, TrainingResult, run_training

pytestmark = pytest.mark.slow

TINY = TrainConfig(num_boost_round=30, early_stopping_rounds=10, num_threads=1)
DROPPED = "n_other_90d"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """An empty store and the working directory runs must leave empty."""
    root = tmp_path_factory.mktemp("promote")
    return {"uri": f"sqlite:///{root}/mlflow.db", "home": root}


@pytest.fixture(scope="module")
def champion(store, training_set) -> TrainingResult:
    """The first model: champion of the 90-day labels the pipeline builds by default."""
    return _train(store, training_set, "champion")


def _train(store: dict, data: TrainingSet, name: str) -> TrainingResult:
    old = Path.cwd()
    os.chdir(store["home"])
    try:
        return run_training(data, config=TINY, tracking_uri=store["uri"], run_name=name)
    finally:
        os.chdir(old)


def _champion_version(store: dict) -> str:
    return registry.get_version_info(store["uri"], alias="champion").version


def _cli_promote(store: dict, *args: str):
    from leadscore.cli import app

    env = {
        "LEADSCORE_HOME": str(store["home"]),
        "LEADSCORE_TRACKING_URI": store["uri"],
        "MLFLOW_TRACKING_URI": None,
    }
    return CliRunner().invoke(app, ["promote", *args], env=env)


def test_a_tie_does_not_promote_and_the_decision_says_so(store, champion, training_set):
    twin = _train(store, training_set, "twin")  # same data, same seed: the same model
    assert twin.aliases == ["challenger"]
    decided = promote(store["uri"])
    assert decided.challenger_score == decided.champion_score
    assert decided.decision == "rejected" and not decided.promoted
    assert decided.reason is not None and decided.reason.startswith("tie")
    assert "strictly better" in decided.reason
    assert _champion_version(store) == champion.version
    tags = mlflow.MlflowClient(store["uri"]).get_model_version("lead-scoring", twin.version).tags
    assert tags["promotion.decision"] == "rejected" and tags["promotion.reason"].startswith("tie")
    last = json.loads(
        mlflow.MlflowClient(store["uri"])
        .get_registered_model("lead-scoring")
        .tags["promotion.last"]
    )
    assert last["reason"] == decided.reason

    forced = promote(store["uri"], force=True, margin=0.0, metric="brier")
    assert forced.decision == "forced" and forced.reason.startswith("forced: tie")
    # Put the first champion back for the other tests (a forced move is a move).
    mlflow.MlflowClient(store["uri"]).set_registered_model_alias(
        "lead-scoring", "champion", champion.version
    )


def test_a_champion_needing_a_feature_the_test_set_lacks_is_a_clear_error(
    store, champion, training_set
):
    narrower = TrainingSet(
        training_set.frame.drop(columns=[DROPPED]),
        training_set.metadata.model_copy(
            update={"catalogue": tuple(f for f in CATALOGUE if f.name != DROPPED)}
        ),
    )
    challenger = _train(store, narrower, "narrower")
    expected = (
        f"champion v{champion.version} needs feature(s) {DROPPED}, which the test set of "
        f"challenger v{challenger.version} lacks"
    )
    with pytest.raises(PromotionError) as caught:
        promote(store["uri"])
    assert str(caught.value).startswith(expected)
    assert str(caught.value).endswith("retrain one or promote with --force")

    out = _cli_promote(store)
    assert out.exit_code == 2, out.output
    assert f"error: {expected}" in out.output and "Traceback" not in out.output
    assert _champion_version(store) == champion.version


def test_models_with_other_label_horizons_are_not_compared(store, champion, training_set):
    sixty = TrainingSet(
        training_set.frame, training_set.metadata.model_copy(update={"horizon_days": 60})
    )
    challenger = _train(store, sixty, "sixty")
    expected = (
        f"champion v{champion.version} predicts conversion within 90 days, challenger "
        f"v{challenger.version} within 60 days: they cannot be compared on the same labels; "
        "retrain one or promote with --force"
    )
    with pytest.raises(PromotionError) as caught:
        promote(store["uri"], margin=0.0)
    assert str(caught.value) == expected

    out = _cli_promote(store)
    assert out.exit_code == 2, out.output
    assert f"error: {expected}" in " ".join(out.output.split())
    assert _champion_version(store) == champion.version
    tags = mlflow.MlflowClient(store["uri"]).get_model_version("lead-scoring", challenger.version)
    assert "promotion.decision" not in tags.tags  # a refusal records no decision

    # --force promotes without a comparison, and says why there was none.
    forced = promote(store["uri"], force=True)
    assert forced.decision == "forced" and forced.promoted
    assert forced.champion_score is None and forced.challenger_score is not None
    assert forced.warning and "within 60 days" in forced.warning
    assert forced.reason and forced.reason.startswith("forced without a comparison")
    assert _champion_version(store) == challenger.version
