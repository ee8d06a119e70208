"""The model card states whether the training set was enough, overall and per region."""

from __future__ import annotations

import numpy as np
import pandas as pd

from runtime.bundle import Policy
from runtime.metadata import BundleMetadata
from training.card import render_card, training_sufficiency


def _policy() -> Policy:
    return Policy(
        rule="capacity",
        target=0.2,
        threshold=0.3,
        fit_cuts=(-1.0, 0.0, 1.0),
        engagement_cuts=(-1.0, 0.0, 1.0),
        score_knots=tuple(np.linspace(0.01, 0.9, 101).tolist()),
    )


def _snapshots() -> pd.DataFrame:
    """300 NA leads (60 converted) and 20 LATAM leads (1 converted), two snapshots each."""
    leads = [f"N{i}" for i in range(300)] + [f"L{i}" for i in range(20)]
    region = ["NA"] * 300 + ["LATAM"] * 20
    converted = [i < 60 for i in range(300)] + [i < 1 for i in range(20)]
    rows = []
    for lead, reg, conv in zip(leads, region, converted, strict=True):
        rows.append((lead, pd.Timestamp("2025-01-01"), 0, reg))
        rows.append((lead, pd.Timestamp("2025-03-01"), int(conv), reg))
    return pd.DataFrame(rows, columns=["lead_id", "as_of", "label", "region"])


def test_card_has_the_sufficiency_section() -> None:
    report = training_sufficiency(_snapshots())
    assert report is not None
    card = render_card(BundleMetadata(), {"model": {}}, {}, _policy(), sufficiency=report)
    assert "## Is the data enough?" in card
    assert "| overall | all | 320 | 61 | 59 | 19.1% [15.1%, 23.7%] |" in card
    assert "| region | LATAM | 20 | 1 | 59 | 5.0% [0.9%, 23.6%] | **no** | **no** |" in card
    assert "- train: at least" in card
    assert "Below the training rule on their own: NA (60), LATAM (1)" in card


def test_card_without_a_report_is_unchanged() -> None:
    plain = render_card(BundleMetadata(), {"model": {}}, {}, _policy())
    assert "Is the data enough?" not in plain
    assert training_sufficiency(pd.DataFrame({"x": [1]})) is None
