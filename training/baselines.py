"""The bars the model must clear: a points-based score and a logistic regression.

The points score is what marketing teams run today: hand-set points per demographic
trait and per behaviour, a cap per behaviour so one enthusiastic clicker does not
become an MQL, a penalty for going quiet, and a fixed MQL threshold. Nothing in it is
learned from outcomes. The logistic regression is the simplest learned model; if the
gradient-boosted model cannot beat it, its extra complexity is not paying for itself; it is
the same regularised logistic regression training offers as a candidate (training passes
its own, calibrated as the registered model is, to the evaluation). Neither baseline is
stored with the model.

The points score is also a *candidate* (``training.choice``): ``points_rules`` gives the
rules it would run (the dataset config's ``points``, else these default points written as
rules) and ``fit_points_margin`` turns them into a ``runtime.points.PointsMargin``, whose
only learned numbers are the log-odds per point and the log-odds of a lead with none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE, FeatureSpec
from features.metadata import PointsRules
from runtime.bundle import CalibratedModel, Calibration
from runtime.encoding import InputSpec
from runtime.points import PointsMargin

DEMOGRAPHIC_POINTS: dict[str, dict[str, float]] = {
    "seniority": {
        "C-Level": 20,
        "VP": 15,
        "Director": 10,
        "Manager": 5,
        "Individual Contributor": 0,
        "Student": -15,
    },
    "company_size_band": {
        "1-10": -5,
        "11-50": 0,
        "51-200": 5,
        "201-1000": 10,
        "1001-5000": 10,
        "5000+": 10,
    },
    "email_domain_type": {"corporate": 5, "free": -10, "unknown": 0},
    "department": {"Executive": 5, "Marketing": 5, "Sales": 5, "IT": 5, "Engineering": 5},
}
"""Points per demographic value, as a marketing-ops team would set them."""

INDUSTRY_FIT_POINTS = 10.0
"""Points when the industry is in the ideal customer profile (``icp_industry``)."""

BEHAVIOUR_POINTS: dict[str, tuple[float, float]] = {
    "page_view": (1, 10),
    "pricing_page_view": (5, 15),
    "demo_page_view": (5, 15),
    "email_open": (1, 5),
    "email_click": (3, 15),
    "content_download": (5, 15),
    "webinar_registered": (5, 10),
    "webinar_attended": (10, 20),
    "form_submit": (10, 20),
    "demo_request": (30, 30),
    "trial_signup": (25, 25),
    "email_bounce": (-10, -10),
    "unsubscribe": (-20, -20),
}
"""(points per activity in the last 90 days, cap) per activity type."""

INACTIVITY_DAYS = 30
INACTIVITY_PENALTY = -10.0
MQL_POINTS = 50.0


@dataclass(frozen=True)
class PointsScore:
    """A classic hand-set lead score; not learned, so it needs no training data.

    Attributes:
        demographic: Points per value of each demographic feature.
        behaviour: (points per activity, cap) per activity type, over 90 days.
        industry_fit: Points for an ideal-customer-profile industry.
        threshold: Points at which a lead becomes an MQL.
    """

    demographic: dict[str, dict[str, float]] = field(default_factory=lambda: DEMOGRAPHIC_POINTS)
    behaviour: dict[str, tuple[float, float]] = field(default_factory=lambda: BEHAVIOUR_POINTS)
    industry_fit: float = INDUSTRY_FIT_POINTS
    threshold: float = MQL_POINTS

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        """Total points of each snapshot."""
        total = np.zeros(len(frame), dtype=np.float64)
        for feature, table in self.demographic.items():
            values = frame[feature].astype("string").astype(object)
            total += values.map(table).fillna(0.0).to_numpy(dtype=np.float64)
        total += self.industry_fit * frame["icp_industry"].fillna(0).to_numpy(dtype=np.float64)
        for activity, (each, cap) in self.behaviour.items():
            count = frame[f"n_{activity}_90d"].fillna(0).to_numpy(dtype=np.float64)
            earned = each * count
            total += np.minimum(earned, cap) if cap >= 0 else np.maximum(earned, cap)
        idle = frame["days_since_last_activity"].to_numpy(dtype=np.float64, na_value=np.inf)
        total += np.where(idle > INACTIVITY_DAYS, INACTIVITY_PENALTY, 0.0)
        return total

    def mql(self, frame: pd.DataFrame) -> np.ndarray:
        """Whether each snapshot reaches the MQL threshold."""
        return self.points(frame) >= self.threshold

    def rules(self) -> list[dict[str, Any]]:
        """The same points as rules in a dataset config's form (``RulePoints``), plus the
        inactivity rule's ``above`` and ``if_missing`` (``runtime.points``): the form the
        points candidate is compiled from. ``PointsMargin`` over them gives these points."""
        out: list[dict[str, Any]] = [
            {"feature": feature, "values": dict(table)}
            for feature, table in self.demographic.items()
        ]
        out.append({"feature": "icp_industry", "per": self.industry_fit})
        out += [
            {"feature": f"n_{activity}_90d", "per": each, "cap": cap}
            for activity, (each, cap) in self.behaviour.items()
        ]
        out.append(
            {
                "feature": "days_since_last_activity",
                "above": INACTIVITY_DAYS,
                "points": INACTIVITY_PENALTY,
                "if_missing": INACTIVITY_PENALTY,
            }
        )
        return out


POINTS_MIN_SCALE = 1e-3
"""Log-odds per point when the data says more points mean *fewer* conversions (or says
nothing): the hand-set order is kept (a points model that ranks backwards is no points
model) and the calibration that follows flattens it; the choice then ranks it last."""


def points_rules(
    rules: PointsRules | None, spec: InputSpec
) -> tuple[list[dict[str, Any]], float, str] | None:
    """The points candidate's rules, MQL threshold and source, or None when there are none.

    A dataset config's ``points`` win; otherwise the default points (``PointsScore``)
    when every feature they read is a model feature (a catalogue-trained model), else None.
    """
    if rules is not None and rules.rules:
        return [dict(r) for r in rules.rules], float(rules.threshold), "config"
    default = PointsScore()
    wanted = default.rules()
    if all(r["feature"] in spec.names for r in wanted):
        return wanted, default.threshold, "default"
    return None


def fit_points_margin(
    rules: Sequence[dict[str, Any]],
    spec: InputSpec,
    X: np.ndarray,
    y: np.ndarray,
    threshold: float | None = None,
    source: str = "config",
) -> PointsMargin:
    """The points rules on the log-odds scale, fitted by a one-feature logistic regression.

    Only two numbers are learned (log-odds per point, log-odds at zero points), so the
    rules stay the hand-set ones and a few dozen conversions are enough; the bundle's
    calibration then maps the margin to a probability with its interval like any model's.

    Raises:
        runtime.points.PointsRuleError: naming a rule the model's features cannot serve.
    """
    from sklearn.linear_model import LogisticRegression

    margin = PointsMargin.from_rules(rules, spec, threshold=threshold, source=source)
    pts = margin.points(X).reshape(-1, 1)
    y = np.asarray(y).astype(np.int64)
    rate = float(np.clip(y.mean() if len(y) else 0.5, 1e-6, 1 - 1e-6))
    scale, offset = POINTS_MIN_SCALE, float(np.log(rate / (1 - rate)))
    if 0 < y.sum() < len(y) and float(np.std(pts)) > 0:
        fit = LogisticRegression(C=1e6, max_iter=1000).fit(pts, y)
        slope = float(fit.coef_[0, 0])
        if slope > POINTS_MIN_SCALE:
            scale, offset = slope, float(fit.intercept_[0])
        else:
            offset = float(np.log(rate / (1 - rate))) - scale * float(pts.mean())
    return PointsMargin(margin.rules, margin.n_features, scale, offset, threshold, source)


def fit_logistic(
    train: pd.DataFrame,
    seed: int = 0,
    features: Sequence[FeatureSpec] | None = None,
    folds: int = 5,
) -> CalibratedModel:
    """The logistic-regression baseline fitted on the training period.

    The same regularised logistic regression as the logistic candidate of training
    (``training.linear``: the design and exact SHAP of ``runtime.linear``, ``C`` chosen by
    cross-validated log loss on folds grouped by lead), so a model compared with it is
    compared like for like. Uncalibrated: the logistic regression's own probabilities.

    Args:
        train: Training rows with the features and ``label``.
        seed: Seed of the folds and the solver.
        features: The model's features (default: the catalogue), so a dataset config's
            own features get the same baseline.
        folds: Cross-validation folds for ``C``.
    """
    from training.crossfit import make_folds
    from training.linear import fit_linear_cv

    features = CATALOGUE if features is None else tuple(features)
    spec = InputSpec(features=tuple(features)).fit(train)
    X = spec.transform(train)
    y = train["label"].to_numpy().astype(np.int64)
    groups = train["lead_id"].to_numpy() if "lead_id" in train else None
    choice = fit_linear_cv(X, y, spec, make_folds(y, groups, folds, seed), seed=seed)
    return CalibratedModel(choice.model, spec, Calibration("none"))


def predict_logistic(model: CalibratedModel, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities of the logistic baseline (or of any calibrated model) for a frame."""
    return model.predict_proba(frame)


