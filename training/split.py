"""Splitting snapshots by time into train, validation and test periods.

A random split would let the model see a lead's later snapshots while it is tested on
its earlier ones, and would mix calendar periods, so the scores would look better than
they ever will in production. The split here is by calendar time:

* Each lead belongs to the period of its **first** snapshot. Boundaries are chosen on
  those first-snapshot dates, so the periods hold roughly the asked-for shares of leads.
* ``train`` holds every snapshot dated before ``valid_start`` (minus an optional gap),
  ``valid`` the snapshots in ``[valid_start, test_start)`` and ``test`` those at or after
  ``test_start``.
* A lead already seen in an earlier period is **dropped** from the later ones (its later
  snapshots are used nowhere), so no lead is on both sides of any boundary.
* The *population* of a period is every snapshot dated in it, including leads first
  seen earlier. It holds no label the model may train on, but it is what the model will
  score in production, so label-free choices (the capacity threshold, the score
  percentiles, the grade cut points) are made on it rather than on new leads only.
* ``gap_days`` optionally purges the snapshots whose label window would reach into the
  next period (set it to the horizon for a fully purged backtest; the default 0 keeps
  more data, at the price of training labels that overlap the next period's calendar).

The boundaries are stored with the model, so the same test period can be cut again
from the same data later (for promotion, or to re-evaluate a model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.errors import LeadscoreError


class SplitError(LeadscoreError, ValueError):
    """The data cannot be split into three non-empty time periods."""


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the data into periods.

    Attributes:
        valid_fraction: Share of leads (by first-snapshot date) in the validation period.
        test_fraction: Share of leads in the test period, the latest one.
        gap_days: Snapshots closer than this to the next period's start are dropped.
    """

    valid_fraction: float = 0.2
    test_fraction: float = 0.2
    gap_days: int = 0

    def __post_init__(self) -> None:
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.valid_fraction + self.test_fraction >= 0.9:
            raise ValueError("valid_fraction + test_fraction must leave at least 10% to train on")
        if self.gap_days < 0:
            raise ValueError(f"gap_days must be >= 0, got {self.gap_days}")


