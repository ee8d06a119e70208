"""Champion/challenger promotion: move ``champion`` only to a model that is better now.

Both versions are re-scored on the **same latest test period**: the challenger's test
snapshots. By default those come from the challenger's run (``evaluation/test_set.parquet``
is logged with every run); pass ``data`` (a training set) to re-cut the period from it
instead, with the boundaries stored in the challenger's metadata (or, for a model trained
from a dataset config, its ``split`` spec: a stratified hold-out is cut again exactly).
Only models that predict the same thing are compared: the same label horizon, the same
outcome and the same population of snapshots (snapshot rule, maximum lead age), read from
each bundle's metadata; otherwise promotion is refused, naming the difference. The
challenger wins only when it is strictly better than the champion by more than
``margin`` (a tie keeps the champion: nothing says the challenger is better); ``force``
promotes regardless. Given several ``metrics`` (``leadscore retrain`` compares log loss and
ROC AUC), the challenger must be better on every one of them: a model that ranks better
but is worse calibrated, or the reverse, does not replace the one in service. The
decision and both scores are recorded as tags on the challenger version (and the latest
decision on the registered model), so the registry itself tells why a version is or is
not in production. Concurrent promotions on one embedded store run one after the other (a
file lock beside ``mlflow.db``), and no promotion moves a champion that moved while it was deciding.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from leadscore.errors import LeadscoreError
from runtime import registry
from runtime.bundle import ModelBundle
from runtime.metadata import BundleMetadata
from training.data import TrainingData, load_training_data
from training.metrics import HIGHER_IS_BETTER, classifier_metrics
from training.split import Boundaries, apply_boundaries, split_from_spec

TEST_SET_ARTIFACT = "evaluation/test_set.parquet"


class PromotionError(LeadscoreError, RuntimeError):
    """Promotion could not be decided (e.g. the test period cannot be rebuilt)."""


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` decided and why.

    Attributes:
        decision: ``first`` (no champion before), ``promoted``, ``forced``,
            ``rejected`` or ``already_champion``.
        promoted: Whether ``champion`` now points at the challenger.
        metric: Metric compared.
        margin: Required improvement.
        challenger_version: The challenger's version.
        champion_version: The champion's version before the decision (None if none).
        challenger_score: Challenger's metric on the test period.
        champion_score: Champion's metric on the same snapshots (None if no champion).
        rows: Snapshots both were scored on.
        window: First and last ``as_of`` of those snapshots.
        warning: Set when the comparison may be unfair (e.g. the champion was trained on
            snapshots inside the test period) or, when forced, could not be made.
        reason: The decision in words (a tie says so).
        scores: Per metric compared, ``{"challenger": ..., "champion": ...}`` on the
            same snapshots (the champion's None when it was not scored).
        challenger_model: The challenger's chosen candidate (``points``, ``lightgbm``, ...).
        champion_model: The champion's (None if no champion).
    """

    decision: str
    promoted: bool
    metric: str
    margin: float
    challenger_version: str
    champion_version: str | None
    challenger_score: float | None
    champion_score: float | None
    rows: int
    window: tuple[str, str] | None
    warning: str | None = None
    reason: str | None = None
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    challenger_model: str | None = None
    champion_model: str | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics compared (the first is ``metric``)."""
        return tuple(self.scores) or (self.metric,)

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def better(challenger: float, champion: float, metric: str, margin: float) -> bool:
    """Whether ``challenger`` beats ``champion`` by more than ``margin`` on ``metric``.

    Strictly: with the default margin 0 a tie is not an improvement, and promotion
    promises only a better model.
    """
    if HIGHER_IS_BETTER[metric]:
        return challenger > champion + margin
    return challenger < champion - margin


def _horizon_text(metadata: BundleMetadata) -> str:
    days = metadata.horizon_days
    return f"within {days} days" if days is not None else "with no fixed horizon (an export)"


def _outcome_text(metadata: BundleMetadata) -> str:
    outcome = metadata.dataset.outcome if metadata.dataset else None
    if outcome is None:
        return "the conversions of the lead tables"
    if outcome.in_file is not None:
        return f"ids listed in {outcome.in_file} (column {outcome.column})"
    values = ", ".join(str(v) for v in outcome.positive or ()) or "true"
    return f"column {outcome.column} in ({values})"


def label_differences(
    champion: BundleMetadata, challenger: BundleMetadata
) -> list[tuple[str, str]]:
    """How the two models' label definitions differ (empty: they can be compared).

    A label is "converted within the horizon" for a snapshot of a lead in the model's
    population; scoring a 60-day model on 90-day labels (or a model of young leads on
    old ones) says nothing about which is better. The maximum lead age is compared
    only when both bundles record it (older bundles do not).

    Returns:
        Per difference, what the champion does and what the challenger does instead,
        e.g. ``("predicts conversion within 60 days", "within 90 days")``.
    """
    out: list[tuple[str, str]] = []
    if champion.horizon_days != challenger.horizon_days:
        out.append((f"predicts conversion {_horizon_text(champion)}", _horizon_text(challenger)))
    if _outcome_text(champion) != _outcome_text(challenger):
        out.append((f"counts as converted {_outcome_text(champion)}", _outcome_text(challenger)))
    if champion.snapshot_rule != challenger.snapshot_rule:
        out.append(
            (
                f"was trained on {champion.snapshot_rule or 'unrecorded'} snapshots",
                f"on {challenger.snapshot_rule or 'unrecorded'} snapshots",
            )
        )
    old, new = champion.max_lead_age_days, challenger.max_lead_age_days
    if old is not None and new is not None and old != new:
        out.append((f"was trained on leads up to {old} days old", f"up to {new} days old"))
    return out


def _incomparable(
    champion: registry.VersionInfo,
    challenger: registry.VersionInfo,
    differences: list[tuple[str, str]],
) -> str:
    said = "; ".join(
        f"champion v{champion.version} {old}, challenger v{challenger.version} {new}"
        for old, new in differences
    )
    return f"{said}: they cannot be compared on the same labels"


def _reason(challenger: float, champion: float, metric: str, margin: float, promoted: bool) -> str:
    """The decision in words: promoted, a tie, or not better by more than the margin."""
    scores = f"challenger {metric} {challenger:.6g}, champion {champion:.6g}"
    if promoted:
        return f"{scores}: the challenger is better by more than the margin {margin:g}"
    if challenger == champion:
        return (
            f"tie ({scores}): a tie does not promote, the challenger must be strictly "
            f"better by more than the margin {margin:g}"
        )
    return f"{scores}: the challenger is not better by more than the margin {margin:g}"


def _test_frame(
    client, info: registry.VersionInfo, bundle: ModelBundle, data: TrainingData | None
) -> pd.DataFrame:
    if data is not None:
        boundaries = bundle.metadata.boundaries
        split_spec = bundle.metadata.split_spec
        if not boundaries and not split_spec:
            raise PromotionError(
                f"version {info.version} has no split boundaries in its "
                "metadata; promote without data to use its logged test set"
            )
        frame = load_training_data(data).frame
        if split_spec:  # a dataset config's split (stratified or at a date): cut it again
            try:
                test = split_from_spec(frame, split_spec.as_dict()).test
            except ValueError as exc:
                raise PromotionError(
                    f"cannot cut the challenger's {split_spec.kind} "
                    f"hold-out from the given data: {exc}"
                ) from exc
        else:
            test = apply_boundaries(frame, Boundaries.from_dict(boundaries.model_dump())).test
        if test.empty:
            start = (boundaries.test_start if boundaries else None) or (
                split_spec.at if split_spec else None
            )
            raise PromotionError(
                f"the given data has no snapshots in the challenger's test period (from {start})"
            )
        return test
    return _logged_test_set(client, info)


def _logged_test_set(client, info: registry.VersionInfo) -> pd.DataFrame:
    """The test set logged with a version's training run."""
    if not info.run_id:
        raise PromotionError(f"version {info.version} has no run to read its test set from")
    with tempfile.TemporaryDirectory(prefix="leadscore-promote-") as tmp:
        try:
            path = client.download_artifacts(info.run_id, TEST_SET_ARTIFACT, tmp)
        except mlflow.exceptions.MlflowException as exc:
            raise PromotionError(
                f"run {info.run_id} has no {TEST_SET_ARTIFACT}; pass the "
                "training set as data to rebuild the test period"
            ) from exc
        return pd.read_parquet(path)


