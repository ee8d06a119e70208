"""K-fold cross-fitting for small and medium data sets.

With a few hundred or a few thousand labelled rows, carving a fixed validation slice out
of them for early stopping, calibration and the MQL policy costs more than it gives: the
trees see 20% less data and every choice made on the slice is noisy. Below
``CROSSFIT_MAX_ROWS`` labelled rows (or ``CROSSFIT_MAX_POSITIVES`` conversions) training
instead cross-fits over train + validation together (the test period stays untouched):

* folds are grouped by ``lead_id`` (no lead on both sides) and stratified by the label;
* LightGBM's out-of-fold log loss, averaged over the folds round by round, chooses the
  number of boosting rounds; the logistic model's chooses its ``C``;
* the out-of-fold margins (every row predicted by a model that never saw its lead) fit
  the calibration, the MQL policy and the grade cuts, and choose between the candidates;
* the final model is refitted on every train + validation row with the chosen rounds.

Why 60,000 rows / 500 conversions (measured on the test periods, crossfit vs one slice;
log loss, ROC AUC): X Education (9,240 leads) 0.380 vs 0.385, 0.904 vs 0.902; Online
Shoppers (12,330) 0.221 vs 0.230, 0.936 vs 0.936; Olist (8,000) 0.364 vs 0.370, 0.668 vs
0.669; simulator at 3,000 leads (7,000 train + validation snapshots) 0.276 vs 0.283, 0.834
vs 0.813; at 20,000 leads (47,000 rows) 0.2307 vs 0.2328, 0.845 vs 0.842 for twice the
training time; at 50,000 leads (118,000 rows) 0.2265 vs 0.2281, 0.851 vs 0.850 for four
times the training time. The gain shrinks with size (the slice itself grows) while the
cost stays K-fold, so above 60,000 rows the single slice is kept; very few conversions
(under 500) cross-fit whatever the row count, since calibration and policy live on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from leadscore.errors import LeadscoreError
from training.model import GradientBoostedModel

CROSSFIT_MAX_ROWS = 60_000
"""Cross-fit when train + validation hold fewer labelled rows than this..."""

CROSSFIT_MAX_POSITIVES = 500
"""...or fewer conversions than this (the calibration and policy live on conversions)."""

N_FOLDS = 5
"""Folds of the cross-fitting (fewer when there are fewer conversions)."""

Mode = Literal["auto", "on", "off"]

Folds = list[tuple[np.ndarray, np.ndarray]]


class CrossFitError(LeadscoreError, ValueError):
    """The rows cannot be cut into folds that each hold both classes."""


def use_crossfit(
    rows: int,
    positives: int,
    mode: Mode = "auto",
    max_rows: int | None = None,
    max_positives: int | None = None,
) -> bool:
    """Whether to cross-fit ``rows`` labelled rows holding ``positives`` conversions.

    Args:
        rows: Labelled rows of train + validation.
        positives: Their conversions.
        mode: ``on``/``off`` force it; ``auto`` compares with the thresholds.
        max_rows: Row threshold (default ``CROSSFIT_MAX_ROWS``).
        max_positives: Conversion threshold (default ``CROSSFIT_MAX_POSITIVES``).
    """
    if mode == "on":
        return True
    if mode == "off":
        return False
    max_rows = CROSSFIT_MAX_ROWS if max_rows is None else max_rows
    max_positives = CROSSFIT_MAX_POSITIVES if max_positives is None else max_positives
    return rows < max_rows or positives < max_positives


def make_folds(y: np.ndarray, groups: np.ndarray | None, k: int = N_FOLDS, seed: int = 0) -> Folds:
    """Stratified folds, grouped by lead when ``groups`` is given.

    Args:
        y: 0/1 labels.
        groups: Lead of each row (all of a lead's rows fall in one fold), or None.
        k: Folds wanted; fewer when the rarer class has fewer members.
        seed: Shuffling seed.

    Raises:
        CrossFitError: when fewer than two folds are possible.
    """
    y = np.asarray(y)
    minority = int(min(y.sum(), len(y) - y.sum()))
    k = min(k, minority)
    if k < 2:
        raise CrossFitError(
            f"cannot cross-fit {len(y):,} rows with {minority} members of the rarer class: "
            "at least two of each are needed"
        )
    if groups is not None and len(np.unique(groups)) < len(y):
        splitter: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(y)), y, groups)
    else:
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y
        )
    return [(np.asarray(a), np.asarray(b)) for a, b in folds]


@dataclass
class TreeCrossFit:
    """LightGBM cross-fitted over the folds.

    Attributes:
        rounds: Boosting rounds with the best mean out-of-fold log loss.
        oof_raw: Each row's margin from the fold model that did not see it.
        fold_boosters: The fold models, trimmed to ``rounds`` trees.
        curve: Mean out-of-fold log loss per round (up to the stop).
    """

    rounds: int
    oof_raw: np.ndarray
    fold_boosters: list[lgb.Booster]
    curve: list[float]


def crossfit_trees(
    model: GradientBoostedModel,
    X: np.ndarray,
    y: np.ndarray,
    folds: Folds,
    feature_names: Sequence[str],
    categorical_features: Sequence[int],
) -> TreeCrossFit:
    """Train one LightGBM per fold with ``model``'s parameters and pick the rounds.

    Early stopping watches the mean log loss over the held-out folds (``lightgbm.cv``), so
    the number of rounds is chosen on every row once rather than on one slice.
    """
    params = model.resolved_params()
    data = lgb.Dataset(
        X,
        label=y,
        feature_name=list(feature_names),
        categorical_feature=list(categorical_features),
        free_raw_data=False,
        params={"max_bin": params["max_bin"], "verbosity": -1},
    )
    result = lgb.cv(
        params,
        data,
        num_boost_round=model.num_boost_round,
        folds=folds,
        stratified=False,
        shuffle=False,
        callbacks=[
            lgb.early_stopping(model.early_stopping_rounds, first_metric_only=True, verbose=False)
        ],
        return_cvbooster=True,
    )
    key = next(k for k in result if k.endswith("binary_logloss-mean"))
    curve = [float(v) for v in result[key]]
    rounds = max(1, int(np.argmin(curve)) + 1)
    cv_booster = result["cvbooster"]
    oof = np.zeros(len(y), dtype=np.float64)
    boosters = []
    for booster, (_, held) in zip(cv_booster.boosters, folds, strict=True):
        trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
        oof[held] = trimmed.predict(X[held], raw_score=True)
        boosters.append(trimmed)
    return TreeCrossFit(rounds, oof, boosters, curve)


def fold_of_rows(folds: Folds, n: int) -> np.ndarray:
    """For each row, the fold in which it is held out (-1 if none)."""
    out = np.full(n, -1, dtype=np.int64)
    for i, (_, held) in enumerate(folds):
        out[held] = i
    return out
