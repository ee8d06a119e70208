"""Sample lead payloads for the sales-rep page, the benchmark and the skew test.

A payload is exactly what ``POST /score`` takes: one lead, its account, its activities
up to ``as_of`` and that ``as_of``. ``write_samples`` picks a readable mix from a data
set (leads shortly before they converted, and cold leads that never did) so the page
shows both ends of the scale. ``index.json`` lists them for ``GET /samples``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import HIGH_INTENT_TYPES
from features.io import replace_dir
from serving.schemas import MAX_ACTIVITIES

INDEX_FILE = "index.json"
LEAD_FIELDS = ("lead_id", "account_id", "created_at", "job_title", "seniority", "department",
               "country", "region", "lead_source", "email")
ACCOUNT_FIELDS = ("account_id", "company_name", "industry", "employee_count", "annual_revenue",
                  "country")
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
    account = ({f: _plain(acc_rows.iloc[0][f]) for f in ACCOUNT_FIELDS if f in acc_rows.columns}
               if not acc_rows.empty else None)
    cutoff = pd.Timestamp(as_of)
    acts = tables["activities"]
    acts = acts.loc[(acts["lead_id"] == lead_id) & (acts["occurred_at"] <= cutoff)]
    acts = acts.sort_values("occurred_at", kind="stable").tail(MAX_ACTIVITIES)
    activities = [
        {"occurred_at": _iso(t), "activity_type": str(k),
         **({"detail": str(d)} if _plain(d) is not None else {})}
        for t, k, d in zip(acts["occurred_at"], acts["activity_type"],
                           acts["detail"] if "detail" in acts else [None] * len(acts),
                           strict=True)
    ]
    payload: dict[str, Any] = {"lead": lead, "activities": activities, "as_of": _iso(cutoff)}
    if account is not None:
        payload["account"] = account
    return payload


def _high_intent_before(activities: pd.DataFrame, lead_ids: pd.Series,
                        as_of: pd.Series, days: int = 30) -> np.ndarray:
    """High-intent activities of each (lead, as_of) in the ``days`` before ``as_of``."""
    cand = pd.DataFrame({"lead_id": lead_ids.to_numpy(), "as_of": as_of.to_numpy()})
    hi = activities.loc[activities["activity_type"].isin(HIGH_INTENT_TYPES),
                        ["lead_id", "occurred_at"]]
    joined = cand.reset_index().merge(hi, on="lead_id", how="inner")
    window = (joined["occurred_at"] <= joined["as_of"]) & (
        joined["occurred_at"] > joined["as_of"] - pd.Timedelta(days=days))
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
    end = max(pd.Timestamp(acts["occurred_at"].max()) if len(acts) else pd.Timestamp.min,
              pd.Timestamp(leads["created_at"].max()))
    n_hot = (n + 1) // 2
    hot = conv.merge(leads[["lead_id", "created_at"]], on="lead_id")
    hot = hot.assign(as_of=hot["converted_at"] - pd.Timedelta(days=7))
    hot = hot.loc[hot["as_of"] > hot["created_at"] + pd.Timedelta(days=1)].reset_index(drop=True)
    hot["intent"] = _high_intent_before(acts, hot["lead_id"], hot["as_of"])
    hot = hot.sort_values(["intent", "lead_id"], ascending=[False, True]).head(n_hot)
    converted = set(conv["lead_id"])
    cold = leads.loc[~leads["lead_id"].isin(converted)
                     & (leads["created_at"] < end - pd.Timedelta(days=30)), ["lead_id"]]
    counts = acts.loc[acts["occurred_at"] > end - pd.Timedelta(days=90)].groupby(
        "lead_id").size()
    cold = cold.assign(n=cold["lead_id"].map(counts).fillna(0))
    cold = cold.sort_values(["n", "lead_id"]).head(n - len(hot))
    picks = [{"lead_id": str(r.lead_id), "as_of": pd.Timestamp(r.as_of), "kind": "hot",
              "label": f"Likely converter: {_describe(tables, r.lead_id)}"}
             for r in hot.itertuples()]
    picks += [{"lead_id": str(r.lead_id), "as_of": end, "kind": "cold",
               "label": f"Cold lead: {_describe(tables, r.lead_id)}"}
              for r in cold.itertuples()]
    return picks


def sample_name(lead_id: str, kind: str) -> str:
    """File stem of a sample: safe for URLs and file systems."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}-{lead_id}")[:120]


def write_samples(tables: dict[str, pd.DataFrame], out_dir: str | Path, n: int = 6) -> Path:
    """Write ``n`` sample payloads and their ``index.json`` into ``out_dir``, atomically.

    Args:
        tables: The contract's tables, validated (``features.io.load_tables``).
        out_dir: Folder to (re)create; its previous content is replaced as a whole.
        n: Number of samples (about half likely converters, half cold leads).

    Returns:
        The folder written.
    """
    picks = pick_samples(tables, n)

    def fill(folder: Path) -> None:
        index = []
        for pick in picks:
            name = sample_name(pick["lead_id"], pick["kind"])
            payload = lead_payload(tables, pick["lead_id"], pick["as_of"])
            (folder / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
            index.append({"name": name, "lead_id": pick["lead_id"], "label": pick["label"]})
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")

    return replace_dir(out_dir, fill)


def list_samples(folder: Path | None) -> list[dict[str, Any]]:
    """The sample index of a folder (empty when there is none or it is unreadable)."""
    if folder is None:
        return []
    try:
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [item for item in index if isinstance(item, dict)
            and _NAME.match(str(item.get("name", ""))) and (folder / f"{item['name']}.json")
            .is_file()]


def read_sample(folder: Path | None, name: str) -> dict[str, Any] | None:
    """One sample payload by name; None when unknown (names are checked, not paths)."""
    if folder is None or not _NAME.match(name) or name == INDEX_FILE.removesuffix(".json"):
        return None
    path = folder / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
