"""Optional hyper-parameter search (Optuna) on the validation period.

Each trial trains with early stopping and is scored by validation ROC AUC: ranking is
what calibration cannot repair afterwards. The test period is never looked at, so the
reported test metrics stay honest however many trials run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from training.estimator import BoostedEstimator, EvalSet, EvalSetError, validation_pair


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
    *,
    eval_set: EvalSet,
    base: BoostedEstimator,
    n_trials: int,
    feature_names: Sequence[str] | None = None,
    categorical_features: Sequence[int] | None = None,
) -> TuneResult:
    """Search LightGBM parameters for ``n_trials`` trials (TPE sampler, seeded).

    Each trial fits a clone of ``base`` with the trial's parameters merged into its own,
    with the same ``fit`` arguments the final model gets.

    Args:
        X: Encoded training matrix.
        y: Training labels.
        eval_set: The validation period, ``[(X_valid, y_valid)]``: early stopping and
            the trial's score (validation ROC AUC) both use it.
        base: Unfitted estimator whose other settings (rounds, seed, threads) each
            trial keeps.
        n_trials: Number of trials (at least 1).
        feature_names: Column names.
        categorical_features: Categorical column positions.

    Raises:
        ValueError: when ``n_trials`` is below 1.
        EvalSetError: when ``eval_set`` is not one pair matching ``X``.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    valid = validation_pair(eval_set, np.shape(X)[1])
    if valid is None:
        raise EvalSetError("tune needs an eval_set: trials are scored on the validation period")
    X_valid, y_valid = valid
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[dict[str, Any]] = []
    base_params = base.get_params()["params"] or {}
    seed = base.get_params()["seed"]

    def objective(trial) -> float:
        model = clone(base).set_params(params={**base_params, **suggest_params(trial)})
        model.fit(
            X,
            y,
            eval_set=[valid],
            feature_names=feature_names,
            categorical_features=categorical_features,
        )
        auc = float(roc_auc_score(y_valid, model.predict_raw(X_valid)))
        trials.append(
            {**trial.params, "best_iteration": model.best_iteration_, "valid_roc_auc": auc}
        )
        return auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    best = {**base_params, **study.best_params}
    return TuneResult(best, float(study.best_value), trials)
