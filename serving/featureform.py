"""Features-form requests → score cards without a pandas frame, when that is exact.

A model trained on a ``lead_snapshot`` dataset config takes raw feature values, which
``features.dataset_config.snapshot_frame`` types as training typed the export. Building
that frame (and the one-row ``DataFrame`` it starts from) costs ~25 ms a request, against
well under a millisecond for the rest of the path. After the schema's cleaning a value is
text (stripped, never empty), a finite number, a boolean or null; for the combinations
whose typing is unambiguous — text for a category, a number for a numeric feature,
true/false or yes/no text for a boolean one — the values are typed directly by
``features.dataset_config.values.type_column`` (the one value-typing implementation, beside
the ``type_series`` that ``snapshot_frame`` uses) and go through ``InputSpec.encode`` and
``ModelBundle.score_matrix`` like a lead-form request. Anything else (a number sent for a
category, text for a number, a value ``snapshot_frame`` would refuse) returns None, and
the caller takes the frame path, which also words the errors.
``tests/integration/test_snapshot_models.py`` checks both paths give the same cards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import numpy as np

from features.dataset_config import type_column
from runtime.actions import feature_actions
from runtime.bundle import ModelBundle
from runtime.cards import build_cards
from serving.schemas import ScoreRequest


def feature_values(
    bundle: ModelBundle, requests: Sequence[ScoreRequest]
) -> dict[str, np.ndarray] | None:
    """Each model feature as a column, typed as ``snapshot_frame`` types it, or None.

    Missing features are unknown (None or NaN). The requests' feature names must already
    be known to the model.
    """
    values: dict[str, np.ndarray] = {}
    for f in bundle.spec.features_:
        column = [(req.features or {}).get(f.name) for req in requests]
        typed = type_column(column, f.dtype)
        if typed is None:
            return None
        values[f.name] = typed
    return values


def score_feature_values(
    bundle: ModelBundle,
    model_ref: dict[str, Any],
    requests: Sequence[ScoreRequest],
    values: dict[str, np.ndarray],
    warnings: list[list[str]],
    default_top: int,
    keep: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Score cards for features-form requests from ``feature_values``' columns.

    ``keep``: next best actions per request (None: none), each the lead's row with one
    feature changed as the model's config declared (``runtime.actions.feature_variants``).
    """
    n = len(requests)
    region_feature = bundle.policy.region_feature
    if region_feature in values:
        regions = np.asarray(
            [v if isinstance(v, str) else "" for v in values[region_feature]], dtype=object
        )
    else:
        regions = np.full(n, "", dtype=object)
    lead_ids = [req.scored_id for req in requests]
    as_of = [req.as_of for req in requests]
    scores = bundle.score_matrix(
        bundle.spec.encode(values),
        regions,
        np.asarray(lead_ids, dtype=object),
        np.asarray(as_of, dtype=object),
    )
    actions = feature_actions(bundle, scores, keep or [], regions)
    cards = build_cards(
        bundle,
        model_ref,
        scores,
        regions,
        [req.top_reasons or default_top for req in requests],
        [req.include_contributions for req in requests],
        lead_ids,
        [t.replace(tzinfo=UTC) for t in as_of],
        actions,
    )
    for card, warn in zip(cards, warnings, strict=True):
        card["warnings"] = warn
    return cards