def _missing_features(bundle: ModelBundle, test: pd.DataFrame) -> list[str]:
    """Features the bundle reads that the test frame lacks."""
    return [name for name in bundle.spec.names if name not in test.columns]


def _scores(bundle: ModelBundle, test: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float]:
    """The bundle's ``metrics`` on the test snapshots (one scoring for all of them)."""
    y = test["label"].to_numpy(dtype=np.int64)
    if y.sum() == 0 or y.sum() == len(y):
        raise PromotionError(
            "the test period must hold conversions and non-conversions to compare models"
        )
    computed = classifier_metrics(y, bundle.predict_proba(test))
    return {metric: float(computed[metric]) for metric in metrics}


def _reason_all(
    challenger: dict[str, float], champion: dict[str, float], margin: float, promoted: bool
) -> str:
    """The decision on several metrics in words: each compared, and the rule."""
    parts = []
    for metric, value in challenger.items():
        won = better(value, champion[metric], metric, margin)
        verdict = "better" if won else ("tie" if value == champion[metric] else "not better")
        parts.append(
            f"{metric} challenger {value:.6g}, champion {champion[metric]:.6g} ({verdict})"
        )
    said = "; ".join(parts)
    names = " and ".join(challenger)
    if promoted:
        return f"{said}: the challenger is better on {names} by more than the margin {margin:g}"
    return (
        f"{said}: the challenger must be better on {names} by more than the margin "
        f"{margin:g}, so the champion stays"
    )


