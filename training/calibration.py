"""Fitting the margin → probability map on the validation period, stored as plain data.

Gradient boosting with early stopping ranks leads well but its sigmoid outputs drift
from observed conversion rates. The map is fitted on the validation period (never on
the training rows the trees have memorised) and stored as numbers in JSON
(``runtime.bundle.Calibration``): isotonic knots or Platt's two coefficients.

Every map is non-decreasing in the margin: a calibration only restates the model's
ranking in probabilities, it must never turn it upside down. Isotonic regression and
the plain sigmoid are monotone by construction; a Platt fit is checked, because on a
small or odd validation period its slope can come out negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from leadscore.errors import LeadscoreError
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


class CalibrationError(LeadscoreError, ValueError):
    """The calibration cannot be fitted, or its fit would not be non-decreasing in the
    model's margin (it would invert the ranking). A ``ValueError`` too, as the checks of
    the inputs always were."""


@dataclass(frozen=True)
class CalibrationChoice:
    """The fitted map and how it was chosen.

    Attributes:
        calibration: The map stored in the bundle.
        requested: The method asked for (``auto`` included).
        fallback: Why the map is not the one ``requested`` would normally give (``auto``
            fell back from a decreasing Platt fit); None when it is. Recorded in the
            model's metadata and stated on its card.
    """

    calibration: Calibration
    requested: Method
    fallback: str | None = None


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Isotonic regression on the raw margin, kept as interpolation knots.

    Isotonic regression is a step function: every lead on a flat step would get the
    same probability, which throws away the model's ranking (and AUC) within the step.
    A rise of ``TIE_BREAK`` in total, spread along the margin, keeps the map strictly
    increasing: probabilities move by at most one in a million, the ranking survives.
    Two outer knots, ``EXTEND`` margin units beyond the validation range, keep that
    ordering for test leads scored above or below every validation lead, where plain
    interpolation would clamp them all to one value. When every validation margin is
    the same there is one knot (the conversion rate) between the two outer ones: still
    a map that rises with the margin, where a Platt fit on one margin could fall.
    """
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(raw, y)
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    p = np.asarray(iso.y_thresholds_, dtype=np.float64)
    if x.size < 2:
        x, p = x[:1], np.asarray([np.mean(y)], dtype=np.float64)
        ramp = np.zeros(1)
    else:
        ramp = (x - x[0]) / (x[-1] - x[0]) * TIE_BREAK
    p = np.clip(p, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR) * (1.0 - TIE_BREAK) + ramp
    x = np.r_[x[0] - EXTEND, x, x[-1] + EXTEND]
    p = np.r_[p[0] - TIE_BREAK / 2, p, p[-1] + TIE_BREAK / 2]
    return Calibration("isotonic", tuple(x.tolist()), tuple(p.tolist()))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt scaling: a logistic regression of the label on the raw margin.

    Raises:
        CalibrationError: the fitted slope is not positive, so the probability would
            not rise with the margin (see ``check_platt``).
    """
    calibration = _platt(raw, y)
    check_platt(calibration, np.asarray(y))
    return calibration


def _platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    """The Platt fit itself, unchecked."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(np.asarray(raw, dtype=np.float64).reshape(-1, 1), y)
    return Calibration("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def check_platt(calibration: Calibration, y: np.ndarray) -> None:
    """Refuse a Platt map whose slope is not positive.

    ``sigmoid(a * margin + b)`` falls as the margin rises when ``a < 0``: leads the model
    ranks highest would get the lowest probabilities, and the MQL threshold, grades and
    scores would follow. A slope of exactly 0 gives every lead the same probability,
    which throws the ranking away. Either means the margin does not rank the validation
    period the way it ranks training: the calibration is not the place to hide that.

    Raises:
        CalibrationError: naming the method, the slope and what to do.
    """
    if calibration.a > 0:
        return
    raise CalibrationError(
        f"platt calibration refused: its fitted slope is {calibration.a:.3g} on "
        f"{len(y):,} validation rows with {int(np.sum(y)):,} conversions, so the calibrated "
        "probability would not rise with the model's margin and the ranking would be "
        "inverted or lost. Train with --calibration isotonic, auto (which falls back to "
        "isotonic) or none; a negative slope also means the model ranks the validation "
        "period backwards: check the labels and the split"
    )


def choose_calibration(
    raw: np.ndarray, y: np.ndarray, method: Method = "auto"
) -> CalibrationChoice:
    """Fit the calibration map on validation margins and labels, saying how it was chosen.

    Args:
        raw: Raw margins of the validation rows.
        y: Their 0/1 labels.
        method: ``isotonic``, ``platt``, ``none`` (plain sigmoid) or ``auto`` (isotonic
            with enough validation conversions, else Platt; isotonic again when the
            Platt fit would not rise with the margin, with the fallback stated).

    Raises:
        CalibrationError: on an unknown method, labels of a single class, or an explicit
            ``platt`` whose fit would invert the ranking.
    """
    y = np.asarray(y)
    if method not in ("auto", "isotonic", "platt", "none"):
        raise CalibrationError(
            f"unknown calibration method {method!r}: use auto, isotonic, platt or none"
        )
    if method == "none":
        return CalibrationChoice(Calibration("none"), method)
    if len(np.unique(y)) < 2:
        raise CalibrationError("cannot calibrate: the validation period has a single class")
    if method == "isotonic" or (method == "auto" and y.sum() >= MIN_POSITIVES_FOR_ISOTONIC):
        return CalibrationChoice(fit_isotonic(raw, y), method)
    if method == "platt":
        return CalibrationChoice(fit_platt(raw, y), method)
    platt = _platt(raw, y)
    if platt.a > 0:
        return CalibrationChoice(platt, method)
    fallback = (
        f"auto chose platt ({int(y.sum())} validation conversions, under "
        f"{MIN_POSITIVES_FOR_ISOTONIC}), but its fitted slope was {platt.a:.3g}: the "
        "probability would not rise with the model's margin, so isotonic (never "
        "decreasing) was fitted instead"
    )
    return CalibrationChoice(fit_isotonic(raw, y), method, fallback)


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: Method = "auto") -> Calibration:
    """The calibration map alone (see ``choose_calibration``).

    Raises:
        CalibrationError: as ``choose_calibration``.
    """
    return choose_calibration(raw, y, method).calibration
