"""MLflow tracking and registry against a real store under tmp: runs, aliases, promotion."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from runtime import registry
from runtime.bundle import ModelBundle
from training.data import TrainingDataError
from training.evaluate import evaluate_registered
from training.promote import promote
from training.train import TrainConfig, run_training

pytestmark = pytest.mark.slow

FAST = TrainConfig(num_boost_round=400, early_stopping_rounds=40, num_threads=1)
WORSE = TrainConfig(
    params={"num_leaves": 2, "feature_fraction": 0.1},
    num_boost_round=2,
    early_stopping_rounds=1,
    num_threads=1,
    calibration="platt",
    model="lightgbm",  # a deliberately weak LightGBM, not the best candidate
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A tracking store under tmp, and a working directory that must stay empty."""
    root = tmp_path_factory.mktemp("mlflow")
    cwd = tmp_path_factory.mktemp("cwd")
    return {"uri": f"sqlite:///{root}/mlflow.db", "root": root, "cwd": cwd}


@pytest.fixture(scope="module")
def first(store, training_set_path):
    """The first model trained into an empty registry."""
    old = Path.cwd()
    os.chdir(store["cwd"])
    try:
        return run_training(
            training_set_path,
            config=FAST,
            tracking_uri=store["uri"],
            output_dir=store["root"] / "report",
            run_name="first",
        )
    finally:
        os.chdir(old)


def client(store) -> MlflowClient:
    return MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])


def test_run_logs_the_candidates_and_the_choice(store, first):
    """Every candidate's scores and the choice are in MLflow, the metadata and the card,
    and the logistic baseline is the logistic candidate (like for like)."""
    run = client(store).get_run(first.run_id)
    choice = first.bundle.metadata.model_choice
    assert run.data.params["model.chosen"] == choice.chosen
    assert run.data.params["model.kind"] == choice.kind == first.bundle.kind
    assert run.data.params["model.scheme"] == choice.scheme
    assert {c.name for c in choice.candidates} == {"points", "lightgbm", "logistic", "blend"}
    for c in choice.candidates:
        for key in ("valid_log_loss", "valid_roc_auc", "test_log_loss", "test_roc_auc"):
            assert run.data.metrics[f"candidate_{c.name}_{key}"] == pytest.approx(getattr(c, key))
    logistic = next(c for c in choice.candidates if c.name == "logistic")
    assert first.metrics["logistic_log_loss"] == pytest.approx(logistic.test_log_loss)
    assert first.metrics["logistic_roc_auc"] == pytest.approx(logistic.test_roc_auc)
    registered = next(c for c in choice.candidates if c.name == choice.chosen)
    assert first.metrics["test_roc_auc"] == pytest.approx(registered.test_roc_auc)
    assert "## Model choice" in first.card and choice.reason in first.card


def test_run_logs_params_metrics_window_fingerprint_plots_and_card(store, first):
    run = client(store).get_run(first.run_id)
    assert run.info.status == "FINISHED"
    for key in (
        "test_roc_auc",
        "test_pr_auc",
        "test_log_loss",
        "test_brier",
        "test_ece",
        "test_lift_top10",
        "test_capture_top20",
        "test_precision",
        "test_recall",
        "test_mql_rate",
        "points_roc_auc",
        "logistic_roc_auc",
    ):
        assert key in run.data.metrics, key
    assert any(k.startswith("test_region_NA_") for k in run.data.metrics)
    params = run.data.params
    assert params["data_fingerprint"] == first.bundle.metadata.data_fingerprint
    assert int(params["train.rows"]) > 0 and params["test.first_as_of"]
    assert params["horizon_days"] == "90"
    artifacts = {a.path for a in client(store).list_artifacts(first.run_id, "plots")}
    assert {
        "plots/roc_pr.png",
        "plots/calibration.png",
        "plots/gain_lift.png",
        "plots/shap_summary.png",
        "plots/score_distribution.png",
    } <= artifacts
    report = {a.path for a in client(store).list_artifacts(first.run_id, "report")}
    assert {"report/model_card.md", "report/metrics.json"} <= report
    assert (store["root"] / "mlruns").is_dir()
    assert not any(store["cwd"].iterdir()), "nothing may be written to the working directory"
    assert (first.output_dir / "bundle" / "model.txt").exists()