def _overlap_warning(
    champion: ModelBundle, test: pd.DataFrame, client=None, info: registry.VersionInfo | None = None
) -> str | None:
    split_spec = champion.metadata.split_spec
    if split_spec is not None and split_spec.kind == "stratified":
        return _held_out_warning(client, info, test)
    window = champion.metadata.window
    seen = [w.last_as_of for w in (window.train, window.valid)] if window else []
    seen = [pd.Timestamp(s) for s in seen if s]
    if seen and max(seen) >= pd.Timestamp(test["as_of"].min()):
        return (
            "the champion was fitted on snapshots up to "
            f"{max(seen).date()}, inside the challenger's test period: its score is "
            "optimistic"
        )
    return None


def _held_out_warning(client, info: registry.VersionInfo | None, test: pd.DataFrame) -> str | None:
    """For a champion with a stratified (random) hold-out: were all the challenger's test
    leads in the champion's own hold-out? Dates say nothing there (often every row has
    the same ``as_of``); the champion's logged test set does."""
    if client is None or info is None:
        return None
    try:
        held = set(_logged_test_set(client, info)["lead_id"].astype(str))
    except PromotionError:
        return (
            "the champion's own hold-out could not be read, so it may have been "
            "fitted on some of the challenger's test leads: its score may be optimistic"
        )
    unseen = int((~test["lead_id"].astype(str).isin(held)).sum())
    if unseen:
        return (
            f"{unseen:,} of the challenger's {len(test):,} test leads were not in the "
            "champion's own hold-out: the champion may have been fitted on them, so its "
            "score is optimistic"
        )
    return None


