"""Is the data enough? Leads, conversions, time span and verdicts, overall and per group.

A team that installs the product may have a few hundred leads and a few dozen
conversions, or a region with almost none. This module says, before any training, what
the data can support: for the whole data, per region and per segment column, the number
of leads and of converted leads, the time they span, the conversion rate with its Wilson
95 % interval, and four verdicts, each with its rule and the numbers behind it:

* **train**: a learned model ranks nearly as well as with ample data;
* **calibrate**: its probabilities are about as well calibrated as ample data allows;
* **threshold**: an MQL threshold chosen on the data holds on new leads;
* **grade**: the A-D grades order leads by how often they convert.

The rules are counts of converted leads, measured, not guessed: the learning curves of
``benchmarks/bench_learning_curve.py`` (see ``docs/data-sufficiency.md``) train the
product's own model on the simulator's small-company world at 6 to 345 conversions and
3 seeds and measure it on a large independent simulation. Below a verdict's count the
product still trains (from about 20 conversions), but measurably worse than with more
data; a region below it is better served by the pooled model. Conversions are what the
curves move with: the non-converted leads are plentiful long before the converted ones.

The functions here are pure (frames in, a report out); ``leadscore check --data`` and
the model card print the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from leadscore.errors import LeadscoreError

Purpose = Literal["train", "calibrate", "threshold", "grade"]
PURPOSES: tuple[Purpose, ...] = ("train", "calibrate", "threshold", "grade")

# Measured by benchmarks/bench_learning_curve.py on 2026-12-03: the small-company world at
# 6 to 345 conversions (targets 10, 20, 40, 80, 160, 320; 3 seeds each), every model
# trained by fit_bundle and measured on 6,000 fresh leads (17,176 snapshots, 429
# conversions, oracle ROC AUC 0.935). Mean per size (conversions: AUC, oracle ECE,
# MQL precision, grade AUC):
#     38: 0.883, 0.0036, 0.128, 0.694      83: 0.879, 0.0034, 0.127, 0.686
#    181: 0.894, 0.0025, 0.142, 0.725     319: 0.907, 0.0020, 0.134, 0.735
# With 6 to 20 conversions fit_bundle refused every run (6 of 6). Each threshold is the
# smallest measured size from which its criterion held at every larger size; the
# table and the per-run numbers are in docs/data-sufficiency.md.
MIN_CONVERSIONS: dict[Purpose, int] = {
    "train": 180,
    "calibrate": 320,
    "threshold": 40,
    "grade": 180,
}
"""Converted leads needed for each purpose (see ``RULES`` for the criterion behind each)."""

RULES: dict[Purpose, str] = {
    "train": "from here the test ROC AUC is within 0.02 of the 320-conversion model's "
    "(0.894 vs 0.907; 80 conversions gave 0.879), every seed within 0.04",
    "calibrate": "from here the calibration error against the true probability is at most "
    "1.5x the 320-conversion model's, every seed at most 2x (at 180, one seed in three "
    "was 2.3x); less than this was not measured to suffice",
    "threshold": "from here the capacity threshold gives, on new leads, an MQL rate within "
    "25% of the 320-conversion model's, every seed, and MQLs that convert at least 90% "
    "as often (at 40: 0.128 vs 0.134)",
    "grade": "from here the A-D grade letter ranks within 0.03 ROC AUC of the "
    "320-conversion model's (0.725 vs 0.735; 80 conversions gave 0.686), and A converts "
    "more often than D, every seed",
}
"""The learning-curve criterion each threshold of ``MIN_CONVERSIONS`` comes from."""

Z_95 = 1.959963984540054
"""Standard normal quantile of a two-sided 95 % interval."""

MISSING_GROUP = "(missing)"
"""The group of leads whose region or segment value is empty."""


class SufficiencyInputError(LeadscoreError, ValueError):
    """The data given to the sufficiency report cannot be assessed (named in the message)."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default).

    Unlike the normal approximation it stays inside [0, 1] and is honest with a handful
    of conversions (0 of 40 gives [0, 8.8 %], not [0, 0]).

    Raises:
        SufficiencyInputError: ``trials`` below 1, or ``successes`` outside [0, trials].
    """
    if trials < 1:
        raise SufficiencyInputError(f"a conversion rate needs at least 1 lead, got {trials}")
    if not 0 <= successes <= trials:
        raise SufficiencyInputError(
            f"conversions must be between 0 and the {trials} leads, got {successes}"
        )
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Verdict:
    """Whether a group's data is enough for one purpose, with the rule and the numbers.

    Attributes:
        purpose: ``train``, ``calibrate``, ``threshold`` or ``grade``.
        enough: Whether ``conversions >= needed``.
        conversions: Converted leads the group has.
        needed: Converted leads the rule asks for (``MIN_CONVERSIONS``).
        rule: The learning-curve criterion the threshold comes from.
    """

    purpose: Purpose
    enough: bool
    conversions: int
    needed: int
    rule: str

    def sentence(self) -> str:
        """E.g. ``train: yes (52 conversions, needs 40: test ROC AUC within ...)``."""
        word = "yes" if self.enough else "no"
        return (
            f"{self.purpose}: {word} ({self.conversions} conversions, needs {self.needed}: "
            f"{self.rule})"
        )


@dataclass(frozen=True)
class GroupSufficiency:
    """The data of one group (all leads, one region or one segment value).

    Attributes:
        scope: ``overall``, ``region`` or the segment column's name.
        group: ``all`` or the region / segment value (``(missing)`` for none).
        leads: Leads in the group.
        conversions: Those that converted.
        first: The earliest time (lead creation, or first snapshot for a training set).
        last: The latest one.
        rate: ``conversions / leads``.
        rate_low: Lower end of the Wilson 95 % interval of the rate.
        rate_high: Upper end.
        verdicts: One per purpose, in ``PURPOSES`` order.
    """

    scope: str
    group: str
    leads: int
    conversions: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    rate: float
    rate_low: float
    rate_high: float
    verdicts: tuple[Verdict, ...]

    @property
    def span_days(self) -> float:
        """Days from ``first`` to ``last`` (0 with a single time, NaN with none)."""
        if self.first is None or self.last is None:
            return math.nan
        return (self.last - self.first) / pd.Timedelta(days=1)

    def verdict(self, purpose: Purpose) -> Verdict:
        """The verdict for ``purpose``."""
        return next(v for v in self.verdicts if v.purpose == purpose)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {
            "scope": self.scope,
            "group": self.group,
            "leads": self.leads,
            "conversions": self.conversions,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "span_days": None if math.isnan(self.span_days) else round(self.span_days, 1),
            "conversion_rate": self.rate,
            "rate_ci95": [self.rate_low, self.rate_high],
            "verdicts": {
                v.purpose: {
                    "enough": v.enough,
                    "conversions": v.conversions,
                    "needed": v.needed,
                    "rule": v.rule,
                }
                for v in self.verdicts
            },
        }


@dataclass(frozen=True)
class SufficiencyReport:
    """The whole report: the overall group first, then regions, then segments.

    Attributes:
        source: ``tables`` (a data folder) or ``training set`` (snapshots, counted by lead).
        groups: Overall, per region (largest first) and per segment value.
        minimum: The rule thresholds used (``MIN_CONVERSIONS``).
    """

    source: str
    groups: tuple[GroupSufficiency, ...]
    minimum: Mapping[Purpose, int] = field(default_factory=lambda: dict(MIN_CONVERSIONS))

    @property
    def overall(self) -> GroupSufficiency:
        """The group of all leads."""
        return self.groups[0]

    def scope(self, scope: str) -> tuple[GroupSufficiency, ...]:
        """The groups of one scope (``region`` or a segment column)."""
        return tuple(g for g in self.groups if g.scope == scope)

    def group(self, scope: str, name: str) -> GroupSufficiency:
        """One group, e.g. ``report.group("region", "EMEA")``.

        Raises:
            KeyError: No such group in the report.
        """
        for g in self.groups:
            if g.scope == scope and g.group == name:
                return g
        raise KeyError(f"{scope} {name!r} is not in the report")

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json`` and the registry."""
        return {
            "source": self.source,
            "minimum_conversions": dict(self.minimum),
            "rules": {p: RULES[p] for p in PURPOSES},
            "groups": [g.to_dict() for g in self.groups],
        }


