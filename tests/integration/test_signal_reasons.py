"""Reasons per signal on a trained simulator model: exact sums and what a rep reads.

A model is trained on the session's simulated funnel (monotone ``auto``), and the open
leads at the end of the data are scored as batch scoring does. The reasons must stay
exact (signals sum to raw minus base; per-feature TreeSHAP still matches
``shap.TreeExplainer``), and the MQLs' "what holds it back" reasons must not tell a rep
that a positive-intent activity is bad news.
"""

from __future__ import annotations

import numpy as np
import pytest
import shap

from features.catalogue import LESS_THAN_TYPICAL
from features.contract import validate
from features.pipeline import compute_features, data_window
from runtime.reasons import positive_intent_held_back, signal_index
from serving.batch import open_leads
from training.config import TrainConfig
from training.train import fit_bundle

TOP = 3


@pytest.fixture(scope="module")
def scored(simulation, training_set):
    fitted = fit_bundle(training_set, TrainConfig(monotone="auto", num_threads=2))
    bundle = fitted.bundle
    tables = validate(simulation.tables())
    snapshots = open_leads(tables, data_window(tables)[1], bundle.metadata.population)
    frame = compute_features(
        tables["leads"], tables["accounts"], tables["activities"], snapshots, None
    )
    return bundle, bundle.score(frame)


def test_signal_contributions_sum_exactly_to_the_raw_margin(scored):
    bundle, scores = scored
    sums = signal_index(bundle.spec).sums(scores.shap)
    assert sums.shape == (len(scores.raw), len(bundle.spec.signals_))
    assert np.abs(scores.base_value + sums.sum(axis=1) - scores.raw).max() < 1e-9
    for i in range(0, len(scores.raw), max(1, len(scores.raw) // 25)):
        reasons = scores.reasons(i, bundle.spec, 100)
        for reason in reasons["positive"] + reasons["negative"]:
            parts = sum(m["contribution"] for m in reason["features"])
            assert parts == pytest.approx(reason["contribution"], abs=1e-12)
        told = sum(r["contribution"] for r in reasons["positive"] + reasons["negative"])
        assert scores.base_value + told == pytest.approx(scores.raw[i], abs=1e-9)


def test_per_feature_shap_still_matches_shap_tree_explainer(scored):
    """The trees' SHAP is shap's to 1e-6; a blend's is the weighted sum of the trees' and
    the logistic part's exact linear SHAP."""
    bundle, scores = scored
    rows = scores.X[:200]
    margin = bundle.margin
    if margin.kind == "linear":
        pytest.skip("the registered model has no trees")
    tree = margin.tree if margin.kind == "blend" else margin
    expected = shap.TreeExplainer(tree.booster).shap_values(rows)
    expected = expected[1] if isinstance(expected, list) else expected
    if margin.kind == "blend":
        _, linear = margin.linear.explain(rows)
        expected = margin.weight * expected + (1 - margin.weight) * linear
    assert np.abs(scores.shap[:200] - expected).max() < 1e-6


def test_monotone_decision_is_recorded(scored):
    bundle, _ = scored
    facts = bundle.metadata.monotone
    assert facts is not None and facts.mode == "auto"
    assert facts.valid_roc_auc_free is not None and facts.valid_roc_auc_constrained is not None
    assert facts.applied == (facts.valid_roc_auc_free - facts.valid_roc_auc_constrained <= 0.002)


def test_mqls_are_not_held_back_by_positive_intent_said_as_bad_news(scored):
    """Before signals, a window count of a positive-intent activity in the top three
    "holds it back" reasons read as bad news ("Visited the pricing page 87 times in the
    last 90 days"). Now a positive-intent signal there is always said as a shortfall:
    nothing recent, less than typical, or intent long ago."""
    bundle, scores = scored
    spec = bundle.spec
    mqls = np.flatnonzero(scores.mql)
    assert len(mqls) > 50
    counts = {n for s in spec.signals_ if s.direction == "increasing" for n in s.counts()}
    per_feature = per_signal = bad_news = 0
    for i in mqls:
        reasons = scores.reasons(int(i), spec, TOP)
        per_signal += positive_intent_held_back(reasons, spec)
        for reason in reasons["negative"]:
            if positive_intent_held_back({"negative": [reason]}, spec):
                sentence = reason["sentence"]
                shortfall = sentence.startswith(("Has not", "Last showed"))
                bad_news += not (shortfall or sentence.endswith(LESS_THAN_TYPICAL))
        down = [j for j in np.argsort(scores.shap[i])[:TOP] if scores.shap[i, j] < 0]
        per_feature += any(spec.names[j] in counts and scores.X[i, j] > 0 for j in down)
    share, before = per_signal / len(mqls), per_feature / len(mqls)
    print(f"held back: {share:.1%} of MQLs per signal; {before:.1%} per feature before signals")
    assert bad_news == 0
    # Not the goal of 2%: recency ("Last showed buying intent 25 days ago") and
    # "less than typical" are true reasons to hold a lead back (measured 16–27%).
    assert share <= 0.35
