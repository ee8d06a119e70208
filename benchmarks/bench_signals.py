"""Reasons that contradict the model: how many MQLs are "held back" by a positive-intent signal.

Trains on a simulated funnel, scores the open leads at the end of the data as batch scoring
does, and counts the MQLs with a positive-intent signal (declared ``increasing``, with a
non-zero count) among their top three "what holds it back" reasons: per signal (what
reasons show now) and per feature (what they showed before signals). Also reports the
validation and test ROC AUC with and without monotone constraints.

    python benchmarks/bench_signals.py --leads 5000 --monotone auto
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from features.catalogue import LESS_THAN_TYPICAL
from features.contract import validate
from features.pipeline import PipelineConfig, build_training_set, compute_features, data_window
from features.simulate import simulate
from runtime.bundle import ModelBundle, Scores
from runtime.reasons import positive_intent_held_back
from serving.batch import open_leads
from training.config import TrainConfig
from training.train import fit_bundle

TOP = 3


def held_back_shares(scores: Scores, bundle: ModelBundle, top: int = TOP) -> dict[str, float]:
    """Shares of MQLs whose top ``top`` "holds it back" reasons look wrong to a rep.

    ``per_feature`` (reasons before signals) and ``per_signal`` (now): a positive-intent
    count (signal declared ``increasing``, non-zero count) among them. ``split_feature``:
    before signals, one positive-intent signal's features on both sides of the top reasons
    ("87 visits in 90 days" down, "22 in 7 days" up); per signal that cannot happen.
    ``claims_signal``: a holds-back reason that states positive-intent activity without
    saying it falls short (no "Has not ... in N days", "..., less than typical", or
    recency); the sentences are built so that this is 0.
    """
    spec = bundle.spec
    increasing = [s for s in spec.signals_ if s.direction == "increasing"]
    counts = {n for s in increasing for n in s.counts()}
    family = {n: s.name for s in increasing for n in s.features}
    mqls = np.flatnonzero(scores.mql)
    per_signal = per_feature = split = claims = 0
    for i in mqls:
        negative = scores.reasons(int(i), spec, top)["negative"]
        flagged = [r for r in negative if positive_intent_held_back({"negative": [r]}, spec)]
        per_signal += positive_intent_held_back({"negative": negative}, spec)
        claims += any(
            not r["sentence"].endswith(LESS_THAN_TYPICAL)
            and not r["sentence"].startswith(("Has not", "Last showed"))
            for r in flagged
        )
        shap = scores.shap[i]
        down = [j for j in np.argsort(shap)[:top] if shap[j] < 0]
        up = [j for j in np.argsort(-shap)[:top] if shap[j] > 0]
        per_feature += any(spec.names[j] in counts and scores.X[i, j] > 0 for j in down)
        up_families = {family.get(spec.names[j]) for j in up} - {None}
        split += any(family.get(spec.names[j]) in up_families and scores.X[i, j] > 0 for j in down)
    n = max(len(mqls), 1)
    return {
        "mqls": float(len(mqls)),
        "share_per_feature": per_feature / n,
        "share_per_signal": per_signal / n,
        "split_feature": split / n,
        "claims_signal": claims / n,
    }


def main() -> None:
    """Train, score the open leads, print the shares and AUCs as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--monotone", default="auto", choices=["auto", "on", "off"])
    args = parser.parse_args()
    started = time.perf_counter()
    tables = validate(simulate(args.leads, seed=args.seed).tables())
    training_set = build_training_set(tables, PipelineConfig())
    fitted = fit_bundle(training_set, TrainConfig(monotone=args.monotone, num_threads=2))
    bundle = fitted.bundle
    test = fitted.split.test
    auc = roc_auc_score(test["label"], bundle.predict_proba(test))
    as_of = data_window(tables)[1]
    snapshots = open_leads(tables, as_of, bundle.metadata.population)
    frame = compute_features(
        tables["leads"], tables["accounts"], tables["activities"], snapshots, None
    )
    scores = bundle.score(frame)
    shares = held_back_shares(scores, bundle)
    report = {
        "leads": args.leads,
        "monotone": args.monotone,
        "open_leads_scored": len(frame),
        "test_roc_auc": round(float(auc), 4),
        "monotone_decision": (
            bundle.metadata.monotone.model_dump() if bundle.metadata.monotone else None
        ),
        **{k: round(v, 4) for k, v in shares.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