@dataclass(frozen=True)
class Boundaries:
    """Where the periods start; enough to reproduce a split on the same data."""

    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    gap_days: int = 0

    def to_dict(self) -> dict:
        """JSON form."""
        return {
            "valid_start": str(self.valid_start),
            "test_start": str(self.test_start),
            "gap_days": self.gap_days,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Boundaries:
        """Inverse of ``to_dict``."""
        return cls(
            pd.Timestamp(d["valid_start"]), pd.Timestamp(d["test_start"]), int(d.get("gap_days", 0))
        )


@dataclass(frozen=True)
class TimeSplit:
    """Three disjoint periods of snapshots, oldest first.

    Attributes:
        train: Snapshots before ``valid_start`` (minus the gap).
        valid: Snapshots of leads first seen in the validation period, dated in it.
        test: Snapshots of leads first seen in the test period.
        boundaries: Period starts and gap.
        dropped_rows: Snapshots in no period (leads seen earlier, or inside a gap).
        valid_population: Every snapshot dated in the validation period (label-free uses).
        test_population: Every snapshot dated in the test period.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    boundaries: Boundaries
    dropped_rows: int
    valid_population: pd.DataFrame
    test_population: pd.DataFrame

    def periods(self) -> dict[str, pd.DataFrame]:
        """The three frames by name, in time order."""
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def window(self) -> dict[str, dict]:
        """First/last ``as_of``, rows, leads and positives of each period (for metadata)."""
        out = {}
        for name, part in self.periods().items():
            out[name] = {
                "first_as_of": str(part["as_of"].min()) if len(part) else None,
                "last_as_of": str(part["as_of"].max()) if len(part) else None,
                "rows": len(part),
                "leads": int(part["lead_id"].nunique()),
                "positives": int(part["label"].sum()) if "label" in part else None,
            }
        return out


def choose_boundaries(frame: pd.DataFrame, config: SplitConfig) -> Boundaries:
    """Pick period starts so that the periods hold roughly the asked shares of leads.

    Boundaries fall on snapshot dates, so a date is never split in two.

    Raises:
        SplitError: if there are fewer than three distinct snapshot dates.
    """
    first = frame.groupby("lead_id", sort=False, observed=True)["as_of"].min()
    counts = first.value_counts().sort_index()
    if len(counts) < 3:
        raise SplitError(
            f"need snapshots on at least 3 distinct dates to split by time, found {len(counts)}"
            " (use a finer snapshot rule, e.g. weekly, or more history)"
        )
    dates = counts.index
    # Rounded, so that a share landing exactly on a cut is not pushed past it by floating
    # point (1.0 - 0.2 - 0.2 is 0.6000000000000001, which would cost validation a date).
    share = np.round(np.cumsum(counts.to_numpy()) / counts.sum(), 12)
    test_cut = round(1.0 - config.test_fraction, 12)
    valid_cut = round(1.0 - config.test_fraction - config.valid_fraction, 12)
    # The first date whose leads push the cumulative share past the cut starts the period.
    t = int(np.searchsorted(share, test_cut, side="left")) + 1
    v = int(np.searchsorted(share, valid_cut, side="left")) + 1
    t = min(max(t, 2), len(dates) - 1)
    v = min(max(v, 1), t - 1)
    return Boundaries(pd.Timestamp(dates[v]), pd.Timestamp(dates[t]), config.gap_days)


def apply_boundaries(frame: pd.DataFrame, boundaries: Boundaries) -> TimeSplit:
    """Cut a snapshot frame at known boundaries, keeping leads on one side only.

    Args:
        frame: Snapshots with at least ``lead_id`` and ``as_of``.
        boundaries: Period starts (from ``choose_boundaries`` or a model's metadata).
    """
    as_of = pd.to_datetime(frame["as_of"])
    gap = pd.Timedelta(days=boundaries.gap_days)
    first = as_of.groupby(frame["lead_id"].to_numpy()).transform("min")
    first_period = np.where(
        first < boundaries.valid_start, 0, np.where(first < boundaries.test_start, 1, 2)
    )
    period = np.where(
        as_of < boundaries.valid_start, 0, np.where(as_of < boundaries.test_start, 1, 2)
    )
    keep = first_period == period
    keep &= ~((period == 0) & (as_of >= boundaries.valid_start - gap)).to_numpy()
    keep &= ~((period == 1) & (as_of >= boundaries.test_start - gap)).to_numpy()
    parts = [frame.loc[keep & (period == p)].reset_index(drop=True) for p in range(3)]
    populations = [frame.loc[period == p].reset_index(drop=True) for p in (1, 2)]
    return TimeSplit(
        parts[0], parts[1], parts[2], boundaries, int((~keep).sum()), populations[0], populations[1]
    )


def split_by_time(frame: pd.DataFrame, config: SplitConfig | None = None) -> TimeSplit:
    """Choose boundaries on ``frame`` and cut it (see the module docstring for the rules)."""
    config = config or SplitConfig()
    return apply_boundaries(frame, choose_boundaries(frame, config))


def split_from_spec(frame: pd.DataFrame, spec: dict, seed: int = 0) -> TimeSplit:
    """Cut a one-row-per-lead frame as a dataset config's ``split`` says.

    * ``{kind: stratified, test_fraction, valid_fraction, seed}``: the test set is exactly
      ``sklearn.model_selection.train_test_split(..., stratify=label, random_state=seed)``;
      validation is carved from the training side the same way.
    * ``{kind: time, at, valid_fraction}``: test = rows with ``as_of >= at``; validation =
      the latest ``valid_fraction`` of the earlier rows (by ``as_of``).

    The populations are the validation and test rows themselves (one snapshot per lead).

    Raises:
        SplitError: when a part would be empty.
    """
    from sklearn.model_selection import train_test_split

    kind = spec.get("kind")
    valid_fraction = float(spec.get("valid_fraction", 0.2))
    frame = frame.reset_index(drop=True)
    if kind == "stratified":
        rs = int(spec.get("seed", seed))
        y = frame["label"].to_numpy()
        rest, test_idx = train_test_split(
            np.arange(len(frame)),
            test_size=float(spec.get("test_fraction", 0.25)),
            stratify=y,
            random_state=rs,
        )
        train_idx, valid_idx = train_test_split(
            rest, test_size=valid_fraction, stratify=y[rest], random_state=rs
        )
        as_of = pd.Timestamp(frame["as_of"].min())
        boundaries = Boundaries(as_of, as_of, 0)
    elif kind == "time":
        at = pd.Timestamp(spec["at"])
        as_of = pd.to_datetime(frame["as_of"])
        before = np.flatnonzero((as_of < at).to_numpy())
        test_idx = np.flatnonzero((as_of >= at).to_numpy())
        order = before[np.argsort(as_of.to_numpy()[before], kind="stable")]
        if len(order) == 0:
            raise SplitError(f"no rows before the split date {at.date()}")
        valid_start = pd.Timestamp(as_of.iloc[order[int(len(order) * (1 - valid_fraction))]])
        train_idx = before[as_of.to_numpy()[before] < valid_start]
        valid_idx = before[as_of.to_numpy()[before] >= valid_start]
        boundaries = Boundaries(valid_start, at, 0)
    else:
        raise SplitError(f"unknown split kind {kind!r}: use stratified or time")
    parts = [
        frame.iloc[np.sort(idx)].reset_index(drop=True) for idx in (train_idx, valid_idx, test_idx)
    ]
    for name, part in zip(("train", "valid", "test"), parts, strict=True):
        if part.empty:
            raise SplitError(f"the {name} part of the {kind} split is empty")
    return TimeSplit(parts[0], parts[1], parts[2], boundaries, 0, parts[1], parts[2])
