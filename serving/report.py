"""The loop's report: one self-contained HTML page people would rather look at than read.

``leadscore report --out report.html`` writes it and the service answers it at
``GET /report``; both call ``build_report``, which reads only the lead store. Every figure
is drawn by matplotlib (Agg canvas, no pyplot) as inline SVG, so the file opens anywhere,
offline, and nothing is fetched. A section whose data does not exist yet (no sales feedback,
no monitoring run) says what would fill it instead of showing an empty chart.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sqlalchemy.engine import Engine

from store.frames import read_frame
from store.funnel import mql_episodes, rates_from_episodes, reasons_from_episodes
from store.schema import lead_states, monitoring_results, mql_events, scoring_runs
from store.threshold import threshold_diagnostics

REGION_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f")


@dataclass
class Section:
    """One part of the report: a title, a sentence or two, figures (SVG) and tables (HTML)."""

    key: str
    title: str
    lead: str = ""
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    empty: str | None = None
    """When set, what is missing and how to get it (the section shows only this)."""


def figure(width: float = 7.5, height: float = 3.6) -> Figure:
    """A matplotlib figure on an Agg canvas (thread-safe: no pyplot state)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def svg(fig: Figure) -> str:
    """The figure as inline SVG markup (text kept as text: searchable, sharp)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate
    return text[text.index("<svg") :]


def table_html(
    frame: pd.DataFrame, formats: dict[str, Callable[[object], str]] | None = None
) -> str:
    """A frame as a plain HTML table, values escaped and formatted per column."""
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            shown = "" if _missing(value) else formats.get(column, _default_format)(value)
            cells.append(f"<td>{html.escape(shown)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


def _default_format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime("%Y-%m-%d")
    return str(value)


def percent(value: object) -> str:
    """``0.1234`` → ``12.3%``."""
    return f"{float(value):.1%}"  # type: ignore[arg-type]


# --- sections ------------------------------------------------------------------------


def summary_section(engine: Engine) -> Section:
    """The latest runs: when, which model, how many leads and MQLs against the target."""
    query = sa.select(
        scoring_runs.c.id,
        scoring_runs.c.source,
        scoring_runs.c.as_of,
        scoring_runs.c.model_version,
        scoring_runs.c.leads,
        scoring_runs.c.mqls,
        scoring_runs.c.policy_target,
    ).order_by(scoring_runs.c.as_of.desc(), scoring_runs.c.id.desc())
    with engine.connect() as connection:
        runs = read_frame(connection, query.limit(500))
        states = read_frame(connection, sa.select(lead_states.c.mql, lead_states.c.region))
    section = Section("summary", "Scoring at a glance")
    batch = runs[runs["source"] == "batch"]
    if runs.empty:
        section.empty = "No scoring run in the lead store yet: run `leadscore score`."
        return section
    latest = (batch if len(batch) else runs).iloc[0]
    share = latest["mqls"] / latest["leads"] if latest["leads"] else float("nan")
    target = latest["policy_target"]
    section.lead = (
        f"Latest run {latest['as_of']:%Y-%m-%d %H:%M}: {int(latest['leads']):,} leads scored by "
        f"model version {latest['model_version']}, {int(latest['mqls']):,} MQLs ({share:.1%}"
        + (f" against a target of {target:.0%})." if pd.notna(target) else ").")
        + f" {int(states['mql'].sum()):,} leads are MQLs now."
    )
    shown = batch.head(12).assign(mql_share=lambda f: f["mqls"] / f["leads"].clip(lower=1))
    section.tables.append(
        table_html(
            shown[["as_of", "model_version", "leads", "mqls", "mql_share"]].rename(
                columns={"as_of": "run", "model_version": "model", "mql_share": "MQL share"}
            ),
            {"MQL share": percent, "run": lambda v: f"{v:%Y-%m-%d %H:%M}"},  # type: ignore[str-format]
        )
    )
    return section


def mql_flow_section(engine: Engine) -> Section:
    """New MQLs per week, by region: is marketing feeding sales evenly?"""
    query = sa.select(mql_events.c.occurred_at, mql_events.c.region).where(
        mql_events.c.event == "entered"
    )
    with engine.connect() as connection:
        entered = read_frame(connection, query)
    section = Section("mql-flow", "New MQLs per week, by region")
    if entered.empty:
        section.empty = "No lead has become an MQL yet."
        return section
    entered["region"] = entered["region"].fillna("unknown")
    entered["week"] = entered["occurred_at"].dt.to_period("W-SUN").dt.start_time
    counts = entered.pivot_table(index="week", columns="region", aggfunc="size", fill_value=0)
    fig = figure()
    ax = fig.subplots()
    bottom = np.zeros(len(counts))
    x = np.arange(len(counts))
    for i, region in enumerate(counts.columns):
        ax.bar(
            x,
            counts[region],
            bottom=bottom,
            label=str(region),
            color=REGION_COLORS[i % len(REGION_COLORS)],
        )
        bottom += counts[region].to_numpy()
    ax.set_xticks(x, [f"{w:%b %d}" for w in counts.index], rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="Leads that became MQLs", title="New MQLs per week")
    ax.legend(fontsize=8, ncols=min(4, len(counts.columns)))
    section.figures.append(svg(fig))
    weekly = counts.mean().rename("per week").reset_index()
    section.lead = (
        f"{len(entered):,} MQL entries over {len(counts)} weeks; the first week of a history "
        "counts every lead already above the threshold."
    )
    section.tables.append(table_html(weekly, {"per week": lambda v: f"{float(v):.1f}"}))  # type: ignore[arg-type]
    return section


STATUS_COLORS = {"ok": "#2ca02c", "warn": "#ff9f1c", "alert": "#d62728"}
NO_MONITORING = "No monitoring run yet: run `leadscore monitor --data <folder>`."


def _monitoring(engine: Engine) -> pd.DataFrame:
    query = sa.select(
        monitoring_results.c.check_run,
        monitoring_results.c.checked_at,
        monitoring_results.c.model_version,
        monitoring_results.c.period_start,
        monitoring_results.c.period_end,
        monitoring_results.c.check_name,
        monitoring_results.c.subject,
        monitoring_results.c.metric,
        monitoring_results.c.value,
        monitoring_results.c.reference,
        monitoring_results.c.status,
        monitoring_results.c.details,
    ).order_by(monitoring_results.c.checked_at, monitoring_results.c.id)
    with engine.connect() as connection:
        return read_frame(connection, query)


def _latest_run(results: pd.DataFrame) -> pd.DataFrame:
    last = results["check_run"].iloc[-1]
    return results[results["check_run"] == last]


def health_section(engine: Engine, results: pd.DataFrame | None = None) -> Section:
    """Model health over time: ROC AUC and calibration error of every monitoring run,
    against the champion's own test-time figures, and the latest run's checks."""
    results = _monitoring(engine) if results is None else results
    section = Section("health", "Model health over time")
    if results.empty:
        section.empty = NO_MONITORING
        return section
    perf = results[results["metric"].isin(["roc_auc", "ece"])].dropna(subset=["value"])
    if len(perf):
        fig = figure(9, 3.4)
        auc_ax, ece_ax = fig.subplots(1, 2)
        for ax, metric, label in ((auc_ax, "roc_auc", "ROC AUC"), (ece_ax, "ece", "ECE")):
            rows = perf[perf["metric"] == metric].sort_values("period_end")
            if rows.empty:
                continue
            x = rows["period_end"].dt.strftime("%Y-%m-%d")
            ax.plot(x, rows["value"], marker="o", label="monitoring period")
            ax.plot(
                x, rows["reference"], linestyle="--", color="#7f7f7f", label="at training (test)"
            )
            ax.set(title=f"{label} by monitoring period", xlabel="period end")
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            ax.legend(fontsize=8)
        section.figures.append(svg(fig))
    latest = _latest_run(results)
    counts = latest["status"].value_counts()
    section.lead = (
        f"Latest check {latest['checked_at'].iloc[0]:%Y-%m-%d %H:%M} of model version "
        f"{latest['model_version'].iloc[0]}: {counts.get('alert', 0)} alert, "
        f"{counts.get('warn', 0)} warn, {counts.get('ok', 0)} ok."
    )
    model_checks = latest[
        ~latest["check_name"].isin(["feature_drift", "score_drift", "inflow_drift"])
    ]
    order = model_checks.assign(rank=model_checks["status"].map({"alert": 0, "warn": 1, "ok": 2}))
    shown = order.sort_values(["rank", "check_name", "subject"]).head(25)
    section.tables.append(
        table_html(shown[["check_name", "subject", "metric", "value", "reference", "status"]])
    )
    return section


def score_band_section(engine: Engine, results: pd.DataFrame | None = None) -> Section:
    """Conversion by score band in the latest monitoring period, and the power curve."""
    results = _monitoring(engine) if results is None else results
    section = Section("score-bands", "Conversion by score band")
    bands_rows = results[results["check_name"] == "score_bands"] if len(results) else results
    if bands_rows.empty:
        section.empty = NO_MONITORING
        return section
    details = bands_rows.iloc[-1]["details"] or {}
    bands = pd.DataFrame(details.get("bands") or [])
    if bands.empty:
        section.empty = "The latest monitoring period had no scored leads."
        return section
    fig = figure(9, 3.4)
    rate_ax, capture_ax = fig.subplots(1, 2)
    rate_ax.bar(bands["band"], bands["rate"].fillna(0) * 100, color="#1f77b4")
    test = pd.DataFrame(details.get("test_bands") or [])
    if len(test):
        rate_ax.plot(
            test["band"],
            test["rate"].fillna(0) * 100,
            "o--",
            color="#7f7f7f",
            label="at training (test)",
        )
        rate_ax.legend(fontsize=8)
    rate_ax.set(title="Conversion rate by score band", xlabel="score", ylabel="% converted")
    capture_ax.plot(bands["band"], bands["capture"] * 100, marker="o")
    capture_ax.set(
        title="Share of conversions captured, best bands first",
        xlabel="down to score band",
        ylabel="% of conversions",
        ylim=(0, 102),
    )
    section.figures.append(svg(fig))
    section.lead = (
        "Leads scored in the latest monitoring period whose outcome is known, by the band of "
        "their score: a working model converts far more in its top band."
    )
    section.tables.append(table_html(bands, {"rate": percent, "capture": percent}))
    return section


def drift_section(engine: Engine, results: pd.DataFrame | None = None) -> Section:
    """The latest run's drift: the features (and the score) that moved most, by PSI."""
    results = _monitoring(engine) if results is None else results
    section = Section("drift", "Drift of the features and the score")
    if results.empty:
        section.empty = NO_MONITORING
        return section
    latest = _latest_run(results)
    drift = latest[
        latest["check_name"].isin(["feature_drift", "score_drift", "inflow_drift"])
    ].dropna(subset=["value"])
    if drift.empty:
        section.empty = "The latest monitoring run checked no drift."
        return section
    top = drift.sort_values("value", ascending=False).head(15).iloc[::-1]
    labels = [
        f"{subject} (new leads)" if check == "inflow_drift" else subject
        for subject, check in zip(top["subject"], top["check_name"], strict=True)
    ]
    fig = figure(8, max(2.5, 0.3 * len(top) + 1))
    ax = fig.subplots()
    ax.barh(labels, top["value"], color=[STATUS_COLORS[s] for s in top["status"]])
    ax.set(title="Population stability index, largest first (colour: status)", xlabel="PSI")
    ax.tick_params(axis="y", labelsize=8)
    section.figures.append(svg(fig))
    moved = drift[drift["status"] != "ok"]
    section.lead = (
        f"{len(moved)} of {len(drift)} columns moved beyond the warning level since the "
        "training window."
        if len(moved)
        else f"None of the {len(drift)} columns moved beyond the warning level."
    )
    return section


