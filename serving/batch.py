"""Batch scoring: the open leads of a data folder, through the service's own code path.

``score_run`` loads and validates the folder like training does, snapshots each open
lead at ``as_of`` that is in the population the model was trained on (the eligibility
rule recorded in its metadata; the others are counted, not scored), and hands the
features to ``serving.scorer.score_cards``, the same routine that formats the HTTP
service's answers. A lead scored here and the same lead
sent to ``POST /score`` with the same ``as_of`` get the same probability, grade and
reasons (``tests/integration/test_batch_score.py`` checks it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from features.contract import TIMESTAMP_UNIT, UnknownActivity
from features.eligibility import OPEN_LEADS, Population
from features.io import load_tables, write_frame
from features.pipeline import (
    conversion_times,
    data_window,
    features_frame,
    icp_of,
    lead_arrays,
)
from leadscore.settings import CHAMPION_ALIAS, DEFAULT_MODEL_NAME
from runtime.bundle import ModelBundle
from serving.leadform import with_extra_lead_columns
from serving.scorer import ServedModel, score_cards
from store.runs import RunInfo, RunWritten, write_run

TOP_REASONS = 3
TOP_ACTIONS = 3
"""Next best actions per lead in the output (``runtime.actions``)."""
OUTPUT_COLUMNS = (
    "lead_id",
    "as_of",
    "probability",
    "probability_low",
    "probability_high",
    "score",
    "mql",
    "threshold",
    "grade",
    "raw_score",
    "top_positive_reasons",
    "top_negative_reasons",
    "top_positive_features",
    "top_negative_features",
    "next_best_actions",
    "next_best_action_scores",
    "next_best_action_sentences",
    "top_positive_signal",
    "top_negative_signal",
    "model_name",
    "model_version",
)


def open_leads(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, population: Population | None = None
) -> pd.DataFrame:
    """Snapshots ``(lead_id, as_of)`` of the leads to score at ``as_of``.

    Without a ``population``, every lead that exists and has not converted at ``as_of``
    (a converted lead needs no score, a lead created after it did not exist yet). With
    one (a model's, ``BundleMetadata.population``), only the leads in it: the rule
    training planned its snapshots with, so the leads scored are those the model and
    its MQL threshold were fitted on.
    """
    return _open_snapshots(tables, as_of, population)[0]


def _open_snapshots(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, population: Population | None
) -> tuple[pd.DataFrame, int]:
    """``open_leads`` and how many open leads ``population`` left out."""
    leads = tables["leads"]
    converted = conversion_times(leads["lead_id"], tables["conversions"])
    is_open = OPEN_LEADS.eligible(leads["created_at"], converted, as_of)
    keep = (
        is_open
        if population is None
        else is_open & population.eligible(leads["created_at"], converted, as_of)
    )
    ids = leads.loc[keep, "lead_id"].to_numpy(dtype=object)
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "as_of": np.full(len(ids), np.datetime64(as_of, "us"), dtype=TIMESTAMP_UNIT),
        }
    )
    return frame, int(is_open.sum() - keep.sum())


def _served(model: ServedModel | ModelBundle) -> ServedModel:
    if isinstance(model, ServedModel):
        return model
    return ServedModel(
        bundle=model, name=model.metadata.model_name, version="local", alias=None, source="folder"
    )


def _join(items: list[dict[str, Any]], key: str, sep: str) -> str:
    return sep.join(str(item[key]) for item in items)


def _first(items: list[dict[str, Any]], key: str) -> str:
    return str(items[0][key]) if items else ""


def score_frame(
    tables: dict[str, pd.DataFrame],
    snapshots: pd.DataFrame,
    model: ServedModel | ModelBundle,
    top: int = TOP_REASONS,
    actions: int = TOP_ACTIONS,
    cards: bool = False,
) -> pd.DataFrame:
    """Score snapshots of validated tables; one row per snapshot (see ``OUTPUT_COLUMNS``).

    ``actions`` next best actions per lead (0: none) are named in ``next_best_actions``
    (``;``-separated, best first), with the score each would give
    (``next_best_action_scores``) and its sentence (``next_best_action_sentences``, `` | ``).
    With ``cards``, the frame also carries each lead's whole reasons and actions as
    objects (``card_reasons``, ``card_actions``: what the lead store keeps as JSON).
    """
    served = _served(model)
    if snapshots.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})
    icp = icp_of(served.bundle.metadata.icp)  # the profile the model was trained with
    arrays = lead_arrays(tables["leads"], tables["accounts"], tables["activities"], snapshots)
    frame = features_frame(arrays, snapshots, icp)  # = compute_features, arrays kept
    frame = with_extra_lead_columns(frame, tables["leads"], served.bundle)
    _, cards_ = score_cards(served, frame, top, actions=actions, arrays=arrays)
    scored = _output_frame(cards_, snapshots, served)
    if cards:
        kept = [stored_card(c) for c in cards_]
        scored["card_reasons"] = [k[0] for k in kept]
        scored["card_actions"] = [k[1] for k in kept]
    return scored


_REASON_KEYS = ("signal", "group", "sentence")
_ACTION_KEYS = ("action", "score", "mql", "grade", "sentence")


def stored_card(card: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the lead store keeps of a card: each reason's signal, group, contribution and
    sentence, and each action's score, probability, MQL, grade and sentence.

    The per-feature breakdown is left out (it triples the row and is recomputable from
    the stored model version); numbers keep 4 decimals, which is more than any page
    shows. About 1 KB per lead instead of 2-3 KB.
    """
    reasons = {
        side: [
            {**{k: r[k] for k in _REASON_KEYS}, "contribution": round(r["contribution"], 4)}
            for r in card["reasons"][side]
        ]
        for side in ("positive", "negative")
    }
    actions = [
        {
            **{k: a[k] for k in _ACTION_KEYS},
            "probability": round(a["probability"], 4),
            "gain": round(a["gain"], 4),
        }
        for a in card["next_best_actions"]
    ]
    return reasons, actions


def _output_frame(
    cards: list[dict[str, Any]], snapshots: pd.DataFrame, served: ServedModel
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [c["lead_id"] for c in cards],
            "as_of": np.asarray(snapshots["as_of"], dtype=TIMESTAMP_UNIT),
            "probability": [c["probability"] for c in cards],
            "probability_low": [c["probability_low"] for c in cards],
            "probability_high": [c["probability_high"] for c in cards],
            "score": np.asarray([c["score"] for c in cards], dtype=np.int64),
            "mql": np.asarray([c["mql"] for c in cards], dtype=bool),
            "threshold": [c["threshold"] for c in cards],
            "grade": [c["grade"] for c in cards],
            "raw_score": [c["raw_score"] for c in cards],
            "top_positive_reasons": [
                _join(c["reasons"]["positive"], "sentence", " | ") for c in cards
            ],
            "top_negative_reasons": [
                _join(c["reasons"]["negative"], "sentence", " | ") for c in cards
            ],
            "top_positive_features": [
                _join(c["reasons"]["positive"], "feature", ";") for c in cards
            ],
            "top_negative_features": [
                _join(c["reasons"]["negative"], "feature", ";") for c in cards
            ],
            "next_best_actions": [_join(c["next_best_actions"], "action", ";") for c in cards],
            "next_best_action_scores": [_join(c["next_best_actions"], "score", ";") for c in cards],
            "next_best_action_sentences": [
                _join(c["next_best_actions"], "sentence", " | ") for c in cards
            ],
            "top_positive_signal": [_first(c["reasons"]["positive"], "signal") for c in cards],
            "top_negative_signal": [_first(c["reasons"]["negative"], "signal") for c in cards],
            "model_name": served.name,
            "model_version": served.version,
        }
    )


