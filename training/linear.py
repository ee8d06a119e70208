"""Fitting the regularised logistic regression (``runtime.linear.LinearMargin``).

The logistic model is a candidate for the registered model and, fitted the same way, the
logistic baseline every model is compared with, so "the model beats the baseline" is a
like-for-like statement. Its design (log, median imputation and missing indicators,
standardisation, one-hot of categories seen at least ``MIN_CATEGORY_COUNT`` times) is
learned on the training rows and stored in the JSON model; the L2 strength ``C`` is
chosen by cross-validated log loss over ``C_GRID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from runtime.encoding import InputSpec
from runtime.linear import (
    CategoricalTerm,
    LinearMargin,
    NumericTerm,
    Term,
    design_matrix,
    signed_log1p,
)

C_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
"""Inverse L2 strengths tried by cross-validation (standardised numbers, 0/1 indicators)."""

MIN_CATEGORY_COUNT = 10
"""A category needs this many training rows for an indicator of its own."""

Folds = Sequence[tuple[np.ndarray, np.ndarray]]
"""Cross-validation folds: (fit rows, held-out rows) index pairs."""


@dataclass(frozen=True)
class LinearChoice:
    """The logistic model fitted with the ``C`` cross-validation chose.

    Attributes:
        model: Fitted on every row given.
        C: The chosen inverse regularisation strength.
        cv_log_loss: Cross-validated log loss per ``C`` tried.
        oof_raw: Out-of-fold margins at the chosen ``C`` (one per row).
    """

    model: LinearMargin
    C: float
    cv_log_loss: dict[float, float] = field(default_factory=dict)
    oof_raw: np.ndarray | None = None


def design_terms(X: np.ndarray, spec: InputSpec) -> list[Term]:
    """The design learned on training rows (medians, scales, kept categories), no coefficients."""
    terms: list[Term] = []
    for j, feature in enumerate(spec.features_):
        x = X[:, j]
        present = np.isfinite(x)
        if feature.dtype == "category":
            codes, counts = np.unique(x[present].astype(np.int64), return_counts=True)
            kept = tuple(
                int(c) for c, n in zip(codes, counts, strict=True) if n >= MIN_CATEGORY_COUNT
            )
            gaps = int((~present).sum()) >= MIN_CATEGORY_COUNT
            terms.append(CategoricalTerm(feature.name, j, kept, has_missing=gaps))
            continue
        logged = signed_log1p(x[present])
        fill = float(np.median(logged)) if logged.size else 0.0
        filled = np.where(present, signed_log1p(np.where(present, x, 0.0)), fill)
        scale = float(np.std(filled))
        center, scale = float(np.mean(filled)), scale if scale > 0 else 1.0
        standard = (filled - center) / scale
        terms.append(
            NumericTerm(
                feature.name,
                j,
                fill,
                center,
                scale,
                has_missing=int((~present).sum()) >= MIN_CATEGORY_COUNT,
                low=float(standard.min()) if standard.size else None,
                high=float(standard.max()) if standard.size else None,
            )
        )
    return terms


def _logistic(C: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=2000, random_state=seed, warm_start=True)


def design_signs(terms: Sequence[Term], directions: Sequence[int] | None) -> np.ndarray | None:
    """Required sign of each design column's coefficient (0: free), from feature directions.

    A numeric term's standardised value keeps its feature's direction (the log and the
    scaling are increasing); missing indicators and categories stay free.
    """
    if directions is None or not any(directions):
        return None
    signs: list[int] = []
    for term in terms:
        if isinstance(term, NumericTerm):
            signs += [int(directions[term.column]), 0]
        else:
            signs += [0] * (len(term.codes) + 1)
    return np.asarray(signs, dtype=np.int64)


def _fit_signed(
    model: LogisticRegression, D: np.ndarray, y: np.ndarray, signs: np.ndarray | None
) -> LogisticRegression:
    """Fit, then drop (zero) every column whose coefficient has the wrong sign and refit,
    until none has: the active-set way to a sign-constrained logistic regression, so a
    linear model never says that more demo requests lower the odds when the signal's
    direction says they cannot (the trees obey the same directions)."""
    model.fit(D, y)
    if signs is None:
        return model
    active = np.ones(D.shape[1], dtype=bool)
    while True:
        wrong = active & (signs * model.coef_[0] < 0)
        if not wrong.any():
            model.coef_[0][~active] = 0.0  # a dropped column saw only zeros: exactly 0
            return model
        active &= ~wrong
        model.fit(D * active, y)


def _with_coefficients(
    terms: Sequence[Term], D: np.ndarray, coef: np.ndarray, intercept: float, n: int, C: float
) -> LinearMargin:
    """The terms with their coefficients and training means of their design columns."""
    means = D.mean(axis=0) if len(D) else np.zeros(D.shape[1])
    out: list[Term] = []
    k = 0
    for term in terms:
        if isinstance(term, NumericTerm):
            out.append(
                replace(
                    term,
                    coef=float(coef[k]),
                    missing_coef=float(coef[k + 1]),
                    mean=float(means[k]),
                    missing_mean=float(means[k + 1]),
                )
            )
            k += 2
        else:
            m = len(term.codes)
            out.append(
                replace(
                    term,
                    coefs=tuple(float(c) for c in coef[k : k + m]),
                    means=tuple(float(v) for v in means[k : k + m]),
                    missing_coef=float(coef[k + m]),
                    missing_mean=float(means[k + m]),
                )
            )
            k += m + 1
    return LinearMargin(out, intercept, n, C)


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    spec: InputSpec,
    C: float,
    seed: int = 0,
    terms: Sequence[Term] | None = None,
    directions: Sequence[int] | None = None,
) -> LinearMargin:
    """Fit the logistic model with a given ``C`` on encoded rows.

    Args:
        X: Encoded matrix (``InputSpec.transform``).
        y: 0/1 labels.
        spec: The input spec (which columns are categorical).
        C: Inverse L2 strength.
        seed: Seed of the solver.
        terms: A design learned elsewhere (default: learned on ``X``).
        directions: Per input column, the sign its coefficient must have (1, -1; 0 free),
            as ``training.monotone.feature_directions`` gives; None: all free.
    """
    terms = list(terms) if terms is not None else design_terms(X, spec)
    D, _ = design_matrix(terms, X)
    with threadpool_limits(limits=1, user_api="blas"):
        model = _fit_signed(_logistic(C, seed), D, y, design_signs(terms, directions))
    return _with_coefficients(terms, D, model.coef_[0], float(model.intercept_[0]), X.shape[1], C)


def fit_linear_cv(
    X: np.ndarray,
    y: np.ndarray,
    spec: InputSpec,
    folds: Folds,
    grid: Sequence[float] = C_GRID,
    seed: int = 0,
    directions: Sequence[int] | None = None,
) -> LinearChoice:
    """Choose ``C`` by cross-validated log loss, then fit on every row.

    The design (medians, scales, categories) is learned once on all rows: it uses no label,
    so sharing it between folds leaks nothing the choice of ``C`` could exploit.

    Args:
        X: Encoded matrix.
        y: 0/1 labels.
        spec: The input spec.
        folds: (fit rows, held-out rows) pairs covering every row once as held-out.
        grid: Values of ``C`` to try.
        seed: Seed of the solver.
        directions: Per input column, the sign its coefficient must have (see
            ``fit_linear``); None: all free.
    """
    terms = design_terms(X, spec)
    D, _ = design_matrix(terms, X)
    signs = design_signs(terms, directions)
    grid = sorted(grid)
    oof = {C: np.zeros(len(y)) for C in grid}
    # One BLAS thread: these matrices are small, and threaded BLAS on a busy machine is
    # many times slower than a single thread.
    with threadpool_limits(limits=1, user_api="blas"):
        for fit_rows, held in folds:
            model = _logistic(grid[0], seed)
            for C in grid:  # warm start along the path: each fit starts from the previous one
                model.set_params(C=C)
                _fit_signed(model, D[fit_rows], y[fit_rows], signs)
                oof[C][held] = model.decision_function(D[held])
    held_rows = np.concatenate([h for _, h in folds])
    scores = {
        C: float(log_loss(y[held_rows], 1.0 / (1.0 + np.exp(-oof[C][held_rows])), labels=[0, 1]))
        for C in grid
    }
    best = min(grid, key=lambda C: (scores[C], C))
    model = fit_linear(X, y, spec, best, seed, terms, directions)
    return LinearChoice(model, best, scores, oof[best])
