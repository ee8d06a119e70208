"""Evaluation plots, readable without explanation.

Every figure is built with matplotlib's object API on an Agg canvas (no pyplot, no
global backend switch), titled with what it shows and labelled in plain words, and
written to a PNG file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from training.metrics import reliability_curve

Curves = dict[str, np.ndarray]
"""Scores per model name, e.g. ``{"model": p, "points baseline": points}``."""

COLORS = {
    "model": "#1f77b4",
    "logistic baseline": "#ff7f0e",
    "points baseline": "#2ca02c",
    "oracle": "#7f7f7f",
}


def _figure(width: float = 6.4, height: float = 4.8) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    return target


def _style(name: str) -> dict:
    return {"color": COLORS.get(name), "linestyle": "--" if name == "oracle" else "-"}


def roc_pr_plot(y: np.ndarray, curves: Curves, path: str | Path) -> Path:
    """ROC and precision-recall curves of every scorer on the test period."""
    fig = _figure(11, 4.8)
    roc_ax, pr_ax = fig.subplots(1, 2)
    for name, score in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, score):.3f})", **_style(name))
        precision, recall, _ = precision_recall_curve(y, score)
        pr_ax.plot(recall, precision, label=name, **_style(name))
    roc_ax.plot([0, 1], [0, 1], color="#cccccc", linewidth=1, label="random")
    roc_ax.set(
        title="ROC curve (test period)",
        xlabel="False positive rate (non-converters flagged)",
        ylabel="True positive rate (converters found)",
    )
    pr_ax.axhline(float(np.mean(y)), color="#cccccc", linewidth=1, label="base rate")
    pr_ax.set(
        title="Precision-recall (test period)",
        xlabel="Recall (share of conversions found)",
        ylabel="Precision (conversion rate)",
    )
    roc_ax.legend(loc="lower right", fontsize=8)
    pr_ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def calibration_plot(y: np.ndarray, curves: Curves, path: str | Path) -> Path:
    """Predicted vs observed conversion rate per decile of predicted probability."""
    fig = _figure()
    ax = fig.subplots()
    top = 0.0
    for name, probability in curves.items():
        predicted, observed, _ = reliability_curve(y, probability)
        ax.plot(predicted, observed, marker="o", label=name, **_style(name))
        top = max(top, float(predicted.max()), float(observed.max()))
    ax.plot([0, top], [0, top], color="#cccccc", linewidth=1, label="perfect calibration")
    ax.set(
        title="Calibration (test period, deciles of predicted probability)",
        xlabel="Predicted conversion probability",
        ylabel="Observed conversion rate",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def gain_lift_plot(y: np.ndarray, curves: Curves, path: str | Path) -> Path:
    """Cumulative gain (share of conversions found) and lift against share of leads worked."""
    fig = _figure(11, 4.8)
    gain_ax, lift_ax = fig.subplots(1, 2)
    y = np.asarray(y, dtype=np.float64)
    share = np.arange(1, len(y) + 1) / len(y)
    for name, score in curves.items():
        order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
        gain = np.cumsum(y[order]) / max(y.sum(), 1)
        gain_ax.plot(share, gain, label=name, **_style(name))
        start = max(1, len(y) // 100)
        lift_ax.plot(share[start:], gain[start:] / share[start:], label=name, **_style(name))
    gain_ax.plot([0, 1], [0, 1], color="#cccccc", linewidth=1, label="random")
    gain_ax.set(
        title="Cumulative gain (test period)",
        xlabel="Share of leads worked, best first",
        ylabel="Share of conversions found",
    )
    lift_ax.axhline(1.0, color="#cccccc", linewidth=1, label="random")
    lift_ax.set(
        title="Lift (test period)",
        xlabel="Share of leads worked, best first",
        ylabel="Conversion rate / overall rate",
    )
    gain_ax.legend(loc="lower right", fontsize=8)
    lift_ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def shap_summary_plot(
    shap: np.ndarray,
    X: np.ndarray,
    names: list[str],
    path: str | Path,
    top: int = 15,
    max_points: int = 3000,
    seed: int = 0,
) -> Path:
    """Beeswarm-style SHAP summary: one row per feature, one dot per lead.

    Dots right of zero pushed the score up; colour is the feature's value relative to
    its own range (categories get their code's rank), grey when missing.
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(shap), size=min(max_points, len(shap)), replace=False)
    importance = np.abs(shap).mean(axis=0)
    order = np.argsort(-importance)[:top][::-1]
    fig = _figure(8, 0.35 * len(order) + 1.8)
    ax = fig.subplots()
    scatter = None
    for row, j in enumerate(order):
        values = shap[rows, j]
        x = X[rows, j]
        finite = np.isfinite(x)
        colour = np.full(len(x), np.nan)
        if finite.any():
            lo, hi = np.nanpercentile(x[finite], [5, 95])
            colour[finite] = np.clip((x[finite] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        ax.scatter(values[~finite], row + jitter[~finite], s=4, color="#bbbbbb", alpha=0.6)
        scatter = ax.scatter(
            values[finite],
            row + jitter[finite],
            s=4,
            c=colour[finite],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            alpha=0.7,
        )
    ax.axvline(0, color="#888888", linewidth=0.8)
    ax.set_yticks(
        range(len(order)), [f"{names[j]}  ({importance[j]:.2f})" for j in order], fontsize=8
    )
    ax.set(
        title="What drives the score (SHAP, test period; mean |impact| in brackets)",
        xlabel="Impact on log-odds of converting (right = more likely)",
    )
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, ticks=[0, 1], pad=0.01)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("Feature value")
    return _save(fig, path)


def score_distribution_plot(
    y: np.ndarray, score: np.ndarray, threshold_score: float | None, path: str | Path
) -> Path:
    """Histogram of the 0–100 score for leads that converted and leads that did not."""
    fig = _figure()
    ax = fig.subplots()
    y = np.asarray(y).astype(bool)
    bins = np.arange(0, 102, 2)
    ax.hist(
        score[~y], bins=bins, density=True, alpha=0.55, label="did not convert", color="#999999"
    )
    ax.hist(score[y], bins=bins, density=True, alpha=0.55, label="converted", color="#d62728")
    if threshold_score is not None:
        ax.axvline(
            threshold_score, color="black", linestyle="--", linewidth=1, label="MQL threshold"
        )
    ax.set(
        title="Score by outcome (test period)",
        xlabel="Lead score (0–100: percentile among the validation period's open leads)",
        ylabel="Share of leads (density)",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)
