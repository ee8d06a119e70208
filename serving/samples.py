"""Sample lead payloads for the sales-rep page, the benchmark and the skew test.

A payload is exactly what ``POST /score`` takes: one lead, its account, its activities
up to ``as_of`` and that ``as_of``. ``write_samples`` picks a readable mix from a data
set (leads shortly before they converted, and cold leads that never did) so the page
shows both ends of the scale. ``index.json`` lists them for ``GET /samples``.

For a model trained on a ``lead_snapshot`` dataset config the payloads are in the
features form (``{"lead_id", "features": {name: value}, "as_of"}``), taken from rows of
its training set: ``write_snapshot_samples`` (``write_samples`` given a ``TrainingSet``
does the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import HIGH_INTENT_TYPES
from features.contract import CONTRACT
from features.io import replace_dir
from features.pipeline import TrainingSet
from serving.schemas import MAX_ACTIVITIES

INDEX_FILE = "index.json"
LEAD_FIELDS = tuple(c.name for c in CONTRACT["leads"].columns)
"""The lead form's profile fields: the contract's lead columns."""
ACCOUNT_FIELDS = (
    "account_id",
    "company_name",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _iso(value: Any) -> str:
    """Timestamp as ISO 8601 in UTC with an explicit ``Z``."""
    return pd.Timestamp(value).isoformat() + "Z"


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: missing → None, numpy scalars → Python."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | np.datetime64):
        return _iso(value)
    return value


def lead_payload(tables: dict[str, pd.DataFrame], lead_id: str, as_of: Any) -> dict[str, Any]:
    """The ``POST /score`` body for one lead of a data set, as of a moment.

    Only activities at or before ``as_of`` are included (what a CRM would know then),
    the most recent ``MAX_ACTIVITIES`` of them.

    Args:
        tables: The contract's tables, validated (``features.io.load_tables``).
        lead_id: The lead.
        as_of: The moment to score at.

    Raises:
        KeyError: if the lead is not in ``tables``.
    """
    leads = tables["leads"]
    match = leads.loc[leads["lead_id"] == lead_id]
    if match.empty:
        raise KeyError(f"lead {lead_id!r} is not in the data")
    row = match.iloc[0]
    lead = {f: _plain(row[f]) for f in LEAD_FIELDS if f in row.index}
    lead["created_at"] = _iso(row["created_at"])
    accounts = tables["accounts"]
    acc_rows = accounts.loc[accounts["account_id"] == row["account_id"]]
    account = (
        {f: _plain(acc_rows.iloc[0][f]) for f in ACCOUNT_FIELDS if f in acc_rows.columns}
        if not acc_rows.empty
        else None
    )
    cutoff = pd.Timestamp(as_of)
    acts = tables["activities"]
    acts = acts.loc[(acts["lead_id"] == lead_id) & (acts["occurred_at"] <= cutoff)]
    acts = acts.sort_values("occurred_at", kind="stable").tail(MAX_ACTIVITIES)
    activities = [
        {
            "occurred_at": _iso(t),
            "activity_type": str(k),
            **({"detail": str(d)} if _plain(d) is not None else {}),
        }
        for t, k, d in zip(
            acts["occurred_at"],
            acts["activity_type"],
            acts["detail"] if "detail" in acts else [None] * len(acts),
            strict=True,
        )
    ]
    payload: dict[str, Any] = {"lead": lead, "activities": activities, "as_of": _iso(cutoff)}
    if account is not None:
        payload["account"] = account
    return payload


def _high_intent_before(
    activities: pd.DataFrame, lead_ids: pd.Series, as_of: pd.Series, days: int = 30
) -> np.ndarray:
    """High-intent activities of each (lead, as_of) in the ``days`` before ``as_of``."""
    cand = pd.DataFrame({"lead_id": lead_ids.to_numpy(), "as_of": as_of.to_numpy()})
    hi = activities.loc[
        activities["activity_type"].isin(HIGH_INTENT_TYPES), ["lead_id", "occurred_at"]
    ]
    joined = cand.reset_index().merge(hi, on="lead_id", how="inner")
    window = (joined["occurred_at"] <= joined["as_of"]) & (
        joined["occurred_at"] > joined["as_of"] - pd.Timedelta(days=days)
    )
    counts = joined.loc[window].groupby("index").size()
    return counts.reindex(range(len(cand)), fill_value=0).to_numpy()


def _describe(tables: dict[str, pd.DataFrame], lead_id: str) -> str:
    leads = tables["leads"].set_index("lead_id")
    row = leads.loc[lead_id]
    acc = tables["accounts"].set_index("account_id")
    industry = acc["industry"].get(row["account_id"]) if row["account_id"] in acc.index else None
    parts = [row.get("seniority"), row.get("department"), industry, row.get("region")]
    return ", ".join(str(p) for p in parts if _plain(p) is not None) or "profile unknown"


def pick_samples(tables: dict[str, pd.DataFrame], n: int = 6) -> list[dict[str, Any]]:
    """Choose a mix of likely converters and cold leads (deterministic).

    Likely converters are scored a week before they converted, preferring the most
    high-intent activity in the month before; cold leads never converted and are
    scored at the end of the data, preferring the least activity.

    Returns:
        ``[{"lead_id", "as_of", "kind", "label"}]``, hot ones first.
    """
    leads, acts = tables["leads"], tables["activities"]
    conv = tables["conversions"]
    end = max(
        pd.Timestamp(acts["occurred_at"].max()) if len(acts) else pd.Timestamp.min,
        pd.Timestamp(leads["created_at"].max()),
    )
    n_hot = (n + 1) // 2
    hot = conv.merge(leads[["lead_id", "created_at"]], on="lead_id")
    hot = hot.assign(as_of=hot["converted_at"] - pd.Timedelta(days=7))
    hot = hot.loc[hot["as_of"] > hot["created_at"] + pd.Timedelta(days=1)].reset_index(drop=True)
    hot["intent"] = _high_intent_before(acts, hot["lead_id"], hot["as_of"])
    hot = hot.sort_values(["intent", "lead_id"], ascending=[False, True]).head(n_hot)
    converted = set(conv["lead_id"])
    cold = leads.loc[
        ~leads["lead_id"].isin(converted) & (leads["created_at"] < end - pd.Timedelta(days=30)),
        ["lead_id"],
    ]
    counts = acts.loc[acts["occurred_at"] > end - pd.Timedelta(days=90)].groupby("lead_id").size()
    cold = cold.assign(n=cold["lead_id"].map(counts).fillna(0))
    cold = cold.sort_values(["n", "lead_id"]).head(n - len(hot))
    picks = [
        {
            "lead_id": str(r.lead_id),
            "as_of": pd.Timestamp(r.as_of),
            "kind": "hot",
            "label": f"Likely converter: {_describe(tables, r.lead_id)}",
        }
        for r in hot.itertuples()
    ]
    picks += [
        {
            "lead_id": str(r.lead_id),
            "as_of": end,
            "kind": "cold",
            "label": f"Cold lead: {_describe(tables, r.lead_id)}",
        }
        for r in cold.itertuples()
    ]
    return picks


def sample_name(lead_id: str, kind: str) -> str:
    """File stem of a sample: safe for URLs and file systems."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}-{lead_id}")[:120]