NO_FEEDBACK = (
    "No sales feedback yet: record it with `POST /feedback` or `leadscore feedback import`."
)
FIT_LETTERS = ("A", "B", "C", "D")
ENGAGEMENT_DIGITS = ("1", "2", "3", "4")


def _heatmap(ax: object, rates: pd.DataFrame, stage: str, title: str) -> None:
    """Fit letter × engagement digit grid of one stage's rate, each cell with its n."""
    cells = rates[rates["stage"] == stage].set_index("grade")
    values = np.full((4, 4), np.nan)
    labels = [["" for _ in range(4)] for _ in range(4)]
    for i, letter in enumerate(FIT_LETTERS):
        for j, digit in enumerate(ENGAGEMENT_DIGITS):
            grade = f"{letter}{digit}"
            if grade in cells.index and cells.loc[grade, "mature"] > 0:
                row = cells.loc[grade]
                values[i, j] = row["rate"]
                labels[i][j] = f"{row['rate']:.0%}\nn={int(row['mature'])}"
            elif grade in cells.index:
                labels[i][j] = "too recent"
            else:
                labels[i][j] = "no MQLs"
    image = ax.imshow(
        values,
        cmap="YlGnBu",
        vmin=0,
        vmax=max(0.05, float(np.nanmax(values)) if np.isfinite(values).any() else 1),
    )  # type: ignore[attr-defined]
    for i in range(4):
        for j in range(4):
            shade = values[i, j]
            dark = np.isfinite(shade) and shade > 0.6 * np.nanmax(values)
            ax.text(
                j,
                i,
                labels[i][j],
                ha="center",
                va="center",
                fontsize=8,  # type: ignore[attr-defined]
                color="white" if dark else "#1d1d1f",
            )
    ax.set_xticks(range(4), [f"{d} (engagement)" if d == "1" else d for d in ENGAGEMENT_DIGITS])  # type: ignore[attr-defined]
    ax.set_yticks(range(4), [f"{c} (fit)" if c == "A" else c for c in FIT_LETTERS])  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=10)  # type: ignore[attr-defined]
    ax.figure.colorbar(image, ax=ax, fraction=0.046, format=lambda v, _: f"{v:.0%}")  # type: ignore[attr-defined]


