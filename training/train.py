"""The training stage: training set in, evaluated and registered model out.

``fit_bundle`` is the pure part (split, fit, calibrate, choose the policy); ``run_training``
adds evaluation, the model card, plots, MLflow tracking and registration. Every check
on the data runs before anything is logged, so bad input leaves no run artifacts and
no registered version behind; the version is registered last, after every artifact
is safely logged.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from features.build import fingerprint
from features.io import replace_dir
from features.pipeline import TrainingSet
from runtime import registry
from runtime.bundle import CalibratedModel, ModelBundle
from runtime.encoding import InputSpec
from runtime.metadata import (
    BundleMetadata,
    PolicySettings,
    SplitBoundaries,
    SplitWindow,
    TrainingFacts,
    request_form_of,
)
from training.calibration import CalibrationChoice, choose_calibration
from training.card import render_card
from training.config import TrainConfig
from training.data import (
    TrainingData,
    TrainingDataError,
    check_frame,
    check_split,
    load_training_data,
)
from training.estimator import BoostedEstimator
from training.evaluate import Evaluation, Oracle, clean_json, evaluate, write_plots
from training.model import GradientBoostedModel
from training.monotone import fit_monotone
from training.policy import PolicyError, Scored, fit_policy
from training.split import TimeSplit, split_by_time, split_from_spec
from training.tune import TuneResult, tune


@dataclass
class Fitted:
    """The outcome of ``fit_bundle``: the model and the split it was fitted on."""

    bundle: ModelBundle
    split: TimeSplit
    model: BoostedEstimator
    tuning: TuneResult | None = None


@dataclass
class TrainingResult:
    """What ``run_training`` did: the MLflow run, the registered version and the metrics.

    Attributes:
        run_id: MLflow run that holds params, metrics, plots, card and the model.
        experiment_id: Its experiment.
        model_name: Registered model name.
        version: Registered version (None when registration was skipped).
        aliases: Aliases the version carries after this run (``challenger``, and
            ``champion`` for a first model).
        tracking_uri: Where it was all tracked.
        metrics: Flat test metrics (``test_roc_auc``, ``points_roc_auc``, ...).
        evaluation: Full evaluation (per-scorer metrics, per-region metrics).
        window: First/last ``as_of``, rows, leads and conversions per period.
        card: The model card (markdown).
        bundle: The trained model.
        output_dir: Local copy of the bundle and report, when one was asked for.
        seconds: Wall time of the whole stage.
    """

    run_id: str
    experiment_id: str
    model_name: str
    version: str | None
    aliases: list[str]
    tracking_uri: str
    metrics: dict[str, float]
    evaluation: Evaluation
    window: SplitWindow
    card: str
    bundle: ModelBundle
    output_dir: Path | None = None
    seconds: float = 0.0

    @property
    def model_uri(self) -> str | None:
        """``models:/<name>/<version>`` of the registered version."""
        return f"models:/{self.model_name}/{self.version}" if self.version else None


def _new_model(config: TrainConfig) -> BoostedEstimator:
    """The estimator of ``config.engine``, with the config's parameters."""
    args = (
        config.params,
        config.num_boost_round,
        config.early_stopping_rounds,
        config.seed,
        config.num_threads,
    )
    if config.engine == "dask":
        from training.distributed import DaskGradientBoostedModel

        return DaskGradientBoostedModel(*args, scheduler=config.scheduler, n_workers=config.workers)
    return GradientBoostedModel(*args)


