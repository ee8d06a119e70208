"""Scoring a test period with the model, the baselines and (on simulations) the oracle.

Everything is measured on the same snapshots with the same functions, so the numbers
in the model card, in MLflow and in a promotion decision are directly comparable.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.io import replace_dir
from runtime import registry
from runtime.bundle import CalibratedModel, ModelBundle, Scores
from runtime.registry import VersionInfo
from training import plots
from training.baselines import PointsScore, RulePoints, fit_logistic, predict_logistic
from training.data import TrainingData, TrainingDataError, check_frame, load_training_data
from training.metrics import by_group, classifier_metrics, mql_metrics, ranking_metrics
from training.policy import PolicyConfig, Scored, rule_threshold
from training.split import Boundaries, apply_boundaries, split_from_spec

Oracle = Callable[[pd.DataFrame], np.ndarray]
"""Maps snapshots (``lead_id``, ``as_of``) to their true conversion probability."""

MODEL = "model"
LOGISTIC = "logistic baseline"
POINTS = "points baseline"
ORACLE = "oracle"
PREFIX = {MODEL: "test", LOGISTIC: "logistic", POINTS: "points", ORACLE: "oracle"}
"""Metric-name prefix of each scorer in MLflow and in flat metric dicts."""


@dataclass
class Evaluation:
    """Metrics and per-snapshot outputs of every scorer on one test period.

    Attributes:
        y: Test labels.
        scores: The model's full output (probabilities, MQL flags, grades, SHAP).
        curves: Score per scorer (probabilities; points for the points baseline).
        metrics: Metric dict per scorer.
        by_region: Model metrics per region, with baseline AUCs alongside.
    """

    y: np.ndarray
    scores: Scores
    curves: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    by_region: dict[str, dict[str, float]] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """``{"test_roc_auc": ..., "points_roc_auc": ..., "test_region_NA_roc_auc": ...}``."""
        out: dict[str, float] = {}
        for scorer, metrics in self.metrics.items():
            for name, value in metrics.items():
                out[f"{PREFIX[scorer]}_{name}"] = value
        for region, metrics in self.by_region.items():
            for name, value in metrics.items():
                out[f"test_region_{region}_{name}"] = value
        return out


def clean_json(value: object) -> object:
    """NaN and infinities become None, numpy scalars Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def oracle_from_ground_truth(ground_truth: pd.DataFrame, horizon_days: int) -> Oracle:
    """An oracle for a simulation's ground truth (``features.simulate``)."""
    from features.simulate import oracle_probability

    def oracle(snapshots: pd.DataFrame) -> np.ndarray:
        return oracle_probability(ground_truth, snapshots, horizon_days)

    return oracle


