"""Training on Dask: lightgbm.dask on a real two-worker cluster, same quality, same artifact.

One ``LocalCluster`` of two worker processes serves the module. The quality check trains
both engines on 15,000 simulated leads (about 52,000 snapshots, 2,800 in the test period
with 220 conversions): there, seed to seed, test AUC moves by about 0.002 on either
engine, so a 0.01 tolerance is a real check and not a coin toss.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import mlflow
import numpy as np
import pytest
from distributed import Client, get_task_stream
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.build import write_training_set
from features.contract import validate
from features.distributed import dask_client
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from features.simulate import simulate
from leadscore.cli import app
from runtime import registry
from runtime.bundle import ModelBundle, load_booster_text
from serving.batch import load_champion
from training.distributed import (
    DaskGradientBoostedModel,
    _reset_network,
    partition_rows,
    plan_parts,
)
from training.train import TrainConfig, fit_bundle, run_training

# LightGBM on one validation period on both engines (no model choice, no cross-fitting,
# which the dask engine does not do): these tests compare the engines' trees.
FAST = dict(
    num_boost_round=400, early_stopping_rounds=40, num_threads=1, model="lightgbm", crossfit="off"
)
SHAPING = (
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "min_sum_hessian_in_leaf",
    "feature_fraction",
    "bagging_fraction",
    "bagging_freq",
    "lambda_l2",
    "cat_smooth",
    "cat_l2",
    "min_data_per_group",
    "max_cat_threshold",
    "max_bin",
    "seed",
    "deterministic",
    "first_metric_only",
    "objective",
)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client("local", n_workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def big() -> TrainingSet:
    return build_training_set(validate(simulate(15_000, seed=5).tables()), PipelineConfig())


@pytest.fixture(scope="module")
def pair(big, client):
    """The same training set fitted on one machine and on the cluster."""
    single = fit_bundle(big, TrainConfig(**FAST))
    with get_task_stream(client) as stream:
        dask = fit_bundle(big, TrainConfig(**FAST, engine="dask", scheduler=client))
    trained_on = {t["worker"] for t in stream.data if "_train_part" in str(t["key"])}
    return single, dask, trained_on


def _model_params(booster) -> dict[str, str]:
    return dict(re.findall(r"^\[(\w+): ([^\]\n]*)\]$", booster.model_to_string(), re.M))


def _test_auc(fitted) -> float:
    test = fitted.split.test
    return roc_auc_score(test["label"], fitted.bundle.predict_proba(test))


@pytest.mark.slow
def test_dask_test_auc_is_within_0_01_of_single_machine(pair):
    single, dask, trained_on = pair
    assert len(trained_on) == 2  # both workers built trees, data-parallel
    assert dask.model.params_["num_machines"] == 2
    assert dask.model.params_["tree_learner"] == "data"
    assert (dask.split.test["lead_id"].to_numpy() == single.split.test["lead_id"].to_numpy()).all()
    single_auc, dask_auc = _test_auc(single), _test_auc(dask)
    assert single_auc > 0.8
    assert abs(dask_auc - single_auc) <= 0.01, (single_auc, dask_auc)


@pytest.mark.slow
def test_dask_model_has_the_single_machine_contract(pair):
    single, dask, _ = pair
    model = dask.model
    assert isinstance(model, DaskGradientBoostedModel)
    # Early stopping on the validation period happened, and only the best trees are kept.
    assert 0 < model.best_iteration_ < FAST["num_boost_round"]
    assert len(model.evals_result_["binary_logloss"]) >= model.best_iteration_ + 1
    assert model.booster_.num_trees() == model.best_iteration_
    assert model.booster_.feature_name() == single.model.booster_.feature_name()
    # Same LightGBM parameters shape the trees; the cluster's addresses are not kept.
    got, want = _model_params(model.booster_), _model_params(single.model.booster_)
    assert {k: got[k] for k in SHAPING} == {k: want[k] for k in SHAPING}
    assert got["categorical_feature"] == want["categorical_feature"] != ""
    assert (got["machines"], got["num_machines"]) == ("", "1")
    assert dask.bundle.metadata.training.engine == "dask"


@pytest.mark.slow
def test_registered_dask_model_is_text_and_served_as_usual(training_set, client, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = TrainConfig(**FAST, engine="dask", scheduler=client)
    result = run_training(training_set, config=config, tracking_uri=uri, store_dir=tmp_path)
    assert result.version == "1" and "champion" in result.aliases
    with registry.tracking(uri):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{result.model_name}/1"))
    names = {p.name for p in local.rglob("*") if p.is_file()}
    assert "python_model.pkl" not in names and "model.txt" in names
    for path in local.rglob("*"):
        if path.is_file():
            assert path.read_bytes()[:1] != b"\x80"  # no pickle anywhere
    [text] = local.rglob("model.txt")
    load_booster_text(text)  # LightGBM's text format, as the service requires
    served = load_champion(uri, result.model_name)
    assert isinstance(served.bundle, ModelBundle) and served.version == "1"
    test = training_set.frame.tail(500)
    np.testing.assert_allclose(
        served.bundle.predict_proba(test), result.bundle.predict_proba(test), rtol=0, atol=1e-12
    )
    scores = served.bundle.score(test.head(3))
    assert scores.shap.shape[0] == 3 and scores.reasons(0, served.bundle.spec)  # SHAP reasons
    params = MlflowClient(uri, uri).get_run(result.run_id).data.params
    assert params["engine"] == "dask" and params["lgb.tree_learner"] == "data"
    assert params["lgb.num_machines"] == "2" and params["dask.workers"] == "2"
    assert params["dask.scheduler"] == client.scheduler.address


@pytest.mark.slow
def test_cli_train_engine_dask_scheduler_local(training_set, tmp_path):
    """Through the CLI, from an fsspec URL (``memory://``), on a fresh local cluster."""
    url = f"memory://leadscore-test-{uuid.uuid4().hex[:8]}"
    write_training_set(training_set, f"{url}/train.parquet")
    runner = CliRunner()
    env = {"LEADSCORE_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": None}
    try:
        result = runner.invoke(
            app,
            [
                "train",
                "--data",
                f"{url}/train.parquet",
                "--engine",
                "dask",
                "--scheduler",
                "local",
                "--workers",
                "2",
                "--threads",
                "1",
            ],
            env=env,
        )
    finally:
        fsspec.filesystem("memory").rm(url.removeprefix("memory:/"), recursive=True)
    assert result.exit_code == 0, result.output
    assert "registered lead-scoring version 1" in result.output
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    [run] = client.search_runs([client.get_experiment_by_name("lead-scoring").experiment_id])
    assert run.data.params["engine"] == "dask"
    assert run.data.params["dask.scheduler"] == "local"
    assert run.data.params["lgb.num_machines"] == "2"
    assert load_champion(uri).bundle.metadata.training.engine == "dask"


def test_cli_refuses_tuning_on_dask_and_unknown_engines(training_set_path, tmp_path):
    runner = CliRunner()
    env = {"LEADSCORE_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": None}
    base = ["train", "--data", str(training_set_path)]
    tuned = runner.invoke(app, [*base, "--engine", "dask", "--tune", "2"], env=env)
    assert tuned.exit_code == 2 and "not supported with the dask engine" in tuned.output
    odd = runner.invoke(app, [*base, "--engine", "spark"], env=env)
    assert odd.exit_code == 2 and "--engine must be" in odd.output
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything is logged


def test_train_config_records_the_engine():
    assert TrainConfig().to_params()["engine"] == "single"
    params = TrainConfig(engine="dask", scheduler="tcp://10.0.0.1:8786", workers=4).to_params()
    assert (params["engine"], params["dask.scheduler"]) == ("dask", "tcp://10.0.0.1:8786")
    with pytest.raises(ValueError, match="engine must be"):
        TrainConfig(engine="ray")
    with pytest.raises(ValueError, match="not supported with the dask engine"):
        TrainConfig(engine="dask", tune_trials=3)


def test_partitions_are_stratified_disjoint_and_cover_every_row():
    y = (np.random.default_rng(1).random(10_007) < 0.05).astype(np.int8)
    parts = partition_rows(y, 3, seed=0)
    rows = np.concatenate(parts)
    assert sorted(rows) == list(range(len(y)))
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 2
    positives = [int(y[p].sum()) for p in parts]
    assert max(positives) - min(positives) <= 1
    assert all((np.diff(p) > 0).all() for p in parts)
    assert [p.tolist() for p in partition_rows(y, 3, seed=0)] == [p.tolist() for p in parts]
    assert [p.tolist() for p in partition_rows(y, 3, seed=1)] != [p.tolist() for p in parts]


def test_small_data_uses_fewer_workers():
    y = np.zeros(5_000, dtype=np.int8)
    y[:3] = 1
    assert plan_parts(8, y) == 3  # every worker needs both classes
    y[:100] = 1
    assert plan_parts(8, y) == 5  # and about a thousand rows
    assert plan_parts(2, y) == 2
    assert plan_parts(4, y[:600]) == 1


def test_model_text_keeps_no_cluster_addresses():
    text = (
        "parameters:\n[tree_learner: data]\n[num_machines: 2]\n[local_listen_port: 33107]\n"
        "[time_out: 120]\n[machines: 127.0.0.1:33107,127.0.0.1:33163]\n"
        "end of parameters\n"
    )
    assert _reset_network(text) == (
        "parameters:\n[tree_learner: data]\n[num_machines: 1]\n[local_listen_port: 12400]\n"
        "[time_out: 120]\n[machines: ]\nend of parameters\n"
    )


def test_scheduler_address_trains_on_a_running_cluster(client):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 6, 6000), rng.normal(size=(6000, 3))])
    y = (rng.random(6000) < 1 / (1 + np.exp(2 - X[:, 1] - (X[:, 0] == 3)))).astype(np.int8)
    model = DaskGradientBoostedModel(
        num_boost_round=50, early_stopping_rounds=5, scheduler=client.scheduler.address
    )
    model.fit(
        X[:4000],
        y[:4000],
        eval_set=[(X[4000:], y[4000:])],
        feature_names=["kind", "a", "b", "c"],
        categorical_features=[0],
    )
    assert model.params_["num_machines"] == 2 and model.booster_.num_trees() > 0
    assert roc_auc_score(y[4000:], model.predict_raw(X[4000:])) > 0.7
    assert client.status == "running"  # a cluster we did not start is left running
    assert not client.has_what() or not any(client.has_what().values())  # nothing left behind
