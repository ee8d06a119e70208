"""Monotone constraints from the signals' directions: per-feature signs and the decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalogue import CATALOGUE, FeatureSpec, SignalSpec
from runtime.encoding import InputSpec
from training.config import TrainConfig, TrainConfigError
from training.model import GradientBoostedModel
from training.monotone import TOLERANCE, feature_directions, fit_monotone

FEATURES = (
    FeatureSpec("visits_7d", "engagement", "float", "{value} visits", "Visits 7d"),
    FeatureSpec("visits_30d", "engagement", "float", "{value} visits", "Visits 30d"),
    FeatureSpec("days_since_visit", "engagement", "float", "{value} days", "Days since"),
    FeatureSpec("noise", "fit", "float", "{value}", "Noise"),
)
VISITS = SignalSpec(
    name="visits",
    features=("visits_7d", "visits_30d", "days_since_visit"),
    direction="increasing",
    opposite=("days_since_visit",),
)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v30 = rng.poisson(2.0, n).astype(float)
    v7 = np.minimum(v30, rng.poisson(0.7, n)).astype(float)
    days = np.where(v30 > 0, rng.uniform(0, 30, n), np.nan)
    noise = rng.standard_normal(n)
    logit = -2.0 + 0.6 * v7 + 0.2 * v30 + 0.3 * noise
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([v7, v30, days, noise]), y


@pytest.fixture(scope="module")
def spec() -> InputSpec:
    return InputSpec(FEATURES, (VISITS,)).fit(pd.DataFrame({f.name: [0.0] for f in FEATURES}))


def _model() -> GradientBoostedModel:
    params = {"num_leaves": 7, "min_data_in_leaf": 20, "learning_rate": 0.1}
    return GradientBoostedModel(params, num_boost_round=80, early_stopping_rounds=20, num_threads=1)


def test_each_feature_takes_its_signals_direction(spec):
    assert feature_directions(spec) == [1, 1, -1, 0]
    catalogue = dict(
        zip(
            [f.name for f in CATALOGUE],
            feature_directions(
                InputSpec().fit(
                    pd.DataFrame(
                        {f.name: ["x" if f.dtype == "category" else 0.0] for f in CATALOGUE}
                    )
                )
            ),
            strict=True,
        )
    )
    assert catalogue["n_demo_request_7d"] == catalogue["n_pricing_page_view_90d"] == 1
    assert catalogue["n_unsubscribe_30d"] == -1
    assert catalogue["n_high_intent_30d"] == 1
    assert catalogue["days_since_last_high_intent"] == -1
    assert catalogue["n_page_view_7d"] == catalogue["seniority"] == catalogue["icp_score"] == 0


def test_off_fits_once_without_constraints(spec):
    X, y = _data(1500, 0)
    Xv, yv = _data(600, 1)
    model, facts = fit_monotone(_model(), X, y, Xv, yv, spec, "off")
    assert "monotone_constraints" not in model.params_
    assert not facts.applied and facts.mode == "off" and facts.valid_roc_auc_free is None


def test_on_makes_the_model_obey_the_directions(spec):
    X, y = _data(1500, 0)
    Xv, yv = _data(600, 1)
    fresh = InputSpec.from_dict(spec.to_dict())
    model, facts = fit_monotone(_model(), X, y, Xv, yv, fresh, "on")
    assert model.params_["monotone_constraints"] == [1, 1, -1, 0]
    assert facts.applied and facts.constraints == {
        "visits_7d": 1,
        "visits_30d": 1,
        "days_since_visit": -1,
    }
    assert all(s.enforced for s in fresh.signals_ if s.direction)
    grid = np.repeat(Xv[:50], 6, axis=0)
    grid[:, 0] = np.tile(np.arange(6.0), 50)  # more visits in 7 days, all else equal
    raw = model.predict_raw(grid).reshape(50, 6)
    assert (np.diff(raw, axis=1) >= -1e-12).all()
    grid[:, 0] = Xv[:50].repeat(6, axis=0)[:, 0]
    grid[:, 2] = np.tile(np.arange(0.0, 30.0, 5.0), 50)  # more days since the last visit
    raw = model.predict_raw(grid).reshape(50, 6)
    assert (np.diff(raw, axis=1) <= 1e-12).all()


def test_auto_compares_both_on_validation_and_records_them(spec):
    X, y = _data(1500, 0)
    Xv, yv = _data(600, 1)
    fresh = InputSpec.from_dict(spec.to_dict())
    model, facts = fit_monotone(_model(), X, y, Xv, yv, fresh, "auto")
    assert facts.mode == "auto"
    assert facts.valid_roc_auc_free is not None and facts.valid_roc_auc_constrained is not None
    cost = facts.valid_roc_auc_free - facts.valid_roc_auc_constrained
    assert facts.applied == (cost <= TOLERANCE)
    assert ("monotone_constraints" in model.params_) == facts.applied
    assert all(s.enforced == facts.applied for s in fresh.signals_ if s.direction)


def test_train_config_takes_auto_on_off_only():
    assert TrainConfig().monotone == "auto"
    assert TrainConfig(monotone="off").to_params()["monotone"] == "off"
    with pytest.raises(TrainConfigError, match="monotone"):
        TrainConfig(monotone="maybe")


def _crossfit(X: np.ndarray, y: np.ndarray, spec: InputSpec):
    from training.crossfit import crossfit_trees, make_folds

    folds = make_folds(y, None, 5, 0)
    return lambda estimator: crossfit_trees(
        estimator, X, y, folds, spec.names, spec.categorical_indices
    )


def test_cross_fitted_auto_keeps_cheap_constraints_on_out_of_fold_margins(spec):
    from training.monotone import crossfit_monotone

    X, y = _data(2000, 0)
    fresh = InputSpec.from_dict(spec.to_dict())
    base, result, facts = crossfit_monotone(_model(), fresh, "auto", _crossfit(X, y, fresh), y)
    assert facts.applied and facts.reason.startswith("kept: out-of-fold ROC AUC")
    assert facts.valid_roc_auc_free - facts.valid_roc_auc_constrained <= TOLERANCE
    assert base.params["monotone_constraints"] == [1, 1, -1, 0]
    assert all(s.enforced for s in fresh.signals_ if s.direction)
    assert len(result.oof_raw) == len(y)


def test_cross_fitted_auto_drops_constraints_that_contradict_the_data(spec):
    from training.monotone import crossfit_monotone

    X, y = _data(2000, 0)
    rng = np.random.default_rng(5)
    logit = -1.0 - 0.8 * X[:, 0]  # visits in 7 days LOWER the odds here
    y = (rng.random(len(y)) < 1 / (1 + np.exp(-logit))).astype(int)
    fresh = InputSpec.from_dict(spec.to_dict())
    base, _, facts = crossfit_monotone(_model(), fresh, "auto", _crossfit(X, y, fresh), y)
    assert not facts.applied and facts.reason.startswith("dropped:")
    assert facts.valid_roc_auc_free - facts.valid_roc_auc_constrained > TOLERANCE
    assert "monotone_constraints" not in (base.params or {})
    assert not any(s.enforced for s in fresh.signals_)
    _, _, off = crossfit_monotone(_model(), fresh, "off", _crossfit(X, y, fresh), y)
    assert not off.applied and off.valid_roc_auc_free is None


def test_the_logistic_candidate_obeys_the_same_directions(spec):
    """Collinear windows: given 7-day visits, more 30-day visits lower the odds here, so a
    free logistic fit gives 30-day visits a negative coefficient (a reason would then say
    that visits hold a lead back); with the signal's direction it is dropped to exactly 0."""
    from runtime.linear import NumericTerm
    from training.linear import fit_linear, fit_linear_cv

    X, _ = _data(3000, 0)
    rng = np.random.default_rng(9)
    logit = -1.5 + 1.2 * X[:, 0] - 0.5 * X[:, 1]
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)

    def coefs(model):
        return {t.name: t.coef for t in model.terms if isinstance(t, NumericTerm)}

    free = coefs(fit_linear(X, y, spec, 1.0))
    assert free["visits_30d"] < 0 < free["visits_7d"]
    directions = feature_directions(spec)
    signed = coefs(fit_linear(X, y, spec, 1.0, directions=directions))
    assert signed["visits_30d"] == 0.0 and signed["visits_7d"] > 0
    assert signed["days_since_visit"] <= 0
    from training.crossfit import make_folds

    chosen = fit_linear_cv(X, y, spec, make_folds(y, None, 5, 0), directions=directions)
    assert all(c * d >= 0 for c, d in zip(coefs(chosen.model).values(), directions, strict=False))
    raw, shap_values = chosen.model.explain(X[:50])
    assert np.abs(chosen.model.expected_value + shap_values.sum(axis=1) - raw).max() < 1e-9
