"""Fitting the margin → probability map on the validation period, stored as plain data.

Gradient boosting with early stopping ranks leads well but its sigmoid outputs drift
from observed conversion rates. The map is fitted on the validation period (never on
the training rows the trees have memorised) and stored as numbers in JSON
(``runtime.bundle.Calibration``): isotonic knots or Platt's two coefficients.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from runtime.bundle import Calibration

Method = Literal["auto", "isotonic", "platt", "none"]

MIN_POSITIVES_FOR_ISOTONIC = 100
"""Below this many validation conversions, ``auto`` picks Platt: isotonic would overfit."""

TIE_BREAK = 1e-6
"""Total rise added across the isotonic knots so equal steps do not tie leads."""

EXTEND = 50.0
"""How far (in raw margin) the outer isotonic knots reach beyond the validation range."""

PROBABILITY_FLOOR = 1e-4
"""Isotonic knots are kept in ``[floor, 1 - floor]``: a block of validation leads with no
conversion does not prove a lead *cannot* convert, and a probability of exactly 0 or 1
would make log loss infinite and the score meaningless at the extremes."""


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Isotonic regression on the raw margin, kept as interpolation knots.

    Isotonic regression is a step function: every lead on a flat step would get the
    same probability, which throws away the model's ranking (and AUC) within the step.
    A rise of ``TIE_BREAK`` in total, spread along the margin, keeps the map strictly
    increasing: probabilities move by at most one in a million, the ranking survives.
    Two outer knots, ``EXTEND`` margin units beyond the validation range, keep that
    ordering for test leads scored above or below every validation lead, where plain
    interpolation would clamp them all to one value.
    """
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(raw, y)
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    p = np.asarray(iso.y_thresholds_, dtype=np.float64)
    if x.size < 2:
        return fit_platt(raw, y)
    ramp = (x - x[0]) / (x[-1] - x[0]) * TIE_BREAK
    p = np.clip(p, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR) * (1.0 - TIE_BREAK) + ramp
    x = np.r_[x[0] - EXTEND, x, x[-1] + EXTEND]
    p = np.r_[p[0] - TIE_BREAK / 2, p, p[-1] + TIE_BREAK / 2]
    return Calibration("isotonic", tuple(x.tolist()), tuple(p.tolist()))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling: a logistic regression of the label on the raw margin."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(np.asarray(raw, dtype=np.float64).reshape(-1, 1), y)
    return Calibration("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: Method = "auto") -> Calibration:
    """Fit the calibration map on validation margins and labels.

    Args:
        raw: Raw margins of the validation rows.
        y: Their 0/1 labels.
        method: ``isotonic``, ``platt``, ``none`` (plain sigmoid) or ``auto`` (isotonic
            with enough validation conversions, else Platt).

    Raises:
        ValueError: on an unknown method or labels of a single class.
    """
    y = np.asarray(y)
    if method not in ("auto", "isotonic", "platt", "none"):
        raise ValueError(
            f"unknown calibration method {method!r}: use auto, isotonic, platt or none"
        )
    if method == "none":
        return Calibration("none")
    if len(np.unique(y)) < 2:
        raise ValueError("cannot calibrate: the validation period has a single class")
    if method == "auto":
        method = "isotonic" if y.sum() >= MIN_POSITIVES_FOR_ISOTONIC else "platt"
    return fit_isotonic(raw, y) if method == "isotonic" else fit_platt(raw, y)
