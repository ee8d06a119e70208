"""Optional hyper-parameter search (Optuna) on the validation period.

Each trial trains with early stopping and is scored by validation ROC AUC: ranking is
what calibration cannot repair afterwards. The test period is never looked at, so the
reported test metrics stay honest however many trials run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from training.model import GradientBoostedModel


@dataclass(frozen=True)
class TuneResult:
    """Best parameters found and every trial's outcome."""

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def suggest_params(trial) -> dict[str, Any]:
    """The search space: tree size, leaf floor, learning rate, sampling, regularisation."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 500, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.15, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }


def tune(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    feature_names: list[str],
    categorical_indices: list[int],
    n_trials: int,
    base: GradientBoostedModel,
) -> TuneResult:
    """Search LightGBM parameters for ``n_trials`` trials (TPE sampler, seeded).

    Args:
        X: Encoded training matrix.
        y: Training labels.
        X_valid: Encoded validation matrix.
        y_valid: Validation labels.
        feature_names: Column names.
        categorical_indices: Categorical columns.
        n_trials: Number of trials (at least 1).
        base: Unfitted model whose other settings (rounds, seed, threads) each trial keeps.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[dict[str, Any]] = []

    def objective(trial) -> float:
        params = {**(base.params or {}), **suggest_params(trial)}
        model = GradientBoostedModel(params, base.num_boost_round, base.early_stopping_rounds,
                                     base.seed, base.num_threads)
        model.fit(X, y, X_valid, y_valid, feature_names, categorical_indices)
        auc = float(roc_auc_score(y_valid, model.predict_raw(X_valid)))
        trials.append({**trial.params, "best_iteration": model.best_iteration_,
                       "valid_roc_auc": auc})
        return auc

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=base.seed))
    study.optimize(objective, n_trials=n_trials)
    best = {**(base.params or {}), **study.best_params}
    return TuneResult(best, float(study.best_value), trials)
