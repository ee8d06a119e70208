"""The point-in-time feature pipeline: snapshots, labels and features.

``compute_features`` is a pure function of one partition of leads (their accounts,
activities and the snapshot times asked for). Batch training sets, batch scoring and
the scoring service all call it, so a lead's features are computed by exactly one
piece of code wherever it is scored.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.catalogue import (
    ACTIVITY_TYPES,
    CATALOGUE,
    ICP_INDUSTRIES,
    ICP_SENIORITIES,
    ICP_SIZE_BANDS,
    REVENUE_BANDS,
    REVENUE_EDGES,
    SIZE_BANDS,
    SIZE_EDGES,
    feature_names,
)
from features.contract import TIME_COLUMNS, TIMESTAMP_UNIT, Violation, rows_after
from features.eligibility import Population
from features.engagement import DAY, EXTRA_COLUMNS, count_columns, engagement_matrix
from features.metadata import DataEndRule, IcpProfile, RowsAfterEnd, TrainingSetMetadata
from leadscore.errors import LeadscoreError

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "yandex.ru",
        "qq.com",
        "163.com",
        "uol.com.br",
        "bol.com.br",
        "zoho.com",
    }
)

_ACTIVITY_INDEX = pd.Index(list(ACTIVITY_TYPES), dtype=object)
_ENGAGEMENT_COLUMNS: tuple[str, ...] = (*count_columns(), *EXTRA_COLUMNS)

SnapshotKind = Literal["monthly", "weekly", "after_creation"]


@dataclass(frozen=True)
class SnapshotRule:
    """When leads are scored in the training set.

    Attributes:
        kind: ``monthly`` (first day of each month), ``weekly`` (Mondays) or
            ``after_creation`` (lead creation plus each of ``offsets_days``).
        offsets_days: Days after creation, for ``after_creation``.
        max_lead_age_days: Older leads are no longer scored by calendar rules,
            so stale leads do not swamp the training set.
    """

    kind: SnapshotKind = "monthly"
    offsets_days: tuple[int, ...] = (7, 30, 60, 90)
    max_lead_age_days: int = 180

    @classmethod
    def parse(cls, text: str, max_lead_age_days: int = 180) -> SnapshotRule:
        """Parse ``monthly``, ``weekly`` or ``after-creation:7,30,60``."""
        kind, _, rest = text.strip().lower().replace("-", "_").partition(":")
        if kind not in ("monthly", "weekly", "after_creation"):
            raise ValueError(
                f"unknown snapshot rule {text!r}: use monthly, weekly or after-creation:7,30,60"
            )
        offsets = cls.offsets_days
        if kind == "after_creation" and rest:
            try:
                offsets = tuple(int(x) for x in rest.split(","))
            except ValueError as exc:
                raise ValueError(f"bad offsets in snapshot rule {text!r}") from exc
        return cls(kind, offsets, max_lead_age_days)  # type: ignore[arg-type]

    def population(self) -> Population:
        """The leads this rule snapshots, as the eligibility rule recorded with the model.

        Calendar rules stop at ``max_lead_age_days``; ``after_creation`` snapshots a lead
        at its offsets only, so the oldest lead it shows a model is the largest offset.
        """
        if self.kind == "after_creation":
            return Population(max_lead_age_days=max(self.offsets_days, default=0))
        return Population(max_lead_age_days=self.max_lead_age_days)


@dataclass(frozen=True)
class Icp:
    """The ideal customer profile behind the ``icp_*`` fit signals."""

    industries: frozenset[str] = ICP_INDUSTRIES
    size_bands: frozenset[str] = ICP_SIZE_BANDS
    seniorities: frozenset[str] = ICP_SENIORITIES

    def record(self) -> IcpProfile:
        """The profile as recorded in training-set and model metadata (sorted, JSON-ready)."""
        return IcpProfile(
            industries=tuple(sorted(self.industries)),
            size_bands=tuple(sorted(self.size_bands)),
            seniorities=tuple(sorted(self.seniorities)),
        )


@functools.lru_cache(maxsize=64)
def icp_of(record: IcpProfile | None) -> Icp:
    """The ``Icp`` a model was trained with, from its metadata (None: the catalogue's).

    Every path that computes features for a model (batch scoring, the service's lead
    form) takes the profile from here, so the ``icp_*`` signals match training's.
    """
    if record is None:
        return Icp()
    return Icp(
        frozenset(record.industries), frozenset(record.size_bands), frozenset(record.seniorities)
    )


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of a training-set build.

    Attributes:
        horizon_days: A snapshot is positive if the lead converts within this many
            days after ``as_of``.
        snapshots: When leads are snapshotted.
        data_end: Last moment the data covers; default: chosen by ``resolve_window``
            (the latest timestamp not after ``export_time`` and not an isolated outlier).
            Snapshots whose horizon runs past it are left out (their label is unknown),
            and rows after it are reported and used nowhere.
        icp: Ideal customer profile for the fit signals.
        export_time: When the data was exported (default: now). No default data end lies
            after it: a row dated later is a typo or a scheduled event, not an observation.
    """

    horizon_days: int = 90
    snapshots: SnapshotRule = field(default_factory=SnapshotRule)
    data_end: pd.Timestamp | None = None
    icp: Icp = field(default_factory=Icp)
    export_time: pd.Timestamp | None = None


def _micros(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Integer microseconds since the epoch: the contract's resolution, kept whole.

    Features, labels and the service's lead form all compare times at this one
    resolution, so an activity a fraction of a second after ``as_of`` is after it for
    every one of them.
    """
    return np.asarray(values, dtype=TIMESTAMP_UNIT).astype(np.int64)


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    """Float64 copy of a numeric column; anything unparseable becomes NaN."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )


def _take(values: np.ndarray, pos: np.ndarray, fill: object) -> np.ndarray:
    """``values[pos]``, with ``fill`` where ``pos`` is -1 (a key that was not found)."""
    out = np.empty(len(pos), dtype=values.dtype)
    found = pos >= 0
    out[found] = values[pos[found]]
    out[~found] = fill
    return out


def _band(x: np.ndarray, edges: tuple[float, ...], labels: tuple[str, ...]) -> np.ndarray:
    """Band label of each number (``None`` where it is missing), as an object array."""
    idx = np.searchsorted(np.asarray(edges), x, side="left")
    out = np.asarray(labels, dtype=object)[np.minimum(idx, len(labels) - 1)]
    out[np.isnan(x)] = None
    return out


_UP_TO_AT = re.compile(r"^.*@")


def email_kind(value: object) -> str:
    """``corporate``, ``free`` or ``unknown`` for one email address (the one rule)."""
    if not isinstance(value, str):
        if value is None or pd.isna(value):
            return "unknown"
        value = str(value)
    text = value.strip().lower()
    if "@" not in text:
        return "unknown"
    return "free" if _UP_TO_AT.sub("", text, count=1) in FREE_MAIL_DOMAINS else "corporate"


def email_domain_type(emails: pd.Series) -> pd.Series:
    """``corporate``, ``free`` or ``unknown`` from an email address."""
    return pd.Series(_email_kinds(emails.to_numpy(dtype=object)), index=emails.index, dtype="str")


def _email_kinds(emails: np.ndarray) -> np.ndarray:
    return np.asarray([email_kind(v) for v in emails], dtype=object)


def _member(values: np.ndarray, allowed: frozenset[str]) -> np.ndarray:
    """1 where a value is in ``allowed``, else 0 (missing values are never members)."""
    return np.fromiter((v in allowed for v in values), dtype=bool, count=len(values)).astype(
        np.int64
    )


PROFILE_FIELDS: tuple[str, ...] = (
    "seniority",
    "department",
    "region",
    "lead_source",
    "email",
    "industry",
    "employee_count",
    "annual_revenue",
)
"""Per-lead inputs of the fit features (the account's fields joined onto its leads)."""


def fit_columns(profile: dict[str, np.ndarray], icp: Icp) -> dict[str, np.ndarray]:
    """Fit features as NumPy columns, one row per lead.

    Args:
        profile: ``PROFILE_FIELDS`` as arrays in lead order: text as object arrays (str or
            None), ``employee_count`` and ``annual_revenue`` as float64 (NaN = unknown).
        icp: Ideal customer profile for the ``icp_*`` signals.
    """
    out = {
        "seniority": profile["seniority"],
        "department": profile["department"],
        "industry": profile["industry"],
        "company_size_band": _band(profile["employee_count"], SIZE_EDGES, SIZE_BANDS),
        "revenue_band": _band(profile["annual_revenue"], REVENUE_EDGES, REVENUE_BANDS),
        "region": profile["region"],
        "lead_source": profile["lead_source"],
        "email_domain_type": _email_kinds(profile["email"]),
    }
    out["icp_industry"] = _member(out["industry"], icp.industries)
    out["icp_size"] = _member(out["company_size_band"], icp.size_bands)
    out["icp_seniority"] = _member(out["seniority"], icp.seniorities)
    out["icp_score"] = out["icp_industry"] + out["icp_size"] + out["icp_seniority"]
    return out


def table_profile(leads: pd.DataFrame, accounts: pd.DataFrame) -> dict[str, np.ndarray]:
    """``PROFILE_FIELDS`` of each lead from the contract's tables (accounts joined)."""
    pos = pd.Index(accounts["account_id"]).get_indexer(leads["account_id"])
    return {
        "seniority": leads["seniority"].to_numpy(),
        "department": leads["department"].to_numpy(),
        "region": leads["region"].to_numpy(),
        "lead_source": leads["lead_source"].to_numpy(),
        "email": (
            leads["email"].to_numpy(dtype=object)
            if "email" in leads
            else np.full(len(leads), None, dtype=object)
        ),
        "industry": _take(accounts["industry"].to_numpy(), pos, np.nan),
        "employee_count": _take(_floats(accounts["employee_count"]), pos, np.nan),
        "annual_revenue": _take(_floats(accounts["annual_revenue"]), pos, np.nan),
    }


SMALL_INPUT = 64
"""Up to this many leads and snapshots, categoricals are coded in Python: pandas' own
inference costs far more than the work for a handful of rows. Both ways give the same
frame (``tests/unit/runtime/test_encoding.py`` checks it)."""


@functools.lru_cache(maxsize=4096)
def _text_categories(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(list(categories), dtype="str"))


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _categorical(values: np.ndarray) -> pd.Categorical:
    """``values`` as a categorical, exactly as pandas' ``astype("category")`` codes it."""
    if len(values) <= SMALL_INPUT:
        texts = [v for v in values if isinstance(v, str)]
        if texts and len(texts) + sum(map(_is_missing, values)) == len(values):
            categories = tuple(sorted(set(texts)))
            code = {c: i for i, c in enumerate(categories)}
            codes = np.fromiter(
                (code.get(v, -1) if isinstance(v, str) else -1 for v in values),
                dtype=np.int8,
                count=len(values),
            )
            return pd.Categorical.from_codes(
                codes, dtype=_text_categories(categories), validate=False
            )
    return pd.Series(values, copy=False).astype("category").array


def compute_features(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    activities: pd.DataFrame,
    snapshots: pd.DataFrame,
    icp: Icp | None = None,
) -> pd.DataFrame:
    """Features of each (lead, as_of) snapshot, from rows at or before ``as_of`` only.

    A pure function of one partition of leads: pass the leads, their accounts, their
    activities and the snapshots wanted; nothing else is read.

    Args:
        leads: Validated leads table (``features.contract``).
        accounts: Validated accounts table.
        activities: Validated activities table (may hold rows after ``as_of``; they are
            ignored, which is what makes the features point-in-time).
        snapshots: Columns ``lead_id`` and ``as_of``.
        icp: Ideal customer profile (default: the catalogue's).

    Returns:
        One row per snapshot, in the snapshots' order: ``lead_id``, ``as_of`` and every
        catalogue feature, categoricals as ``category`` dtype.

    The work is done on NumPy columns with one pandas frame built at the end, so one
    lead at request time costs about a millisecond rather than pandas' per-operation
    set-up; a batch runs the very same code (and the same numba kernel).
    """
    return features_frame(lead_arrays(leads, accounts, activities, snapshots), snapshots, icp)


def features_frame(
    arrays: LeadArrays, snapshots: pd.DataFrame, icp: Icp | None = None
) -> pd.DataFrame:
    """``compute_features`` of arrays already built by ``lead_arrays`` from the same
    ``snapshots`` (batch scoring reuses the arrays for next best actions)."""
    values = feature_values(arrays, icp)
    columns: dict[str, object] = {
        "lead_id": snapshots["lead_id"].astype("str").to_numpy(),
        "as_of": np.asarray(snapshots["as_of"], dtype=TIMESTAMP_UNIT),
    }
    for spec in CATALOGUE:
        columns[spec.name] = (
            _categorical(values[spec.name]) if spec.dtype == "category" else values[spec.name]
        )
    return pd.DataFrame(columns, index=pd.RangeIndex(len(arrays.snap_lead)), copy=False)


def lead_arrays(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    activities: pd.DataFrame,
    snapshots: pd.DataFrame,
) -> LeadArrays:
    """The contract's tables and the snapshots wanted as ``LeadArrays`` (what
    ``compute_features`` computes from; next best actions vary them).

    Raises:
        KeyError: if a snapshot names a lead that is not in ``leads``.
    """
    lead_index = pd.Index(leads["lead_id"])
    snap_lead = lead_index.get_indexer(snapshots["lead_id"])
    if (snap_lead < 0).any():
        unknown = snapshots.loc[snap_lead < 0, "lead_id"].head(3).tolist()
        raise KeyError(f"snapshots name unknown leads: {unknown}")
    act_lead = lead_index.get_indexer(activities["lead_id"])
    type_codes = _ACTIVITY_INDEX.get_indexer(activities["activity_type"])
    keep = (act_lead >= 0) & (type_codes >= 0)
    return LeadArrays(
        profile=table_profile(leads, accounts),
        created_t=_micros(leads["created_at"]),
        act_lead=act_lead[keep],
        act_t=_micros(activities["occurred_at"])[keep],
        act_type=type_codes[keep],
        snap_lead=snap_lead,
        snap_t=_micros(np.asarray(snapshots["as_of"], dtype=TIMESTAMP_UNIT)),
    )


@dataclass(frozen=True)
class LeadArrays:
    """A partition of leads as NumPy arrays: everything the features are computed from.

    ``compute_features`` builds it from the contract's tables and the service builds it
    straight from request payloads; both then call ``feature_values``, so a lead's
    features come from one piece of code whichever way it arrives.

    Attributes:
        profile: ``PROFILE_FIELDS`` per lead (see ``fit_columns``).
        created_t: Lead creation, microseconds since the epoch, per lead.
        act_lead: Lead index (into the per-lead arrays) of each activity.
        act_t: Activity time, microseconds since the epoch.
        act_type: Index into ``ACTIVITY_TYPES`` of each activity.
        snap_lead: Lead index of each snapshot to compute.
        snap_t: Snapshot ``as_of``, microseconds since the epoch.

    Every time is integer microseconds (``features.engagement.SECOND`` per second), the
    resolution labels compare at; whole seconds would floor an activity 0.4 s after
    ``as_of`` onto it and count it.
    """

    profile: dict[str, np.ndarray]
    created_t: np.ndarray
    act_lead: np.ndarray
    act_t: np.ndarray
    act_type: np.ndarray
    snap_lead: np.ndarray
    snap_t: np.ndarray


def feature_values(arrays: LeadArrays, icp: Icp | None = None) -> dict[str, np.ndarray]:
    """Every catalogue feature of every snapshot, as plain NumPy columns.

    Categorical features are object arrays of text (None where unknown); the rest are
    numbers. Only activities at or before each snapshot's ``as_of`` count.
    """
    fit = fit_columns(arrays.profile, icp or Icp())
    matrix = engagement_matrix(
        len(arrays.created_t),
        arrays.act_lead,
        arrays.act_t,
        arrays.act_type,
        arrays.snap_lead,
        arrays.snap_t,
    )
    values = {name: matrix[:, j] for j, name in enumerate(_ENGAGEMENT_COLUMNS)}
    age = arrays.snap_t - arrays.created_t[arrays.snap_lead]
    values["days_since_created"] = age / DAY
    for name, column in fit.items():
        values[name] = column[arrays.snap_lead]
    return values


TAIL_SHARE = 0.001
"""At most this share of the timestamps may be cut off as an outlier tail (so a tail is
only ever cut from data of at least 1,000 timestamped rows)."""
TAIL_GAP = pd.Timedelta(days=30)
"""An outlier tail starts at least this long after every earlier timestamp."""


class DataWindowError(LeadscoreError, ValueError):
    """The data end cannot be set: it is after the export time, or no row is before it."""


@dataclass(frozen=True)
class DataWindow:
    """The span of time a build may trust, and why it ends where it does.

    Attributes:
        start: First lead creation.
        end: The data end: no label window runs past it and rows after it are used
            nowhere (``after_end`` reports them).
        rule: How ``end`` was chosen (``features.metadata.DataEndRule``).
        latest: The latest timestamp anywhere in the data (after ``end`` when rows
            were left out).
        export_time: The export time given, if any (None: the clock at the build).
        after_end: The contract's warnings for rows dated after ``end``, per column.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    rule: DataEndRule
    latest: pd.Timestamp
    export_time: pd.Timestamp | None = None
    after_end: tuple[Violation, ...] = ()


def _utc_naive(value: object, what: str) -> pd.Timestamp:
    """A tz-naive UTC timestamp (the contract's convention) from a date, time or string."""
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise DataWindowError(f"{what}: cannot read {value!r} as a date or time") from exc
    if ts is pd.NaT:
        raise DataWindowError(f"{what}: cannot read {value!r} as a date or time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("us")


def _timestamps(tables: dict[str, pd.DataFrame]) -> np.ndarray:
    """Every timestamp of the contract's tables, as microseconds since the epoch."""
    parts = [
        _micros(tables[name][column].dropna()) for name, column in TIME_COLUMNS if name in tables
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _before_tail(stamps: np.ndarray) -> tuple[int, int]:
    """The latest timestamp before an isolated outlier tail, and the tail's size.

    The rule: the ``k`` latest timestamps are an outlier tail when ``k`` is at most
    ``TAIL_SHARE`` of all timestamps and the earliest of them comes at least
    ``TAIL_GAP`` after the one before it; the largest such tail is cut. A CRM export
    has rows every few hours up to its end, so a handful of rows a month or more past
    everything else are typos or scheduled events, never the data's real end; while a
    real quiet spell (holidays, an outage) is followed by more than a tiny share of rows,
    so it is kept. Without a tail the latest timestamp itself is returned, with 0.
    """
    n = len(stamps)
    k_max = int(n * TAIL_SHARE)
    if k_max == 0:
        return int(stamps.max()), 0
    tail = np.sort(np.partition(stamps, n - k_max - 1)[n - k_max - 1 :])
    big = np.flatnonzero(np.diff(tail) >= TAIL_GAP.value // 1_000)
    if big.size == 0:
        return int(tail[-1]), 0
    return int(tail[big[0]]), k_max - int(big[0])


def resolve_window(
    tables: dict[str, pd.DataFrame],
    data_end: object = None,
    export_time: object = None,
) -> DataWindow:
    """The data window of validated tables: where it starts, where it ends and why.

    Args:
        tables: Validated tables (``features.contract.validate``).
        data_end: The data end, stated (``--data-end``); default: the latest timestamp
            that is not after the export time and not in an isolated outlier tail (see
            ``_before_tail`` for the rule and why).
        export_time: When the data was exported (default: now, UTC). A default data end
            never lies after it.

    Raises:
        DataWindowError: the data end given is after the export time, or no timestamp
            is at or before the export time.
    """
    start = pd.Timestamp(tables["leads"]["created_at"].min())
    stamps = _timestamps(tables)
    if stamps.size == 0:
        raise DataWindowError("the data holds no timestamp at all: no window to build on")
    latest = pd.Timestamp(np.datetime64(int(stamps.max()), "us"))
    export = None if export_time is None else _utc_naive(export_time, "export time")
    cutoff = export if export is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    said = "the export time" if export is not None else "now"
    rule: DataEndRule
    if data_end is not None:
        end = _utc_naive(data_end, "data end")
        if end > cutoff:
            raise DataWindowError(
                f"the data end {end} is after {said} ({cutoff}): label windows cannot run "
                "into time nobody has observed; give an earlier --data-end"
            )
        rule = "given"
    else:
        known = stamps[stamps <= np.datetime64(cutoff, "us").astype(np.int64)]
        if known.size == 0:
            raise DataWindowError(
                f"every timestamp in the data is after {said} ({cutoff}): give the real "
                "export time (--export-time) or the data end (--data-end)"
            )
        last, cut = _before_tail(known)
        end = pd.Timestamp(np.datetime64(last, "us"))
        if cut:
            rule = "before_outliers"
        elif known.size < stamps.size:
            rule = "before_export"
        else:
            rule = "latest"
    return DataWindow(start, end, rule, latest, export, tuple(rows_after(tables, end)))


def data_window(
    tables: dict[str, pd.DataFrame], export_time: object = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First lead creation and the default data end (``resolve_window``'s rule).

    Batch scoring's default ``as_of`` is this data end, so a model scores "now" at the
    very moment training would have taken as the data's end.
    """
    window = resolve_window(tables, export_time=export_time)
    return window.start, window.end


def describe_data_end(metadata: TrainingSetMetadata) -> list[str]:
    """Lines for a command's output: the data end, the rule that chose it, and a warning
    per timestamp column with rows after it (count and example keys)."""
    if metadata.data_end is None:
        return []
    export = metadata.export_time or "now"
    why = {
        None: "",
        "given": ": given with --data-end",
        "latest": ": the latest timestamp in the data",
        "before_export": f": the latest timestamp not after the export time ({export})",
        "before_outliers": (
            f": the latest timestamp not after the export time ({export}), before an "
            f"isolated tail of outliers (starting {TAIL_GAP.days}+ days after every "
            f"other row, at most {TAIL_SHARE:.1%} of the rows)"
        ),
    }[metadata.data_end_rule]
    lines = [f"data end {metadata.data_end}{why}"]
    for late in metadata.rows_after_data_end:
        shown = f" (e.g. {', '.join(late.examples)})" if late.examples else ""
        lines.append(
            f"warning: {late.table}.{late.column}: {late.count:,} row(s) dated after the "
            f"data end, left out of snapshots, features and labels{shown}"
        )
    return lines


def _calendar(kind: SnapshotKind, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    if kind == "monthly":
        return pd.date_range(start.normalize() + pd.offsets.MonthBegin(1), end, freq="MS")
    return pd.date_range(start.normalize() + pd.offsets.Week(weekday=0), end, freq="W-MON")


def conversion_times(lead_ids: pd.Series, conversions: pd.DataFrame) -> pd.Series:
    """Each lead's conversion time (NaT when it has none), aligned with ``lead_ids``.

    A plain ``map`` over an empty conversions table yields floats, which later
    comparisons with timestamps refuse; a team with no conversions yet must still get
    snapshots (all negative) rather than a pandas ``TypeError``.
    """
    by_lead = conversions.set_index("lead_id")["converted_at"]
    if len(by_lead):
        return lead_ids.map(by_lead)
    return pd.Series(pd.NaT, index=lead_ids.index, dtype=by_lead.dtype)


def make_snapshots(
    leads: pd.DataFrame,
    conversions: pd.DataFrame,
    rule: SnapshotRule,
    end: pd.Timestamp,
    start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every (lead_id, as_of) of the rule at which the lead is in its population.

    The population (``SnapshotRule.population``, see ``features.eligibility``) is the one
    rule batch scoring and the service apply too: the lead exists, has not converted
    (a converted lead no longer needs a score) and is not older than the rule allows.

    ``start`` anchors the calendar rules (default: the first creation in ``leads``); a
    build that plans one partition of leads at a time passes the whole data's start, so
    every partition snapshots on the same calendar as a single-machine build.
    """
    converted = conversion_times(leads["lead_id"], conversions)
    created = leads["created_at"]
    population = rule.population()
    frames = []
    if rule.kind == "after_creation":
        for days in rule.offsets_days:
            as_of = created + pd.Timedelta(days=days)
            ok = (as_of <= end) & population.eligible(created, converted, as_of)
            frames.append(pd.DataFrame({"lead_id": leads["lead_id"][ok], "as_of": as_of[ok]}))
    else:
        first = created.min() if start is None else start
        for as_of in _calendar(rule.kind, first, end):
            ok = population.eligible(created, converted, as_of)
            frames.append(pd.DataFrame({"lead_id": leads["lead_id"][ok], "as_of": as_of}))
    if not frames:
        return pd.DataFrame(
            {"lead_id": pd.Series(dtype=object), "as_of": pd.Series(dtype=TIMESTAMP_UNIT)}
        )
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype(TIMESTAMP_UNIT)
    return out.sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)


def label_snapshots(
    snapshots: pd.DataFrame, conversions: pd.DataFrame, horizon_days: int
) -> np.ndarray:
    """1 where the lead converts in ``(as_of, as_of + horizon]``, else 0."""
    converted = conversion_times(snapshots["lead_id"], conversions)
    horizon = pd.Timedelta(days=horizon_days)
    hit = (converted > snapshots["as_of"]) & (converted <= snapshots["as_of"] + horizon)
    return hit.fillna(False).to_numpy(dtype=np.int8)


def plan_build(
    tables: dict[str, pd.DataFrame], config: PipelineConfig
) -> tuple[pd.DataFrame, DataWindow]:
    """Snapshots and data window of a training-set build (shared by both engines).

    Every snapshot's label window ends at the data end at the latest, and features only
    read rows at or before ``as_of``, so no row after the data end reaches a snapshot,
    a feature or a label.

    Raises:
        DataWindowError: the data end cannot be set (see ``resolve_window``).
        ValueError: if no snapshot has a fully observed label window.
    """
    window = resolve_window(tables, config.data_end, config.export_time)
    last_as_of = window.end - pd.Timedelta(days=config.horizon_days)
    snaps = make_snapshots(tables["leads"], tables["conversions"], config.snapshots, last_as_of)
    if snaps.empty:
        raise ValueError(
            f"no snapshot has a complete {config.horizon_days}-day label window: the data runs "
            f"from {window.start.date()} to {window.end.date()}; use a shorter horizon or "
            "more history"
        )
    return snaps, window


def plan_snapshots(
    tables: dict[str, pd.DataFrame], config: PipelineConfig
) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """Snapshots, data start and data end of a training-set build (see ``plan_build``)."""
    snaps, window = plan_build(tables, config)
    return snaps, window.start, window.end


def training_metadata(
    frame: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    config: PipelineConfig,
    window: DataWindow,
) -> TrainingSetMetadata:
    """What a reader needs to trust a training set: window, rule, counts, feature list."""
    activities = tables["activities"]["occurred_at"]
    return TrainingSetMetadata(
        horizon_days=config.horizon_days,
        snapshot_rule=config.snapshots.kind,
        snapshot_offsets_days=tuple(config.snapshots.offsets_days),
        max_lead_age_days=config.snapshots.max_lead_age_days,
        data_start=str(window.start),
        data_end=str(window.end),
        data_end_rule=window.rule,
        export_time=None if window.export_time is None else str(window.export_time),
        latest_timestamp=str(window.latest),
        rows_after_data_end=tuple(
            RowsAfterEnd(table=v.table, column=v.column, count=v.count, examples=v.examples)
            for v in window.after_end
        ),
        first_as_of=str(frame["as_of"].min()),
        last_as_of=str(frame["as_of"].max()),
        rows=len(frame),
        positives=int(frame["label"].sum()),
        leads=int(frame["lead_id"].nunique()),
        activities=int((activities <= window.end).sum()),
        features=tuple(feature_names()),
        population=config.snapshots.population(),
        icp=config.icp.record(),
    )


@dataclass(frozen=True)
class TrainingSet:
    """Snapshots with features and labels, plus what a reader needs to trust them.

    ``metadata`` may be given as a plain mapping by code that assembles it field by field
    (a dataset config); it is validated into ``TrainingSetMetadata`` here, once.
    """

    frame: pd.DataFrame
    metadata: TrainingSetMetadata = field(default_factory=TrainingSetMetadata)

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, TrainingSetMetadata):
            object.__setattr__(
                self, "metadata", TrainingSetMetadata.model_validate(self.metadata or {})
            )


def build_training_set(tables: dict[str, pd.DataFrame], config: PipelineConfig) -> TrainingSet:
    """Snapshot every open lead, compute point-in-time features, attach labels.

    Args:
        tables: Validated tables (``features.io.load_tables``).
        config: Horizon, snapshot rule, data end and ICP.

    Raises:
        ValueError: if no snapshot has a fully observed label window.
    """
    snaps, window = plan_build(tables, config)
    frame = compute_features(
        tables["leads"], tables["accounts"], tables["activities"], snaps, config.icp
    )
    frame["label"] = label_snapshots(snaps, tables["conversions"], config.horizon_days)
    return TrainingSet(frame, training_metadata(frame, tables, config, window))
