"""The planned switch without a store: the card's promotion section and the all-metrics rule."""

from __future__ import annotations

from training.card import promotion_lines
from training.promote import PromotionResult, _reason_all


def _result(decision: str, promoted: bool, challenger: dict, champion: dict) -> PromotionResult:
    return PromotionResult(
        decision,
        promoted,
        "log_loss",
        0.0,
        "3",
        "1",
        challenger["log_loss"],
        champion["log_loss"],
        420,
        ("2024-01-31", "2024-03-31"),
        reason=_reason_all(challenger, champion, 0.0, promoted),
        scores={m: {"challenger": challenger[m], "champion": champion[m]} for m in challenger},
        challenger_model="lightgbm",
        champion_model="points",
    )


def test_better_on_one_metric_only_keeps_the_points_champion():
    kept = _result(
        "rejected", False, {"log_loss": 0.30, "roc_auc": 0.70}, {"log_loss": 0.31, "roc_auc": 0.72}
    )
    assert kept.reason == (
        "log_loss challenger 0.3, champion 0.31 (better); roc_auc challenger 0.7, champion "
        "0.72 (not better): the challenger must be better on log_loss and roc_auc by more "
        "than the margin 0, so the champion stays"
    )
    text = "\n".join(promotion_lines(kept))
    assert "This model, v3 (LightGBM), did not replace the champion." in text
    assert "| Metric | This model v3 (LightGBM) | Champion v1 (Points score) |" in text
    assert "| Log loss | 0.3000 | 0.3100 |" in text and "| ROC AUC | 0.7000 | 0.7200 |" in text
    assert "Both were scored on this model's test period (420 snapshots, 2024-01-31" in text
    assert "The champion v1 (Points score) stays in service." in text


def test_better_on_both_replaces_it():
    switched = _result(
        "promoted", True, {"log_loss": 0.30, "roc_auc": 0.80}, {"log_loss": 0.31, "roc_auc": 0.72}
    )
    assert switched.reason.endswith(
        "the challenger is better on log_loss and roc_auc by more than the margin 0"
    )
    text = "\n".join(promotion_lines(switched))
    assert "This model, v3 (LightGBM), replaced the champion." in text
    assert "stays in service" not in text
    assert switched.metrics == ("log_loss", "roc_auc")