def _verdicts(conversions: int, minimum: Mapping[Purpose, int]) -> tuple[Verdict, ...]:
    return tuple(
        Verdict(p, conversions >= minimum[p], conversions, minimum[p], RULES[p]) for p in PURPOSES
    )


def _group(
    scope: str, name: str, part: pd.DataFrame, minimum: Mapping[Purpose, int]
) -> GroupSufficiency:
    leads = len(part)
    conversions = int(part["converted"].sum())
    low, high = wilson_interval(conversions, leads)
    times = part["time"].dropna()
    ends = part["time_end"].dropna() if "time_end" in part else times
    return GroupSufficiency(
        scope=scope,
        group=name,
        leads=leads,
        conversions=conversions,
        first=None if times.empty else pd.Timestamp(times.min()),
        last=None if ends.empty else pd.Timestamp(ends.max()),
        rate=conversions / leads,
        rate_low=low,
        rate_high=high,
        verdicts=_verdicts(conversions, minimum),
    )


def _check_leads(leads: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The lead frame, refused with every problem named at once."""
    if not isinstance(leads, pd.DataFrame):
        raise SufficiencyInputError(f"expected a frame of leads, got {type(leads).__name__}")
    problems = []
    missing = [c for c in ("time", "converted", *columns) if c not in leads.columns]
    if missing:
        problems.append(f"missing column(s) {missing} (have {list(leads.columns)})")
    if leads.empty:
        problems.append("no leads: the data is empty")
    if not missing and not leads.empty:
        converted = pd.to_numeric(leads["converted"], errors="coerce")
        bad = converted.isna() | ~converted.isin([0, 1])
        if bad.any():
            problems.append(f"converted must be 0/1 or true/false; {int(bad.sum())} row(s) are not")
        if not pd.api.types.is_datetime64_any_dtype(leads["time"]):
            problems.append(f"time must be a timestamp column, not {leads['time'].dtype}")
    if problems:
        raise SufficiencyInputError("cannot assess the data: " + "; ".join(problems))
    return leads.assign(converted=pd.to_numeric(leads["converted"]).astype(np.int64))


def assess(
    leads: pd.DataFrame,
    *,
    region: str | None = "region",
    segments: tuple[str, ...] = (),
    source: str = "tables",
    minimum: Mapping[Purpose, int] = MIN_CONVERSIONS,
) -> SufficiencyReport:
    """The sufficiency report of a frame with one row per lead.

    Args:
        leads: Columns ``time`` (timestamp), ``converted`` (0/1) and the grouping columns;
            optionally ``time_end`` (a lead's last time, e.g. its last snapshot) for the span.
        region: The region column (None: no per-region breakdown).
        segments: Further columns to break the report down by.
        source: What the leads were read from, for the report's heading.
        minimum: Conversions needed per purpose (default: the measured ``MIN_CONVERSIONS``).

    Raises:
        SufficiencyInputError: No leads, a missing column, or ``converted`` not 0/1.
    """
    scopes = ([region] if region else []) + [s for s in segments if s != region]
    frame = _check_leads(leads, scopes)
    groups = [_group("overall", "all", frame, minimum)]
    for scope in scopes:
        keys = frame[scope].astype("string").fillna(MISSING_GROUP).replace("", MISSING_GROUP)
        parts = sorted(frame.groupby(keys.to_numpy(), sort=False), key=lambda kv: -len(kv[1]))
        groups += [_group(scope, str(name), part, minimum) for name, part in parts]
    return SufficiencyReport(source=source, groups=tuple(groups), minimum=dict(minimum))


def leads_of_tables(
    tables: Mapping[str, pd.DataFrame], segments: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One row per lead from the contract's tables: creation time, converted, groups.

    A segment column is looked up in ``leads`` first, then in ``accounts`` (e.g.
    ``industry``).

    Raises:
        SufficiencyInputError: A table or column is missing (named).
    """
    for name, needed in (("leads", ("lead_id", "created_at")), ("conversions", ("lead_id",))):
        if name not in tables:
            raise SufficiencyInputError(f"the {name} table is missing")
        lacking = [c for c in needed if c not in tables[name].columns]
        if lacking:
            raise SufficiencyInputError(f"the {name} table lacks column(s) {lacking}")
    lead_table = tables["leads"]
    converted = lead_table["lead_id"].isin(tables["conversions"]["lead_id"])
    frame = pd.DataFrame(
        {
            "lead_id": lead_table["lead_id"].to_numpy(),
            "time": pd.to_datetime(lead_table["created_at"]).to_numpy(),
            "converted": converted.to_numpy(),
        }
    )
    accounts = tables.get("accounts")
    for column in ("region", *segments):
        if column in lead_table.columns:
            frame[column] = lead_table[column].to_numpy()
        elif accounts is not None and column in accounts.columns and "account_id" in lead_table:
            by_account = accounts.drop_duplicates("account_id").set_index("account_id")[column]
            frame[column] = lead_table["account_id"].map(by_account).to_numpy()
        elif column != "region":
            known = sorted(set(lead_table.columns) | set(() if accounts is None else accounts))
            raise SufficiencyInputError(
                f"segment column {column!r} is in neither the leads nor the accounts table; "
                f"columns there: {known}"
            )
    return frame


def leads_of_training_set(frame: pd.DataFrame, segments: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per lead from a training set's snapshots: converted if any snapshot is.

    The time is the lead's first snapshot (``as_of``) and ``time_end`` its last; region
    and segments are those of its latest snapshot.

    Raises:
        SufficiencyInputError: ``lead_id``, ``as_of``, ``label`` or a segment is missing.
    """
    lacking = [c for c in ("lead_id", "as_of", "label", *segments) if c not in frame.columns]
    if lacking:
        raise SufficiencyInputError(f"the training set lacks column(s) {lacking}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if (labels.isna() | ~labels.isin([0, 1])).any():
        raise SufficiencyInputError("the training set's label must be 0 or 1")
    ordered = frame.assign(label=labels).sort_values(["lead_id", "as_of"], kind="stable")
    grouped = ordered.groupby("lead_id", sort=False)
    columns = [c for c in ("region", *segments) if c in ordered.columns]
    out = pd.DataFrame(
        {
            "time": pd.to_datetime(grouped["as_of"].min()),
            "time_end": pd.to_datetime(grouped["as_of"].max()),
            "converted": grouped["label"].max().astype(np.int64),
        }
    )
    for column in dict.fromkeys(columns):
        out[column] = grouped[column].last()
    return out.reset_index()


def sufficiency_of_tables(
    tables: Mapping[str, pd.DataFrame], segments: tuple[str, ...] = ()
) -> SufficiencyReport:
    """The report for a data folder's tables (conversions counted by lead)."""
    frame = leads_of_tables(tables, segments)
    region = "region" if "region" in frame.columns else None
    return assess(frame, region=region, segments=segments, source="tables")


def sufficiency_of_training_set(
    frame: pd.DataFrame, segments: tuple[str, ...] = ()
) -> SufficiencyReport:
    """The report for a training set (``leadscore features`` output), counted by lead."""
    leads = leads_of_training_set(frame, segments)
    region = "region" if "region" in leads.columns else None
    return assess(leads, region=region, segments=segments, source="training set")


def report_rows(report: SufficiencyReport) -> list[dict[str, str]]:
    """The report as display rows (one per group), for the CLI's table and the card."""
    rows = []
    for g in report.groups:
        span = "–" if math.isnan(g.span_days) else f"{g.span_days:.0f} d"
        rows.append(
            {
                "scope": g.scope,
                "group": g.group,
                "leads": f"{g.leads:,}",
                "conversions": f"{g.conversions:,}",
                "span": span,
                "rate": f"{g.rate:.1%} [{100 * g.rate_low:.1f}-{100 * g.rate_high:.1f}]",
                **{v.purpose: "yes" if v.enough else "no" for v in g.verdicts},
            }
        )
    return rows
