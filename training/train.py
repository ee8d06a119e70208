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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from features.build import fingerprint
from features.io import replace_dir
from features.pipeline import TrainingSet
from leadscore.errors import LeadscoreError
from runtime import registry
from runtime.bundle import CalibratedModel, Calibration, ModelBundle
from runtime.encoding import InputSpec
from runtime.margin import AnyMargin, BlendMargin, TreeMargin
from runtime.metadata import (
    BundleMetadata,
    CandidateFacts,
    ModelChoice,
    MonotoneFacts,
    PolicySettings,
    SplitBoundaries,
    SplitWindow,
    TrainingFacts,
    request_form_of,
)
from runtime.points import PointsMargin, PointsRuleError
from runtime.regional import RegionalMargin, Route
from training import choice, regional
from training.baselines import fit_points_margin, points_rules
from training.calibration import CalibrationChoice, choose_calibration
from training.card import (
    points_rule_lines,
    region_choice_lines,
    render_card,
    training_sufficiency,
)
from training.config import TrainConfig
from training.crossfit import N_FOLDS, crossfit_trees, fold_of_rows, make_folds, use_crossfit
from training.data import (
    TrainingData,
    TrainingDataError,
    check_frame,
    check_split,
    load_training_data,
)
from training.estimator import BoostedEstimator
from training.evaluate import Evaluation, Oracle, clean_json, evaluate, write_plots
from training.linear import design_terms, fit_linear, fit_linear_cv
from training.metrics import probability_metrics, ranking_metrics
from training.model import DEFAULT_PARAMS, GradientBoostedModel
from training.monotone import crossfit_monotone, feature_directions, fit_monotone
from training.policy import PolicyError, Scored, fit_policy
from training.regional import RegionServing
from training.split import TimeSplit, split_by_time, split_from_spec
from training.tune import TuneResult, tune


@dataclass
class Fitted:
    """The outcome of ``fit_bundle``: the model and the split it was fitted on."""

    bundle: ModelBundle
    split: TimeSplit
    model: BoostedEstimator
    tuning: TuneResult | None = None
    candidates: dict[str, CalibratedModel] = field(default_factory=dict)
    """Every candidate (``points`` when there are points rules, ``lightgbm``, ``logistic``,
    ``blend``), calibrated as the registered model is; the ``logistic`` one is the
    evaluation's logistic baseline."""
    regions: list[choice.RegionChoice] = field(default_factory=list)
    """The tournament per region (``choice.choose_by_region``), for the card."""
    serving: list[RegionServing] = field(default_factory=list)
    """Which model serves each region (``--per-region-model auto``; empty when off)."""


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


@dataclass
class _Candidates:
    """Every candidate fitted, with the margins the choice is made on.

    Attributes:
        margins: Final margin model of each candidate (what would be registered).
        eval_raw: Each candidate's margins on the evaluation rows (validation period, or
            out-of-fold when cross-fitted).
        y: Labels of the evaluation rows.
        regions: Their regions.
        population: Scores each candidate's population (label-free rows for the capacity
            threshold, score knots and grade cuts) with a given calibration.
        model: The LightGBM candidate's estimator.
        details: How each candidate was fitted, in words.
        scheme: ``holdout`` or ``crossfit``.
        folds: Folds of the cross-fitting (0: holdout).
        logistic_c: The logistic candidate's ``C``.
        blend_weight: The tree weight of the blend candidate.
        monotone: Whether the LightGBM candidate obeys the signals' monotone constraints.
    """

    margins: dict[str, AnyMargin]
    eval_raw: dict[str, np.ndarray]
    y: np.ndarray
    regions: np.ndarray
    population: Callable[[str, Calibration], Scored]
    model: BoostedEstimator
    details: dict[str, str]
    scheme: str
    folds: int
    logistic_c: float
    blend_weight: float
    monotone: MonotoneFacts


