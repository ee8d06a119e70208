"""The account score: will the company produce a conversion within the horizon?

Three ways of scoring an account at ``as_of`` are compared on the lead model's time split
and the account label (``features.accounts.account_labels``):

* ``rollup``: ``1 - prod(1 - p_i)`` over the account's open leads' calibrated lead
  probabilities. It assumes the leads convert independently and ignores people who will
  arrive within the horizon.
* ``best_lead``: the highest single lead probability (what a lead-only team looks at).
* ``account_model``: LightGBM on the account features (``features.accounts``: firmographics,
  engaged people, seniority mix, persona coverage, momentum, and the best, summed and
  rolled-up lead probabilities), calibrated on the validation period with
  ``training.calibration`` as the lead model is.

Lead probabilities fed to the account features must be out of sample, or the account
model learns to trust scores that are better on its training rows than they will ever be:
before the test period they are out-of-fold (LightGBM with the lead model's input spec and
tree count, folds grouped by account, calibrated on the out-of-fold margins); in the test
period they are the lead model's own, as scoring would see them. The better of
``account_model`` and ``rollup`` on the *validation* log loss is registered (the test
period only reports); its card shows all three.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold

from features.accounts import (
    account_catalogue,
    account_features,
    account_labels,
    account_signals,
    missing_personas,
    next_contacts,
)
from features.contract import validate
from features.io import replace_dir
from features.personas import DEFAULT_PERSONAS, PersonaSpec
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from leadscore.errors import LeadscoreError
from runtime import registry
from runtime.bundle import CalibratedModel, ModelBundle, Policy
from runtime.encoding import InputSpec
from training.calibration import fit_calibration
from training.card import render_account_card
from training.config import TrainConfig
from training.metrics import expected_calibration_error
from training.model import GradientBoostedModel
from training.policy import PolicyConfig, PolicyError, Scored, fit_policy
from training.train import fit_bundle

ACCOUNT_MODEL_NAME = "leadscore-accounts"
METHODS = ("account_model", "rollup", "best_lead")
OOF_FOLDS = 4
ACCOUNT_PARAMS = {"min_child_samples": 40, "num_leaves": 15}
"""Smaller trees than the lead model's: there are several times fewer account snapshots."""
MIN_ACCOUNT_POSITIVES = 10


class AccountTrainingError(LeadscoreError, ValueError):
    """The data cannot train an account model (too few accounts or conversions)."""


@dataclass
class AccountFit:
    """An account model, the lead model under it, and the comparison of the three scores.

    Attributes:
        model: The account LightGBM with its calibration (``CalibratedModel``).
        lead_bundle: The lead model whose probabilities feed the roll-up and the features.
        metrics: ``{method: {period_metric: value}}``, e.g. ``test_roc_auc``.
        chosen: ``account_model`` or ``rollup`` (best validation log loss).
        frame: Account snapshots: ``account_id``, ``as_of``, ``period``, ``label``, the
            features and each method's probability.
        unattached: Leads with a missing or unknown ``account_id`` (scored as leads only).
        personas: The buying group the coverage features used.
        horizon_days: The label window.
        policy: The MQA policy (threshold, per-region thresholds, grade cuts, score knots),
            chosen on the validation period as the lead model's MQL policy is.
        counts: Account snapshots, accounts and positives per period.
    """

    model: CalibratedModel
    lead_bundle: ModelBundle
    metrics: dict[str, dict[str, float]]
    chosen: str
    frame: pd.DataFrame
    unattached: tuple[str, ...]
    personas: tuple[PersonaSpec, ...]
    horizon_days: int
    policy: Policy
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "rate": float(np.mean(y)),
        "mean_probability": float(np.mean(p)),
    }


def _periods(as_of: pd.Series, training_set: TrainingSet, fitted_split: Any) -> np.ndarray:
    """``train``/``valid``/``test`` (or ``gap``) of each account snapshot, on the lead split's
    boundaries: snapshots inside a purge gap are in no period, as for leads."""
    b = fitted_split.boundaries
    gap = pd.Timedelta(days=b.gap_days)
    t = pd.to_datetime(as_of)
    return np.select(
        [
            t < b.valid_start - gap,
            (t >= b.valid_start) & (t < b.test_start - gap),
            t >= b.test_start,
        ],
        ["train", "valid", "test"],
        "gap",
    )