def _rate_table(rates: pd.DataFrame, key: str) -> str:
    """One row per group: MQL episodes and the accepted, SQL and won rates with their n."""
    wide = []
    for group, rows in rates.groupby(key, sort=True):
        by_stage = rows.set_index("stage")
        record: dict[str, object] = {key: group, "MQLs": int(by_stage["episodes"].iloc[0])}
        for stage, label in (("accepted", "accepted"), ("sql", "SQL"), ("won", "won")):
            row = by_stage.loc[stage]
            record[label] = (
                "-"
                if not row["mature"]
                else f"{row['rate']:.0%} ({row['ci_low']:.0%}-{row['ci_high']:.0%}, "
                f"n={int(row['mature'])})"
            )
        median = by_stage.loc["sql", "median_days"]
        record["days to SQL"] = "-" if pd.isna(median) else f"{median:.1f}"
        wide.append(record)
    return table_html(pd.DataFrame(wide))


def funnel_section(engine: Engine, episodes: pd.DataFrame | None = None) -> Section:
    """MQL→accepted, →SQL and →won rates by grade (the A1–D4 grid), region and lead source."""
    episodes = mql_episodes(engine) if episodes is None else episodes
    section = Section("funnel", "The funnel by grade, region and source")
    if episodes.empty:
        section.empty = "No MQL yet."
        return section
    if not episodes[[f"{s}_at" for s in ("accepted", "rejected")]].notna().any().any():
        section.empty = NO_FEEDBACK
        return section
    by_grade = rates_from_episodes(episodes, by="grade")
    fig = figure(10, 3.8)
    sql_ax, won_ax = fig.subplots(1, 2)
    _heatmap(sql_ax, by_grade, "sql", "MQL → SQL (within 30 days)")
    _heatmap(won_ax, by_grade, "won", "MQL → won (within 90 days)")
    section.figures.append(svg(fig))
    overall = rates_from_episodes(episodes, by=None).set_index("stage")

    def told(stage: str, what: str) -> str:
        row = overall.loc[stage]
        if not row["mature"]:
            return f"none is old enough yet to tell how many {what}"
        return f"{row['rate']:.0%} {what} (of {int(row['mature']):,} old enough)"

    section.lead = (
        f"{len(episodes):,} MQL episodes: {told('accepted', 'were accepted by sales')}, "
        f"{told('sql', 'became SQLs within 30 days')}, {told('won', 'were won within 90 days')}. "
        "A rate counts only the MQLs old enough for its stage (n); the range is its 95 % "
        "interval."
    )
    for key in ("region", "lead_source", "score_band", "cohort_month"):
        section.tables.append(f"<h3>By {key.replace('_', ' ')}</h3>")
        section.tables.append(_rate_table(rates_from_episodes(episodes, by=key), key))
    return section