def fit_bundle(
    training_set: TrainingSet,
    config: TrainConfig | None = None,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    progress: Callable[[str], None] = lambda step: None,
) -> Fitted:
    """Split by time, fit the candidates, choose one, calibrate and choose the MQL policy.

    The candidates are the hand-set points score (when there are points rules: the dataset
    config's or the default points), LightGBM, a regularised logistic regression and their
    blend (``training.choice``). Large data is judged on the validation period; below
    ``training.crossfit``'s thresholds, train + validation are cross-fitted instead and
    the chosen model is refitted on all of them.

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
    points = points_rules(training_set.metadata.points, spec)
    if config.model == choice.POINTS and points is None:
        raise TrainingDataError(
            "--model points needs points rules: the dataset config has no points section "
            "and the model lacks the features the default points read"
        )
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
    rows, positives = len(y) + len(yv), int(y.sum() + yv.sum())
    # A hyper-parameter search is made on the validation period, so with one the model is
    # fitted and judged on that same split unless cross-fitting is asked for explicitly.
    mode = "off" if tuning is not None and config.crossfit == "auto" else config.crossfit
    crossfit = isinstance(base, GradientBoostedModel) and use_crossfit(rows, positives, mode)
    if crossfit:
        progress(f"training LightGBM and logistic regression by cross-fitting ({rows:,} rows)")
        candidates = _crossfit_candidates(
            split, spec, _small_data_leaves(base, rows), config, points
        )
    else:
        progress("training LightGBM and logistic regression")
        candidates = _holdout_candidates(split, spec, base, config, X, y, Xv, yv, points)
    if config.model == choice.POINTS and choice.POINTS not in candidates.margins:
        raise TrainingDataError(
            "--model points: the points rules cannot be applied: "
            + candidates.details.get("points_error", "")
        )

    progress("calibrating, choosing the model and the MQL policy")
    where = "out-of-fold" if crossfit else "validation"
    scores = {
        name: choice.score(raw, candidates.y, config.seed)
        for name, raw in candidates.eval_raw.items()
    }
    chosen = choice.choose(scores) if config.model == "auto" else config.model
    reason = (
        choice.explain_choice(chosen, scores, where)
        if config.model == "auto"
        else f"{chosen} was asked for (--model {chosen}); the scores are for comparison."
    )
    calibrations = {
        name: choose_calibration(raw, candidates.y, config.calibration)
        for name, raw in candidates.eval_raw.items()
    }
    chosen_calibration = calibrations[chosen]
    calibration = chosen_calibration.calibration
    # The policy is fitted on policy-free predictions: probabilities of the labelled
    # evaluation rows, probabilities and SHAP group sums of the population.
    served_raw, regional_fit = candidates.eval_raw[chosen], None
    if config.per_region_model == "auto":
        progress("choosing a model per region")
        regional_fit = _fit_regional(
            split, spec, base, config, points, candidates, chosen, calibration, crossfit
        )
        served_raw = regional_fit.eval_raw
    labelled = Scored(calibration(served_raw), candidates.regions, y=candidates.y)
    population = _served_population(regional_fit, crossfit, split, spec, calibration, config)
    population = population or candidates.population(chosen, calibration)
    try:
        policy = fit_policy(labelled, population, config.policy)
    except PolicyError as exc:
        raise TrainingDataError(str(exc)) from exc
    model_choice = ModelChoice(
        kind=choice.KIND[chosen],
        chosen=chosen,
        scheme="crossfit" if crossfit else "holdout",
        folds=candidates.folds,
        reason=reason,
        candidates=tuple(
            CandidateFacts(
                name=name,
                detail=candidates.details[name],
                valid_log_loss=s.log_loss,
                valid_roc_auc=s.roc_auc,
                valid_brier=s.brier,
            )
            for name, s in scores.items()
        ),
        logistic_c=candidates.logistic_c,
        blend_weight=candidates.blend_weight,
    )
    metadata = _metadata(
        training_set,
        frame,
        split,
        candidates.model,
        chosen_calibration,
        config,
        model_name,
        tuning,
        spec,
        model_choice,
    )
    metadata = metadata.model_copy(update={"monotone": candidates.monotone})
    served = regional_fit.margin if regional_fit and regional_fit.margin else None
    bundle = ModelBundle(served or candidates.margins[chosen], spec, calibration, policy, metadata)
    calibrated = {
        name: CalibratedModel(margin, spec, calibrations[name].calibration)
        for name, margin in candidates.margins.items()
    }
    regions = (
        choice.choose_by_region(
            candidates.eval_raw, candidates.y, candidates.regions, chosen, seed=config.seed
        )
        if config.policy.region_feature in frame.columns
        else []
    )
    serving = regional_fit.serving if regional_fit else []
    return Fitted(bundle, split, candidates.model, tuning, calibrated, regions, serving)


PointsSpec = tuple[list[dict[str, Any]], float, str]
"""The points candidate's rules, MQL threshold and source (``baselines.points_rules``)."""


