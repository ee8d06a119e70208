"""Measurement: does serving a model per region (``train --per-region-model auto``) help,
and is the shared calibration honest?

Three worlds, each trained with ``off`` and ``auto`` on the same data and scored on the
same test period (never seen by either):

* ``standard``: the standard simulator (regions differ by offsets and by the weight of
  intent, which the pooled model sees through its region feature);
* ``small``: a few hundred simulated leads, the small-company case (no region has the
  conversions for a model of its own: only offsets can change anything);
* ``points``: a few hundred simulated leads whose outcomes follow the default points
  score, shifted by region (``REGION_SHIFT``): the points win the pooled choice, and the
  points do not read the region, so only an offset can put each region's rate right;
* ``two-rules``: simulated leads whose EMEA region converts on the opposite of the web
  visits that make NA and LATAM convert (the test's world, ``tests/unit/training/
  test_region_serving.py``).

For each: the pooled choice (must be the same under both), what serves each region, and
the test log loss and expected calibration error (ECE) overall and per region. For the
calibration question, ``recal`` is the ECE a calibration fitted on the region's own
*test* rows would reach (Platt, fitted on one half and scored on the other, both ways):
a bound on what a calibration per region could gain over the shared one.

    python benchmarks/bench_regional.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def _world(name: str, seed: int, leads: int | None = None):
    from features.contract import validate
    from features.pipeline import PipelineConfig, TrainingSet, build_training_set
    from features.simulate import simulate

    leads = leads or {"standard": 3000, "small": 400, "two-rules": 1500, "points": 400}[name]
    ts = build_training_set(validate(simulate(leads, seed=seed).tables()), PipelineConfig())
    if name in ("standard", "small"):
        return ts
    frame = ts.frame.copy()
    rng = np.random.default_rng(seed)
    if name == "points":
        from training.baselines import PointsScore

        shift = frame["region"].astype("string").map(REGION_SHIFT).fillna(0.0).to_numpy()
        logit = 0.06 * (PointsScore().points(frame) - 50) + shift
        frame["label"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        return TrainingSet(frame, ts.metadata)
    ids = frame["lead_id"].unique()
    draw = rng.choice(["NA", "EMEA", "LATAM"], len(ids), p=[0.45, 0.45, 0.10])
    region = frame["lead_id"].map(dict(zip(ids, draw, strict=True))).to_numpy()
    frame["region"] = pd.Categorical(region, categories=["EMEA", "LATAM", "NA"])
    web = np.log1p(frame["n_page_view_30d"].fillna(0).to_numpy())
    z = (web - web.mean()) / web.std()
    logit = np.where(region == "EMEA", -1.5 - 1.3 * z, -1.5 + 1.3 * z)
    frame["label"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return TrainingSet(frame, ts.metadata)


REGION_SHIFT = {"NA": 0.0, "EMEA": -0.7, "APAC": 0.5, "LATAM": -1.0}
"""The ``points`` world: outcomes follow the default points, shifted by region (log-odds)."""


def _recal_ece(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.linear_model import LogisticRegression

    from training.metrics import expected_calibration_error

    if y.sum() < 4 or (1 - y).sum() < 4:
        return None
    logit = np.log(np.clip(p, 1e-7, 1 - 1e-7) / np.clip(1 - p, 1e-7, 1)).reshape(-1, 1)
    half = np.arange(len(y)) % 2 == 0
    out = np.empty(len(y))
    for fit, held in ((half, ~half), (~half, half)):
        if len(np.unique(y[fit])) < 2:
            return None
        out[held] = (
            LogisticRegression(C=1e6).fit(logit[fit], y[fit]).predict_proba(logit[held])[:, 1]
        )
    return expected_calibration_error(y, out)


def _measure(fitted, fresh: pd.DataFrame | None) -> dict:
    from training.metrics import expected_calibration_error, probability_metrics

    test = fitted.split.test if fresh is None else fresh
    y = test["label"].to_numpy()
    p = fitted.bundle.predict_proba(test)
    region = test["region"].astype("string").fillna("").to_numpy(dtype=object)
    out = {
        "chosen": fitted.bundle.metadata.model_choice.chosen,
        "margin": fitted.bundle.margin.kind,
        "log_loss": probability_metrics(y, p)["log_loss"],
        "ece": expected_calibration_error(y, p),
        "served": {s.region: f"{s.served}:{s.candidate}" for s in fitted.serving},
        "offsets": {
            s.region: round(s.offset_logodds, 4) for s in fitted.serving if s.offset_logodds
        },
        "regions": {},
    }
    for r in sorted(set(region)):
        m = region == r
        if y[m].sum() == 0 or y[m].sum() == m.sum():
            continue
        out["regions"][r] = {
            "rows": int(m.sum()),
            "conversions": int(y[m].sum()),
            "log_loss": probability_metrics(y[m], p[m])["log_loss"],
            "ece": expected_calibration_error(y[m], p[m]),
            "recal_ece": _recal_ece(y[m], p[m]),
        }
    return out


def main() -> None:
    from training.train import TrainConfig, fit_bundle

    parser = argparse.ArgumentParser()
    parser.add_argument("--worlds", nargs="+", default=["two-rules", "small", "standard"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--fresh",
        type=int,
        default=0,
        help="Score a fresh simulation of this many leads (same rules, another seed) "
        "instead of the test period (0: the test period).",
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    results = []
    for world in args.worlds:
        for seed in args.seeds:
            data = _world(world, seed)
            fresh = _world(world, seed + 1000, args.fresh).frame if args.fresh else None
            row = {"world": world, "seed": seed}
            for mode in ("off", "auto"):
                started = time.perf_counter()
                config = TrainConfig(num_threads=1, seed=seed, per_region_model=mode)
                row[mode] = _measure(fit_bundle(data, config), fresh)
                row[mode]["seconds"] = round(time.perf_counter() - started, 1)
            results.append(row)
            off, auto = row["off"], row["auto"]
            print(
                f"{world:10s} seed {seed}: chosen {off['chosen']}/{auto['chosen']} "
                f"log loss {off['log_loss']:.4f} -> {auto['log_loss']:.4f}, "
                f"ECE {off['ece']:.4f} -> {auto['ece']:.4f}; served {auto['served']} "
                f"offsets {auto['offsets']} ({off['seconds']}s / {auto['seconds']}s)",
                flush=True,
            )
            for r, a in auto["regions"].items():
                o = off["regions"].get(r, {})
                print(
                    f"    {r:6s} {a['rows']:5d} rows {a['conversions']:4d} conv: log loss "
                    f"{o.get('log_loss', float('nan')):.4f} -> {a['log_loss']:.4f}, ECE "
                    f"{o.get('ece', float('nan')):.4f} -> {a['ece']:.4f} (recal "
                    f"{a['recal_ece'] if a['recal_ece'] is None else round(a['recal_ece'], 4)})",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=float)


if __name__ == "__main__":
    main()
