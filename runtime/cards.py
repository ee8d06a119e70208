"""Score cards: the ``ScoreResponse``-shaped dict of one scored lead.

One formatter for every path that scores — lead-form requests (``serving.leadform``),
features-form requests and data folders (``serving.scorer.score_cards``) — so an answer
reads the same whichever way the lead arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from runtime.bundle import ModelBundle, Scores


def build_cards(
    bundle: ModelBundle,
    model_ref: dict[str, Any],
    scores: Scores,
    regions: np.ndarray,
    tops: Sequence[int],
    full: Sequence[bool],
    lead_ids: Sequence[str],
    as_of: Sequence[datetime],
    actions: Sequence[list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """One card per scored row (``warnings`` empty: the caller knows what to say).

    Each card carries the calibration's 95% interval around its probability
    (``Calibration.interval``: the evidence behind it); a model whose calibration has no
    evidence recorded gives the probability itself as both ends.

    Args:
        bundle: The model that produced ``scores``.
        model_ref: The ``model`` block of every card (name, version, alias).
        scores: ``ModelBundle.score`` or ``score_matrix`` output.
        regions: Each row's region value; a region with its own threshold is named.
        tops: Reasons per direction, per row.
        full: Whether to add every feature's SHAP value, per row.
        lead_ids: The ``lead_id`` of each card.
        as_of: The ``as_of`` of each card.
        actions: Each row's next best actions (``runtime.actions.next_best_actions``);
            None: none were asked for.
    """
    names = bundle.spec.names
    low, high = bundle.calibration.interval(scores.raw)
    region_thresholds = bundle.policy.region_thresholds
    base_value = float(scores.base_value)
    cards = []
    for i in range(len(lead_ids)):
        region = regions[i]
        cards.append(
            {
                "lead_id": lead_ids[i],
                "as_of": as_of[i],
                "probability": float(scores.probability[i]),
                "probability_low": float(low[i]),
                "probability_high": float(high[i]),
                "score": int(scores.score[i]),
                "mql": bool(scores.mql[i]),
                "threshold": float(scores.threshold[i]),
                "threshold_region": (
                    region if isinstance(region, str) and region in region_thresholds else None
                ),
                "grade": str(scores.grade[i]),
                "raw_score": float(scores.raw[i]),
                "base_value": base_value,
                "reasons": scores.reasons(i, bundle.spec, tops[i]),
                "contributions": (
                    dict(zip(names, map(float, scores.shap[i]), strict=True)) if full[i] else None
                ),
                "next_best_actions": actions[i] if actions is not None else [],
                "warnings": [],
                "model": model_ref,
            }
        )
    return cards
