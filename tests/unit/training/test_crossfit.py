"""Cross-fitting for small data and the honest choice between LightGBM, logistic and blend."""

from __future__ import annotations

import numpy as np
import pytest

from features.catalogue import FeatureSpec
from runtime.bundle import Policy
from runtime.encoding import InputSpec
from runtime.metadata import BundleMetadata, CandidateFacts, ModelChoice
from training import choice, crossfit
from training.card import render_card
from training.crossfit import CrossFitError, crossfit_trees, make_folds, use_crossfit
from training.linear import fit_linear_cv
from training.model import GradientBoostedModel
from training.train import TrainConfig, fit_bundle

# --- when to cross-fit ---------------------------------------------------------------------


def test_crossfit_below_either_threshold_and_not_above_both():
    rows, positives = crossfit.CROSSFIT_MAX_ROWS, crossfit.CROSSFIT_MAX_POSITIVES
    assert use_crossfit(300, 40)
    assert use_crossfit(rows - 1, positives + 1)
    assert use_crossfit(rows + 1, positives - 1)
    assert not use_crossfit(rows, positives)
    assert not use_crossfit(rows * 10, positives * 10)
    assert use_crossfit(rows * 10, positives * 10, "on")
    assert not use_crossfit(300, 40, "off")
    assert use_crossfit(100, 10, max_rows=101, max_positives=0)


def test_folds_are_grouped_by_lead_stratified_and_cover_every_row_once():
    rng = np.random.default_rng(0)
    leads = np.repeat(np.arange(400), 3)
    y = (rng.random(len(leads)) < 0.1).astype(int)
    folds = make_folds(y, leads, 5, seed=1)
    assert len(folds) == 5
    held = np.concatenate([h for _, h in folds])
    assert np.array_equal(np.sort(held), np.arange(len(y)))
    for fit, out in folds:
        assert not set(leads[fit]) & set(leads[out])
        assert 0.05 < y[out].mean() < 0.15  # stratified: each fold near the 10% rate


def test_folds_shrink_to_the_rarer_class_and_refuse_below_two():
    y = np.r_[np.ones(3), np.zeros(50)].astype(int)
    assert len(make_folds(y, None, 5)) == 3
    with pytest.raises(CrossFitError, match="at least two"):
        make_folds(np.r_[1, np.zeros(20)].astype(int), None)


# --- the candidates on data where the answer is clear ----------------------------------------

FEATURES = tuple(
    FeatureSpec(
        name=f"x{i}",
        group="fit" if i < 2 else "engagement",
        dtype="float",
        template="{value}",
        description=f"x{i}",
    )
    for i in range(4)
)


def _data(n: int, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if kind == "linear":
        logit = -1.5 + 1.2 * X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2]
    else:  # an interaction: the sign of x0 flips the effect of x1
        logit = -1.0 + 3.0 * X[:, 0] * X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _choose(kind: str) -> tuple[str, dict[str, choice.Score]]:
    import pandas as pd

    X, y = _data(4000, kind, 0)
    Xv, yv = _data(3000, kind, 1)
    spec = InputSpec(FEATURES).fit(pd.DataFrame(X, columns=[f.name for f in FEATURES]))
    trees = GradientBoostedModel(num_boost_round=500, early_stopping_rounds=30, num_threads=1)
    trees.fit(X, y, eval_set=[(Xv, yv)])
    linear = fit_linear_cv(X, y, spec, make_folds(y, None, 5))
    raw_t, raw_l = trees.predict_raw(Xv), linear.model.predict_raw(Xv)
    _, blend = choice.blend_weight(raw_t, raw_l, yv)
    scores = {
        choice.LIGHTGBM: choice.score(raw_t, yv),
        choice.LOGISTIC: choice.score(raw_l, yv),
        choice.BLEND: blend,
    }
    return choice.choose(scores), scores


def test_a_linear_signal_is_left_to_the_logistic_model():
    chosen, scores = _choose("linear")
    assert chosen in (choice.LOGISTIC, choice.BLEND)
    assert scores[choice.LOGISTIC].log_loss <= scores[choice.LIGHTGBM].log_loss
    text = choice.explain_choice(chosen, scores, "validation")
    assert "no better than logistic regression" in text or "advantage" in text


def test_an_interaction_is_left_to_lightgbm():
    chosen, scores = _choose("interaction")
    assert chosen in (choice.LIGHTGBM, choice.BLEND)
    assert scores[choice.LIGHTGBM].log_loss < 0.9 * scores[choice.LOGISTIC].log_loss
    assert "LightGBM beats logistic regression" in choice.explain_choice(
        chosen, scores, "validation"
    )


def test_ties_go_to_the_simpler_model():
    s = {
        choice.LOGISTIC: choice.Score(0.2000, 0.8, 0.05),
        choice.LIGHTGBM: choice.Score(0.1999, 0.8, 0.05),
        choice.BLEND: choice.Score(0.19985, 0.8, 0.05),
    }
    assert choice.choose(s) == choice.LOGISTIC
    s[choice.BLEND] = choice.Score(0.1900, 0.8, 0.05)
    assert choice.choose(s) == choice.BLEND
    assert "within 0.1% of the best" in choice.explain_choice(
        choice.LOGISTIC, {k: v for k, v in s.items() if k != choice.BLEND}, "validation"
    )