def rejection_section(engine: Engine, episodes: pd.DataFrame | None = None) -> Section:
    """Why sales rejected MQLs, by grade: bad fit at low fit letters is the model's
    business; no budget or bad timing at A grades is marketing's timing."""
    episodes = mql_episodes(engine) if episodes is None else episodes
    section = Section("rejections", "Rejection reasons by grade")
    reasons = reasons_from_episodes(episodes, by="grade") if len(episodes) else episodes
    if reasons.empty or not reasons["rejections"].sum():
        section.empty = "No rejected MQL yet." if len(episodes) else "No MQL yet."
        return section
    pivot = reasons.pivot_table(
        index="grade", columns="reason_code", values="rejections", aggfunc="sum", fill_value=0
    )
    pivot = pivot.loc[pivot.sum(axis=1) > 0, pivot.sum(axis=0) > 0]
    shares = pivot.div(pivot.sum(axis=1), axis=0)
    fig = figure(9, 3.6)
    ax = fig.subplots()
    left = np.zeros(len(shares))
    palette = (
        "#d62728",
        "#ff7f0e",
        "#bcbd22",
        "#17becf",
        "#9467bd",
        "#8c564b",
        "#7f7f7f",
        "#e377c2",
        "#c7c7c7",
    )
    for i, code in enumerate(shares.columns):
        ax.barh(
            shares.index,
            shares[code],
            left=left,
            label=str(code).replace("_", " "),
            color=palette[i % len(palette)],
        )
        left += shares[code].to_numpy()
    ax.set(xlabel="share of the grade's rejections", xlim=(0, 1))
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    section.figures.append(svg(fig))
    total = pivot.sum()
    top = total.sort_values(ascending=False)
    section.lead = (
        f"{int(total.sum()):,} rejections; most often "
        + ", ".join(
            f"{str(code).replace('_', ' ')} ({n / total.sum():.0%})"
            for code, n in top.head(3).items()
        )
        + "."
    )
    counts = pivot.assign(total=pivot.sum(axis=1)).reset_index()
    counts.columns = [str(c).replace("_", " ") for c in counts.columns]
    section.tables.append(table_html(counts))
    return section


