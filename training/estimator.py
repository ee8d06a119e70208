"""What every gradient-boosted estimator of the training stage promises.

``training.model.GradientBoostedModel`` (one machine) and
``training.distributed.DaskGradientBoostedModel`` (a Dask cluster) are interchangeable:
``fit_bundle``, the hyper-parameter search and the benchmarks only rely on
:class:`BoostedEstimator`. The contract follows scikit-learn's and LightGBM's
scikit-learn API, so it reads as a newcomer expects:

* ``__init__`` only stores its arguments (``get_params``/``set_params`` and
  ``sklearn.base.clone`` work);
* ``fit(X, y, *, eval_set=None, feature_names=None, categorical_features=None)``
  returns ``self``; the validation data goes in ``eval_set`` as in
  ``lightgbm.LGBMClassifier.fit``: a list holding one ``(X_valid, y_valid)`` pair, or
  the bare pair;
* everything learned ends in ``_`` (``booster_``, ``best_iteration_``,
  ``evals_result_``, ``params_``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

import lightgbm as lgb
import numpy as np

from leadscore.errors import LeadscoreError

EvalPair = tuple[np.ndarray, np.ndarray]
"""One validation set: the encoded matrix and its 0/1 labels."""

EvalSet = Sequence[EvalPair] | EvalPair
"""``eval_set`` as LightGBM's scikit-learn API takes it: a list of pairs, or one pair."""


class EvalSetError(LeadscoreError, ValueError):
    """``eval_set`` is not one ``(X_valid, y_valid)`` pair matching the training data."""


@runtime_checkable
class BoostedEstimator(Protocol):
    """A binary gradient-boosted classifier that stops early on a validation set.

    Attributes:
        booster_: The trained LightGBM booster, trimmed to ``best_iteration_`` trees.
        best_iteration_: Trees kept (the round with the best validation log loss).
        evals_result_: Validation metric per round, by metric name (empty without
            ``eval_set``).
        params_: The LightGBM parameters the trees were trained with.
    """

    booster_: lgb.Booster
    best_iteration_: int
    evals_result_: dict[str, list[float]]
    params_: dict[str, Any]

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        feature_names: Sequence[str] | None = None,
        categorical_features: Sequence[int] | None = None,
    ) -> Self:
        """Train on ``X``/``y``; with ``eval_set``, stop early on it."""
        ...

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """Raw margins (log-odds before calibration)."""
        ...

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments (scikit-learn)."""
        ...

    def set_params(self, **params: Any) -> Self:
        """Change constructor arguments of an unfitted estimator (scikit-learn)."""
        ...


def validation_pair(eval_set: EvalSet | None, n_features: int) -> EvalPair | None:
    """The one ``(X_valid, y_valid)`` pair of ``eval_set``, as arrays, or None.

    One pair, because early stopping and ``evals_result_`` watch one validation period;
    LightGBM would stop on whichever of several sets stalled first, which is not a rule
    anyone chose.

    Args:
        eval_set: ``[(X_valid, y_valid)]``, ``(X_valid, y_valid)`` or None.
        n_features: Columns of the training matrix; the validation matrix must match.

    Raises:
        EvalSetError: naming what is wrong with ``eval_set``.
    """
    if eval_set is None:
        return None
    pairs = [eval_set] if isinstance(eval_set, tuple) else list(eval_set)
    if len(pairs) != 1:
        raise EvalSetError(
            f"eval_set must hold exactly one (X_valid, y_valid) pair, got {len(pairs)}"
        )
    pair = pairs[0]
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise EvalSetError("eval_set must be [(X_valid, y_valid)] or (X_valid, y_valid)")
    X_valid, y_valid = np.asarray(pair[0]), np.asarray(pair[1])
    if X_valid.ndim != 2 or X_valid.shape[1] != n_features:
        raise EvalSetError(
            f"eval_set X_valid must be a matrix of {n_features} columns like X, "
            f"got shape {X_valid.shape}"
        )
    if y_valid.shape != (X_valid.shape[0],):
        raise EvalSetError(
            f"eval_set y_valid must hold one label per X_valid row "
            f"({X_valid.shape[0]}), got shape {y_valid.shape}"
        )
    return X_valid, y_valid
