"""Reproduce the README's quality table on the real public data sets.

For each config under ``examples/`` it trains through ``run_training`` (a throwaway MLflow
store) and reports, on the config's test rows, the model beside three references:

* the issue's anchor, a plain LightGBM: 400 trees, learning rate 0.03, LightGBM's defaults
  otherwise (pandas categoricals), fitted on all training rows (train + validation) of the
  same split;
* the logistic-regression baseline and the points-based score, as the evaluation fits them;
* the goal of issue 15 for the data set's test ROC AUC.

Validation ROC AUC (the model's, on the validation rows it was early-stopped and calibrated
on) is printed beside the test figures: every choice in the configs is made on validation
or cross-validation, never on the test rows, and the table shows both so a reader can see
how far the two agree.

``--small`` is the "small export" check: each data set is subsampled to a few hundred rows
(``--rows``, several seeds), ordered in time (its time column, or file order when it has
none), written out with a minimal config as a new user would write one (columns and
dtypes, a time split, nothing tuned) and trained with ``fit_bundle``; the same plain
LightGBM anchor is fitted on the same split.

    .venv/bin/python benchmarks/bench_datasets.py                 # all data sets
    .venv/bin/python benchmarks/bench_datasets.py olist           # one
    .venv/bin/python benchmarks/bench_datasets.py --readme        # and rewrite README's table
    .venv/bin/python benchmarks/bench_datasets.py --small --rows 400 --seeds 5

Needs ``../shared/datasets`` next to the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.dataset_config import load_dataset  # noqa: E402
from training.config import train_config_from_dataset  # noqa: E402
from training.metrics import probability_metrics, ranking_metrics  # noqa: E402
from training.split import split_from_spec  # noqa: E402
from training.train import fit_bundle, run_training  # noqa: E402

# name: (config, README label, issue 15's goal on test ROC AUC)
DATASETS: dict[str, tuple[str, str, float]] = {
    "x_education": ("examples/x_education.yaml", "X Education", 0.91),
    "olist": ("examples/olist.yaml", "Olist MQLs", 0.68),
    "online_shoppers": ("examples/online_shoppers.yaml", "Online Shoppers", 0.94),
}
ECE_GOAL = 0.05
README_START = "<!-- quality-table:start (benchmarks/bench_datasets.py --readme) -->"
README_END = "<!-- quality-table:end -->"


def plain_lightgbm(
    train: pd.DataFrame, test: pd.DataFrame, names: list[str], threads: int = 2
) -> np.ndarray:
    """The anchor: 400 trees, learning rate 0.03, LightGBM defaults otherwise."""
    model = lgb.LGBMClassifier(
        n_estimators=400, learning_rate=0.03, verbose=-1, random_state=0, n_jobs=threads
    )
    model.fit(train[names], train["label"])
    return model.predict_proba(test[names])[:, 1]


def _scored(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {**ranking_metrics(y, p), **probability_metrics(y, p)}


def run(name: str, threads: int = 2) -> dict[str, Any]:
    """Train one shipped config as a user would and measure it beside its references."""
    path, label, goal = DATASETS[name]
    started = time.perf_counter()
    training_set = load_dataset(ROOT / path)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(
            training_set,
            config=train_config_from_dataset(training_set, num_threads=threads),
            store_dir=tmp,
            experiment=f"bench-{name}",
            model_name=f"bench-{name}",
        )
    m = result.metrics
    split = result.bundle.metadata.split_spec.as_dict()
    names = [f.name for f in training_set.metadata.catalogue]
    # Same rows as the run: re-cut the split the same way.
    cut = split_from_spec(training_set.frame, split)
    # The registered model is refitted on train + validation when cross-fitted, so its
    # validation AUC would be in-sample: report the figure the choice was made on (the
    # out-of-fold or validation-period AUC of the chosen candidate).
    choice = result.bundle.metadata.model_choice
    chosen = [c for c in choice.candidates if c.name == choice.chosen]
    valid_auc = (
        chosen[0].valid_roc_auc
        if chosen and chosen[0].valid_roc_auc is not None
        else ranking_metrics(cut.valid["label"].to_numpy(), result.bundle.predict_proba(cut.valid))[
            "roc_auc"
        ]
    )
    p = plain_lightgbm(pd.concat([cut.train, cut.valid]), cut.test, names, threads)
    plain = _scored(cut.test["label"].to_numpy(), p)
    keys = ("roc_auc", "pr_auc", "lift_top10", "ece", "log_loss")
    return {
        "dataset": name,
        "label": label,
        "config": path,
        "rows": len(training_set.frame),
        "test_rows": len(cut.test),
        "split": split,
        "goal_roc_auc": goal,
        "valid_roc_auc": valid_auc,
        "ours": {k: m.get(f"test_{k}") for k in keys},
        "plain_lightgbm_400": {k: plain.get(k) for k in keys},
        "logistic": {k: m.get(f"logistic_{k}") for k in keys},
        "points": {k: m.get(f"points_{k}") for k in ("roc_auc", "pr_auc", "lift_top10")},
        "best_iteration": result.bundle.metadata.training.best_iteration,
        "calibration": result.bundle.metadata.calibration_method,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _split_words(s: dict[str, Any]) -> str:
    if s["kind"] == "stratified":
        return f"stratified {s['test_fraction']:.0%}, seed {s['seed']}"
    return f"time, test from {s['at']}"


def table(rows: list[dict[str, Any]]) -> str:
    """The README's table: test AUC and ECE against the goal and the plain anchor."""
    lines = [
        "| Data set | Split | leadscore test AUC (choice AUC) | ECE | Goal | Plain LightGBM, "
        "same split: AUC / ECE | Logistic: AUC / ECE | Points AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours, plain, lr = r["ours"], r["plain_lightgbm_400"], r["logistic"]
        met = "met" if ours["roc_auc"] >= r["goal_roc_auc"] else "not met"
        lines.append(
            f"| {r['label']} (`{r['config']}`) | {_split_words(r['split'])} "
            f"| **{ours['roc_auc']:.3f}** ({r['valid_roc_auc']:.3f}) | {ours['ece']:.3f} "
            f"| ≥ {r['goal_roc_auc']:.2f} ({met}) | {plain['roc_auc']:.3f} / {plain['ece']:.3f} "
            f"| {_fmt(lr.get('roc_auc'))} / {_fmt(lr.get('ece'))} "
            f"| {_fmt(r['points'].get('roc_auc'))} |"
        )
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_readme(text: str, readme: Path = ROOT / "README.md") -> None:
    """Replace the table between the README's quality-table markers."""
    body = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(body):
        raise SystemExit(f"{readme} has no {README_START!r} … {README_END!r} block")
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{text}\n{README_END}", body))


# --- small exports --------------------------------------------------------------------


def _small_export(name: str, rows: int, seed: int, folder: Path) -> Path:
    """A few hundred rows of one data set, time-ordered, with a minimal config.

    The config declares what a new user would: the source, id, outcome, a time column, a
    time split at the 75th percentile of time, and each feature's column and dtype (date
    parts keep their transform). No params, no points, no exclusions beyond leaving
    columns out; ``min_rows`` is lowered so a few hundred rows are accepted.
    """
    path = ROOT / DATASETS[name][0]
    full = yaml.safe_load(path.read_text())
    source = dict(full["source"])
    src = (path.parent / source.pop("file")).resolve()
    raw = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    sample = raw.sample(n=min(rows, len(raw)), random_state=seed)
    time_spec = full.get("time")
    if time_spec:
        column, fmt = time_spec["column"], time_spec.get("format")
        times = pd.to_datetime(sample[column], format=fmt)
    else:
        # No time column: file order stands for time (one day per row of the file).
        column, fmt = "_created", "%Y-%m-%d"
        times = pd.Timestamp("2020-01-01") + pd.to_timedelta(sample.index.to_numpy(), unit="D")
        sample = sample.assign(_created=times.strftime(fmt))
    order = np.argsort(np.asarray(times), kind="stable")
    sample = sample.iloc[order]
    at = pd.Timestamp(np.asarray(times)[order][int(len(sample) * 0.75)]).strftime("%Y-%m-%d")
    data = folder / f"{name}_{seed}.csv"
    sample.to_csv(data, index=False)
    outcome = dict(full["outcome"])
    if "in_file" in outcome:
        in_file = dict(outcome["in_file"])
        in_file["file"] = str((path.parent / in_file["file"]).resolve())
        outcome["in_file"] = in_file
    features = []
    for f in full["features"]:
        kept = {k: f[k] for k in ("name", "column", "dtype", "transform", "format") if k in f}
        features.append(kept)
    config = {
        "kind": "lead_snapshot",
        "name": f"small_{name}",
        "source": {**source, "file": data.name},
        "id": full.get("id"),
        "outcome": outcome,
        "time": {"column": column, "format": fmt} if fmt else {"column": column},
        "split": {"kind": "time", "at": at},
        "features": features,
        "train": {"min_rows": 100, "min_positives": 5},
    }
    out = folder / f"{name}_{seed}.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def run_small(name: str, rows: int, seeds: int, threads: int = 2) -> dict[str, Any]:
    """Mean test AUC and ECE over ``seeds`` small exports: ours against the anchor."""
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            config = _small_export(name, rows, seed, Path(tmp))
            ts = load_dataset(config)
            fitted = fit_bundle(ts, train_config_from_dataset(ts, num_threads=threads))
            cut = fitted.split
            y = cut.test["label"].to_numpy()
            if y.min() == y.max():
                continue
            names = [f.name for f in ts.metadata.catalogue]
            ours = _scored(y, fitted.bundle.predict_proba(cut.test))
            plain = _scored(
                y, plain_lightgbm(pd.concat([cut.train, cut.valid]), cut.test, names, threads)
            )
            per_seed.append(
                {
                    "seed": seed,
                    "test_rows": len(y),
                    "test_positives": int(y.sum()),
                    "ours_roc_auc": ours["roc_auc"],
                    "ours_ece": ours["ece"],
                    "plain_roc_auc": plain["roc_auc"],
                    "plain_ece": plain["ece"],
                    "best_iteration": fitted.bundle.metadata.training.best_iteration,
                }
            )
    frame = pd.DataFrame(per_seed)
    return {
        "dataset": name,
        "rows": rows,
        "seeds": len(frame),
        "mean": frame.drop(columns=["seed"]).mean().round(4).to_dict(),
        "ours_minus_plain_roc_auc": round(
            float((frame["ours_roc_auc"] - frame["plain_roc_auc"]).mean()), 4
        ),
        "per_seed": per_seed,
    }


def small_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Data set | Rows (test rows) | Seeds | leadscore AUC / ECE | Plain LightGBM AUC / ECE "
        "| Difference AUC |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["mean"]
        lines.append(
            f"| {r['dataset']} | {r['rows']} ({m['test_rows']:.0f}) | {r['seeds']} "
            f"| {m['ours_roc_auc']:.3f} / {m['ours_ece']:.3f} "
            f"| {m['plain_roc_auc']:.3f} / {m['plain_ece']:.3f} "
            f"| {r['ours_minus_plain_roc_auc']:+.3f} |"
        )
    return "\n".join(lines)


def _dump(rows: list[dict[str, Any]], path: Path | None) -> None:
    text = json.dumps(rows, indent=2, default=str)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"data sets (default all): {', '.join(DATASETS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--readme", action="store_true", help="rewrite README's table")
    parser.add_argument("--small", action="store_true", help="small-export check")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    names = args.names or list(DATASETS)
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown data set(s) {unknown}: choose from {list(DATASETS)}")
    if args.small:
        rows = [run_small(n, args.rows, args.seeds, args.threads) for n in names]
        _dump(rows, args.json)
        print()
        print(small_table(rows))
        return
    rows = [run(n, args.threads) for n in names]
    _dump(rows, args.json)
    text = table(rows)
    print()
    print(text)
    if args.readme:
        if set(names) != set(DATASETS):
            raise SystemExit("--readme needs every data set")
        write_readme(text)


if __name__ == "__main__":
    main()
