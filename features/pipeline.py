"""The point-in-time feature pipeline: snapshots, labels and features.

``compute_features`` is a pure function of one partition of leads (their accounts,
activities and the snapshot times asked for). Batch training sets, batch scoring and
the scoring service all call it, so a lead's features are computed by exactly one
piece of code wherever it is scored.
"""

from __future__ import annotations

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
from features.contract import TIMESTAMP_UNIT
from features.engagement import EXTRA_COLUMNS, count_columns, engagement_matrix

FREE_MAIL_DOMAINS: frozenset[str] = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "hotmail.com", "outlook.com",
    "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mail.com", "gmx.de", "gmx.net",
    "web.de", "proton.me", "protonmail.com", "yandex.ru", "qq.com", "163.com", "uol.com.br",
    "bol.com.br", "zoho.com",
})

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
            raise ValueError(f"unknown snapshot rule {text!r}: use monthly, weekly or "
                             "after-creation:7,30,60")
        offsets = cls.offsets_days
        if kind == "after_creation" and rest:
            try:
                offsets = tuple(int(x) for x in rest.split(","))
            except ValueError as exc:
                raise ValueError(f"bad offsets in snapshot rule {text!r}") from exc
        return cls(kind, offsets, max_lead_age_days)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Icp:
    """The ideal customer profile behind the ``icp_*`` fit signals."""

    industries: frozenset[str] = ICP_INDUSTRIES
    size_bands: frozenset[str] = ICP_SIZE_BANDS
    seniorities: frozenset[str] = ICP_SENIORITIES


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of a training-set build.

    Attributes:
        horizon_days: A snapshot is positive if the lead converts within this many
            days after ``as_of``.
        snapshots: When leads are snapshotted.
        data_end: Last moment the data covers; default: the latest timestamp in it.
            Snapshots whose horizon runs past it are left out (their label is unknown).
        icp: Ideal customer profile for the fit signals.
    """

    horizon_days: int = 90
    snapshots: SnapshotRule = field(default_factory=SnapshotRule)
    data_end: pd.Timestamp | None = None
    icp: Icp = field(default_factory=Icp)


def _seconds(values: pd.Series | pd.Index) -> np.ndarray:
    return np.asarray(values, dtype=TIMESTAMP_UNIT).astype("datetime64[s]").astype(np.int64)


def _band(values: pd.Series, edges: tuple[float, ...], labels: tuple[str, ...]) -> pd.Series:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    idx = np.searchsorted(np.asarray(edges), x, side="left")
    out = np.asarray(labels, dtype=object)[np.minimum(idx, len(labels) - 1)]
    out[np.isnan(x)] = None
    return pd.Series(out, index=values.index, dtype=object)


def email_domain_type(emails: pd.Series) -> pd.Series:
    """``corporate``, ``free`` or ``unknown`` from an email address."""
    text = emails.astype("str").str.strip().str.lower()
    domain = text.str.replace(r"^.*@", "", regex=True)
    out = np.where(domain.isin(FREE_MAIL_DOMAINS), "free", "corporate")
    unknown = ~text.str.contains("@", regex=False).fillna(False).astype(bool)
    return pd.Series(np.where(unknown, "unknown", out), index=emails.index, dtype="str")


def fit_features(leads: pd.DataFrame, accounts: pd.DataFrame, icp: Icp) -> pd.DataFrame:
    """Who the lead is: profile and firmographics, one row per lead (index = lead_id)."""
    acc = accounts.set_index("account_id")
    account = leads["account_id"]
    out = pd.DataFrame(index=pd.Index(leads["lead_id"], name="lead_id"))
    out["seniority"] = leads["seniority"].to_numpy()
    out["department"] = leads["department"].to_numpy()
    out["industry"] = account.map(acc["industry"]).to_numpy()
    out["company_size_band"] = _band(account.map(acc["employee_count"]), SIZE_EDGES,
                                     SIZE_BANDS).to_numpy()
    out["revenue_band"] = _band(account.map(acc["annual_revenue"]), REVENUE_EDGES,
                                REVENUE_BANDS).to_numpy()
    out["region"] = leads["region"].to_numpy()
    out["lead_source"] = leads["lead_source"].to_numpy()
    emails = leads["email"] if "email" in leads else pd.Series(None, index=leads.index)
    out["email_domain_type"] = email_domain_type(emails).to_numpy()
    out["icp_industry"] = out["industry"].isin(icp.industries).astype(np.int64)
    out["icp_size"] = out["company_size_band"].isin(icp.size_bands).astype(np.int64)
    out["icp_seniority"] = out["seniority"].isin(icp.seniorities).astype(np.int64)
    out["icp_score"] = out["icp_industry"] + out["icp_size"] + out["icp_seniority"]
    return out


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
    """
    lead_index = pd.Index(leads["lead_id"])
    snap_lead = lead_index.get_indexer(snapshots["lead_id"])
    if (snap_lead < 0).any():
        unknown = snapshots.loc[snap_lead < 0, "lead_id"].head(3).tolist()
        raise KeyError(f"snapshots name unknown leads: {unknown}")
    snap_t = _seconds(snapshots["as_of"])
    act_lead = lead_index.get_indexer(activities["lead_id"])
    keep = act_lead >= 0
    type_codes = pd.Categorical(activities["activity_type"], categories=list(ACTIVITY_TYPES)).codes
    keep &= type_codes >= 0
    matrix = engagement_matrix(
        len(lead_index), act_lead[keep], _seconds(activities["occurred_at"])[keep],
        type_codes[keep], snap_lead, snap_t,
    )
    fit = fit_features(leads, accounts, icp or Icp()).iloc[snap_lead]
    engagement = pd.DataFrame(matrix, columns=count_columns() + list(EXTRA_COLUMNS))
    created = _seconds(leads["created_at"])[snap_lead]
    engagement["days_since_created"] = (snap_t - created) / 86_400.0
    out = pd.concat([fit.reset_index(drop=True), engagement], axis=1)
    out.insert(0, "as_of", np.asarray(snapshots["as_of"], dtype=TIMESTAMP_UNIT))
    out.insert(0, "lead_id", snapshots["lead_id"].astype("str").to_numpy())
    for spec in CATALOGUE:
        if spec.dtype == "category":
            out[spec.name] = out[spec.name].astype("category")
    return out[["lead_id", "as_of", *feature_names()]]