def test_tree_crossfit_predicts_every_row_out_of_fold():
    X, y = _data(1500, "interaction", 2)
    folds = make_folds(y, None, 4)
    model = GradientBoostedModel(num_boost_round=300, early_stopping_rounds=20, num_threads=1)
    fit = crossfit_trees(model, X, y, folds, [f"x{i}" for i in range(4)], [])
    assert 1 <= fit.rounds <= 300 and len(fit.fold_boosters) == 4
    assert all(b.num_trees() == fit.rounds for b in fit.fold_boosters)
    assert fit.curve[fit.rounds - 1] == min(fit.curve)
    for booster, (_, held) in zip(fit.fold_boosters, folds, strict=True):
        np.testing.assert_allclose(fit.oof_raw[held], booster.predict(X[held], raw_score=True))


# --- in training -----------------------------------------------------------------------------

FAST = dict(num_boost_round=200, early_stopping_rounds=20, num_threads=1)


def test_training_cross_fits_below_the_size_and_refits_on_train_and_valid(training_set):
    fitted = fit_bundle(training_set, TrainConfig(**FAST, crossfit="auto"))
    rows = len(fitted.split.train) + len(fitted.split.valid)
    assert rows < crossfit.CROSSFIT_MAX_ROWS  # the session's simulation is small
    choice_ = fitted.bundle.metadata.model_choice
    assert choice_.scheme == "crossfit" and choice_.folds == crossfit.N_FOLDS
    assert {c.name for c in choice_.candidates} == {"points", "lightgbm", "logistic", "blend"}
    assert choice_.chosen != "points"  # the simulator's outcomes are learnable
    assert choice_.kind == fitted.bundle.kind == choice.KIND[choice_.chosen]
    # refitted on every train + valid row, with the rounds cross-fitting chose
    assert fitted.model.booster_.num_trees() == fitted.bundle.metadata.training.best_iteration
    assert set(fitted.candidates) == {"points", "lightgbm", "logistic", "blend"}


def test_training_keeps_the_validation_slice_above_the_size(training_set, monkeypatch):
    monkeypatch.setattr(crossfit, "CROSSFIT_MAX_ROWS", 10)
    monkeypatch.setattr(crossfit, "CROSSFIT_MAX_POSITIVES", 1)
    fitted = fit_bundle(training_set, TrainConfig(**FAST, model="lightgbm"))
    choice_ = fitted.bundle.metadata.model_choice
    assert choice_.scheme == "holdout" and choice_.folds == 0
    assert choice_.chosen == "lightgbm" and fitted.bundle.kind == "tree"
    assert "was asked for" in choice_.reason


# --- the card ----------------------------------------------------------------------------------


def test_the_card_lists_every_candidate_and_says_which_won():
    candidates = (
        CandidateFacts(
            name="lightgbm",
            detail="120 trees",
            valid_log_loss=0.2349,
            valid_roc_auc=0.849,
            valid_brier=0.06,
            test_log_loss=0.24,
            test_roc_auc=0.85,
            test_brier=0.061,
        ),
        CandidateFacts(
            name="logistic",
            detail="L2, C=0.1",
            valid_log_loss=0.2236,
            valid_roc_auc=0.850,
            valid_brier=0.059,
        ),
        CandidateFacts(
            name="blend",
            detail="0.5 × LightGBM",
            valid_log_loss=0.2240,
            valid_roc_auc=0.851,
            valid_brier=0.059,
        ),
    )
    model_choice = ModelChoice(
        kind="linear",
        chosen="logistic",
        scheme="crossfit",
        folds=5,
        reason="Logistic regression was registered: because.",
        candidates=candidates,
    )
    metadata = BundleMetadata(calibration_method="platt", model_choice=model_choice)
    policy = Policy("capacity", 0.1, 0.3, (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), ())
    card = render_card(metadata, {"model": {"roc_auc": 0.85}}, {}, policy)
    assert "## Model choice" in card
    assert "| Logistic regression **(registered)** | L2, C=0.1 | 0.2236 | 0.850 |" in card
    assert "| LightGBM | 120 trees | 0.2349 | 0.849 | 0.0600 | 0.2400 | 0.850 | 0.0610 |" in card
    assert "| Blend | 0.5 × LightGBM |" in card
    assert "Logistic regression was registered: because." in card
    assert "5-fold cross-fitting" in card
    assert "A regularised logistic regression on real outcomes" in card
    # an older bundle (no candidates recorded) has no such section
    assert "## Model choice" not in render_card(BundleMetadata(), {"model": {}}, {}, policy)


def test_tiny_exports_get_smaller_leaves_unless_the_user_chose_them():
    from training.model import GradientBoostedModel
    from training.train import _small_data_leaves

    tiny = _small_data_leaves(GradientBoostedModel(), 400)
    assert tiny.params == {"min_data_in_leaf": 26, "min_data_per_group": 26}  # 320 // 12
    assert _small_data_leaves(GradientBoostedModel(), 100).params == {
        "min_data_in_leaf": 10,
        "min_data_per_group": 10,
    }
    assert not _small_data_leaves(GradientBoostedModel(), 750).params  # 600 // 12 = 50
    chosen = _small_data_leaves(GradientBoostedModel({"min_data_in_leaf": 40}), 400)
    assert chosen.params == {"min_data_in_leaf": 40, "min_data_per_group": 26}