def _points_candidate(
    points: PointsSpec | None, spec: InputSpec, X: np.ndarray, y: np.ndarray
) -> tuple[PointsMargin | None, str]:
    """The points margin fitted on ``X, y`` (its scale only) and its detail for the card.

    Rules a dataset config declared that the model's features cannot serve leave the
    candidate out (the detail says why); they never stop training.
    """
    if points is None:
        return None, ""
    rules, threshold, source = points
    try:
        margin = fit_points_margin(rules, spec, X, y, threshold, source)
    except PointsRuleError as exc:
        return None, str(exc)
    origin = "the dataset config's rules" if source == "config" else "the default points"
    detail = f"{len(rules)} hand-set rules ({origin}), {margin.scale:.3g} log-odds per point"
    return margin, detail


def _add_points(
    margins: dict[str, AnyMargin],
    details: dict[str, str],
    eval_raw: dict[str, np.ndarray],
    margin: PointsMargin | None,
    detail: str,
    X_eval: np.ndarray,
) -> None:
    """Put the points candidate first among the candidates (the simplest), if there is one."""
    if margin is None:
        if detail:
            details["points_error"] = detail
        return
    for target, value in (
        (margins, margin),
        (details, detail),
        (eval_raw, margin.predict_raw(X_eval)),
    ):
        rest = dict(target)
        target.clear()
        target[choice.POINTS] = value  # type: ignore[assignment]
        target.update(rest)


def _directions(spec: InputSpec, monotone: MonotoneFacts) -> list[int] | None:
    """The signals' directions for the logistic candidate when the trees obey them too."""
    return feature_directions(spec) if monotone.applied else None


LEAF_ROWS_DIVISOR = 12
"""A fold's training rows per leaf minimum, at most, when cross-fitting tiny data."""