def evaluate(
    bundle: ModelBundle,
    test: pd.DataFrame,
    train: pd.DataFrame | None = None,
    valid: pd.DataFrame | None = None,
    oracle: Oracle | None = None,
    points: PointsScore | None = None,
    seed: int = 0,
    population: pd.DataFrame | None = None,
    valid_population: pd.DataFrame | None = None,
    logistic: CalibratedModel | None = None,
) -> Evaluation:
    """Score ``test`` with the model and every baseline that can be built.

    Args:
        bundle: The trained model.
        test: Test snapshots with features and ``label``.
        train: Training snapshots; when given, the logistic baseline is fitted on them.
        valid: Validation snapshots; when given with ``train``, the logistic baseline's
            MQL threshold is chosen on them by the model's own policy rule.
        oracle: True probabilities for the test snapshots (simulations only).
        points: The points score (default: the classic hand-set one).
        seed: Seed of the logistic baseline.
        population: Every open lead's snapshot dated in the test period; when given,
            ``population_mql_rate`` says how many MQLs the policy makes among all of
            them (what sales would receive), beside the rate among new leads.
        valid_population: Every snapshot dated in the validation period; the logistic
            baseline's capacity threshold is chosen on it, as the model's was.
        logistic: The logistic baseline as training fitted and calibrated it (its
            logistic candidate); default: ``fit_logistic`` on ``train``.
    """
    y = test["label"].to_numpy(dtype=np.int64)
    scores = bundle.score(test)
    curves: dict[str, np.ndarray] = {MODEL: scores.probability}
    metrics = {MODEL: classifier_metrics(y, scores.probability, scores.mql)}
    if population is not None and len(population):
        metrics[MODEL]["population_mql_rate"] = population_mql_rate(bundle, population)

    if train is not None or logistic is not None:
        if logistic is None:
            logistic = fit_logistic(train, seed, features=bundle.spec.features_)
        p_lr = predict_logistic(logistic, test)
        mql_lr = None
        if valid is not None:
            mql_lr = _baseline_mql(bundle, logistic, valid, valid_population, p_lr)
        curves[LOGISTIC] = p_lr
        metrics[LOGISTIC] = classifier_metrics(y, p_lr, mql_lr)

    rules = bundle.metadata.points_rules
    points = points or (RulePoints.from_dict(rules.as_dict()) if rules else PointsScore())
    if (
        isinstance(points, RulePoints)
        or not bundle.metadata.catalogue
        or "days_since_last_activity" in test.columns
    ):
        pts = points.points(test)
        curves[POINTS] = pts
        metrics[POINTS] = {**ranking_metrics(y, pts), **mql_metrics(y, pts >= points.threshold)}

    if oracle is not None:
        p_oracle = np.asarray(oracle(test[["lead_id", "as_of"]]), dtype=np.float64)
        curves[ORACLE] = p_oracle
        metrics[ORACLE] = classifier_metrics(y, p_oracle)

    region_col = bundle.policy.region_feature
    regions_present = region_col in test.columns
    by_region: dict[str, dict[str, float]] = {}
    if regions_present:
        regions = test[region_col].astype("string").fillna("").to_numpy(dtype=object)
        by_region = by_group(y, scores.probability, scores.mql, regions)
        for region, row in by_region.items():
            mask = regions == region
            if 0 < y[mask].sum() < mask.sum():
                for scorer in (LOGISTIC, POINTS, ORACLE):
                    if scorer in curves:
                        row[f"{PREFIX[scorer]}_roc_auc"] = ranking_metrics(
                            y[mask], curves[scorer][mask]
                        )["roc_auc"]
    return Evaluation(y, scores, curves, metrics, by_region)


def _baseline_mql(
    bundle: ModelBundle,
    logistic,
    valid: pd.DataFrame,
    valid_population: pd.DataFrame | None,
    p_test: np.ndarray,
) -> np.ndarray | None:
    """MQL flags of the logistic baseline under the model's own rule (global threshold)."""
    rule = PolicyConfig(bundle.policy.rule, bundle.policy.target)  # type: ignore[arg-type]
    population = valid_population if valid_population is not None else valid
    no_regions = np.full(len(valid), "", dtype=object)
    labelled = Scored(predict_logistic(logistic, valid), no_regions, y=valid["label"].to_numpy())
    everyone = Scored(
        predict_logistic(logistic, population), np.full(len(population), "", dtype=object)
    )
    try:
        return p_test >= rule_threshold(labelled, everyone, rule)
    except ValueError:
        return None


def population_mql_rate(bundle: ModelBundle, frame: pd.DataFrame) -> float:
    """Share of snapshots the policy flags as MQL (no SHAP needed, so it is cheap)."""
    column = bundle.policy.region_feature
    regions = (
        frame[column].astype("string").fillna("").to_numpy(dtype=object)
        if column in frame.columns
        else np.full(len(frame), "", dtype=object)
    )
    return float(np.mean(bundle.predict_proba(frame) >= bundle.policy.threshold_for(regions)))


def write_plots(evaluation: Evaluation, bundle: ModelBundle, folder: str | Path) -> list[Path]:
    """Every evaluation plot as a PNG in ``folder``."""
    out = Path(folder)
    y, curves, scores = evaluation.y, evaluation.curves, evaluation.scores
    probabilities = {k: v for k, v in curves.items() if k != POINTS}
    threshold_score = None
    if bundle.policy.score_knots:
        threshold_score = float(bundle.policy.scores(np.array([bundle.policy.threshold]))[0])
    return [
        plots.roc_pr_plot(y, curves, out / "roc_pr.png"),
        plots.calibration_plot(y, probabilities, out / "calibration.png"),
        plots.gain_lift_plot(y, curves, out / "gain_lift.png"),
        plots.shap_summary_plot(scores.shap, scores.X, bundle.spec.names, out / "shap_summary.png"),
        plots.score_distribution_plot(
            y, scores.score, threshold_score, out / "score_distribution.png"
        ),
    ]