def write_samples(
    tables: dict[str, pd.DataFrame] | TrainingSet, out_dir: str | Path, n: int = 6
) -> Path:
    """Write ``n`` sample payloads and their ``index.json`` into ``out_dir``, atomically.

    Args:
        tables: The contract's tables, validated (``features.io.load_tables``); or the
            training set of a ``lead_snapshot`` dataset config, for features-form samples
            (``write_snapshot_samples``).
        out_dir: Folder to (re)create; its previous content is replaced as a whole.
        n: Number of samples (about half likely converters, half cold leads).

    Returns:
        The folder written.
    """
    if isinstance(tables, TrainingSet):
        return write_snapshot_samples(tables, out_dir, n)
    picks = pick_samples(tables, n)
    return _write_index(
        out_dir, [(pick, lead_payload(tables, pick["lead_id"], pick["as_of"])) for pick in picks]
    )


def _write_index(out_dir: str | Path, items: list[tuple[dict[str, Any], dict[str, Any]]]) -> Path:
    """Write each ``(pick, payload)`` as ``<name>.json`` plus ``index.json``, atomically."""

    def fill(folder: Path) -> None:
        index = []
        for pick, payload in items:
            name = sample_name(pick["lead_id"], pick["kind"])
            (folder / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
            index.append({"name": name, "lead_id": pick["lead_id"], "label": pick["label"]})
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")

    return replace_dir(out_dir, fill)


def snapshot_payload(
    row: pd.Series | dict[str, Any], features: Any, as_of: Any = None
) -> dict[str, Any]:
    """The ``POST /score`` body (features form) for one row of a lead-snapshot frame.

    Args:
        row: A row of a ``lead_snapshot`` training set (``lead_id``, ``as_of``, features).
        features: The features to send (``bundle.spec.features_`` or the config's
            catalogue, ``TrainingSet.metadata.catalogue``).
        as_of: Scoring time to state (default: the row's ``as_of``, when it has one).

    Missing values are left out (the service scores them as unknown); booleans are sent
    as true/false, whole numbers as integers, categories as text.
    """
    values: dict[str, Any] = {}
    for f in features:
        value = _plain(row.get(f.name))
        if value is None:
            continue
        if f.dtype == "bool":
            value = bool(value)
        elif f.dtype in ("float", "int"):
            value = float(value)
            value = int(value) if value.is_integer() and abs(value) < 2**53 else value
        else:
            value = str(value)
        values[f.name] = value
    payload: dict[str, Any] = {"lead_id": str(row["lead_id"]), "features": values}
    when = as_of if as_of is not None else (row.get("as_of") if "as_of" in row else None)
    if when is not None and not pd.isna(when):
        payload["as_of"] = _iso(when)
    return payload


def pick_snapshot_samples(
    training_set: TrainingSet, n: int = 6, probability: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Choose converted and non-converted rows of a lead-snapshot training set.

    With ``probability`` (a model's, one per row) the converted leads it scores highest
    and the non-converted ones it scores lowest, so the page shows both ends of the
    scale; without it, the rows with the most values filled in. Deterministic.

    Returns:
        ``[{"lead_id", "row", "kind", "label"}]``, hot ones first (``row``: position).
    """
    frame = training_set.frame.reset_index(drop=True)
    catalogue = training_set.metadata.catalogue
    names = [f.name for f in catalogue if f.name in frame.columns]
    rank = (
        -np.asarray(probability, dtype=float)
        if probability is not None
        else -frame[names].notna().sum(axis=1).to_numpy(dtype=float)
    )
    order = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "rank": rank,
            "lead_id": frame["lead_id"].astype(str),
            "label": pd.to_numeric(frame["label"]).to_numpy(),
        }
    )
    n_hot = (n + 1) // 2
    hot = order.loc[order["label"] == 1].sort_values(["rank", "lead_id"]).head(n_hot)
    cold = order.loc[order["label"] == 0]
    if probability is not None:  # least likely first
        cold = cold.assign(rank=-cold["rank"])
    cold = cold.sort_values(["rank", "lead_id"]).head(n - len(hot))
    fit = [
        f.name
        for f in catalogue
        if f.group == "fit" and f.dtype == "category" and f.name in frame.columns
    ][:3]

    def describe(row: int) -> str:
        parts = [_plain(frame.at[row, name]) for name in fit]
        return ", ".join(str(p) for p in parts if p is not None) or "profile unknown"

    return [
        {
            "lead_id": r.lead_id,
            "row": int(r.row),
            "kind": "hot",
            "label": f"Converted: {describe(int(r.row))}",
        }
        for r in hot.itertuples()
    ] + [
        {
            "lead_id": r.lead_id,
            "row": int(r.row),
            "kind": "cold",
            "label": f"Did not convert: {describe(int(r.row))}",
        }
        for r in cold.itertuples()
    ]


def write_snapshot_samples(
    training_set: TrainingSet, out_dir: str | Path, n: int = 6, bundle: Any = None
) -> Path:
    """Write features-form sample payloads of a ``lead_snapshot`` model, atomically.

    Args:
        training_set: What ``features.dataset_config.load_dataset`` returns for the
            model's config.
        out_dir: Folder to (re)create.
        n: Number of samples (about half converted leads, half not).
        bundle: The model (``runtime.bundle.ModelBundle``); when given, samples are
            picked by its probability and carry exactly its features.

    Returns:
        The folder written.
    """
    frame = training_set.frame.reset_index(drop=True)
    features = bundle.spec.features_ if bundle is not None else training_set.metadata.catalogue
    if not features:
        raise ValueError(
            "the training set has no feature catalogue: is it from a lead_snapshot dataset config?"
        )
    probability = bundle.predict_proba(frame) if bundle is not None else None
    picks = pick_snapshot_samples(training_set, n, probability)
    return _write_index(
        out_dir, [(pick, snapshot_payload(frame.iloc[pick["row"]], features)) for pick in picks]
    )


def list_samples(folder: Path | None) -> list[dict[str, Any]]:
    """The sample index of a folder (empty when there is none or it is unreadable)."""
    if folder is None:
        return []
    try:
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [
        item
        for item in index
        if isinstance(item, dict)
        and _NAME.match(str(item.get("name", "")))
        and (folder / f"{item['name']}.json").is_file()
    ]


def read_sample(folder: Path | None, name: str) -> dict[str, Any] | None:
    """One sample payload by name; None when unknown (names are checked, not paths)."""
    if folder is None or not _NAME.match(name) or name == INDEX_FILE.removesuffix(".json"):
        return None
    path = folder / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
