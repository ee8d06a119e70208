"""Promotion's rules without a store: what makes two models comparable, what counts as better."""

from __future__ import annotations

import pytest

from features.metadata import DatasetInfo, OutcomeInfo
from runtime.metadata import BundleMetadata
from training.promote import better, label_differences

NINETY = BundleMetadata(horizon_days=90, snapshot_rule="monthly", max_lead_age_days=180)


def test_the_same_label_definition_is_comparable():
    assert label_differences(NINETY, NINETY.model_copy()) == []


def test_other_horizons_are_named():
    sixty = NINETY.model_copy(update={"horizon_days": 60})
    assert label_differences(sixty, NINETY) == [
        ("predicts conversion within 60 days", "within 90 days")
    ]


def test_other_populations_are_named():
    weekly = NINETY.model_copy(update={"snapshot_rule": "weekly", "max_lead_age_days": 365})
    assert label_differences(NINETY, weekly) == [
        ("was trained on monthly snapshots", "on weekly snapshots"),
        ("was trained on leads up to 180 days old", "up to 365 days old"),
    ]


def test_an_unrecorded_lead_age_is_not_a_difference():
    """Bundles written before the age was recorded compare on what they do record."""
    old = NINETY.model_copy(update={"max_lead_age_days": None})
    assert label_differences(old, NINETY) == []


def test_other_outcomes_of_an_export_are_named():
    def export(positive: tuple) -> BundleMetadata:
        dataset = DatasetInfo(
            name="crm",
            kind="lead_snapshot",
            outcome=OutcomeInfo(column="Converted", positive=positive),
        )
        return BundleMetadata(snapshot_rule="lead_snapshot", dataset=dataset)

    assert label_differences(export((1,)), export((1,))) == []
    assert label_differences(export((1,)), export(("won", "closed"))) == [
        ("counts as converted column Converted in (1)", "column Converted in (won, closed)")
    ]
    (horizon, *_) = label_differences(export((1,)), NINETY)
    assert horizon == ("predicts conversion with no fixed horizon (an export)", "within 90 days")


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "margin", "expected"),
    [
        ("roc_auc", 0.80, 0.80, 0.0, False),  # a tie is not better
        ("roc_auc", 0.81, 0.80, 0.0, True),
        ("roc_auc", 0.81, 0.80, 0.01, False),  # exactly the margin is not more than it
        ("roc_auc", 0.8101, 0.80, 0.01, True),
        ("log_loss", 0.30, 0.30, 0.0, False),
        ("log_loss", 0.29, 0.30, 0.0, True),
        ("log_loss", 0.31, 0.30, 0.0, False),
    ],
)
def test_only_a_strictly_better_challenger_wins(metric, challenger, champion, margin, expected):
    assert better(challenger, champion, metric, margin) is expected