def _judge(
    champion: registry.VersionInfo,
    champion_bundle: ModelBundle,
    challenger: registry.VersionInfo,
    challenger_bundle: ModelBundle,
    test: pd.DataFrame,
    challenger_scores: dict[str, float],
    *,
    margin: float,
    force: bool,
    client,
) -> tuple[str, str, dict[str, float] | None, str | None]:
    """Decide between two loaded versions: decision, reason, champion scores, warning.

    The challenger must beat the champion on every metric of ``challenger_scores``.

    A comparison that cannot be made fairly (other labels) or at all (a feature the
    test set lacks) is refused, unless ``force`` asks to promote regardless: then the
    champion is not scored and the warning says why.

    Raises:
        PromotionError: naming the difference or the missing feature, without ``force``.
    """
    differences = label_differences(champion_bundle.metadata, challenger_bundle.metadata)
    missing = _missing_features(champion_bundle, test)
    if differences:
        problem = _incomparable(champion, challenger, differences)
    elif missing:
        problem = (
            f"champion v{champion.version} needs feature(s) {', '.join(missing)}, which "
            f"the test set of challenger v{challenger.version} lacks: it cannot be scored "
            "on the same snapshots"
        )
    else:
        problem = None
    if problem is not None:
        if not force:
            raise PromotionError(f"{problem}; retrain one or promote with --force")
        return "forced", f"forced without a comparison: {problem}", None, problem
    champion_scores = _scores(champion_bundle, test, list(challenger_scores))
    warning = _overlap_warning(champion_bundle, test, client, champion)
    won = all(
        better(value, champion_scores[metric], metric, margin)
        for metric, value in challenger_scores.items()
    )
    if len(challenger_scores) == 1:
        ((metric, value),) = challenger_scores.items()
        reason = _reason(value, champion_scores[metric], metric, margin, won)
    else:
        reason = _reason_all(challenger_scores, champion_scores, margin, won)
    if won:
        return "promoted", reason, champion_scores, warning
    if force:
        return "forced", f"forced: {reason}", champion_scores, warning
    return "rejected", reason, champion_scores, warning


