"""Getting a training set in, and refusing one that cannot make a trustworthy model.

Every check runs before anything is fitted or logged and names the problem (the
column, the period and its dates, the count), so a bad export fails fast and leaves
no half-written run or registered version behind.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.build import read_training_set
from features.catalogue import feature_names
from features.pipeline import TrainingSet
from leadscore.errors import LeadscoreError
from training.split import TimeSplit

TrainingData = str | Path | pd.DataFrame | TrainingSet
"""A training-set Parquet path (with its JSON sidecar), a frame, or a ``TrainingSet``."""

REQUIRED_COLUMNS = ("lead_id", "as_of", "label")


class TrainingDataError(LeadscoreError, ValueError):
    """The training data cannot produce a trustworthy model; nothing was logged."""


def load_training_data(data: TrainingData) -> TrainingSet:
    """Accept a path, a frame or a ``TrainingSet`` and return a ``TrainingSet``."""
    if isinstance(data, TrainingSet):
        return data
    if isinstance(data, pd.DataFrame):
        return TrainingSet(data)
    return read_training_set(data)


def check_frame(
    frame: pd.DataFrame,
    min_rows: int = 500,
    min_positives: int = 20,
    features: list[str] | None = None,
) -> None:
    """Refuse data that cannot train a trustworthy model, naming the problem.

    Raises:
        TrainingDataError: missing columns, labels other than 0/1, too few rows or
            conversions, or a single class.
    """
    features = feature_names() if features is None else features
    missing = [c for c in (*REQUIRED_COLUMNS, *features) if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"training data lacks required columns: {missing}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = labels.isna() | ~labels.isin([0, 1])
    if bad.any():
        examples = frame.loc[bad, "label"].astype(str).unique()[:3].tolist()
        raise TrainingDataError(
            f"label must be 0 or 1; {int(bad.sum())} row(s) are not (e.g. {examples})"
        )
    if frame["as_of"].isna().any():
        raise TrainingDataError(f"{int(frame['as_of'].isna().sum())} snapshot(s) have no as_of")
    if len(frame) < min_rows:
        raise TrainingDataError(
            f"training data has {len(frame):,} snapshots; at least {min_rows:,} are "
            "needed to split by time into train, validation and test periods"
        )
    positives = int(labels.sum())
    if positives == 0 or positives == len(frame):
        only = "0 (no conversions)" if positives == 0 else "1 (every snapshot converted)"
        raise TrainingDataError(
            f"training data has a single class: every label is {only}; a model needs "
            "leads that converted and leads that did not"
        )
    if positives < min_positives:
        raise TrainingDataError(
            f"training data has only {positives} conversion(s); at least {min_positives} are needed"
        )


def check_split(split: TimeSplit) -> None:
    """Refuse a split whose periods cannot fit, calibrate or test the model.

    Raises:
        TrainingDataError: naming the period and its window.
    """
    window = split.window()
    needs = {
        "train": "training",
        "valid": "early stopping and calibration",
        "test": "measuring the model",
    }
    for name, part in split.periods().items():
        w = window[name]
        span = f"{str(w['first_as_of'])[:10]} … {str(w['last_as_of'])[:10]}"
        if len(part) == 0:
            raise TrainingDataError(
                f"the {name} period is empty; use more history, other split fractions or "
                f"a smaller gap (gap_days={split.boundaries.gap_days})"
            )
        y = part["label"].to_numpy()
        if y.sum() == 0:
            hint = (
                "use more recent data or a larger test fraction"
                if name == "test"
                else "use more history or a larger fraction for this period"
            )
            raise TrainingDataError(
                f"the {name} period ({span}, {len(part):,} snapshots) has no conversions, "
                f"so it cannot serve {needs[name]}; {hint}"
            )
        if y.sum() == len(y):
            raise TrainingDataError(
                f"the {name} period ({span}) has only conversions; it cannot serve {needs[name]}"
            )
