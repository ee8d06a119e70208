"""Train on each real public data set in ../shared/datasets and hold a quality floor.

Each data set trains through ``run_training`` from its shipped config (examples/), with a
real MLflow SQLite store under tmp_path, on the config's split: the issue's anchors were
measured on the same test rows (X Education and Online Shoppers: stratified 25% hold-out,
seed 0; Olist: MQLs first contacted on or after 2018-03-01). Floors sit a little below what
the shipped configs reach today (issue 15's goals, 0.91 / 0.68 / 0.94, are not reached yet and
so are not asserted); every data set must also match the plain LightGBM anchor fitted on the
same split and keep its expected calibration error within 0.05. The full table comes from
``benchmarks/bench_datasets.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from features.dataset_config import load_dataset
from runtime.bundle import ModelBundle
from training.config import train_config_from_dataset
from training.train import run_training

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def datasets(shared_data) -> Path:
    """The data sets folder: its absence fails under CI and skips elsewhere."""
    return shared_data()


# name: (config, floor on test ROC AUC, floor on PR AUC, floor on top-decile lift)
FLOORS = {
    "x_education": ("examples/x_education.yaml", 0.90, 0.84, 2.4),
    "olist": ("examples/olist.yaml", 0.66, 0.19, 1.8),
    "online_shoppers": ("examples/online_shoppers.yaml", 0.93, 0.72, 4.8),
}
MAX_ECE = 0.05


def plain_lightgbm_auc(training_set, split: dict) -> float:
    """The issue's anchor on the same split: 400 trees, learning rate 0.03, LightGBM's
    defaults otherwise, fitted on all training rows (train + validation)."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    from training.split import split_from_spec

    cut = split_from_spec(training_set.frame, split)
    names = [f.name for f in training_set.metadata.catalogue]
    rows = pd.concat([cut.train, cut.valid])
    model = lgb.LGBMClassifier(
        n_estimators=400, learning_rate=0.03, verbose=-1, random_state=0, n_jobs=2
    )
    model.fit(rows[names], rows["label"])
    return float(roc_auc_score(cut.test["label"], model.predict_proba(cut.test[names])[:, 1]))


@pytest.mark.parametrize("name", list(FLOORS))
def test_trains_on_real_data_and_clears_the_floor(name: str, tmp_path: Path) -> None:
    path, auc, pr_auc, lift = FLOORS[name]
    training_set = load_dataset(ROOT / path)
    config = train_config_from_dataset(training_set, num_threads=2)
    result = run_training(
        training_set, config=config, store_dir=tmp_path, experiment=f"test-{name}", model_name=name
    )
    m = result.metrics
    assert m["test_roc_auc"] >= auc, m
    assert m["test_pr_auc"] >= pr_auc, m
    assert m["test_lift_top10"] >= lift, m
    assert m["test_roc_auc"] > m["points_roc_auc"], "must beat the points-based baseline"
    assert m["test_ece"] <= MAX_ECE, m
    plain = plain_lightgbm_auc(training_set, result.bundle.metadata.split_spec.as_dict())
    assert m["test_roc_auc"] >= plain, f"below the plain LightGBM anchor {plain:.4f}: {m}"
    assert result.version == "1" and (tmp_path / "mlflow.db").exists()
    # The model speaks the config's language: its own features and templates.
    names = [f.name for f in training_set.metadata.catalogue]
    assert result.bundle.spec.names == names
    test = result.bundle.metadata.window.test
    assert test.rows == len(result.evaluation.y)
    scores = result.bundle.score(training_set.frame.head(3))
    reasons = scores.reasons(0, result.bundle.spec)
    sentences = [
        r["sentence"]
        for group in reasons.values()
        for r in group
        if isinstance(r, dict) and "sentence" in r
    ]
    assert all("{value" not in s for s in sentences)
    # Re-evaluating the registered version cuts the same test rows again from its split.
    from training.evaluate import evaluate_registered

    again = evaluate_registered(training_set, store_dir=tmp_path, model_name=name)
    assert again.metrics["test_roc_auc"] == pytest.approx(m["test_roc_auc"])


def test_x_education_test_set_is_the_anchor_hold_out() -> None:
    """Stratified 25%, seed 0, exactly as sklearn cuts it from the raw file."""
    from training.split import split_from_spec

    ts = load_dataset(ROOT / "examples/x_education.yaml")
    raw = pd.read_csv(DATASETS / "x_education_leads" / "Leads.csv")
    _, test = train_test_split(raw, test_size=0.25, stratify=raw["Converted"], random_state=0)
    cut = split_from_spec(ts.frame, ts.metadata.split.as_dict())
    assert set(cut.test["lead_id"]) == set(test["Prospect ID"])
    excluded = {e["column"] for e in ts.metadata.excluded}
    assert {"Tags", "Lead Quality", "Lead Profile", "Last Notable Activity"} <= excluded


def test_olist_time_split_and_no_leakage() -> None:
    from training.split import split_from_spec

    ts = load_dataset(ROOT / "examples/olist.yaml")
    cut = split_from_spec(ts.frame, ts.metadata.split.as_dict())
    assert (cut.test["as_of"] >= pd.Timestamp("2018-03-01")).all()
    assert (
        np.concatenate([cut.train["as_of"], cut.valid["as_of"]]) < np.datetime64("2018-03-01")
    ).all()
    assert ts.frame["label"].sum() == 842
    assert not {"won_date", "business_segment", "lead_type"} & set(ts.frame.columns)
    # What the config states about its rows travels with the model (card, GET /model).
    facts = ts.metadata.dataset
    assert facts.outcome.model_dump(exclude_none=True) == {
        "in_file": "olist_closed_deals_dataset.csv",
        "column": "mql_id",
    }
    assert facts.time == "first_contact_date" and facts.as_of is None


def test_bundle_round_trip_keeps_custom_catalogue(tmp_path: Path) -> None:
    ts = load_dataset(ROOT / "examples/olist.yaml")
    from training.train import fit_bundle

    fitted = fit_bundle(ts, train_config_from_dataset(ts, num_boost_round=50))
    folder = fitted.bundle.save(tmp_path / "bundle")
    loaded = ModelBundle.load(folder)
    assert loaded.metadata.split_spec.kind == "time"
    np.testing.assert_allclose(
        loaded.predict_proba(fitted.split.test), fitted.bundle.predict_proba(fitted.split.test)
    )


def test_snapshot_model_scores_raw_feature_values(tmp_path: Path) -> None:
    """A snapshot-kind model scores leads given as raw feature values, with reasons."""
    from features.dataset_config import snapshot_frame
    from training.train import fit_bundle

    ts = load_dataset(ROOT / "examples/x_education.yaml")
    bundle = fit_bundle(ts, train_config_from_dataset(ts, num_boost_round=60)).bundle
    frame = snapshot_frame(
        bundle.spec.features_,
        [
            {
                "lead_id": "a",
                "lead_origin": "Lead Add Form",
                "time_on_website": 1500,
                "occupation": "Working Professional",
                "do_not_email": "No",
            },
            {"lead_id": "b", "lead_origin": "API", "time_on_website": 0},
        ],
    )
    scores = bundle.score(frame)
    assert scores.probability[0] > scores.probability[1]
    sentences = [r["sentence"] for r in scores.reasons(0, bundle.spec)["positive"]]
    assert any("Working Professional" in s or "1500 seconds" in s for s in sentences)
    with pytest.raises(ValueError, match="unknown feature 'tags'"):
        snapshot_frame(bundle.spec.features_, [{"lead_id": "c", "tags": "Will revert"}])