def _record(client, name: str, result: PromotionResult) -> None:
    tags = {
        "promotion.decision": result.decision,
        "promotion.metric": result.metric,
        "promotion.margin": str(result.margin),
        "promotion.challenger_score": str(result.challenger_score),
        "promotion.champion_score": str(result.champion_score),
        "promotion.champion_version": str(result.champion_version),
        "promotion.rows": str(result.rows),
        "promotion.at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if result.window:
        tags["promotion.window"] = f"{result.window[0]} … {result.window[1]}"
    if result.warning:
        tags["promotion.warning"] = result.warning
    if result.reason:
        tags["promotion.reason"] = result.reason[:5000]
    if result.scores:
        tags["promotion.metrics"] = ",".join(result.scores)
        tags["promotion.scores"] = json.dumps(result.scores)
    for side, model in (
        ("challenger", result.challenger_model),
        ("champion", result.champion_model),
    ):
        if model:
            tags[f"promotion.{side}_model"] = model
    for key, value in tags.items():
        client.set_model_version_tag(name, result.challenger_version, key, value)
    client.set_registered_model_tag(name, "promotion.last", json.dumps(result.to_dict()))


def _champion_unchanged(client, name: str, seen: registry.VersionInfo | None) -> None:
    """Refuse to promote when the champion moved while this decision was being made."""
    try:
        now = registry.version_info(client, name, registry.CHAMPION).version
    except registry.AliasNotFoundError:
        now = None
    if now != (seen.version if seen else None):
        raise PromotionError(
            f"the champion moved to version {now} while this promotion "
            "ran; nothing was changed: run leadscore promote again"
        )


def promote(
    tracking_uri: str | None = None,
    *,
    model_name: str = registry.DEFAULT_MODEL_NAME,
    store_dir: str | Path = ".",
    metric: str = "roc_auc",
    margin: float = 0.0,
    force: bool = False,
    data: TrainingData | None = None,
    metrics: Sequence[str] | None = None,
) -> PromotionResult:
    """Move ``champion`` to the current ``challenger`` if it is better on the latest period.

    Args:
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI`` or the
            embedded store in ``store_dir``).
        model_name: Registered model name.
        store_dir: Folder of the embedded store.
        metric: Metric compared (``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``, ``ece``,
            ``lift_top10``, ...).
        margin: How much better the challenger must be (in the metric's units).
        force: Promote even when the challenger is not better, or cannot be compared
            (other labels, a champion needing a feature the test set lacks).
        data: Training set to re-cut the challenger's test period from (default: the
            test set logged with the challenger's run).
        metrics: Compare on each of these (the challenger must be better on all; default:
            ``metric`` alone). ``metric`` is the first of them.

    Raises:
        ModelNotFoundError: when nothing is registered under ``model_name``.
        AliasNotFoundError: when no version is the ``challenger``.
        PromotionError: when the test period cannot be rebuilt or scored, when the two
            models' labels differ (horizon, outcome, population) or when the champion
            needs a feature the test set lacks (unless ``force``).
    """
    compared = tuple(dict.fromkeys(metrics)) if metrics else (metric,)
    for name in compared:
        if name not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown metric {name!r}: use one of {sorted(HIGHER_IS_BETTER)}")
    metric = compared[0]
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    uri = registry.resolve_tracking_uri(tracking_uri, store_dir)
    registry.require_store(uri)
    with (
        registry.store_lock(uri),
        registry.tracking(uri) as client,
        tempfile.TemporaryDirectory() as tmp,
    ):
        challenger = registry.version_info(client, model_name, registry.CHALLENGER)
        try:
            champion = registry.version_info(client, model_name, registry.CHAMPION)
        except registry.AliasNotFoundError:
            champion = None
        if champion is not None and champion.version == challenger.version:
            return PromotionResult(
                "already_champion",
                False,
                metric,
                margin,
                challenger.version,
                champion.version,
                None,
                None,
                0,
                None,
                reason=f"version {challenger.version} is already the champion",
            )
        challenger_bundle = ModelBundle.load(
            registry.download_version_bundle(challenger, Path(tmp) / "challenger")
        )
        test = _test_frame(client, challenger, challenger_bundle, data)
        window = (str(test["as_of"].min()), str(test["as_of"].max()))
        missing = _missing_features(challenger_bundle, test)
        if missing:
            raise PromotionError(
                f"challenger v{challenger.version} needs feature(s) "
                f"{', '.join(missing)}, which the test set lacks: pass a training set "
                "that has them as data, or promote without data to use its logged test set"
            )
        challenger_scores = _scores(challenger_bundle, test, compared)
        challenger_score = challenger_scores[metric]
        champion_scores: dict[str, float] | None = None
        champion_score, warning, champion_model = None, None, None
        if champion is None:
            decision = "first"
            reason = "no champion before: the challenger becomes the first champion"
        else:
            champion_bundle = ModelBundle.load(
                registry.download_version_bundle(champion, Path(tmp) / "champion")
            )
            champion_model = champion_bundle.metadata.model_choice.chosen
            decision, reason, champion_scores, warning = _judge(
                champion,
                champion_bundle,
                challenger,
                challenger_bundle,
                test,
                challenger_scores,
                margin=margin,
                force=force,
                client=client,
            )
            champion_score = champion_scores[metric] if champion_scores else None
        promoted = decision != "rejected"
        result = PromotionResult(
            decision,
            promoted,
            metric,
            margin,
            challenger.version,
            champion.version if champion else None,
            challenger_score,
            champion_score,
            len(test),
            window,
            warning,
            reason,
            scores={
                name: {
                    "challenger": value,
                    "champion": champion_scores[name] if champion_scores else None,
                }
                for name, value in challenger_scores.items()
            },
            challenger_model=challenger_bundle.metadata.model_choice.chosen,
            champion_model=champion_model,
        )
        if promoted:
            _champion_unchanged(client, model_name, champion)
            client.set_registered_model_alias(model_name, registry.CHAMPION, challenger.version)
        _record(client, model_name, result)
        return result