def _small_data_leaves(base: GradientBoostedModel, rows: int) -> GradientBoostedModel:
    """``base`` with leaf and category-group minimums scaled down for a tiny export.

    The defaults (50 rows a leaf, 50 a category group) suit thousands of rows; a fold of a
    few hundred cannot grow more than a handful of leaves under them. On exports of 400
    rows cut from the real data sets, 20 instead of 50 raised validation ROC AUC (Online
    Shoppers 0.661 → 0.820) and test ROC AUC (X Education +0.006, Olist +0.012, Online
    Shoppers +0.010, mean of 5 cuts). Scaled as a fold's rows / 12 (never under 10, never
    above the default), so nothing changes from about 750 rows up, and a value the user
    set is kept.
    """
    params = dict(base.params or {})
    fold_rows = rows * (N_FOLDS - 1) // N_FOLDS
    floor = max(10, fold_rows // LEAF_ROWS_DIVISOR)
    changed = {
        key: floor
        for key in ("min_data_in_leaf", "min_data_per_group")
        if key not in params and floor < DEFAULT_PARAMS[key]
    }
    return base.set_params(params={**params, **changed}) if changed else base


def _holdout_candidates(
    split: TimeSplit,
    spec: InputSpec,
    base: BoostedEstimator,
    config: TrainConfig,
    X: np.ndarray,
    y: np.ndarray,
    Xv: np.ndarray,
    yv: np.ndarray,
    points: PointsSpec | None = None,
) -> _Candidates:
    """Candidates fitted on the training period and judged on the validation period."""
    model, monotone = fit_monotone(base, X, y, Xv, yv, spec, config.monotone)
    tree = TreeMargin(model.booster_)
    groups = split.train["lead_id"].to_numpy() if "lead_id" in split.train else None
    linear = fit_linear_cv(
        X,
        y,
        spec,
        make_folds(y, groups, N_FOLDS, config.seed),
        seed=config.seed,
        directions=_directions(spec, monotone),
    )
    raw_tree, raw_linear = model.predict_raw(Xv), linear.model.predict_raw(Xv)
    weight, _ = choice.blend_weight(raw_tree, raw_linear, yv, config.seed)
    margins: dict[str, AnyMargin] = {
        choice.LIGHTGBM: tree,
        choice.LOGISTIC: linear.model,
        choice.BLEND: BlendMargin(tree, linear.model, weight),
    }
    region = config.policy.region_feature

    def population(name: str, calibration: Calibration) -> Scored:
        scorer = CalibratedModel(margins[name], spec, calibration)
        return Scored.from_predictions(
            scorer.predict(split.valid_population), _regions(split.valid_population, region)
        )

    eval_raw = {
        choice.LIGHTGBM: raw_tree,
        choice.LOGISTIC: raw_linear,
        choice.BLEND: weight * raw_tree + (1 - weight) * raw_linear,
    }
    details = _details(model.best_iteration_, linear.C, weight, "early stopping on validation")
    _add_points(margins, details, eval_raw, *_points_candidate(points, spec, X, y), Xv)
    return _Candidates(
        margins=margins,
        eval_raw=eval_raw,
        y=yv,
        regions=_regions(split.valid, region),
        population=population,
        model=model,
        details=details,
        scheme="holdout",
        folds=0,
        logistic_c=linear.C,
        blend_weight=weight,
        monotone=monotone,
    )


def _details(trees: int, C: float, weight: float, how: str) -> dict[str, str]:
    return {
        choice.LIGHTGBM: f"{trees} trees ({how})",
        choice.LOGISTIC: f"L2, C={C:g} (cross-validated)",
        choice.BLEND: f"{weight:.2f} × LightGBM + {1 - weight:.2f} × logistic (margins)",
    }


def _crossfit_candidates(
    split: TimeSplit,
    spec: InputSpec,
    base: GradientBoostedModel,
    config: TrainConfig,
    points: PointsSpec | None = None,
) -> _Candidates:
    """Candidates cross-fitted over train + validation and refitted on all of it."""
    rows = pd.concat([split.train, split.valid], ignore_index=True)
    Xa, ya = spec.transform(rows), rows["label"].to_numpy().astype(np.int64)
    lead_ids = rows["lead_id"].to_numpy() if "lead_id" in rows else None
    folds = make_folds(ya, lead_ids, N_FOLDS, config.seed)
    base, trees, monotone = crossfit_monotone(
        base,
        spec,
        config.monotone,
        lambda estimator: crossfit_trees(
            estimator, Xa, ya, folds, spec.names, spec.categorical_indices
        ),
        ya,
    )
    directions = _directions(spec, monotone)
    linear = fit_linear_cv(Xa, ya, spec, folds, seed=config.seed, directions=directions)
    assert linear.oof_raw is not None
    weight, _ = choice.blend_weight(trees.oof_raw, linear.oof_raw, ya, config.seed)
    model = base.set_params(num_boost_round=trees.rounds).fit(
        Xa, ya, feature_names=spec.names, categorical_features=spec.categorical_indices
    )
    tree = TreeMargin(model.booster_)
    margins: dict[str, AnyMargin] = {
        choice.LIGHTGBM: tree,
        choice.LOGISTIC: linear.model,
        choice.BLEND: BlendMargin(tree, linear.model, weight),
    }
    terms = design_terms(Xa, spec)
    fold_linear = [
        fit_linear(Xa[fit], ya[fit], spec, linear.C, config.seed, terms, directions)
        for fit, _ in folds
    ]
    fold_margins: dict[str, list[AnyMargin]] = {
        choice.LIGHTGBM: [TreeMargin(b) for b in trees.fold_boosters],
        choice.LOGISTIC: list(fold_linear),
        choice.BLEND: [
            BlendMargin(TreeMargin(b), lin, weight)
            for b, lin in zip(trees.fold_boosters, fold_linear, strict=True)
        ],
    }
    region = config.policy.region_feature
    # Lead-snapshot splits: the validation population is the validation rows themselves,
    # so every train + validation row (scored out of fold) is the population.
    own_rows = split.valid_population is split.valid
    frame = rows if own_rows else split.valid_population
    fold_of_lead = (
        dict(zip(lead_ids, fold_of_rows(folds, len(ya)), strict=True))
        if lead_ids is not None
        else {}
    )
    if own_rows:
        fold = fold_of_rows(folds, len(ya))
    else:
        ids = frame["lead_id"].to_numpy()
        fold = np.array([fold_of_lead.get(i, -1) for i in ids], dtype=np.int64)

    def population(name: str, calibration: Calibration) -> Scored:
        X = Xa if own_rows else spec.transform(frame)
        n = len(X)
        probability, fit_sum, engagement_sum = np.empty(n), np.empty(n), np.empty(n)
        for i, margin in enumerate([margins[name], *fold_margins[name]]):
            mask = fold == i - 1
            if not mask.any():
                continue
            p = CalibratedModel(margin, spec, calibration).predict_matrix(X[mask])
            probability[mask], fit_sum[mask] = p.probability, p.fit_sum
            engagement_sum[mask] = p.engagement_sum
        return Scored(
            probability, _regions(frame, region), fit_sum=fit_sum, engagement_sum=engagement_sum
        )

    eval_raw = {
        choice.LIGHTGBM: trees.oof_raw,
        choice.LOGISTIC: linear.oof_raw,
        choice.BLEND: weight * trees.oof_raw + (1 - weight) * linear.oof_raw,
    }
    details = _details(
        trees.rounds, linear.C, weight, f"rounds chosen by {len(folds)}-fold cross-fitting"
    )
    # The points are not learned from outcomes (only their log-odds scale, which the
    # choice's cross-fitted Platt map absorbs), so their margins on these rows are fair
    # evaluation margins, and every fold scores with the one points model.
    points_margin, points_detail = _points_candidate(points, spec, Xa, ya)
    _add_points(margins, details, eval_raw, points_margin, points_detail, Xa)
    if points_margin is not None:
        fold_margins[choice.POINTS] = [points_margin] * len(folds)
    return _Candidates(
        margins=margins,
        eval_raw=eval_raw,
        y=ya,
        regions=_regions(rows, region),
        population=population,
        model=model,
        details=details,
        scheme="crossfit",
        folds=len(folds),
        logistic_c=linear.C,
        blend_weight=weight,
        monotone=monotone,
    )


def _metadata(
    training_set: TrainingSet,
    frame: pd.DataFrame,
    split: TimeSplit,
    model: BoostedEstimator,
    calibration: CalibrationChoice,
    config: TrainConfig,
    model_name: str,
    tuning: TuneResult | None,
    spec: InputSpec,
    model_choice: ModelChoice,
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
        features=tuple(spec.names),
        model_choice=model_choice,
        catalogue=source.catalogue,
        split_spec=source.split,
        points_rules=source.points,
        dataset=source.dataset,
        population=source.population,
        icp=source.icp,
    )


def _with_test_scores(model_choice: ModelChoice, fitted: Fitted, y: np.ndarray) -> ModelChoice:
    """The candidates with their test log loss, ROC AUC and Brier score (reported only)."""
    rows = []
    for facts in model_choice.candidates:
        scorer = fitted.candidates.get(facts.name)
        if scorer is None:
            rows.append(facts)
            continue
        p = scorer.predict_proba(fitted.split.test)
        m, auc = probability_metrics(y, p), ranking_metrics(y, p)["roc_auc"]
        rows.append(
            facts.model_copy(
                update={
                    "test_log_loss": _finite(m.get("log_loss")),
                    "test_roc_auc": _finite(auc),
                    "test_brier": _finite(m.get("brier")),
                }
            )
        )
    return model_choice.model_copy(update={"candidates": tuple(rows)})


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _choice_metrics(model_choice: ModelChoice) -> dict[str, float]:
    """``candidate_<name>_<valid|test>_<metric>`` for MLflow."""
    out: dict[str, float] = {}
    for facts in model_choice.candidates:
        for key, value in facts.model_dump().items():
            if key not in ("name", "detail") and value is not None:
                out[f"candidate_{facts.name}_{key}"] = float(value)
    return out


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
    choice_ = meta.model_choice
    params["model.kind"] = choice_.kind
    params["model.chosen"] = choice_.chosen
    params["model.scheme"] = choice_.scheme
    params["model.folds"] = choice_.folds
    params["model.logistic_c"] = choice_.logistic_c
    params["model.blend_weight"] = choice_.blend_weight
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
        logistic=fitted.candidates.get(choice.LOGISTIC),
    )
    fitted.bundle.metadata = fitted.bundle.metadata.model_copy(
        update={
            "test_metrics": clean_json(evaluation.metrics),
            "test_metrics_by_region": clean_json(evaluation.by_region),
            "model_choice": _with_test_scores(
                fitted.bundle.metadata.model_choice, fitted, evaluation.y
            ),
        }
    )
    card = render_card(
        fitted.bundle.metadata,
        evaluation.metrics,
        evaluation.by_region,
        fitted.bundle.policy,
        sufficiency=training_sufficiency(training_set.frame),
    )
    if isinstance(fitted.bundle.margin, PointsMargin):
        card += "\n".join(points_rule_lines(fitted.bundle.margin))
    if fitted.serving:
        card += "\n".join(regional.card_lines(fitted.serving))
    elif fitted.regions:
        card += "\n".join(region_choice_lines(fitted.regions))
    flat = evaluation.flat()
    metrics = _loggable_metrics({**flat, **_choice_metrics(fitted.bundle.metadata.model_choice)})

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
                        registry.NOTE_TAG: registry.run_note(card),
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