def threshold_section(
    engine: Engine,
    capacity: float | dict[str, float] | None = None,
    conversions: pd.DataFrame | None = None,
) -> Section:
    """Is the threshold too low (sales drowns) or too strict (good leads missed)? Per
    region, at the current threshold and around it, with a recommendation."""
    section = Section("threshold", "Threshold diagnostics")
    report = threshold_diagnostics(engine, capacity, conversions=conversions)
    if report.grid.empty:
        section.empty = "No score history to replay yet."
        return section
    verdicts = report.verdicts
    items = "".join(
        f"<li><b>{html.escape(str(r.region))}</b>: {html.escape(str(r.message))}</li>"
        for r in verdicts.itertuples()
    )
    section.tables.append(f"<ul class='verdicts'>{items}</ul>")
    grid = report.grid[report.grid["region"] == "all"].sort_values("multiplier")
    fig = figure(10, 3.4)
    volume_ax, quality_ax = fig.subplots(1, 2)
    x = grid["multiplier"].to_numpy(dtype=float)
    volume_ax.plot(x, grid["mqls_per_week"], marker="o", label="MQLs per week")
    if grid["capacity"].notna().any():
        volume_ax.axhline(
            float(grid["capacity"].dropna().iloc[0]),
            color="#d62728",
            linestyle="--",
            label="capacity",
        )
    for ax in (volume_ax, quality_ax):
        ax.axvline(1.0, color="#7f7f7f", linewidth=1, linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"×{m:g}" for m in x])
    volume_ax.set(title="Volume", xlabel="threshold, × each region's own", ylabel="MQLs per week")
    volume_ax.legend(fontsize=8)
    quality_ax.plot(x, grid["precision"] * 100, marker="o", label="precision (MQLs won)")
    quality_ax.plot(x, grid["missed_share"] * 100, marker="s", label="conversions missed")
    quality_ax.set(title="Quality", xlabel="threshold, × each region's own", ylabel="%")
    quality_ax.legend(fontsize=8)
    section.figures.append(svg(fig))
    section.lead = (
        "Each threshold is replayed over the stored score history: the MQLs it would have made "
        "per week, the share of them that were won (precision), and the conversions that never "
        "reached it (missed), for the whole team; each region's own verdict is above. The dotted "
        "line is the threshold in use. Acceptance is known only at or above it; precision and "
        "missed need MQLs at least 90 days old."
    )
    shown = grid[
        [
            "multiplier",
            "threshold",
            "mqls_per_week",
            "capacity",
            "acceptance_rate",
            "precision",
            "missed_share",
            "recommended",
        ]
    ]
    section.tables.append(
        table_html(
            shown,
            {
                "acceptance_rate": percent,
                "precision": percent,
                "missed_share": percent,
                "multiplier": lambda v: f"×{float(v):g}",  # type: ignore[arg-type]
                "mqls_per_week": lambda v: f"{float(v):.1f}",
            },  # type: ignore[arg-type]
        )
    )
    return section