def data_window(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First lead creation and the latest timestamp anywhere in the data."""
    start = tables["leads"]["created_at"].min()
    candidates = [
        tables["leads"]["created_at"].max(),
        tables["activities"]["occurred_at"].max(),
        tables["conversions"]["converted_at"].max(),
    ]
    end = max(c for c in candidates if pd.notna(c))
    return pd.Timestamp(start), pd.Timestamp(end)


def _calendar(kind: SnapshotKind, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    if kind == "monthly":
        return pd.date_range(start.normalize() + pd.offsets.MonthBegin(1), end, freq="MS")
    return pd.date_range(start.normalize() + pd.offsets.Week(weekday=0), end, freq="W-MON")


def make_snapshots(
    leads: pd.DataFrame,
    conversions: pd.DataFrame,
    rule: SnapshotRule,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Every (lead_id, as_of) at which the lead exists and has not yet converted.

    Leads already converted at ``as_of`` are not snapshotted: they no longer need a score.
    """
    converted = leads["lead_id"].map(conversions.set_index("lead_id")["converted_at"])
    created = leads["created_at"]
    frames = []
    if rule.kind == "after_creation":
        for days in rule.offsets_days:
            as_of = created + pd.Timedelta(days=days)
            ok = (as_of <= end) & ~(converted <= as_of)
            frames.append(pd.DataFrame({"lead_id": leads["lead_id"][ok], "as_of": as_of[ok]}))
    else:
        max_age = pd.Timedelta(days=rule.max_lead_age_days)
        for as_of in _calendar(rule.kind, created.min(), end):
            ok = (created < as_of) & (created >= as_of - max_age) & ~(converted <= as_of)
            frames.append(pd.DataFrame({"lead_id": leads["lead_id"][ok], "as_of": as_of}))
    if not frames:
        return pd.DataFrame({"lead_id": pd.Series(dtype=object),
                             "as_of": pd.Series(dtype=TIMESTAMP_UNIT)})
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype(TIMESTAMP_UNIT)
    return out.sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)


def label_snapshots(
    snapshots: pd.DataFrame, conversions: pd.DataFrame, horizon_days: int
) -> np.ndarray:
    """1 where the lead converts in ``(as_of, as_of + horizon]``, else 0."""
    converted = snapshots["lead_id"].map(conversions.set_index("lead_id")["converted_at"])
    horizon = pd.Timedelta(days=horizon_days)
    hit = (converted > snapshots["as_of"]) & (converted <= snapshots["as_of"] + horizon)
    return hit.fillna(False).to_numpy(dtype=np.int8)


@dataclass(frozen=True)
class TrainingSet:
    """Snapshots with features and labels, plus what a reader needs to trust them."""

    frame: pd.DataFrame
    metadata: dict


def build_training_set(tables: dict[str, pd.DataFrame], config: PipelineConfig) -> TrainingSet:
    """Snapshot every open lead, compute point-in-time features, attach labels.

    Args:
        tables: Validated tables (``features.io.load_tables``).
        config: Horizon, snapshot rule, data end and ICP.

    Raises:
        ValueError: if no snapshot has a fully observed label window.
    """
    start, observed_end = data_window(tables)
    end = pd.Timestamp(config.data_end) if config.data_end is not None else observed_end
    last_as_of = end - pd.Timedelta(days=config.horizon_days)
    snaps = make_snapshots(tables["leads"], tables["conversions"], config.snapshots, last_as_of)
    if snaps.empty:
        raise ValueError(
            f"no snapshot has a complete {config.horizon_days}-day label window: the data runs "
            f"from {start.date()} to {end.date()}; use a shorter horizon or more history")
    frame = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps,
                             config.icp)
    frame["label"] = label_snapshots(snaps, tables["conversions"], config.horizon_days)
    metadata = {
        "horizon_days": config.horizon_days,
        "snapshot_rule": config.snapshots.kind,
        "snapshot_offsets_days": list(config.snapshots.offsets_days),
        "max_lead_age_days": config.snapshots.max_lead_age_days,
        "data_start": str(start),
        "data_end": str(end),
        "first_as_of": str(frame["as_of"].min()),
        "last_as_of": str(frame["as_of"].max()),
        "rows": len(frame),
        "positives": int(frame["label"].sum()),
        "leads": int(frame["lead_id"].nunique()),
        "activities": len(tables["activities"]),
        "features": feature_names(),
    }
    return TrainingSet(frame, metadata)