def test_logged_metrics_are_the_test_periods_own_values(store, first):
    """Each logged test metric equals the value recomputed here, with sklearn and by hand,
    from the test predictions the run wrote (checked first to be the test period's)."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    logged = client(store).get_run(first.run_id).data.metrics
    evaluation = first.output_dir / "evaluation"
    predictions = pd.read_parquet(evaluation / "test_predictions.parquet")
    test = pd.read_parquet(evaluation / "test_set.parquet")
    meta = first.bundle.metadata
    assert len(predictions) == len(test) == meta.window.test.rows
    assert (test["as_of"] >= pd.Timestamp(meta.boundaries.test_start)).all()
    np.testing.assert_array_equal(predictions["label"], test["label"])
    np.testing.assert_allclose(
        predictions["probability"], first.bundle.predict_proba(test), rtol=0, atol=1e-12
    )
    y = predictions["label"].to_numpy()
    p = predictions["probability"].to_numpy()
    mql = predictions["mql"].to_numpy(dtype=bool)
    np.testing.assert_array_equal(
        mql,
        p
        >= first.bundle.policy.threshold_for(
            test["region"].astype("string").fillna("").to_numpy(dtype=object)
        ),
    )
    top10 = np.argsort(-p, kind="stable")[: round(0.1 * len(p))]
    top20 = np.argsort(-p, kind="stable")[: round(0.2 * len(p))]
    deciles = np.array_split(np.argsort(p, kind="stable"), 10)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    expected = {
        "test_roc_auc": roc_auc_score(y, p),
        "test_pr_auc": average_precision_score(y, p),
        "test_log_loss": log_loss(y, clipped),
        "test_brier": brier_score_loss(y, clipped),
        "test_ece": sum(len(d) * abs(y[d].mean() - clipped[d].mean()) for d in deciles) / len(y),
        "test_lift_top10": y[top10].mean() / y.mean(),
        "test_capture_top20": y[top20].sum() / y.sum(),
        "test_mql_rate": mql.mean(),
        "test_precision": y[mql].mean(),
        "test_recall": y[mql].sum() / y.sum(),
    }
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    na = test["region"].astype("string").fillna("").to_numpy() == "NA"
    assert logged["test_region_NA_roc_auc"] == pytest.approx(roc_auc_score(y[na], p[na]))


def test_first_model_is_challenger_and_champion(store, first):
    assert first.version == "1"
    assert set(first.aliases) == {"challenger", "champion"}
    info = registry.get_version_info(store["uri"], "lead-scoring", "champion")
    assert info.version == "1" and info.run_id == first.run_id
    assert set(info.aliases) == {"challenger", "champion"}
    assert info.tags["promotion.decision"] == "first"


def test_pyfunc_champion_reproduces_training_time_probabilities(store, first):
    predictions = pd.read_parquet(first.output_dir / "evaluation" / "test_predictions.parquet")
    test = pd.read_parquet(first.output_dir / "evaluation" / "test_set.parquet")
    with registry.tracking(store["uri"]):
        model = mlflow.pyfunc.load_model(registry.model_uri("lead-scoring", "champion"))
        p = np.asarray(model.predict(test))
    np.testing.assert_allclose(p, predictions["probability"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(p, first.evaluation.scores.probability, atol=1e-12)
    assert ((p > 0) & (p < 1)).all()


def test_model_carries_a_signature_and_a_validation_input_example(store, first):
    """MLflow shows the schema: the input spec's features (in order) and the probability;
    the input example (validation rows) scores through ``mlflow.pyfunc``."""
    uri = registry.model_uri("lead-scoring", "champion")
    with registry.tracking(store["uri"]):
        signature = mlflow.models.get_model_info(uri).signature
        local = mlflow.artifacts.download_artifacts(uri)
        example = mlflow.models.Model.load(local).load_input_example(local)
        p = np.asarray(mlflow.pyfunc.load_model(uri).predict(example))
    assert signature is not None
    assert signature.inputs.input_names() == first.bundle.spec.names
    assert signature.outputs.input_names() == ["probability"]
    types = dict(zip(signature.inputs.input_names(), signature.inputs.input_types(), strict=True))
    for f in first.bundle.spec.features_:
        assert (str(types[f.name]) == "Any") == (f.dtype == "category"), f.name
    assert list(example.columns) == first.bundle.spec.names and 0 < len(example) <= 5
    np.testing.assert_allclose(p, first.bundle.predict_proba(example), atol=1e-12)
    assert ((p > 0) & (p < 1)).all()


def test_model_artifact_holds_no_pickle(store, first):
    with registry.tracking(store["uri"]):
        local = Path(mlflow.artifacts.download_artifacts("models:/lead-scoring/1"))
    names = {p.name for p in local.rglob("*") if p.is_file()}
    assert "python_model.pkl" not in names and "mlflow_model.py" in names
    for path in local.rglob("*"):
        if path.is_file():
            assert path.read_bytes()[:1] != b"\x80", f"{path.name} looks like a pickle"


def test_download_bundle_gives_a_loadable_bundle(store, first, tmp_path):
    folder = registry.download_bundle(
        store["uri"], "lead-scoring", "champion", tmp_path / "champion"
    )
    bundle = ModelBundle.load(folder)
    meta = bundle.metadata
    assert meta.model_name == "lead-scoring" and meta.horizon_days == 90
    assert {period for period, _ in meta.window} == {"train", "valid", "test"}
    assert meta.test_metrics["model"]["roc_auc"] == pytest.approx(first.metrics["test_roc_auc"])
    assert "points baseline" in meta.test_metrics
    assert meta.data_fingerprint == first.bundle.metadata.data_fingerprint
    assert json.loads((folder / "registry.json").read_text())["version"] == "1"


def test_missing_model_or_alias_is_a_clear_error(store, first):
    with pytest.raises(registry.ModelNotFoundError, match="no registered model named"):
        registry.get_version_info(store["uri"], "no-such-model", "champion")
    with pytest.raises(registry.AliasNotFoundError, match="no version with alias 'staging'"):
        registry.download_bundle(store["uri"], "lead-scoring", "staging", Path("unused"))
    assert registry.model_uri("lead-scoring", "champion") == "models:/lead-scoring@champion"
    assert registry.ui_command(store["uri"]) == f"mlflow ui --backend-store-uri {store['uri']}"


def test_reading_a_store_that_does_not_exist_fails_and_creates_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(registry.ModelNotFoundError, match="no MLflow store"):
        registry.get_version_info(uri)
    with pytest.raises(registry.ModelNotFoundError, match="no MLflow store"):
        promote(uri)
    assert not (tmp_path / "mlflow.db").exists()


def test_evaluate_registered_rescores_the_same_test_period(
    store, first, training_set, training_set_path, tmp_path
):
    result = evaluate_registered(
        training_set_path,
        tracking_uri=store["uri"],
        alias="challenger",
        output_dir=tmp_path / "eval",
    )
    assert result.version.version == first.version
    assert result.metrics["test_roc_auc"] == pytest.approx(first.metrics["test_roc_auc"])
    assert result.metrics["points_roc_auc"] == pytest.approx(first.metrics["points_roc_auc"])
    assert (tmp_path / "eval" / "plots" / "roc_pr.png").exists()
    some = training_set.frame[training_set.frame["as_of"] >= result.window[0]]
    everything = evaluate_registered(some, tracking_uri=store["uri"], period="all")
    assert everything.evaluation.y.size == len(some) > result.evaluation.y.size


def test_bad_training_data_registers_no_version(store, first, training_set):
    before = len(client(store).search_model_versions("name='lead-scoring'"))
    runs_before = len(client(store).search_runs([first.experiment_id]))
    with pytest.raises(TrainingDataError, match="single class"):
        run_training(training_set.frame.assign(label=0), config=FAST, tracking_uri=store["uri"])
    assert len(client(store).search_model_versions("name='lead-scoring'")) == before
    assert len(client(store).search_runs([first.experiment_id])) == runs_before


def test_promotion_moves_champion_only_to_a_better_challenger(
    store, first, training_set, training_set_path
):
    worse = run_training(training_set, config=WORSE, tracking_uri=store["uri"], run_name="worse")
    assert worse.aliases == ["challenger"]
    assert worse.metrics["test_roc_auc"] < first.metrics["test_roc_auc"]

    rejected = promote(store["uri"], margin=0.0)
    assert rejected.decision == "rejected" and not rejected.promoted
    assert rejected.challenger_score < rejected.champion_score
    assert registry.get_version_info(store["uri"], alias="champion").version == "1"
    tags = registry.get_version_info(store["uri"], alias="challenger").tags
    assert tags["promotion.decision"] == "rejected"
    assert float(tags["promotion.champion_score"]) == pytest.approx(rejected.champion_score)
    assert float(tags["promotion.challenger_score"]) == pytest.approx(rejected.challenger_score)

    # Re-cutting the challenger's test period from the training set gives the same scores.
    again = promote(store["uri"], data=training_set_path)
    assert again.challenger_score == pytest.approx(rejected.challenger_score)
    assert again.champion_score == pytest.approx(rejected.champion_score)

    forced = promote(store["uri"], force=True)
    assert forced.decision == "forced" and forced.promoted
    assert registry.get_version_info(store["uri"], alias="champion").version == worse.version

    better = run_training(training_set, config=FAST, tracking_uri=store["uri"], run_name="better")
    too_demanding = promote(store["uri"], margin=0.5)
    assert too_demanding.decision == "rejected"
    promoted = promote(store["uri"], margin=0.01)
    assert promoted.decision == "promoted"
    champion = registry.get_version_info(store["uri"], alias="champion")
    assert champion.version == better.version
    assert champion.tags["promotion.decision"] == "promoted"
    assert promote(store["uri"]).decision == "already_champion"
