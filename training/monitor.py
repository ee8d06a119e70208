"""Continuous re-evaluation of the champion: performance, calibration, drift, feedback.

``leadscore monitor`` asks four questions of the model in production, each as checks
with an ok / warn / alert status against thresholds in ``MonitorConfig``:

1. **Does it still rank and calibrate?** On the newest period whose outcomes are known
   (``performance_period``: the snapshots of open leads at dates in the ``period_days``
   that end one label horizon before the data end, as in 6sense's backtest of scores made
   90 days earlier), the champion's ROC AUC, top-decile lift and ECE against the figures
   it recorded on its own test period (``BundleMetadata.test_metrics``); the reliability
   curve; and conversion by score band (0–20 … 81–100, as Salesforce Einstein shows it,
   with the top band against the overall rate and MadKudu's cumulative capture). Labels
   are the pipeline's own (``features.pipeline.label_snapshots``); the snapshots are
   scored by a ``Scorer``: the CLI hands in batch scoring's own ``score_frame``.
2. **Do today's leads look like the ones it learned from?** Every model feature and the
   score, on the open leads at the data end against the open leads at the snapshot dates
   of the model's training window (``training.drift``: PSI for the size of a shift, and
   scipy's KS / chi-square test for whether there is one at all).
3. **Is the score itself stable in the store?** The latest stored batch run of this
   model version against its first one (PSI of the probabilities), when the store holds
   two.
4. **What does sales say?** When the store holds dispositions: the share of MQLs that
   sales accepted within the horizon, and the share won, against the model's test
   precision.

Results go to the store's ``monitoring_results`` (one ``check_run`` id per run) and to
an MLflow run in the monitoring experiment, with the reliability curve and score bands
as JSON and a plot.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.engine import Engine

from features.eligibility import OPEN_LEADS, Population
from features.pipeline import (
    compute_features,
    conversion_times,
    icp_of,
    label_snapshots,
    resolve_window,
)
from leadscore.errors import LeadscoreError
from runtime.bundle import ModelBundle
from store.frames import insert_frame, read_frame
from store.schema import dispositions, monitoring_results, mql_events, scores, scoring_runs
from training.drift import DriftStat, column_drift, numeric_drift
from training.metrics import expected_calibration_error, ranking_metrics, reliability_curve

Status = Literal["ok", "warn", "alert"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "alert")
SCORE_BANDS: tuple[tuple[int, int], ...] = ((0, 20), (21, 40), (41, 60), (61, 80), (81, 100))
"""Score bands as Einstein shows them (inclusive bounds on the 0–100 score)."""
ACCEPTED_STAGES = ("accepted", "sql", "opportunity", "won")
"""Dispositions that mean sales took the MQL on (a later stage implies acceptance)."""
DEFAULT_EXPERIMENT_SUFFIX = "-monitoring"
TEST_PREDICTIONS_ARTIFACT = "evaluation/test_predictions.parquet"

LOWER_IS_WORSE = ("top_band_lift", "acceptance_rate")
"""Checks whose value is worse when lower (the others are worse when higher)."""

Scorer = Callable[[dict[str, pd.DataFrame], pd.DataFrame], pd.DataFrame]
"""Scores snapshots (``lead_id``, ``as_of``) of validated tables: one row per snapshot, in
order, with at least ``probability``, ``score`` and ``mql`` (batch scoring's frame)."""


class MonitorError(LeadscoreError, ValueError):
    """Monitoring cannot run: a bad config, a model it cannot rebuild features for, or data
    without the period it needs. The message says which."""


class Limits(BaseModel):
    """The warn and alert levels of one check.

    ``higher_is_worse`` says which way a value goes bad: a drop in AUC is measured as a
    positive number that is worse when higher; a top-band lift is worse when lower.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    warn: float
    alert: float
    higher_is_worse: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.higher_is_worse and self.alert < self.warn:
            raise ValueError(f"alert ({self.alert}) must be at or above warn ({self.warn})")
        if not self.higher_is_worse and self.alert > self.warn:
            raise ValueError(f"alert ({self.alert}) must be at or below warn ({self.warn})")
        return self

    def status(self, value: float | None) -> Status:
        """``ok``, ``warn`` or ``alert`` for ``value`` (None or NaN: ``ok``, not judged)."""
        if value is None or not math.isfinite(value):
            return "ok"
        if self.higher_is_worse:
            return "alert" if value >= self.alert else "warn" if value >= self.warn else "ok"
        return "alert" if value <= self.alert else "warn" if value <= self.warn else "ok"


def _limits(warn: float, alert: float, higher_is_worse: bool = True) -> Any:
    return Field(
        default_factory=lambda: Limits(warn=warn, alert=alert, higher_is_worse=higher_is_worse)
    )


class MonitorConfig(BaseModel):
    """What ``leadscore monitor`` checks and when a check warns or alerts.

    Every field has a default; a YAML file (``--config monitoring.yaml``) overrides any of
    them, e.g. ``psi: {warn: 0.15, alert: 0.3}``.

    Attributes:
        period_days: Length of the performance period, which ends one label horizon
            before the data end (so every snapshot's outcome is known).
        step_days: Days between snapshot dates inside the period (open leads are
            snapshotted at its end and every ``step_days`` before it).
        min_positives: Conversions the period needs before AUC, lift and ECE are judged
            (fewer: the check warns that it could not judge).
        roc_auc_drop: Drop of ROC AUC below the champion's test AUC (0.05 / 0.10).
        lift_drop: Relative drop of top-decile lift below the test lift (20 % / 40 %).
        ece_rise: Rise of the expected calibration error above the test ECE (0.03 / 0.06).
        top_band_lift: Conversion rate of the top score band (81–100) over the overall
            rate; lower is worse (warn at 1.5, alert at 1.0: the top band converts no
            better than average).
        psi: Population stability index of a feature or of the score (0.1 / 0.25, the
            usual reading: below 0.1 stable, above 0.25 a real shift).
        drift_p_value: A drift status needs the two-sample test (KS or chi-square) to
            reject "same distribution" at this level too, so a few leads cannot alert.
        current_days: Drift compares the open leads at the data end and every
            ``step_days`` before it over this many days (0: the data end only) ...
        reference_days: ... with the open leads at the same spacing over the last this
            many days of the model's training set (``reference_dates``).
        inflow_days: The inflow check (``inflow_drift``) compares only the snapshots of
            leads at most this old, now and in the training window.
        min_inflow_rows: Fewer new-lead snapshots than this on either side and the inflow
            is not checked (a note says so).
        max_reference_rows: Reference snapshots kept (a seeded sample of leads above it).
        max_current_rows: Current snapshots kept for drift (likewise).
        max_period_rows: Performance-period snapshots scored (likewise): batch scoring
            explains every lead it scores, and 200,000 snapshots pin AUC, lift and ECE
            far below the thresholds' scale.
        sla_days: Days sales has to accept or reject an MQL; acceptance is judged on
            MQLs older than that.
        feedback_days: How far back MQLs are taken for the feedback checks.
        min_mqls: MQLs a feedback check needs before it is judged.
        acceptance_rate: Share of MQLs sales accepted; lower is worse (0.6 / 0.4: reps
            usually reject 20–40 %).
        won_precision_drop: Relative drop of the share of MQLs won within the horizon
            below the model's test precision (25 % / 50 %).
        stored_score_psi: PSI of the latest stored run's probabilities against the first
            run of the same model version (0.1 / 0.25).
        seed: Seed of the reference sample.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period_days: int = Field(28, ge=1, le=366)
    step_days: int = Field(7, ge=1, le=366)
    min_positives: int = Field(20, ge=1)
    roc_auc_drop: Limits = _limits(0.05, 0.10)
    lift_drop: Limits = _limits(0.20, 0.40)
    ece_rise: Limits = _limits(0.03, 0.06)
    top_band_lift: Limits = _limits(1.5, 1.0, higher_is_worse=False)
    psi: Limits = _limits(0.10, 0.25)
    drift_p_value: float = Field(0.01, gt=0, lt=1)
    current_days: int = Field(28, ge=0, le=366)
    reference_days: int = Field(182, ge=1)
    inflow_days: int = Field(28, ge=1, le=366)
    min_inflow_rows: int = Field(50, ge=10)
    max_reference_rows: int = Field(100_000, ge=100)
    max_current_rows: int = Field(1_000_000, ge=100)
    max_period_rows: int = Field(200_000, ge=100)
    sla_days: int = Field(14, ge=0)
    feedback_days: int = Field(90, ge=1)
    min_mqls: int = Field(20, ge=1)
    acceptance_rate: Limits = _limits(0.6, 0.4, higher_is_worse=False)
    won_precision_drop: Limits = _limits(0.25, 0.50)
    stored_score_psi: Limits = _limits(0.10, 0.25)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _directions(cls, data: Any) -> Any:
        """A floor (``top_band_lift``, ``acceptance_rate``) is lower-is-worse without saying
        so: a YAML override gives only ``warn`` and ``alert``."""
        if isinstance(data, dict):
            data = dict(data)
            for key in LOWER_IS_WORSE:
                if isinstance(data.get(key), dict):
                    data[key] = {"higher_is_worse": False, **data[key]}
        return data

    @classmethod
    def from_yaml(cls, path: str | Path) -> MonitorConfig:
        """The defaults, overridden by a YAML mapping in ``path``.

        Raises:
            MonitorError: naming the file and each bad key.
        """
        text = Path(path).read_text()
        payload = yaml.safe_load(text) or {}
        if not isinstance(payload, dict):
            raise MonitorError(f"{path}: a monitoring config is a mapping of settings")
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise MonitorError(f"{path}: {problems}") from None


@dataclass(frozen=True)
class CheckResult:
    """One check of one subject, as a row of ``monitoring_results``.

    Attributes:
        check: ``performance``, ``calibration``, ``score_bands``, ``feature_drift``,
            ``score_drift``, ``stored_scores`` or ``feedback``.
        subject: What was checked: ``model``, a feature's name, ``score``, ``mqls``.
        metric: The number judged (``roc_auc``, ``psi``, ``acceptance_rate``, ...).
        value: Its value now (None: could not be measured; see ``details``).
        reference: What it is compared with (the model's test figure; None: absolute).
        status: ``ok``, ``warn`` or ``alert``.
        details: Everything behind the number (JSON-ready).
    """

    check: str
    subject: str
    metric: str
    value: float | None
    reference: float | None
    status: Status
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class MonitorReport:
    """One monitor run: its checks and where they were recorded.

    Attributes:
        check_run: Id shared by every row this run wrote to ``monitoring_results``.
        checked_at: When it ran (UTC, tz-naive).
        model_name: Registered model name.
        model_version: The champion's version.
        data_end: The data end (as batch scoring sets it).
        period_start: Start of the performance period (exclusive).
        period_end: Its end: one horizon before the data end.
        results: Every check.
        reliability: Reliability curve now and at test time (JSON-ready).
        bands: Conversion by score band now and at test time (JSON-ready).
        notes: What was skipped and why.
        mlflow_run_id: The monitoring run in MLflow (None: not logged).
    """

    check_run: str
    checked_at: datetime
    model_name: str
    model_version: str
    data_end: pd.Timestamp
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    results: list[CheckResult]
    reliability: dict[str, Any] = field(default_factory=dict)
    bands: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None

    @property
    def status(self) -> Status:
        """The worst status of any check (``ok`` with no checks)."""
        worst = max((STATUSES.index(r.status) for r in self.results), default=0)
        return STATUSES[worst]

    def counts(self) -> dict[str, int]:
        """Checks per status."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def alerts(self) -> list[CheckResult]:
        """The checks at ``alert``."""
        return [r for r in self.results if r.status == "alert"]

    def exit_code(self, fail_on: str | None) -> int:
        """0, or 1 when some check is at ``fail_on`` (``warn`` or ``alert``) or worse."""
        if fail_on is None or fail_on == "never":
            return 0
        return int(STATUSES.index(self.status) >= STATUSES.index(fail_on))  # type: ignore[arg-type]

    def frame(self) -> pd.DataFrame:
        """The rows written to ``monitoring_results``."""
        return pd.DataFrame(
            {
                "check_run": self.check_run,
                "checked_at": pd.Timestamp(self.checked_at),
                "model_name": self.model_name,
                "model_version": self.model_version,
                "period_start": self.period_start,
                "period_end": self.period_end,
                "check_name": [r.check for r in self.results],
                "subject": [r.subject for r in self.results],
                "metric": [r.metric for r in self.results],
                "value": [r.value for r in self.results],
                "reference": [r.reference for r in self.results],
                "status": [r.status for r in self.results],
                "details": [_clean(r.details) for r in self.results],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``leadscore monitor --json``)."""
        return _clean(
            {
                "check_run": self.check_run,
                "checked_at": self.checked_at.isoformat(),
                "model_name": self.model_name,
                "model_version": self.model_version,
                "data_end": str(self.data_end),
                "period": [str(self.period_start), str(self.period_end)],
                "status": self.status,
                "counts": self.counts(),
                "results": [asdict(r) for r in self.results],
                "reliability": self.reliability,
                "bands": self.bands,
                "notes": self.notes,
                "mlflow_run_id": self.mlflow_run_id,
            }
        )


def _clean(value: Any) -> Any:
    """NaN and infinities as None, numpy and pandas scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite(value: object) -> float | None:
    if isinstance(value, int | float | np.number) and math.isfinite(float(value)):
        return float(value)
    return None


# --- snapshots ------------------------------------------------------------------------


def open_snapshots(
    tables: dict[str, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    population: Population | None,
) -> pd.DataFrame:
    """Snapshots ``(lead_id, as_of)`` of the open leads in ``population`` at each date.

    The rule batch scoring applies (``serving.batch.open_leads``): the lead exists, has
    not converted, and is in the model's population.
    """
    leads = tables["leads"]
    converted = conversion_times(leads["lead_id"], tables["conversions"])
    rule = population or OPEN_LEADS
    frames = []
    for as_of in dates:
        keep = OPEN_LEADS.eligible(leads["created_at"], converted, as_of) & rule.eligible(
            leads["created_at"], converted, as_of
        )
        ids = leads.loc[keep, "lead_id"].to_numpy(dtype=object)
        frames.append(pd.DataFrame({"lead_id": ids, "as_of": pd.Timestamp(as_of)}))
    if not frames:
        return pd.DataFrame(
            {"lead_id": pd.Series(dtype=object), "as_of": pd.Series(dtype="M8[us]")}
        )
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype("datetime64[us]")
    return out


def performance_period(
    data_end: pd.Timestamp, horizon_days: int, config: MonitorConfig
) -> tuple[pd.Timestamp, pd.Timestamp, list[pd.Timestamp]]:
    """The newest period whose outcomes are known: ``(start, end, snapshot dates)``.

    It ends one horizon before the data end, so every snapshot's label window is inside
    the data; dates run back from the end every ``step_days`` while inside
    ``(start, end]``.
    """
    end = pd.Timestamp(data_end) - pd.Timedelta(days=horizon_days)
    start = end - pd.Timedelta(days=config.period_days)
    return start, end, _dates_back(end, start, config)


def reference_dates(bundle: ModelBundle, config: MonitorConfig) -> list[pd.Timestamp]:
    """Snapshot dates of the reference: every ``step_days`` back from the last ``as_of`` of
    the model's training set, over its last ``reference_days`` (never before its first).

    The training set's window is what the model was fitted, chosen and tested on; its
    latest months are the leads it knows best, and dates a week apart (rather than the
    training set's month starts) average out weekly campaign cycles, as the current
    sample's dates do.

    Raises:
        MonitorError: when the bundle records no training window.
    """
    window = bundle.metadata.window
    if window is None or not window.train.first_as_of or not window.test.last_as_of:
        raise MonitorError(
            "the champion records no training window, so there is no reference to measure "
            "drift against: retrain it with this leadscore"
        )
    first = pd.Timestamp(window.train.first_as_of)
    last = pd.Timestamp(window.test.last_as_of)
    return _dates_back(last, max(first, last - pd.Timedelta(days=config.reference_days)), config)


def current_dates(data_end: pd.Timestamp, config: MonitorConfig) -> list[pd.Timestamp]:
    """Snapshot dates of the current sample: the data end and every ``step_days`` before it,
    over the last ``current_days``."""
    return _dates_back(data_end, data_end - pd.Timedelta(days=config.current_days), config)


def _dates_back(
    end: pd.Timestamp, start: pd.Timestamp, config: MonitorConfig
) -> list[pd.Timestamp]:
    """``end`` and every ``step_days`` before it while after ``start`` (``end`` at least)."""
    dates, moment = [], end
    while moment > start or not dates:
        dates.append(moment)
        moment -= pd.Timedelta(days=config.step_days)
    return sorted(dates)


def _sample_leads(snapshots: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` snapshots: every snapshot of a seeded sample of leads."""
    if len(snapshots) <= rows:
        return snapshots
    leads = snapshots["lead_id"].unique()
    rng = np.random.default_rng(seed)
    keep = rng.choice(leads, size=max(1, int(len(leads) * rows / len(snapshots))), replace=False)
    return snapshots[snapshots["lead_id"].isin(set(keep))].reset_index(drop=True)


def model_features(
    tables: dict[str, pd.DataFrame], snapshots: pd.DataFrame, bundle: ModelBundle
) -> pd.DataFrame:
    """The pipeline's features of ``snapshots`` with the profile the model was trained with."""
    return compute_features(
        tables["leads"],
        tables["accounts"],
        tables["activities"],
        snapshots,
        icp_of(bundle.metadata.icp),
    )


def bundle_scorer(bundle: ModelBundle) -> Scorer:
    """A ``Scorer`` from the bundle alone: the pipeline's features, the calibrated
    probability, the policy's 0–100 score and MQL flag (no reasons: monitoring needs none).

    The CLI uses batch scoring's ``score_frame`` instead, which also handles a dataset
    config's extra lead columns; both give the same probability for the same snapshot.
    """

    def score(tables: dict[str, pd.DataFrame], snapshots: pd.DataFrame) -> pd.DataFrame:
        frame = model_features(tables, snapshots, bundle)
        return _scored(bundle, frame)

    return score


def _scored(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    probability = bundle.predict_proba(frame)
    policy = bundle.policy
    column = policy.region_feature
    regions = (
        frame[column].astype("string").fillna("").to_numpy(dtype=object)
        if column in frame.columns
        else np.full(len(frame), "", dtype=object)
    )
    return pd.DataFrame(
        {
            "lead_id": frame["lead_id"].to_numpy(),
            "as_of": frame["as_of"].to_numpy(),
            "probability": probability,
            "score": policy.scores(probability),
            "mql": probability >= policy.threshold_for(regions),
        }
    )


# --- performance ----------------------------------------------------------------------


def score_bands(y: np.ndarray, score: np.ndarray) -> list[dict[str, Any]]:
    """Leads, conversions, conversion rate and cumulative capture per score band.

    Bands go from the top (81–100) down, so ``capture`` is MadKudu's power curve: the
    share of all conversions found by working that band and every band above it.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score)
    total = max(y.sum(), 1.0)
    out, found = [], 0.0
    for low, high in reversed(SCORE_BANDS):
        mask = (score >= low) & (score <= high)
        hits = float(y[mask].sum())
        found += hits
        out.append(
            {
                "band": f"{low}-{high}",
                "leads": int(mask.sum()),
                "conversions": int(hits),
                "rate": hits / mask.sum() if mask.any() else None,
                "capture": found / total,
            }
        )
    return out


def _top_band_lift(bands: list[dict[str, Any]], base_rate: float) -> float | None:
    top = next((b for b in bands if b["leads"]), None)
    if top is None or not base_rate or top["rate"] is None:
        return None
    return float(top["rate"] / base_rate)


def _reliability(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    predicted, observed, count = reliability_curve(y, p)
    return {
        "predicted": [float(x) for x in predicted],
        "observed": [float(x) for x in observed],
        "count": [int(x) for x in count],
    }


def performance_checks(
    y: np.ndarray,
    scored: pd.DataFrame,
    recorded: dict[str, Any],
    config: MonitorConfig,
    test_predictions: pd.DataFrame | None = None,
) -> tuple[list[CheckResult], dict[str, Any], dict[str, Any]]:
    """AUC, lift, ECE and score bands of the period against the model's test figures.

    Args:
        y: The period's labels.
        scored: Its scores (``probability``, ``score``).
        recorded: The model's test metrics (``BundleMetadata.test_metrics["model"]``).
        config: Thresholds.
        test_predictions: The logged test predictions, for the test-time curve and bands.

    Returns:
        The checks, the reliability curves (``now``, ``test``) and the score bands.
    """
    y = np.asarray(y, dtype=np.int64)
    p = scored["probability"].to_numpy(dtype=np.float64)
    score = scored["score"].to_numpy()
    ref = {k: _finite(recorded.get(k)) for k in ("roc_auc", "lift_top10", "ece", "precision")}
    positives = int(y.sum())
    facts = {
        "rows": len(y),
        "positives": positives,
        "base_rate": float(y.mean()) if len(y) else None,
    }
    enough = config.min_positives <= positives < len(y)
    metrics = ranking_metrics(y, p) if len(y) else {}
    ece = expected_calibration_error(y, p) if len(y) else float("nan")
    bands = score_bands(y, score)
    reference_bands = None
    reliability: dict[str, Any] = {"now": _reliability(y, p) if len(y) else None}
    if test_predictions is not None and len(test_predictions):
        ty = test_predictions["label"].to_numpy(dtype=np.int64)
        reference_bands = score_bands(ty, test_predictions["score"].to_numpy())
        reliability["test"] = _reliability(ty, test_predictions["probability"].to_numpy())
    results = []
    short = {
        **facts,
        "judged": enough,
        "note": None
        if enough
        else f"{positives} conversion(s) in the period: at least {config.min_positives} "
        "(and some non-conversions) are needed to judge",
    }

    def judged(limits: Limits, gap: float | None) -> Status:
        return limits.status(gap) if enough else "warn"

    auc = _finite(metrics.get("roc_auc"))
    gap = None if auc is None or ref["roc_auc"] is None else ref["roc_auc"] - auc
    results.append(
        CheckResult(
            "performance", "model", "roc_auc", auc, ref["roc_auc"],
            judged(config.roc_auc_drop, gap), {**short, "drop": gap},
        )
    )  # fmt: skip
    lift = _finite(metrics.get("lift_top10"))
    drop = None
    if lift is not None and ref["lift_top10"]:
        drop = 1.0 - lift / ref["lift_top10"]
    results.append(
        CheckResult(
            "performance", "model", "lift_top10", lift, ref["lift_top10"],
            judged(config.lift_drop, drop), {**short, "relative_drop": drop},
        )
    )  # fmt: skip
    ece_now = _finite(ece)
    rise = None if ece_now is None or ref["ece"] is None else ece_now - ref["ece"]
    results.append(
        CheckResult(
            "calibration", "model", "ece", ece_now, ref["ece"],
            judged(config.ece_rise, rise),
            {**short, "rise": rise, "mean_probability": float(p.mean()) if len(p) else None},
        )
    )  # fmt: skip
    top_lift = _top_band_lift(bands, float(y.mean()) if len(y) else 0.0)
    ref_top = None
    if reference_bands is not None:
        ref_top = _top_band_lift(reference_bands, float(test_predictions["label"].mean()))  # type: ignore[index]
    results.append(
        CheckResult(
            "score_bands", "model", "top_band_lift", top_lift, ref_top,
            judged(config.top_band_lift, top_lift),
            {**short, "bands": bands, "test_bands": reference_bands},
        )
    )  # fmt: skip
    return results, reliability, {"now": bands, "test": reference_bands}


# --- drift ----------------------------------------------------------------------------


def inflow_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str],
    config: MonitorConfig,
    notes: list[str],
) -> list[CheckResult]:
    """Drift of the *new* leads: those at most ``inflow_days`` old at their snapshot, now
    against the training window.

    A shift in who comes in (a new channel, a campaign that floods the funnel) moves the
    inflow at once but the open-lead population only slowly (it holds months of older
    leads), so the inflow is checked on its own.
    """
    age = "days_since_created"
    if age not in reference.columns or age not in current.columns:
        notes.append("inflow drift: the tables give no lead age; not measured")
        return []
    ref = reference[reference[age] <= config.inflow_days]
    cur = current[current[age] <= config.inflow_days]
    if min(len(ref), len(cur)) < config.min_inflow_rows:
        notes.append(
            f"inflow drift: {len(cur):,} new-lead snapshots now and {len(ref):,} in the "
            f"training window (fewer than {config.min_inflow_rows}): not measured"
        )
        return []
    names = [n for n in features if n != age]
    return drift_checks(ref, cur, names, config, check="inflow_drift")


def drift_status(stat: DriftStat, limits: Limits, p_value: float) -> Status:
    """PSI's status, kept only when the two-sample test also rejects "no change"."""
    return limits.status(stat.psi) if stat.p_value < p_value else "ok"


def drift_checks(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[str],
    config: MonitorConfig,
    check: str = "feature_drift",
) -> list[CheckResult]:
    """One drift check per column present in both frames."""
    out = []
    for name in features:
        if name not in reference.columns or name not in current.columns:
            continue
        stat = column_drift(reference[name], current[name])
        out.append(
            CheckResult(
                check,
                name,
                "psi",
                stat.psi,
                None,
                drift_status(stat, config.psi, config.drift_p_value),
                stat.to_dict(),
            )
        )
    return out


# --- the store: stored scores and sales feedback --------------------------------------


def stored_score_check(
    engine: Engine, model_version: str, config: MonitorConfig
) -> CheckResult | None:
    """PSI of the latest stored batch run of ``model_version`` against its first run
    (None: fewer than two such runs)."""
    runs_query = (
        sa.select(scoring_runs.c.id, scoring_runs.c.as_of)
        .where(scoring_runs.c.model_version == str(model_version))
        .where(scoring_runs.c.source == "batch")
        .order_by(scoring_runs.c.as_of, scoring_runs.c.id)
    )
    with engine.connect() as connection:
        runs = read_frame(connection, runs_query)
        if len(runs) < 2:
            return None
        first, last = int(runs["id"].iloc[0]), int(runs["id"].iloc[-1])
        query = sa.select(scores.c.run_id, scores.c.probability).where(
            scores.c.run_id.in_([first, last])
        )
        probabilities = read_frame(connection, query)
    stat = numeric_drift(
        probabilities.loc[probabilities["run_id"] == first, "probability"].to_numpy(),
        probabilities.loc[probabilities["run_id"] == last, "probability"].to_numpy(),
    )
    details = {
        **stat.to_dict(),
        "first_run": first,
        "first_as_of": runs["as_of"].iloc[0],
        "last_run": last,
        "last_as_of": runs["as_of"].iloc[-1],
        "runs": len(runs),
    }
    status = drift_status(stat, config.stored_score_psi, config.drift_p_value)
    return CheckResult("stored_scores", "score", "psi", stat.psi, None, status, details)


def feedback_checks(
    engine: Engine,
    data_end: pd.Timestamp,
    horizon_days: int,
    config: MonitorConfig,
    test_precision: float | None,
) -> tuple[list[CheckResult], list[str]]:
    """Acceptance and won rates of MQLs from the store's dispositions.

    An MQL is a lead's first entry into MQL (``mql_events``) in the window; it counts as
    accepted when sales recorded ``accepted`` or a later stage within the horizon of that
    entry, and as won when ``won`` was. Acceptance is judged on MQLs at least
    ``sla_days`` old, the won rate on MQLs at least one horizon old (their outcome is
    known), both over the ``feedback_days`` before that.

    Returns:
        The checks, and notes on what could not be judged.
    """
    notes: list[str] = []
    horizon = pd.Timedelta(days=horizon_days)
    windows = {
        "acceptance_rate": data_end - pd.Timedelta(days=config.sla_days),
        "won_rate": data_end - horizon,
    }
    earliest = min(windows.values()) - pd.Timedelta(days=config.feedback_days)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(dispositions)).scalar()
        if not count:
            return [], ["feedback: the store holds no sales dispositions yet"]
        entered = read_frame(
            connection,
            sa.select(
                mql_events.c.lead_id, sa.func.min(mql_events.c.occurred_at).label("entered_at")
            )
            .where(mql_events.c.event == "entered")
            .where(mql_events.c.occurred_at > earliest.to_pydatetime())
            .where(mql_events.c.occurred_at <= max(windows.values()).to_pydatetime())
            .group_by(mql_events.c.lead_id),
        )
        entered["entered_at"] = pd.to_datetime(entered["entered_at"]).astype("datetime64[ns]")
        stages = read_frame(
            connection,
            sa.select(dispositions.c.lead_id, dispositions.c.stage, dispositions.c.occurred_at)
            .where(dispositions.c.stage.in_(ACCEPTED_STAGES))
            .where(dispositions.c.occurred_at > earliest.to_pydatetime())
            .where(dispositions.c.occurred_at <= (data_end + horizon).to_pydatetime()),
        )
    joined = entered.merge(stages, on="lead_id", how="left")
    inside = (joined["occurred_at"] >= joined["entered_at"]) & (
        joined["occurred_at"] <= joined["entered_at"] + horizon
    )
    joined = joined[inside]
    accepted = set(joined["lead_id"])
    won = set(joined.loc[joined["stage"] == "won", "lead_id"])
    results = []
    for metric, end in windows.items():
        start = end - pd.Timedelta(days=config.feedback_days)
        mqls = entered[(entered["entered_at"] > start) & (entered["entered_at"] <= end)]
        n = len(mqls)
        hits = mqls["lead_id"].isin(accepted if metric == "acceptance_rate" else won).sum()
        rate = float(hits / n) if n else None
        details = {"mqls": n, "hits": int(hits), "window": [str(start), str(end)]}
        if n < config.min_mqls:
            notes.append(
                f"feedback: {metric} not judged: {n} MQL(s) entered between {start} and "
                f"{end}, at least {config.min_mqls} needed"
            )
            continue
        if metric == "acceptance_rate":
            status = config.acceptance_rate.status(rate)
            results.append(CheckResult("feedback", "mqls", metric, rate, None, status, details))
        else:
            drop = None if rate is None or not test_precision else 1.0 - rate / test_precision
            status = config.won_precision_drop.status(drop)
            details["relative_drop"] = drop
            results.append(
                CheckResult("feedback", "mqls", metric, rate, test_precision, status, details)
            )
    return results, notes


def write_results(engine: Engine, report: MonitorReport) -> int:
    """Append the report's checks to ``monitoring_results`` (one transaction)."""
    with engine.begin() as connection:
        return insert_frame(connection, monitoring_results, report.frame())


# --- MLflow ---------------------------------------------------------------------------


def _metric_name(result: CheckResult) -> str:
    name = f"{result.check}.{result.subject}.{result.metric}"
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def reliability_plot(reliability: dict[str, Any], path: str | Path) -> Path:
    """Predicted vs observed conversion per decile, in the period and at test time."""
    from training.plots import _figure, _save

    fig = _figure()
    ax = fig.subplots()
    top = 0.0
    for name, style in (("now", "-"), ("test", "--")):
        curve = reliability.get(name)
        if not curve:
            continue
        label = "monitoring period" if name == "now" else "test period (at training)"
        ax.plot(curve["predicted"], curve["observed"], style, marker="o", label=label)
        top = max([top, *curve["predicted"], *curve["observed"]])
    ax.plot([0, top], [0, top], color="#cccccc", linewidth=1, label="perfect calibration")
    ax.set(
        title="Reliability (deciles of predicted probability)",
        xlabel="Predicted conversion probability",
        ylabel="Observed conversion rate",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def log_to_mlflow(report: MonitorReport, tracking_uri: str, experiment: str) -> str:
    """Log the report as one run of ``experiment``: a metric per check (and its status as
    0 / 1 / 2), the checks, reliability curves and score bands as JSON, and the plot."""
    import mlflow

    from runtime import registry

    metrics: dict[str, float] = {}
    for r in report.results:
        name = _metric_name(r)
        if r.value is not None and math.isfinite(r.value):
            metrics[name] = float(r.value)
        metrics[f"{name}.status"] = float(STATUSES.index(r.status))
    metrics["alerts"] = float(report.counts()["alert"])
    metrics["warnings"] = float(report.counts()["warn"])
    with registry.tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
        experiment_id = registry.ensure_experiment(client, experiment, tracking_uri)
        folder = Path(tmp)
        (folder / "monitoring.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        (folder / "reliability.json").write_text(
            json.dumps(_clean(report.reliability), indent=2) + "\n"
        )
        (folder / "score_bands.json").write_text(json.dumps(_clean(report.bands), indent=2) + "\n")
        if report.reliability.get("now"):
            reliability_plot(report.reliability, folder / "reliability.png")
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"monitor v{report.model_version}"
        ) as run:
            mlflow.log_metrics(metrics)
            mlflow.set_tags(
                {
                    "leadscore.model_name": report.model_name,
                    "leadscore.model_version": report.model_version,
                    "leadscore.check_run": report.check_run,
                    "leadscore.status": report.status,
                    "leadscore.period": f"{report.period_start} … {report.period_end}",
                }
            )
            mlflow.log_artifacts(str(folder), "monitoring")
            return str(run.info.run_id)


def logged_test_predictions(tracking_uri: str, run_id: str | None) -> pd.DataFrame | None:
    """The test-period predictions logged with a model's training run (None: not there)."""
    if not run_id:
        return None
    import mlflow

    from runtime import registry

    with registry.tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, TEST_PREDICTIONS_ARTIFACT, tmp)
        except (mlflow.exceptions.MlflowException, OSError):
            return None
        return pd.read_parquet(path)


# --- the run --------------------------------------------------------------------------


def run_monitor(
    tables: dict[str, pd.DataFrame],
    bundle: ModelBundle,
    *,
    model_name: str,
    model_version: str,
    config: MonitorConfig | None = None,
    scorer: Scorer | None = None,
    engine: Engine | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    test_predictions: pd.DataFrame | None = None,
    data_end: pd.Timestamp | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> MonitorReport:
    """Run every check on validated tables and record the results.

    Args:
        tables: Validated contract tables (``features.io.load_tables``).
        bundle: The champion.
        model_name: Its registered name (for the records).
        model_version: Its version (for the records; ``local`` for a bare bundle).
        config: Thresholds and periods (default: ``MonitorConfig()``).
        scorer: Scores the performance period's snapshots (default: ``bundle_scorer``).
        engine: The lead store: results are written to ``monitoring_results``, and the
            stored-score and feedback checks read it (None: none of that).
        tracking_uri: MLflow registry to log a monitoring run to (None: not logged).
        experiment: That run's experiment.
        test_predictions: The model's logged test predictions (``label``, ``score``,
            ``probability``): the test-time reliability curve and score bands.
        data_end: The data end (default: batch scoring's, ``resolve_window``).
        progress: Called with each step's name.

    Raises:
        MonitorError: when the model has no label horizon or training window (a model
            trained on a lead snapshot export), or the data holds no snapshot in the
            performance period.
    """
    config = config or MonitorConfig()
    meta = bundle.metadata
    if meta.horizon_days is None or meta.request_form == "features":
        raise MonitorError(
            "the champion was trained on a lead snapshot export (no label horizon): "
            "monitoring rebuilds snapshots and labels from the contract's tables, so it "
            "needs a model trained with `leadscore features` / `leadscore train`"
        )
    end = pd.Timestamp(data_end) if data_end is not None else resolve_window(tables).end
    start, stop, dates = performance_period(end, meta.horizon_days, config)
    notes: list[str] = []

    progress("scoring the performance period")
    period = _sample_leads(
        open_snapshots(tables, dates, meta.population), config.max_period_rows, config.seed
    )
    if period.empty:
        raise MonitorError(
            f"no open lead in the performance period ({start.date()} to {stop.date()}, one "
            f"{meta.horizon_days}-day horizon before the data end {end.date()}): the data "
            "is too short to judge the model's performance"
        )
    scored = (scorer or bundle_scorer(bundle))(tables, period)
    y = label_snapshots(period, tables["conversions"], meta.horizon_days)
    recorded = meta.test_metrics.get("model", {})
    results, reliability, bands = performance_checks(y, scored, recorded, config, test_predictions)

    progress("measuring drift")
    reference = _sample_leads(
        open_snapshots(tables, reference_dates(bundle, config), meta.population),
        config.max_reference_rows,
        config.seed,
    )
    current = _sample_leads(
        open_snapshots(tables, current_dates(end, config), meta.population),
        config.max_current_rows,
        config.seed,
    )
    if reference.empty or current.empty:
        notes.append(
            "drift: no open lead in the training window or at the data end "
            f"({len(reference)} / {len(current)} snapshots): not measured"
        )
    else:
        ref_frame = model_features(tables, reference, bundle)
        cur_frame = model_features(tables, current, bundle)
        results += drift_checks(ref_frame, cur_frame, bundle.spec.names, config)
        results += inflow_checks(ref_frame, cur_frame, bundle.spec.names, config, notes)
        missing = [n for n in bundle.spec.names if n not in cur_frame.columns]
        if missing:
            notes.append(
                f"drift: the score is not measured: features {missing} are not in the tables"
            )
        else:
            stat = numeric_drift(bundle.predict_proba(ref_frame), bundle.predict_proba(cur_frame))
            status = drift_status(stat, config.psi, config.drift_p_value)
            results.append(
                CheckResult("score_drift", "score", "psi", stat.psi, None, status, stat.to_dict())
            )
        notes.append(
            f"drift: {len(cur_frame):,} open-lead snapshots of the last {config.current_days} "
            f"days to {end} against {len(ref_frame):,} "
            f"snapshots of the training window ({reference['as_of'].min().date()} to "
            f"{reference['as_of'].max().date()})"
        )

    if engine is not None:
        progress("reading the store")
        stored = stored_score_check(engine, model_version, config)
        if stored is not None:
            results.append(stored)
        else:
            notes.append("stored scores: fewer than two batch runs of this version in the store")
        test_precision = _finite(meta.test_metrics.get("model", {}).get("precision"))
        feedback, said = feedback_checks(engine, end, meta.horizon_days, config, test_precision)
        results += feedback
        notes += said

    report = MonitorReport(
        check_run=uuid.uuid4().hex,
        checked_at=datetime.now(UTC).replace(tzinfo=None),
        model_name=model_name,
        model_version=str(model_version),
        data_end=end,
        period_start=start,
        period_end=stop,
        results=results,
        reliability=reliability,
        bands=bands,
        notes=notes,
    )
    if engine is not None:
        progress("writing the results to the store")
        write_results(engine, report)
    if tracking_uri is not None:
        progress("logging to MLflow")
        report.mlflow_run_id = log_to_mlflow(
            report, tracking_uri, experiment or f"{model_name}{DEFAULT_EXPERIMENT_SUFFIX}"
        )
    return report
