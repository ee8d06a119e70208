"""Evaluation metrics a data scientist and a sales leader both read.

Ranking (ROC and PR AUC), probability quality (log loss, Brier, expected calibration
error), what the top of the list is worth (lift and capture at 10% and 20%), and what
the MQL policy does (MQL rate, precision, recall). All are plain functions of labels
and scores, so the model, the baselines and the oracle are measured the same way.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "lift_top10": True,
    "lift_top20": True,
    "capture_top10": True,
    "capture_top20": True,
}
"""Direction of each metric usable for promotion."""

TOP_SHARES: tuple[float, ...] = (0.1, 0.2)


def expected_calibration_error(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − mean probability| over equal-count bins, weighted by size.

    Equal-count bins (deciles of the probability) rather than equal-width ones: with a
    few percent of conversions, equal-width bins put nearly every lead in the first bin
    and say nothing about the leads that matter.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if chunk.size:
            total += chunk.size * abs(y[chunk].mean() - p[chunk].mean())
    return float(total / max(len(y), 1))


def reliability_curve(
    y: np.ndarray, probability: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed rate, count) per equal-count bin, for the plot."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, min(bins, len(order))) if c.size]
    return (
        np.array([p[c].mean() for c in chunks]),
        np.array([y[c].mean() for c in chunks]),
        np.array([c.size for c in chunks]),
    )


def top_share(y: np.ndarray, score: np.ndarray, share: float) -> tuple[float, float]:
    """(lift, capture) among the top ``share`` of snapshots by score.

    Lift is the conversion rate in the top share over the overall rate; capture is the
    share of all conversions found there. Ties at the cut are broken by order, so a
    score with many ties (like the points baseline) is not flattered.
    """
    y = np.asarray(y, dtype=np.float64)
    k = max(1, round(share * len(y)))
    top = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]
    base = y.mean()
    positives = y.sum()
    lift = float(y[top].mean() / base) if base > 0 else float("nan")
    capture = float(y[top].sum() / positives) if positives > 0 else float("nan")
    return lift, capture


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Metrics that only need an ordering (valid for the points baseline too)."""
    y = np.asarray(y)
    out = {"rows": float(len(y)), "positives": float(y.sum()), "base_rate": float(y.mean())}
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, score))
        out["pr_auc"] = float(average_precision_score(y, score))
    else:
        out["roc_auc"] = out["pr_auc"] = float("nan")
    for share in TOP_SHARES:
        lift, capture = top_share(y, score, share)
        pct = round(share * 100)
        out[f"lift_top{pct}"] = lift
        out[f"capture_top{pct}"] = capture
    return out


def probability_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Metrics that need probabilities that mean what they say."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-7, 1 - 1e-7)
    return {
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "mean_probability": float(p.mean()),
    }


def mql_metrics(y: np.ndarray, mql: np.ndarray) -> dict[str, float]:
    """What an MQL rule does: MQL rate, precision (= MQL→conversion rate) and recall."""
    y = np.asarray(y, dtype=np.float64)
    mql = np.asarray(mql, dtype=bool)
    n_mql = mql.sum()
    precision = float(y[mql].mean()) if n_mql else float("nan")
    return {
        "mql_rate": float(mql.mean()) if len(mql) else float("nan"),
        "precision": precision,
        "recall": float(y[mql].sum() / y.sum()) if y.sum() else float("nan"),
        "mql_conversion_rate": precision,
        "non_mql_conversion_rate": float(y[~mql].mean()) if (~mql).any() else float("nan"),
    }


def classifier_metrics(
    y: np.ndarray, probability: np.ndarray, mql: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric for a probabilistic classifier (plus MQL metrics when given flags)."""
    out = {**ranking_metrics(y, probability), **probability_metrics(y, probability)}
    if mql is not None:
        out.update(mql_metrics(y, mql))
    return out


def by_group(
    y: np.ndarray, probability: np.ndarray, mql: np.ndarray, groups: np.ndarray
) -> dict[str, dict[str, float]]:
    """Ranking and MQL metrics per group (e.g. per region), for groups of both classes."""
    out: dict[str, dict[str, float]] = {}
    groups = np.asarray(groups, dtype=object)
    for group in sorted({g for g in groups if g}):
        mask = groups == group
        metrics = {**ranking_metrics(y[mask], probability[mask]), **mql_metrics(y[mask], mql[mask])}
        if 0 < y[mask].sum() < mask.sum():
            metrics.update(probability_metrics(y[mask], probability[mask]))
        out[str(group)] = metrics
    return out