@dataclass
class RegisteredEvaluation:
    """A registered version re-scored on a training set (``evaluate_registered``)."""

    version: VersionInfo
    period: str
    window: tuple[str, str]
    evaluation: Evaluation
    output_dir: Path | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """Flat metrics, as in MLflow (``test_roc_auc``, ``points_roc_auc``, ...)."""
        return self.evaluation.flat()


def evaluate_registered(
    data: TrainingData,
    *,
    tracking_uri: str | None = None,
    store_dir: str | Path = ".",
    model_name: str = registry.DEFAULT_MODEL_NAME,
    alias: str = registry.CHAMPION,
    period: Literal["test", "all"] = "test",
    oracle: Oracle | None = None,
    output_dir: str | Path | None = None,
) -> RegisteredEvaluation:
    """Re-score a registered version on a training set, beside the baselines.

    Args:
        data: Training-set Parquet path, frame or ``TrainingSet`` (e.g. newer data).
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI`` or the
            embedded store in ``store_dir``).
        store_dir: Folder of the embedded store.
        model_name: Registered model name.
        alias: Which version (``champion`` or ``challenger``).
        period: ``test``: the model's own test period cut from ``data`` with its stored
            boundaries (leads first seen on or after its test start: never trained on),
            with the logistic baseline fitted on the earlier periods; ``all``: every
            snapshot (optimistic where the model saw them in training).
        oracle: True probabilities (simulations only).
        output_dir: Also write metrics and plots here (atomically).

    Raises:
        ModelNotFoundError, AliasNotFoundError: when the version does not exist.
        TrainingDataError: when the chosen snapshots lack a class or columns.
    """
    training_set = load_training_data(data)
    frame = training_set.frame
    custom = list(training_set.metadata.features) if training_set.metadata.catalogue else None
    check_frame(frame, min_rows=1, min_positives=1, features=custom)
    uri = registry.resolve_tracking_uri(tracking_uri, store_dir)
    registry.require_store(uri)
    with registry.tracking(uri) as client, tempfile.TemporaryDirectory() as tmp:
        info = registry.version_info(client, model_name, alias)
        bundle = ModelBundle.load(registry.download_version_bundle(info, Path(tmp) / "model"))
    train = valid = population = valid_population = None
    test = frame
    if period == "test":
        boundaries = bundle.metadata.boundaries
        if not boundaries:
            raise TrainingDataError(
                f"version {info.version} stores no split boundaries; use period='all'"
            )
        split_spec = bundle.metadata.split_spec
        split = (
            split_from_spec(frame, split_spec.as_dict())
            if split_spec
            else apply_boundaries(frame, Boundaries.from_dict(boundaries.model_dump()))
        )
        train, valid, test = split.train, split.valid, split.test
        population, valid_population = split.test_population, split.valid_population
        if not len(train) or not len(valid):
            train = valid = valid_population = None
    elif period != "all":
        raise ValueError(f"unknown period {period!r}: use test or all")
    y = pd.to_numeric(test["label"]).to_numpy()
    if len(test) == 0 or y.sum() == 0 or y.sum() == len(y):
        raise TrainingDataError(
            f"the {period} snapshots ({len(test):,}) need both conversions and "
            "non-conversions to evaluate a model"
        )
    evaluation = evaluate(
        bundle, test, train, valid, oracle, population=population, valid_population=valid_population
    )
    out = None
    if output_dir is not None:

        def fill(folder: Path) -> None:
            metrics = {
                "test": evaluation.metrics,
                "by_region": evaluation.by_region,
                "version": info.to_dict(),
                "period": period,
            }
            (folder / "metrics.json").write_text(json.dumps(clean_json(metrics), indent=2) + "\n")
            write_plots(evaluation, bundle, folder / "plots")

        out = replace_dir(output_dir, fill)
    window = (str(test["as_of"].min()), str(test["as_of"].max()))
    return RegisteredEvaluation(info, period, window, evaluation, out)