@dataclass(frozen=True)
class ScoringRun:
    """One batch scoring run: the scores written, and what a reader should know about them.

    Attributes:
        scores: The frame written (see ``OUTPUT_COLUMNS``), highest probability first.
        as_of: The moment scored at.
        open_leads: Leads that existed and had not converted at ``as_of``.
        skipped: Open leads outside the model's population (``BundleMetadata.population``),
            left unscored: the model and its MQL threshold were not fitted on such leads.
        population: The model's eligibility rule (None: not recorded, every open lead).
        policy_rule: ``capacity`` or ``precision``.
        policy_target: The MQL share (capacity) or precision the threshold was chosen for.
        stored: What writing the run into the lead store did (None: not stored).
    """

    scores: pd.DataFrame
    as_of: pd.Timestamp
    open_leads: int
    skipped: int
    population: Population | None
    policy_rule: str
    policy_target: float
    stored: RunWritten | None = None

    @property
    def mql_share(self) -> float | None:
        """Share of the scored leads that are MQLs (None: nothing was scored)."""
        return float(self.scores["mql"].mean()) if len(self.scores) else None

    def summary(self) -> str:
        """``MQLs: 9.8% of 12,345 scored leads (policy target: 10% capacity)``."""
        share = "-" if self.mql_share is None else f"{self.mql_share:.1%}"
        return (
            f"MQLs: {share} of {len(self.scores):,} scored leads "
            f"(policy target: {self.policy_target * 100:.4g}% {self.policy_rule})"
        )

    def skipped_note(self) -> str | None:
        """Why some open leads were not scored (None: none were skipped)."""
        if not self.skipped or self.population is None:
            return None
        return (
            f"skipped {self.skipped:,} of {self.open_leads:,} open leads outside the "
            f"population the model was trained on ({self.population.describe()})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The run's facts, JSON-ready (``leadscore score --json``)."""
        return {
            "as_of": self.as_of.isoformat(),
            "open_leads": self.open_leads,
            "leads": len(self.scores),
            "skipped_outside_population": self.skipped,
            "population": None if self.population is None else self.population.model_dump(),
            "mqls": int(self.scores["mql"].sum()) if len(self.scores) else 0,
            "mql_share": self.mql_share,
            "policy": {"rule": self.policy_rule, "target": self.policy_target},
            "store": None
            if self.stored is None
            else {
                "run_id": self.stored.run_id,
                "scores": self.stored.scores,
                "entered_mql": self.stored.entered,
                "left_mql": self.stored.left,
            },
        }

    def stored_note(self) -> str | None:
        """``stored run 4: 1,234 scores, 56 new MQLs, 12 left MQL`` (None: not stored)."""
        if self.stored is None:
            return None
        w = self.stored
        return (
            f"stored run {w.run_id} in the lead store: {w.scores:,} scores, "
            f"{w.entered:,} new MQLs, {w.left:,} left MQL"
        )


def score_run(
    data_dir: str | Path,
    out_file: str | Path,
    as_of: str | pd.Timestamp | None,
    bundle: ServedModel | ModelBundle,
    unknown_activity: UnknownActivity = "reject",
    top: int = TOP_REASONS,
    actions: int = TOP_ACTIONS,
    store: Engine | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> ScoringRun:
    """Score the open leads in the model's population at ``as_of``; write the scores atomically.

    Open leads outside the population the model was trained on (``features.eligibility``,
    recorded in its metadata) are skipped and counted; the run reports its MQL share
    beside the policy's target.

    Args:
        data_dir: Folder with the contract's four tables (Parquet or CSV).
        out_file: ``.csv`` or ``.parquet`` file to write (replaced atomically).
        as_of: Moment to score at; default: the latest timestamp in the data, i.e. "now"
            for a fresh CRM export.
        bundle: The model (a ``ServedModel`` from the registry, or a bare bundle).
        unknown_activity: ``reject`` or ``other``, as in the feature stage.
        top: Reasons per direction in the output.
        actions: Next best actions per lead in the output (0: none).
        store: An open lead store to write the run into (scores with their whole cards,
            MQL events, lead states), after the file is written; None: the file only.
        tables: The folder's tables, already loaded and validated (a caller scoring
            several dates reads them once); None: read from ``data_dir``.

    Raises:
        features.contract.ContractError: when the folder breaks the data contract.
        serving.leadform.ExtraLeadColumnError: when the leads table lacks one of the
            model's extra lead columns (a ``tables`` config's) or holds values that do
            not type as training typed them.
        ValueError: when ``as_of`` cannot be parsed.
    """
    served = _served(bundle)
    if tables is None:
        tables = load_tables(data_dir, unknown_activity)
    moment = data_window(tables)[1] if as_of is None else parse_moment(as_of)
    population = served.bundle.metadata.population
    snapshots, skipped = _open_snapshots(tables, moment, population)
    scored = score_frame(tables, snapshots, served, top, actions, cards=store is not None)
    scored = scored.sort_values(
        ["probability", "lead_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    policy = served.bundle.policy
    stored = None
    if store is not None:
        cards = scored[["card_reasons", "card_actions"]]
        scored = scored.drop(columns=["card_reasons", "card_actions"])
    write_frame(out_file, scored)
    if store is not None:
        info = RunInfo(
            source="batch",
            as_of=moment,
            model_name=served.name,
            model_version=str(served.version),
            model_alias=served.alias,
            threshold=float(policy.threshold),
            policy_rule=policy.rule,
            policy_target=float(policy.target),
            open_leads=len(snapshots) + skipped,
            skipped=skipped,
            data_location=str(data_dir),
        )
        stored = write_run(store, info, store_frame(scored, cards, tables["leads"]))
    return ScoringRun(
        scores=scored,
        as_of=moment,
        open_leads=len(snapshots) + skipped,
        skipped=skipped,
        population=population,
        policy_rule=policy.rule,
        policy_target=policy.target,
        stored=stored,
    )


def store_frame(scored: pd.DataFrame, cards: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """The lead store's view of a batch's scores: the card as JSON, the lead's region,
    source, creation time and account as the CRM had them (what funnels are grouped and
    accounts are joined by)."""
    attrs = leads.drop_duplicates("lead_id").set_index("lead_id")
    ids = scored["lead_id"]
    frame = scored[
        ["lead_id", "probability", "probability_low", "probability_high", "score", "grade"]
    ].copy()
    frame["mql"] = scored["mql"].astype(bool)
    frame["threshold"] = scored["threshold"]
    for column in ("region", "lead_source", "created_at", "account_id"):
        frame[column] = ids.map(attrs[column]).to_numpy() if column in attrs else None
    frame["reasons"] = cards["card_reasons"].to_numpy()
    frame["next_best_actions"] = cards["card_actions"].to_numpy()
    return frame


def score_folder(
    data_dir: str | Path,
    out_file: str | Path,
    as_of: str | pd.Timestamp | None,
    bundle: ServedModel | ModelBundle,
    unknown_activity: UnknownActivity = "reject",
    top: int = TOP_REASONS,
    actions: int = TOP_ACTIONS,
) -> pd.DataFrame:
    """``score_run``'s scores: one row per open lead in the model's population.

    Returns:
        The frame written, highest probability first.
    """
    return score_run(data_dir, out_file, as_of, bundle, unknown_activity, top, actions).scores


def parse_moment(value: str | pd.Timestamp, option: str = "--as-of") -> pd.Timestamp:
    """A tz-naive UTC timestamp from a date or date-time (tz-aware input is converted)."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{option}: cannot parse {value!r} as a date or time") from exc
    if ts is pd.NaT:
        raise ValueError(f"{option}: cannot parse {value!r} as a date or time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def load_champion(
    tracking_uri: str, name: str = DEFAULT_MODEL_NAME, alias: str = CHAMPION_ALIAS
) -> ServedModel:
    """Download ``name@alias`` from the MLflow registry and load it (for batch scoring).

    Raises:
        serving.model_store.ModelNotAvailableError: when the registry has no such version.
    """
    from runtime import registry
    from serving.model_store import ModelNotAvailableError, quiet_telemetry

    quiet_telemetry()
    try:
        with (
            registry.tracking(tracking_uri) as client,
            tempfile.TemporaryDirectory(prefix="leadscore-score-") as tmp,
        ):
            info = registry.version_info(client, name, alias)
            folder = registry.download_version_bundle(info, Path(tmp) / "bundle")
            bundle = ModelBundle.load(folder)
    except registry.RegistryError as exc:
        raise ModelNotAvailableError(
            f"no model to score with in the MLflow registry at {tracking_uri}: {exc}"
        ) from exc
    return ServedModel(
        bundle=bundle,
        name=name,
        version=info.version,
        alias=alias,
        source="registry",
        run_id=info.run_id,
    )


def score_with_champion(
    data_dir: str | Path,
    out_file: str | Path,
    as_of: str | None,
    tracking_uri: str,
    name: str = DEFAULT_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
    actions: int = TOP_ACTIONS,
    store: Engine | None = None,
) -> ScoringRun:
    """``leadscore score``: score a data folder with the registry's champion (``actions``
    next best actions per lead; 0: none), into the lead ``store`` too when given."""
    champion = load_champion(tracking_uri, name, alias)
    return score_run(data_dir, out_file, as_of, champion, actions=actions, store=store)
