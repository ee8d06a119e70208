"""Scheduled retraining: a rolling training set, a challenger, the margin rule.

``leadscore retrain`` is what a nightly or weekly timer runs (``docs/monitoring.md``):
rebuild the training set from the data folder on a window of ``window_months`` ending at
the data end, with the champion's own label definition (horizon, snapshot rule, maximum
lead age) so the two can be compared; train a challenger with ``training.train``'s
``run_training``, exactly as ``leadscore train`` does (the tournament: the points score,
logistic regression, LightGBM and their blend, chosen by cross-validated log loss); promote
it only when it beats the champion on the challenger's test period
(``training.promote.promote``) on every metric of ``RETRAIN_METRICS`` (log loss and ROC
AUC) and the one asked for. The CLI then runs ``leadscore monitor`` on the champion that
results.

This is the planned switch of a team that starts on its hand-set points: the points
champion stays until a learned model beats it on the same held-out snapshots, both by
calibration (log loss) and by ranking (ROC AUC). The decision is recorded on the
challenger's registry version (``promotion.*`` tags, the ``champion`` alias) and appended
to its model card (``training.card.promotion_lines``).

A rolling window rather than all history: buyers, campaigns and the product change, and
a model fitted on the last year or two follows them, while promotion keeps a fresh model
that is not better out of production.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.pipeline import (
    PipelineConfig,
    SnapshotRule,
    TrainingSet,
    build_training_set,
)
from leadscore.errors import LeadscoreError
from runtime import registry
from runtime.bundle import ModelBundle
from training.card import promotion_lines
from training.config import TrainConfig
from training.promote import PromotionResult, promote
from training.train import TrainingResult, run_training

DEFAULT_WINDOW_MONTHS = 24
DEFAULT_HORIZON_DAYS = 90
RETRAIN_METRICS = ("log_loss", "roc_auc")
"""What a retrained challenger must beat the champion on, both, on the same snapshots."""


class RetrainError(LeadscoreError, ValueError):
    """The rolling training set cannot be built (too short a window, no conversions)."""


@dataclass(frozen=True)
class RetrainResult:
    """What ``retrain`` did.

    Attributes:
        window_start: First snapshot date kept (the rolling window's start).
        data_end: The data end the window ends at.
        rows: Snapshots in the rolling training set.
        positives: Conversions among them.
        label: The label definition used (horizon, snapshot rule, maximum lead age) and
            where it came from (``champion`` or ``default``).
        training: The challenger's training run.
        promotion: The promotion decision (None: registration was off).
    """

    window_start: pd.Timestamp
    data_end: pd.Timestamp
    rows: int
    positives: int
    label: dict[str, Any]
    training: TrainingResult
    promotion: PromotionResult | None

    def summary(self) -> str:
        """One paragraph for the console: promoted or kept, with the figures."""
        t = self.training
        auc = t.metrics.get("test_roc_auc", float("nan"))
        head = (
            f"challenger v{t.version}: test ROC AUC {auc:.3f} "
            f"on a rolling training set of {self.rows:,} snapshots ({self.positives:,} "
            f"conversions) from {self.window_start.date()} to the data end "
            f"{self.data_end.date()}"
        )
        p = self.promotion
        if p is None:
            return head + "; not registered, so not promoted"
        verdict = "promoted to champion" if p.promoted else "kept the champion"
        return f"{head}; {verdict} ({p.decision}): {p.reason}" + (
            f" (warning: {p.warning})" if p.warning else ""
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``leadscore retrain --json``)."""
        return {
            "window_start": str(self.window_start),
            "data_end": str(self.data_end),
            "rows": self.rows,
            "positives": self.positives,
            "label": self.label,
            "challenger_version": self.training.version,
            "run_id": self.training.run_id,
            "metrics": self.training.metrics,
            "promotion": None if self.promotion is None else self.promotion.to_dict(),
        }


def champion_label(tracking_uri: str, model_name: str) -> dict[str, Any] | None:
    """The champion's label definition, or None when there is no champion yet."""
    try:
        with registry.tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
            info = registry.version_info(client, model_name, registry.CHAMPION)
            bundle = ModelBundle.load(registry.download_version_bundle(info, Path(tmp) / "b"))
    except registry.RegistryError:
        return None
    meta = bundle.metadata
    if meta.horizon_days is None:
        return None
    return {
        "horizon_days": meta.horizon_days,
        "snapshot_rule": meta.snapshot_rule or "monthly",
        "max_lead_age_days": meta.max_lead_age_days or 180,
        "from": "champion",
    }


def rolling_training_set(
    tables: dict[str, pd.DataFrame],
    window_months: int,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    snapshot_rule: str = "monthly",
    max_lead_age_days: int = 180,
    data_end: pd.Timestamp | None = None,
) -> tuple[TrainingSet, pd.Timestamp]:
    """The pipeline's training set, keeping snapshots of the last ``window_months``.

    Features of a kept snapshot still see the lead's whole history before it (the
    pipeline is point-in-time); only which snapshots are trained on rolls.

    Returns:
        The training set and the window's start.

    Raises:
        RetrainError: when the window holds no snapshot or no conversion.
    """
    if window_months < 1:
        raise RetrainError(f"--window-months must be at least 1, got {window_months}")
    rule = SnapshotRule.parse(snapshot_rule, max_lead_age_days)
    built = build_training_set(tables, PipelineConfig(horizon_days, rule, data_end))
    end = pd.Timestamp(built.metadata.data_end)
    start = end - pd.DateOffset(months=window_months)
    frame = built.frame[built.frame["as_of"] >= start].reset_index(drop=True)
    if frame.empty or not int(frame["label"].sum()):
        raise RetrainError(
            f"the last {window_months} months before the data end {end.date()} hold "
            f"{len(frame):,} snapshots with a known {horizon_days}-day outcome and "
            f"{int(frame['label'].sum()) if len(frame) else 0} conversions: widen "
            "--window-months"
        )
    metadata = built.metadata.model_copy(
        update={
            "first_as_of": str(frame["as_of"].min()),
            "last_as_of": str(frame["as_of"].max()),
            "rows": len(frame),
            "positives": int(frame["label"].sum()),
            "leads": int(frame["lead_id"].nunique()),
        }
    )
    return TrainingSet(frame, metadata), start


def record_in_card(tracking_uri: str, training: TrainingResult, promotion: PromotionResult) -> str:
    """Append the promotion decision to the challenger's model card, in its run too.

    The card logged with the run (``report/model_card.md``) and the run's description are
    rewritten with the decision, so whoever opens the challenger's run or card reads whether
    it serves and on what evidence. Returns the new card.
    """
    card = training.card.rstrip("\n") + "\n\n" + "\n".join(promotion_lines(promotion))
    with registry.tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_card.md"
        path.write_text(card)
        client.log_artifact(training.run_id, str(path), "report")
        client.set_tag(training.run_id, registry.NOTE_TAG, registry.run_note(card))
    return card


def retrain(
    tables: dict[str, pd.DataFrame],
    *,
    window_months: int = DEFAULT_WINDOW_MONTHS,
    tracking_uri: str,
    store_dir: str | Path = ".",
    experiment: str = registry.DEFAULT_EXPERIMENT,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    config: TrainConfig | None = None,
    metric: str = "roc_auc",
    margin: float = 0.0,
    register: bool = True,
    data_end: pd.Timestamp | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> RetrainResult:
    """Build a rolling training set, train a challenger, promote it on the margin rule.

    The label definition is the champion's (so promotion can compare them); with no
    champion yet, the pipeline's defaults (90 days, monthly, 180 days), and the first
    model becomes the champion as ``leadscore train`` makes it.

    Args:
        tables: Validated contract tables.
        window_months: Months of snapshots to train on, ending at the data end.
        tracking_uri: The MLflow registry.
        store_dir: Folder of the embedded store.
        experiment: MLflow experiment of the training run.
        model_name: Registered model name.
        config: Training settings (default: ``leadscore train``'s).
        metric: Metric promotion compares, besides ``RETRAIN_METRICS`` (the challenger must
            be better on each).
        margin: How much better the challenger must be (on each metric, in its units).
        register: Register (and then promote) the challenger.
        data_end: The data end (default: the pipeline's rule).
        progress: Called with each step's name.

    Raises:
        RetrainError: when the window holds too little data.
        training.promote.PromotionError: when the models cannot be compared.
    """
    progress("reading the champion's label definition")
    label = champion_label(tracking_uri, model_name) or {
        "horizon_days": DEFAULT_HORIZON_DAYS,
        "snapshot_rule": "monthly",
        "max_lead_age_days": 180,
        "from": "default",
    }
    progress(f"building the training set of the last {window_months} months")
    training_set, start = rolling_training_set(
        tables,
        window_months,
        horizon_days=label["horizon_days"],
        snapshot_rule=label["snapshot_rule"],
        max_lead_age_days=label["max_lead_age_days"],
        data_end=data_end,
    )
    result = run_training(
        training_set,
        config=config or TrainConfig(),
        tracking_uri=tracking_uri,
        store_dir=store_dir,
        experiment=experiment,
        model_name=model_name,
        register=register,
        run_name=f"retrain {window_months}m",
        progress=progress,
    )
    promotion = None
    if register:
        progress("promoting on the margin rule")
        promotion = promote(
            tracking_uri,
            model_name=model_name,
            store_dir=store_dir,
            metric=metric,
            margin=margin,
            metrics=(metric, *(m for m in RETRAIN_METRICS if m != metric)),
        )
        result.card = record_in_card(tracking_uri, result, promotion)
    meta = training_set.metadata
    return RetrainResult(
        window_start=start,
        data_end=pd.Timestamp(meta.data_end),
        rows=meta.rows,
        positives=meta.positives,
        label=label,
        training=result,
        promotion=promotion,
    )