SECTIONS: tuple[Callable[[Engine], Section], ...] = (
    summary_section,
    mql_flow_section,
    score_band_section,
    health_section,
    drift_section,
)
"""The sections that read only the store; ``build_report`` adds the funnel's, which share
one read of the MQL episodes, and the threshold's, which takes the capacity."""
"""The report's sections, in order."""

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#f6f7f9}
header{background:#12355b;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 28px;background:#fff;border-bottom:1px solid #e3e5e8;position:sticky;top:0}
nav a{margin-right:16px;color:#12355b;text-decoration:none;font-size:14px}
main{max-width:1100px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:8px;margin:18px 0;padding:16px 20px}
h2{font-size:18px;margin:0 0 8px} p.lead{margin:0 0 12px;color:#333}
h3{font-size:14px;margin:14px 0 4px} ul.verdicts{margin:0 0 10px;padding-left:20px}
p.empty{color:#8a6d00;background:#fff8e1;padding:8px 12px;border-radius:6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #eceef1;padding:4px 10px;text-align:right}
th{background:#f2f4f7;text-align:center} td:first-child,th:first-child{text-align:left}
svg{max-width:100%;height:auto}
"""


def build_report(
    engine: Engine,
    capacity: float | dict[str, float] | None = None,
    conversions: pd.DataFrame | None = None,
    title: str = "leadscore: the MQL loop",
    now: datetime | None = None,
) -> str:
    """The whole report as one HTML document (no external asset, no script).

    Args:
        engine: An open lead store.
        capacity: MQLs the reps can work per week, for the threshold diagnostics: one
            number, or one per region (``LEADSCORE_MQL_CAPACITY``); None: not judged.
        conversions: The data's conversions (``lead_id``, ``converted_at``), so conversions
            that never became MQLs count as missed; None: won dispositions only.
        title: The page's title.
        now: The time printed as "generated".
    """
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    episodes = mql_episodes(engine)
    summary, flow, bands, health, drift = (make(engine) for make in SECTIONS)
    sections = [
        summary,
        flow,
        funnel_section(engine, episodes),
        threshold_section(engine, capacity, conversions),
        rejection_section(engine, episodes),
        bands,
        health,
        drift,
    ]
    links = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(_section_html(s) for s in sections)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>Generated {moment:%Y-%m-%d %H:%M} UTC from the "
        "lead store.</p></header>"
        f"<nav>{links}</nav><main>{body}</main></body></html>"
    )


def _section_html(section: Section) -> str:
    parts = [f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>"]
    if section.empty is not None:
        parts.append(f"<p class='empty'>{html.escape(section.empty)}</p>")
    else:
        if section.lead:
            parts.append(f"<p class='lead'>{html.escape(section.lead)}</p>")
        parts.extend(f"<figure>{fig}</figure>" for fig in section.figures)
        parts.extend(section.tables)
    parts.append("</section>")
    return "".join(parts)