@dataclass(frozen=True)
class RulePoints:
    """A points score from a dataset config's ``points`` rules (``features.dataset_config``).

    Each rule names a feature and gives either ``values`` (points per value), ``per``
    (points per unit, optional ``cap``) or ``at_least`` (or ``above``) with ``points``
    (points when the value reaches, or passes, the bar); ``if_missing`` gives the points
    of a missing number (otherwise it counts as 0). Not learned from outcomes, like
    ``PointsScore``; ``runtime.points.PointsMargin`` gives the same points on the
    encoded matrix.
    """

    rules: tuple[dict, ...]
    threshold: float = MQL_POINTS

    @classmethod
    def from_dict(cls, d: dict) -> RulePoints:
        """From ``{"threshold": ..., "rules": [...]}``."""
        return cls(tuple(d.get("rules") or ()), float(d.get("threshold", MQL_POINTS)))

    def points(self, frame: pd.DataFrame) -> np.ndarray:
        """Total points of each row."""
        total = np.zeros(len(frame), dtype=np.float64)
        for rule in self.rules:
            col = frame[rule["feature"]]
            if "values" in rule:
                table = {str(k): float(v) for k, v in rule["values"].items()}
                total += (
                    col.astype("string")
                    .astype(object)
                    .map(table)
                    .fillna(0.0)
                    .to_numpy(dtype=np.float64)
                )
                continue
            numbers = pd.to_numeric(col, errors="coerce")
            x = numbers.fillna(0).to_numpy(dtype=np.float64)
            if "per" in rule:
                earned = float(rule["per"]) * x
                cap = rule.get("cap")
                if cap is not None:
                    earned = np.minimum(earned, cap) if cap >= 0 else np.maximum(earned, cap)
            elif "above" in rule:
                earned = np.where(x > float(rule["above"]), float(rule["points"]), 0.0)
            else:
                earned = np.where(x >= float(rule["at_least"]), float(rule["points"]), 0.0)
            if rule.get("if_missing") is not None:
                earned = np.where(numbers.isna().to_numpy(), float(rule["if_missing"]), earned)
            total += earned
        return total

    def mql(self, frame: pd.DataFrame) -> np.ndarray:
        """Whether each row reaches the MQL threshold."""
        return self.points(frame) >= self.threshold