def _out_of_fold_lead_probabilities(
    frame: pd.DataFrame, spec: InputSpec, trees: int, config: TrainConfig
) -> np.ndarray:
    """Calibrated lead probabilities, each from a model that never saw the lead's account."""
    X, y = spec.transform(frame), frame["label"].to_numpy()
    raw = np.zeros(len(frame))
    groups = frame["account_id"].astype(str).to_numpy()
    k = min(OOF_FOLDS, len(np.unique(groups)))
    for fit_rows, out_rows in GroupKFold(n_splits=k).split(X, y, groups):
        model = GradientBoostedModel(
            params=config.params,
            num_boost_round=trees,
            seed=config.seed,
            num_threads=config.num_threads,
        ).fit(
            X[fit_rows],
            y[fit_rows],
            feature_names=spec.names,
            categorical_features=spec.categorical_indices,
        )
        raw[out_rows] = model.predict_raw(X[out_rows])
    return fit_calibration(raw, y)(raw)


def fit_accounts(
    tables: dict[str, pd.DataFrame],
    *,
    horizon_days: int = 90,
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS,
    config: TrainConfig | None = None,
    mqa: PolicyConfig | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> AccountFit:
    """Train the lead model, build account snapshots, fit and compare the account scores.

    Args:
        tables: The contract's four tables (validated here).
        horizon_days: Label window of leads and accounts.
        personas: The buying group for the coverage features.
        config: Lead-model training settings (its ``seed`` seeds the account model too).
        mqa: The MQA rule (capacity or precision, optionally per region); default: the top
            10% of accounts.
        progress: Called with a short description of each step.

    Raises:
        AccountTrainingError: too few account conversions in a period.
    """
    config = config or TrainConfig()
    personas = tuple(personas)
    progress("building the lead training set")
    checked = validate(tables)
    lead_set = build_training_set(checked, PipelineConfig(horizon_days=horizon_days))
    progress("training the lead model")
    fitted = fit_bundle(lead_set, config)
    leads = checked["leads"]
    lead_frame = lead_set.frame.merge(leads[["lead_id", "account_id"]], on="lead_id", how="left")
    test_start = fitted.split.boundaries.test_start
    before = lead_frame["as_of"] < test_start
    progress("scoring leads out of fold before the test period")
    trees = int(getattr(fitted.model, "best_iteration_", 0) or 200)
    probability = np.empty(len(lead_frame))
    probability[before.to_numpy()] = _out_of_fold_lead_probabilities(
        lead_frame.loc[before].reset_index(drop=True), fitted.bundle.spec, trees, config
    )
    probability[~before.to_numpy()] = fitted.bundle.predict_proba(lead_frame.loc[~before])
    scores = lead_frame[["lead_id", "as_of"]].assign(probability=probability)

    progress("computing account features")
    # The accounts with an open lead at each date: the lead pipeline's own population.
    snapshots = lead_frame[["account_id", "as_of"]].dropna().drop_duplicates()
    snapshots = snapshots.sort_values(["as_of", "account_id"]).reset_index(drop=True)
    features = account_features(checked, snapshots, scores, personas)
    frame = features.frame
    frame["label"] = account_labels(frame, leads, checked["conversions"], horizon_days)
    known = account_labels(frame, leads, checked["conversions"], horizon_days, known_only=True)
    frame["period"] = _periods(frame["as_of"], lead_set, fitted.split)
    parts = {p: frame.loc[frame["period"] == p] for p in ("train", "valid", "test")}
    for name, part in parts.items():
        if int(part["label"].sum()) < MIN_ACCOUNT_POSITIVES:
            raise AccountTrainingError(
                f"the {name} period has {int(part['label'].sum())} account conversion(s) "
                f"in {len(part):,} account snapshots; at least {MIN_ACCOUNT_POSITIVES} are "
                "needed: use more data"
            )

    progress("training the account model")
    spec = InputSpec(account_catalogue(personas), account_signals(personas)).fit(parts["train"])
    X, y = spec.transform(parts["train"]), parts["train"]["label"].to_numpy()
    Xv, yv = spec.transform(parts["valid"]), parts["valid"]["label"].to_numpy()
    booster = GradientBoostedModel(
        params=ACCOUNT_PARAMS,
        seed=config.seed,
        num_threads=config.num_threads,
    ).fit(
        X,
        y,
        eval_set=[(Xv, yv)],
        feature_names=spec.names,
        categorical_features=spec.categorical_indices,
    )
    calibration = fit_calibration(booster.predict_raw(Xv), yv, config.calibration)
    model = CalibratedModel(
        lgb.Booster(model_str=booster.booster_.model_to_string()), spec, calibration
    )
    progress("choosing the MQA policy")
    valid_predictions = model.predict(parts["valid"])
    regions = _regions(parts["valid"])
    try:
        policy = fit_policy(
            Scored.from_predictions(valid_predictions, regions, yv),
            Scored.from_predictions(valid_predictions, regions),
            mqa or PolicyConfig(),
        )
    except PolicyError as exc:
        raise AccountTrainingError(f"MQA policy: {exc}") from exc
    frame["p_account_model"] = model.predict_proba(frame)
    frame["p_rollup"] = frame["rollup_probability"]
    frame["p_best_lead"] = frame["best_lead_probability"]

    metrics: dict[str, dict[str, float]] = {}
    for method in METHODS:
        metrics[method] = {}
        for period in ("valid", "test"):
            part = frame.loc[frame["period"] == period]
            values = _metrics(part["label"].to_numpy(), part[f"p_{method}"].to_numpy())
            metrics[method].update({f"{period}_{k}": v for k, v in values.items()})
    test = parts["test"]
    verdict = policy.apply(
        model.predict(test), _regions(test), test["account_id"].to_numpy(), test["as_of"].to_numpy()
    )
    mqa_rows = verdict.mql
    metrics["account_model"]["test_mqa_share"] = float(mqa_rows.mean())
    metrics["account_model"]["test_mqa_precision"] = (
        float(test["label"].to_numpy()[mqa_rows].mean()) if mqa_rows.any() else float("nan")
    )
    chosen = min(("account_model", "rollup"), key=lambda m: metrics[m]["valid_log_loss"])
    counts = {
        p: {
            "snapshots": len(part),
            "accounts": int(part["account_id"].nunique()),
            "positives": int(part["label"].sum()),
            "positives_from_known_people": int(known[part.index].sum()),
        }
        for p, part in parts.items()
    }
    return AccountFit(
        model=model,
        lead_bundle=fitted.bundle,
        metrics=metrics,
        chosen=chosen,
        frame=frame,
        unattached=features.unattached,
        personas=personas,
        horizon_days=horizon_days,
        policy=policy,
        counts=counts,
    )


def _regions(frame: pd.DataFrame) -> np.ndarray:
    """Each account snapshot's region as text ("" when unknown), for regional thresholds."""
    return frame["region"].astype(object).where(frame["region"].notna(), "").astype(str).to_numpy()


def _reason(reason: dict[str, Any]) -> dict[str, Any]:
    """A reason as an account answer carries it: the signal, its sentence, and its exact
    contribution (the SHAP values of its features summed, on the log-odds scale)."""
    return {
        "signal": reason["signal"],
        "sentence": reason["sentence"],
        "contribution": reason["contribution"],
    }


def score_accounts(
    fit: AccountFit,
    frame: pd.DataFrame,
    top: int = 3,
    tables: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Score account feature rows (``features.accounts.account_features``) with the model.

    Returns one row per account snapshot: ``probability``, ``score`` (0-100), ``mqa``,
    ``grade`` (A1-D4: fit letter from the firmographics' SHAP sum, engagement digit from the
    people's), the top reasons each way (one per signal, its exact SHAP contributions
    summed, with the sentence) and ``missing_personas`` (nobody engaged in 30 days); with
    the ``tables``, also ``next_contacts``: the known people of those personas
    (``features.accounts.next_contacts``).
    """
    predictions = fit.model.predict(frame)
    scores = fit.policy.apply(
        predictions, _regions(frame), frame["account_id"].to_numpy(), frame["as_of"].to_numpy()
    )
    out = pd.DataFrame(
        {
            "account_id": scores.lead_id,
            "as_of": scores.as_of,
            "probability": scores.probability,
            "score": scores.score,
            "mqa": scores.mql,
            "grade": scores.grade,
        }
    )
    positive, negative = [], []
    for i in range(len(out)):
        reasons = scores.reasons(i, fit.model.spec, top)
        positive.append([_reason(r) for r in reasons["positive"]])
        negative.append([_reason(r) for r in reasons["negative"]])
    out["positive_reasons"] = positive
    out["negative_reasons"] = negative
    out["missing_personas"] = missing_personas(frame, fit.personas)
    if tables is not None:
        out["next_contacts"] = next_contacts(tables, frame, fit.personas, top)
    return out


@dataclass(frozen=True)
class AccountTrainingResult:
    """What ``run_account_training`` logged and registered."""

    fit: AccountFit
    run_id: str
    model_name: str
    version: str | None
    aliases: list[str]
    tracking_uri: str
    card: str
    output_dir: Path | None
    seconds: float


def save_account_model(fit: AccountFit, folder: Path) -> None:
    """Write the account model without pickle: LightGBM text, JSON spec and calibration,
    the comparison, and the lead bundle whose probabilities it reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.txt").write_text(fit.model.booster.model_to_string())
    (folder / "input_spec.json").write_text(json.dumps(fit.model.spec.to_dict(), indent=1))
    (folder / "calibration.json").write_text(json.dumps(fit.model.calibration.to_dict(), indent=1))
    facts = {
        "chosen": fit.chosen,
        "horizon_days": fit.horizon_days,
        "personas": [p.model_dump() for p in fit.personas],
        "metrics": fit.metrics,
        "counts": fit.counts,
        "unattached_leads": len(fit.unattached),
    }
    (folder / "policy.json").write_text(json.dumps(fit.policy.to_dict(), indent=1))
    (folder / "account_model.json").write_text(json.dumps(facts, indent=1, default=float))
    fit.lead_bundle.save(folder / "lead_bundle")


def run_account_training(
    tables: dict[str, pd.DataFrame],
    *,
    horizon_days: int = 90,
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS,
    config: TrainConfig | None = None,
    mqa: PolicyConfig | None = None,
    tracking_uri: str | None = None,
    store_dir: str | Path = ".",
    experiment: str = registry.DEFAULT_EXPERIMENT,
    model_name: str = ACCOUNT_MODEL_NAME,
    register: bool = True,
    output_dir: str | Path | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> AccountTrainingResult:
    """Fit and compare the account scores, log them to MLflow, register the better one.

    The registered version (its own model name, alias ``challenger``, ``champion`` when
    first) holds ``account_model/`` (see :func:`save_account_model`); its tags say which
    method was chosen and the test metrics of all three.
    """
    started = time.perf_counter()
    fit = fit_accounts(
        tables,
        horizon_days=horizon_days,
        personas=personas,
        config=config,
        mqa=mqa,
        progress=progress,
    )
    card = render_account_card(fit.metrics, fit.chosen, fit.counts, len(fit.unattached), fit.policy)
    uri = registry.resolve_tracking_uri(tracking_uri, store_dir)
    flat = {
        f"{method}_{key}": value
        for method, values in fit.metrics.items()
        for key, value in values.items()
        if np.isfinite(value)
    }
    with tempfile.TemporaryDirectory(prefix="leadscore-accounts-") as tmp:
        folder = Path(tmp) / "account_model"
        save_account_model(fit, folder)
        (folder / "model_card.md").write_text(card)
        progress("logging to MLflow")
        with registry.tracking(uri) as client:
            experiment_id = registry.ensure_experiment(client, experiment, uri)
            with mlflow.start_run(experiment_id=experiment_id, run_name="accounts") as run:
                run_id = run.info.run_id
                mlflow.log_params({"horizon_days": horizon_days, "chosen": fit.chosen})
                mlflow.log_metrics(flat)
                mlflow.set_tags(
                    {
                        "leadscore.model_name": model_name,
                        registry.NOTE_TAG: registry.run_note(card, "account_model/model_card.md"),
                    }
                )
                mlflow.log_artifacts(str(folder), "account_model")
                artifact_uri = mlflow.get_artifact_uri("account_model")
            version: str | None = None
            aliases: list[str] = []
            if register:
                tags = {
                    "run_id": run_id,
                    "chosen": fit.chosen,
                    **{
                        f"test_{m}_roc_auc": f"{fit.metrics[m]['test_roc_auc']:.6f}"
                        for m in METHODS
                    },
                }
                version, aliases = registry.register_version(client, artifact_uri, model_name, tags)
        out = None
        if output_dir is not None:
            out = replace_dir(output_dir, lambda dest: _copy(folder, dest))
    return AccountTrainingResult(
        fit=fit,
        run_id=run_id,
        model_name=model_name,
        version=version,
        aliases=aliases,
        tracking_uri=uri,
        card=card,
        output_dir=out,
        seconds=time.perf_counter() - started,
    )


def _copy(source: Path, dest: Path) -> None:
    import shutil

    shutil.copytree(source, dest, dirs_exist_ok=True)
