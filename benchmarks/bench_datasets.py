"""Reproduce the README's quality table on the real public data sets.

For each config under ``examples/`` it trains through ``run_training`` (a throwaway MLflow
store), then refits the issue's anchor on exactly the same test set: a plain, untuned
LightGBM (defaults, 400 trees) on the same columns, trained on train + validation.

    .venv/bin/python benchmarks/bench_datasets.py            # all data sets
    .venv/bin/python benchmarks/bench_datasets.py olist      # one

Needs ``../shared/datasets`` next to the repository.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.dataset_config import load_dataset  # noqa: E402
from training.config import train_config_from_dataset  # noqa: E402
from training.metrics import ranking_metrics  # noqa: E402
from training.train import run_training  # noqa: E402

DATASETS = {
    "x_education": ("examples/x_education.yaml", {"roc_auc": 0.899, "logistic": 0.892}),
    "olist": ("examples/olist.yaml", {"roc_auc": 0.65, "logistic": 0.67}),
    "online_shoppers": ("examples/online_shoppers.yaml", {"roc_auc": 0.935}),
}


def plain_lightgbm(train: pd.DataFrame, test: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The anchor: LightGBM defaults, 400 trees, pandas categoricals."""
    model = lgb.LGBMClassifier(n_estimators=400, verbose=-1, random_state=0)
    model.fit(train[names], train["label"])
    return model.predict_proba(test[names])[:, 1]


def run(name: str) -> dict:
    path, anchor = DATASETS[name]
    started = time.perf_counter()
    training_set = load_dataset(ROOT / path)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(
            training_set,
            config=train_config_from_dataset(training_set),
            store_dir=tmp,
            experiment=f"bench-{name}",
            model_name=f"bench-{name}",
        )
    m = result.metrics
    split = result.bundle.metadata.split_spec
    names = [f.name for f in training_set.metadata.catalogue]
    # Same test rows as the run: re-cut the split the same way.
    from training.split import split_from_spec

    cut = split_from_spec(training_set.frame, split)
    p = plain_lightgbm(pd.concat([cut.train, cut.valid]), cut.test, names)
    plain = ranking_metrics(cut.test["label"].to_numpy(), p)
    return {
        "dataset": name,
        "rows": len(training_set.frame),
        "test_rows": len(cut.test),
        "split": split,
        "ours": {k: m[f"test_{k}"] for k in ("roc_auc", "pr_auc", "lift_top10")},
        "logistic": {k: m.get(f"logistic_{k}") for k in ("roc_auc", "pr_auc", "lift_top10")},
        "points": {k: m.get(f"points_{k}") for k in ("roc_auc", "pr_auc", "lift_top10")},
        "plain_lightgbm_400": {k: plain[k] for k in ("roc_auc", "pr_auc", "lift_top10")},
        "anchor": anchor,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    names = sys.argv[1:] or list(DATASETS)
    rows = [run(n) for n in names]
    print(json.dumps(rows, indent=2, default=str))
    print(
        "\n| Data set | Split | Ours AUC / PR AUC / lift@10% | Anchor AUC (issue) "
        "| Plain LightGBM 400 (same split) | Logistic | Points |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:

        def fmt(d: dict) -> str:
            return " / ".join(
                "–" if d.get(k) is None else f"{d[k]:.3f}"
                for k in ("roc_auc", "pr_auc", "lift_top10")
            )

        s = r["split"]
        split = (
            f"stratified {s['test_fraction']:.0%}, seed {s['seed']}"
            if s["kind"] == "stratified"
            else f"time, test from {s['at']}"
        )
        print(
            f"| {r['dataset']} | {split} | {fmt(r['ours'])} | {r['anchor']['roc_auc']:.3f} "
            f"| {fmt(r['plain_lightgbm_400'])} | {fmt(r['logistic'])} | {fmt(r['points'])} |"
        )


if __name__ == "__main__":
    main()