def _regions(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return frame[column].astype("string").fillna("").to_numpy(dtype=object)


def fit_bundle(
    training_set: TrainingSet,
    config: TrainConfig | None = None,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    progress: Callable[[str], None] = lambda step: None,
) -> Fitted:
    """Split by time, fit LightGBM, calibrate and choose the MQL policy.

    Args:
        training_set: Snapshots with features and labels, plus their metadata.
        config: Training settings (defaults: ``TrainConfig()``).
        model_name: Recorded in the bundle's metadata.
        progress: Called with a short description of each step.

    Raises:
        TrainingDataError: when the data or one of its periods cannot be used.
    """
    config = config or TrainConfig()
    frame = training_set.frame
    catalogue = training_set.metadata.catalogue
    split_spec = training_set.metadata.split
    check_frame(
        frame,
        config.min_rows,
        config.min_positives,
        [f.name for f in catalogue] if catalogue else None,
    )
    frame = frame.assign(label=pd.to_numeric(frame["label"]).astype(np.int8))
    progress("splitting by time" if not split_spec else f"splitting ({split_spec.kind})")
    try:
        split = (
            split_from_spec(frame, split_spec.as_dict(), config.seed)
            if split_spec
            else split_by_time(frame, config.split)
        )
    except ValueError as exc:
        raise TrainingDataError(str(exc)) from exc
    check_split(split)

    signals = training_set.metadata.signals
    spec = (InputSpec(catalogue, signals) if catalogue else InputSpec()).fit(split.train)
    X, y = spec.transform(split.train), split.train["label"].to_numpy()
    Xv, yv = spec.transform(split.valid), split.valid["label"].to_numpy()
    base = _new_model(config)
    tuning = None
    if config.tune_trials > 0:
        progress(f"searching hyper-parameters ({config.tune_trials} trials)")
        tuning = tune(
            X,
            y,
            eval_set=[(Xv, yv)],
            base=base,
            n_trials=config.tune_trials,
            feature_names=spec.names,
            categorical_features=spec.categorical_indices,
        )
        base = base.set_params(params=tuning.best_params)
    progress("training LightGBM")
    model, monotone = fit_monotone(base, X, y, Xv, yv, spec, config.monotone)

    progress("calibrating and choosing the MQL policy on the validation period")
    raw_valid = model.predict_raw(Xv)
    chosen = choose_calibration(raw_valid, yv, config.calibration)
    calibration = chosen.calibration
    # The policy is fitted on policy-free predictions: probabilities of the labelled
    # validation rows, probabilities and SHAP group sums of the validation population.
    scorer = CalibratedModel(model.booster_, spec, calibration)
    region = config.policy.region_feature
    labelled = Scored(calibration(raw_valid), _regions(split.valid, region), y=yv)
    population = Scored.from_predictions(
        scorer.predict(split.valid_population), _regions(split.valid_population, region)
    )
    try:
        policy = fit_policy(labelled, population, config.policy)
    except PolicyError as exc:
        raise TrainingDataError(str(exc)) from exc
    metadata = _metadata(training_set, frame, split, model, chosen, config, model_name, tuning)
    metadata = metadata.model_copy(update={"monotone": monotone})
    bundle = ModelBundle(model.booster_, spec, calibration, policy, metadata)
    return Fitted(bundle, split, model, tuning)


def _metadata(
    training_set: TrainingSet,
    frame: pd.DataFrame,
    split: TimeSplit,
    model: BoostedEstimator,
    calibration: CalibrationChoice,
    config: TrainConfig,
    model_name: str,
    tuning: TuneResult | None,
) -> BundleMetadata:
    """The bundle's metadata: what it was trained on and how, and what a dataset config
    declared (catalogue, split, points, dataset facts) carried over from the training set."""
    source = training_set.metadata
    return BundleMetadata(
        model_name=model_name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        request_form=request_form_of(source.dataset, source.snapshot_rule),
        horizon_days=source.horizon_days,
        snapshot_rule=source.snapshot_rule,
        max_lead_age_days=source.max_lead_age_days,
        data_fingerprint=fingerprint(training_set.frame),
        source_fingerprint=source.fingerprint,
        rows_total=len(frame),
        window=SplitWindow.model_validate(split.window()),
        boundaries=SplitBoundaries(**split.boundaries.to_dict()),
        dropped_rows=split.dropped_rows,
        population_rows={"valid": len(split.valid_population), "test": len(split.test_population)},
        calibration_method=calibration.calibration.method,
        calibration_fallback=calibration.fallback,
        calibration_requested=calibration.requested,
        calibration_cv_log_loss=calibration.cv_log_loss,
        calibration_min_block_rows=calibration.min_block_rows,
        calibration_block_rows=calibration.block_rows,
        training=TrainingFacts(
            params={k: v for k, v in model.params_.items() if k != "metric"},
            best_iteration=model.best_iteration_,
            num_boost_round=config.num_boost_round,
            early_stopping_rounds=config.early_stopping_rounds,
            tune_trials=config.tune_trials,
            tune_best_valid_roc_auc=tuning.best_value if tuning else None,
            engine=config.engine,
        ),
        policy_config=PolicySettings(
            rule=config.policy.rule,
            target=config.policy.target,
            per_region=config.policy.per_region,
        ),
        features=tuple(model.booster_.feature_name()),
        catalogue=source.catalogue,
        split_spec=source.split,
        points_rules=source.points,
        dataset=source.dataset,
        population=source.population,
        icp=source.icp,
    )


def _loggable_metrics(flat: dict[str, float]) -> dict[str, float]:
    """Finite metrics under names MLflow accepts (a region like "Côte d'Ivoire" included)."""
    return {
        re.sub(r"[^A-Za-z0-9_\-./]", "_", k): float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and math.isfinite(v)
    }


def _run_params(fitted: Fitted, config: TrainConfig) -> dict[str, Any]:
    meta = fitted.bundle.metadata
    params: dict[str, Any] = {**config.to_params()}
    for key, value in meta.training.params.items():
        params[f"lgb.{key}"] = value
    params["best_iteration"] = meta.training.best_iteration
    params["calibration_method"] = meta.calibration_method
    if meta.calibration_fallback:
        params["calibration_fallback"] = meta.calibration_fallback
    params["horizon_days"] = meta.horizon_days
    params["snapshot_rule"] = meta.snapshot_rule
    params["data_fingerprint"] = meta.data_fingerprint
    params["rows_total"] = meta.rows_total
    for period, w in meta.window or ():
        for key, value in w.model_dump().items():
            params[f"{period}.{key}"] = value
    params["policy.threshold"] = fitted.bundle.policy.threshold
    return {k: str(v)[:500] for k, v in params.items()}


def _write_report(folder: Path, fitted: Fitted, evaluation: Evaluation, card: str) -> None:
    """Bundle, card, metrics, plots and the test period, laid out as logged to MLflow."""
    fitted.bundle.save(folder / "bundle")
    (folder / "model_card.md").write_text(card)
    metrics = {
        "test": evaluation.metrics,
        "by_region": evaluation.by_region,
        "flat": evaluation.flat(),
    }
    (folder / "metrics.json").write_text(json.dumps(clean_json(metrics), indent=2) + "\n")
    write_plots(evaluation, fitted.bundle, folder / "plots")
    evaluation_dir = folder / "evaluation"
    evaluation_dir.mkdir()
    fitted.split.test.to_parquet(evaluation_dir / "test_set.parquet", index=False)
    scores = evaluation.scores
    pd.DataFrame(
        {
            "lead_id": fitted.split.test["lead_id"].to_numpy(),
            "as_of": fitted.split.test["as_of"].to_numpy(),
            "label": evaluation.y,
            "probability": scores.probability,
            "score": scores.score,
            "mql": scores.mql,
            "grade": scores.grade,
        }
    ).to_parquet(evaluation_dir / "test_predictions.parquet", index=False)


def _register(
    client, run_id: str, model_uri: str, model_name: str, fitted: Fitted, metrics: dict[str, float]
) -> tuple[str, list[str]]:
    """Register the logged model, tag it, alias it ``challenger`` (and ``champion`` if first).

    Never half: see ``registry.register_version`` (called inside ``registry.tracking``).
    """
    meta = fitted.bundle.metadata
    tags = {
        "run_id": run_id,
        "data_fingerprint": meta.data_fingerprint,
        "test_first_as_of": meta.window.test.first_as_of if meta.window else None,
        "test_last_as_of": meta.window.test.last_as_of if meta.window else None,
        "test_roc_auc": f"{metrics.get('test_roc_auc', float('nan')):.6f}",
    }
    return registry.register_version(
        client, model_uri, model_name, {key: str(value) for key, value in tags.items()}
    )


def run_training(
    data: TrainingData,
    *,
    config: TrainConfig | None = None,
    tracking_uri: str | None = None,
    store_dir: str | Path = ".",
    experiment: str = registry.DEFAULT_EXPERIMENT,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    output_dir: str | Path | None = None,
    oracle: Oracle | None = None,
    register: bool = True,
    run_name: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> TrainingResult:
    """Train, evaluate, log to MLflow and register a lead-scoring model.

    Args:
        data: Training-set Parquet path (``leadscore features`` output), frame or
            ``TrainingSet``.
        config: Training settings (defaults: ``TrainConfig()``).
        tracking_uri: MLflow tracking URI; default ``MLFLOW_TRACKING_URI`` or the embedded
            store in ``store_dir``.
        store_dir: Folder of the embedded store (``mlflow.db`` plus ``mlruns/``).
        experiment: MLflow experiment name.
        model_name: Registered model name.
        output_dir: Also write the bundle, card, metrics and plots here (atomically).
        oracle: True probabilities for test snapshots (simulations), reported beside
            the model's.
        register: Register the model (alias ``challenger``; ``champion`` if first).
        run_name: MLflow run name.
        progress: Called with a short description of each step.

    Raises:
        TrainingDataError: before anything is logged, when the data cannot be used.
    """
    started = time.perf_counter()
    config = config or TrainConfig()
    progress("loading the training set")
    training_set = load_training_data(data)
    fitted = fit_bundle(training_set, config, model_name, progress)
    progress("evaluating on the test period")
    evaluation = evaluate(
        fitted.bundle,
        fitted.split.test,
        fitted.split.train,
        fitted.split.valid,
        oracle,
        seed=config.seed,
        population=fitted.split.test_population,
        valid_population=fitted.split.valid_population,
    )
    fitted.bundle.metadata = fitted.bundle.metadata.model_copy(
        update={
            "test_metrics": clean_json(evaluation.metrics),
            "test_metrics_by_region": clean_json(evaluation.by_region),
        }
    )
    card = render_card(
        fitted.bundle.metadata, evaluation.metrics, evaluation.by_region, fitted.bundle.policy
    )
    flat = evaluation.flat()
    metrics = _loggable_metrics(flat)

    uri = registry.resolve_tracking_uri(tracking_uri, store_dir)
    with tempfile.TemporaryDirectory(prefix="leadscore-train-") as tmp:
        report = Path(tmp) / "report"
        report.mkdir()
        progress("writing the model card and plots")
        _write_report(report, fitted, evaluation, card)
        progress("logging to MLflow")
        with registry.tracking(uri) as client:
            experiment_id = registry.ensure_experiment(client, experiment, uri)
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                run_id = run.info.run_id
                mlflow.log_params(_run_params(fitted, config))
                mlflow.log_metrics(metrics)
                mlflow.set_tags(
                    {
                        "leadscore.model_name": model_name,
                        "leadscore.data_fingerprint": fitted.bundle.metadata.data_fingerprint,
                        "mlflow.note.content": card,
                    }
                )
                for name in ("model_card.md", "metrics.json"):
                    mlflow.log_artifact(str(report / name), "report")
                mlflow.log_artifacts(str(report / "plots"), "plots")
                mlflow.log_artifacts(str(report / "evaluation"), "evaluation")
                info = registry.log_bundle_model(
                    report / "bundle", fitted.bundle.spec, fitted.split.valid
                )
            version, aliases = None, []
            if register:
                progress("registering the model")
                version, aliases = _register(
                    client, run_id, info.model_uri, model_name, fitted, metrics
                )
        out = None
        if output_dir is not None:
            out = replace_dir(output_dir, lambda folder: _copy_tree(report, folder))
    return TrainingResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=model_name,
        version=version,
        aliases=aliases,
        tracking_uri=uri,
        metrics=flat,
        evaluation=evaluation,
        window=fitted.bundle.metadata.window,
        card=card,
        bundle=fitted.bundle,
        output_dir=out,
        seconds=time.perf_counter() - started,
    )


def _copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, dirs_exist_ok=True)