# --- A model per region (``--per-region-model auto``, ``training.regional``) -------------


@dataclass
class _Regional:
    """What serving per region adds to the pooled choice.

    Attributes:
        margin: The regional margin (None when every region keeps the pooled margin).
        serving: Which model serves each region of the evaluation rows, and why.
        eval_raw: The evaluation rows' margins as served (own models aligned, offsets
            added): the policy is fitted on their probabilities.
    """

    margin: RegionalMargin | None
    serving: list[RegionServing]
    eval_raw: np.ndarray


def _region_split(split: TimeSplit, feature: str, region: str) -> TimeSplit:
    """The split restricted to one region's rows (the same periods and boundaries)."""

    def part(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[_regions(frame, feature) == region]

    valid = part(split.valid)
    return TimeSplit(
        train=part(split.train),
        valid=valid,
        test=part(split.test),
        boundaries=split.boundaries,
        dropped_rows=split.dropped_rows,
        # lead-snapshot splits: the population is the validation rows themselves
        valid_population=valid
        if split.valid_population is split.valid
        else part(split.valid_population),
        test_population=part(split.test_population),
    )


def _region_candidates(
    split: TimeSplit,
    spec: InputSpec,
    base: BoostedEstimator,
    config: TrainConfig,
    points: PointsSpec | None,
    crossfit: bool,
) -> _Candidates:
    """The candidates fitted on one region's rows alone, by the pooled choice's scheme."""
    if crossfit:
        assert isinstance(base, GradientBoostedModel)
        rows = len(split.train) + len(split.valid)
        return _crossfit_candidates(split, spec, _small_data_leaves(base, rows), config, points)
    X, y = spec.transform(split.train), split.train["label"].to_numpy()
    Xv, yv = spec.transform(split.valid), split.valid["label"].to_numpy()
    return _holdout_candidates(split, spec, base, config, X, y, Xv, yv, points)


def _fit_regional(
    split: TimeSplit,
    spec: InputSpec,
    base: BoostedEstimator,
    config: TrainConfig,
    points: PointsSpec | None,
    candidates: _Candidates,
    chosen: str,
    calibration: Calibration,
    crossfit: bool,
) -> _Regional:
    """Each region's own model when it beats the pooled one on its rows, else an offset
    when one helps on held-out rows, else the pooled margin (``training.regional``)."""
    feature = config.policy.region_feature
    pooled_raw, y, regions = candidates.eval_raw[chosen], candidates.y, candidates.regions
    served = pooled_raw.copy()
    column = spec.names.index(feature) if feature in spec.names else None
    categories = spec.features_[column].categories if column is not None else None
    codes = {str(c): float(i) for i, c in enumerate(categories or ())}
    slope = regional.margin_slope(pooled_raw, y)
    reads_region = column is not None and regional.reads_column(
        candidates.margins[chosen], spec.transform(split.valid.head(2000)), column, codes.values()
    )
    routes: list[Route] = []
    serving: list[RegionServing] = []
    names, counts = np.unique(regions, return_counts=True)
    for region in [str(n) for _, n in sorted(zip(-counts, names, strict=True))]:
        mask = regions == region
        rows, conversions = int(mask.sum()), int(y[mask].sum())
        label = region or "(no region)"
        facts = f"{label}: {regional.plural(conversions, 'conversion')}"
        code = codes.get(region)
        if code is None:
            why = (
                "leads without a region"
                if not region
                else f"not a category of the model's {feature!r} feature"
            )
            serving.append(
                RegionServing(
                    region,
                    rows,
                    conversions,
                    regional.POOLED,
                    chosen,
                    reason=f"{facts}; {why}, so the pooled model serves it",
                )
            )
            continue
        pooled_score: choice.Score | None = None
        own_scores: dict[str, choice.Score] = {}
        verdict = f"fewer than the {choice.MIN_REGION_CONVERSIONS} a model of its own needs"
        if choice.MIN_REGION_CONVERSIONS <= conversions < rows:
            pooled_score = choice.score(pooled_raw[mask], y[mask], config.seed)
            try:
                own = _region_candidates(
                    _region_split(split, feature, region), spec, base, config, points, crossfit
                )
            except (LeadscoreError, ValueError, lgb.basic.LightGBMError) as exc:
                own, verdict = None, f"its own candidates could not be fitted ({exc})"
            if own is not None and not np.array_equal(own.y, y[mask]):
                own, verdict = None, "its own candidates were judged on other rows"
            if own is not None:
                own_scores = {
                    name: choice.score(raw, own.y, config.seed)
                    for name, raw in own.eval_raw.items()
                }
                winner, wins = regional.decide_own(own_scores, pooled_score)
                best = own_scores[winner].log_loss
                if wins:
                    scale, shift = regional.align(
                        calibration, own.eval_raw[winner], own.y, pooled_raw, y
                    )
                    served[mask] = shift + scale * own.eval_raw[winner]
                    routes.append(
                        Route(region, code, regional.OWN, winner, scale, shift, own.margins[winner])
                    )
                    serving.append(
                        RegionServing(
                            region,
                            rows,
                            conversions,
                            regional.OWN,
                            winner,
                            pooled_score,
                            own_scores,
                            scale,
                            shift,
                            reason=(
                                f"{facts}; its own {choice_name(winner)} beats the pooled "
                                f"{choice_name(chosen)} on its rows ({best:.4f} against "
                                f"{pooled_score.log_loss:.4f} cross-validated log loss), so "
                                "it serves the region"
                            ),
                        )
                    )
                    continue
                verdict = (
                    f"its own best, {choice_name(winner)} ({best:.4f} cross-validated log "
                    f"loss), does not beat the pooled model ({pooled_score.log_loss:.4f})"
                )
        gain = (
            None
            if reads_region
            else regional.offset_cv_gain(calibration, pooled_raw[mask], y[mask], slope, config.seed)
        )
        delta = (
            regional.fit_offset(calibration, pooled_raw[mask], y[mask], slope)
            if gain is not None and gain > 0
            else 0.0
        )
        if delta != 0.0:
            served[mask] = pooled_raw[mask] + delta
            routes.append(Route(region, code, regional.OFFSET, chosen, 1.0, delta))
            serving.append(
                RegionServing(
                    region,
                    rows,
                    conversions,
                    regional.OFFSET,
                    chosen,
                    pooled_score,
                    own_scores,
                    1.0,
                    delta,
                    delta * slope,
                    reason=(
                        f"{facts}; {verdict}, so the pooled model serves it with an offset of "
                        f"{delta * slope:+.3f} log-odds (fitted on its out-of-fold margins, "
                        f"shrunk toward 0; it lowers the held-out log loss by {gain:.5f} a row)"
                    ),
                )
            )
            continue
        no_offset = (
            f"the pooled model reads the {feature!r} feature, which does a region offset's job"
            if reads_region
            else "too few conversions to test an offset"
            if gain is None
            else "an offset does not lower its held-out log loss (the region feature "
            "already accounts for it)"
        )
        serving.append(
            RegionServing(
                region,
                rows,
                conversions,
                regional.POOLED,
                chosen,
                pooled_score,
                own_scores,
                reason=f"{facts}; {verdict}, so the pooled model serves it; {no_offset}",
            )
        )
    margin = (
        RegionalMargin(candidates.margins[chosen], column, routes, feature)
        if routes and column is not None
        else None
    )
    return _Regional(margin, serving, served)


def choice_name(name: str) -> str:
    """A candidate in words (``logistic regression``)."""
    return {
        choice.POINTS: "points score",
        choice.LIGHTGBM: "LightGBM",
        choice.LOGISTIC: "logistic regression",
        choice.BLEND: "blend",
    }.get(name, name)


def _served_population(
    fitted: _Regional | None,
    crossfit: bool,
    split: TimeSplit,
    spec: InputSpec,
    calibration: Calibration,
    config: TrainConfig,
) -> Scored | None:
    """The validation population scored by the regional margin, when that is out of sample.

    On the holdout scheme every model (pooled and each region's own) was trained on the
    training period, so the validation population scores out of sample, as the pooled
    model's does. Cross-fitted models are refitted on the validation rows too: the
    population then stays the pooled model's out-of-fold scores (None here), and only the
    labelled rows are scored by the regional margin.
    """
    if fitted is None or fitted.margin is None or crossfit:
        return None
    frame = split.valid_population
    scorer = CalibratedModel(fitted.margin, spec, calibration)
    return Scored.from_predictions(
        scorer.predict(frame), _regions(frame, config.policy.region_feature)
    )
