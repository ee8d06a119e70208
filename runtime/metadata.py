"""What a trained model says about itself: the bundle's typed, versioned metadata.

Written by training into the bundle's ``metadata.json`` and read by evaluation,
promotion, the model card, batch scoring and the service. It is validated once when a
bundle is built or loaded; readers then use attributes, so a missing fact is a clear
error at load time rather than a ``KeyError`` in the middle of a request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.catalogue import FeatureSpec
from features.eligibility import Population
from features.metadata import DatasetInfo, IcpProfile, PointsRules, SplitSpec
from leadscore.errors import LeadscoreError
from leadscore.settings import DEFAULT_MODEL_NAME

BUNDLE_FORMAT_VERSION = 2
"""Bundle format: 1 had free-form metadata; 2 has this model. Older bundles are refused."""

RequestForm = Literal["lead", "features"]
"""How the service asks for a lead: the raw ``lead`` (tables-trained models) or its
``features`` (models trained on a ``lead_snapshot`` dataset config)."""


class ModelArtifactError(LeadscoreError, RuntimeError):
    """A model folder is missing, corrupted, or not a leadscore bundle.

    Defined here, below ``runtime.bundle`` (which re-exports it), because reading
    ``metadata.json`` is the first check a bundle's loading makes.
    """


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeriodWindow(_Frozen):
    """One period (train, valid or test) of the split a model was fitted on."""

    first_as_of: str | None = None
    last_as_of: str | None = None
    rows: int
    leads: int
    positives: int | None = None


class SplitWindow(_Frozen):
    """The three periods of the split; iterating gives ``(name, PeriodWindow)`` pairs."""

    train: PeriodWindow
    valid: PeriodWindow
    test: PeriodWindow


class SplitBoundaries(_Frozen):
    """Where the validation and test periods start (``training.split.Boundaries``)."""

    valid_start: str
    test_start: str
    gap_days: int = 0


class TrainingFacts(_Frozen):
    """How the booster was fitted.

    Attributes:
        params: LightGBM parameters used (``metric`` left out).
        best_iteration: Trees kept by early stopping.
        num_boost_round: Upper bound on trees.
        early_stopping_rounds: Patience of early stopping.
        tune_trials: Hyper-parameter trials (0: none).
        tune_best_valid_roc_auc: Best validation ROC AUC of the search, if any.
        engine: ``single`` or ``dask``.
    """

    params: dict[str, Any] = Field(default_factory=dict)
    best_iteration: int | None = None
    num_boost_round: int | None = None
    early_stopping_rounds: int | None = None
    tune_trials: int = 0
    tune_best_valid_roc_auc: float | None = None
    engine: str = "single"


class MonotoneFacts(_Frozen):
    """Whether the booster was fitted with monotone constraints from the signals' directions.

    Attributes:
        mode: What was asked for: ``auto`` (keep them when validation ROC AUC costs at
            most ``tolerance``), ``on`` or ``off``.
        applied: Whether the model in the bundle is constrained.
        constraints: Each constrained feature's direction (1: never lowers the score as
            it grows; -1: never raises it).
        valid_roc_auc_constrained: Validation ROC AUC with the constraints (None: not fitted).
        valid_roc_auc_free: Validation ROC AUC without them (None: not fitted).
        tolerance: Largest validation ROC AUC ``auto`` gives up for them.
        reason: Why they were kept or dropped, in words.
    """

    mode: Literal["auto", "on", "off"] = "off"
    applied: bool = False
    constraints: dict[str, int] = Field(default_factory=dict)
    valid_roc_auc_constrained: float | None = None
    valid_roc_auc_free: float | None = None
    tolerance: float = 0.002
    reason: str = ""


class CandidateFacts(_Frozen):
    """One candidate model of the choice, with its scores.

    Attributes:
        name: ``lightgbm``, ``logistic`` or ``blend``.
        detail: How it was fitted (trees, ``C``, blend weight).
        valid_log_loss: Log loss on the rows the choice was made on (validation period,
            or out-of-fold when cross-fitted), after a cross-fitted Platt map.
        valid_roc_auc: ROC AUC there.
        valid_brier: Brier score there.
        test_log_loss: Test log loss of the candidate calibrated as the registered model
            is (added after evaluation; reported, never used for the choice).
        test_roc_auc: Test ROC AUC.
        test_brier: Test Brier score.
    """

    name: str
    detail: str = ""
    valid_log_loss: float | None = None
    valid_roc_auc: float | None = None
    valid_brier: float | None = None
    test_log_loss: float | None = None
    test_roc_auc: float | None = None
    test_brier: float | None = None


class ModelChoice(_Frozen):
    """Which margin model was registered, among which candidates, and why.

    Attributes:
        kind: Runtime kind of the registered model (``tree``, ``linear``, ``blend``).
        chosen: The winning candidate's name.
        scheme: ``holdout`` (one validation period) or ``crossfit`` (K folds over train +
            validation, refitted on all of it).
        folds: Folds of the cross-fitting (0 for holdout).
        reason: The card's sentence on why it won.
        candidates: Every candidate with its scores.
        logistic_c: Inverse L2 strength of the logistic model (chosen by CV).
        blend_weight: Weight of the trees in the blend candidate.
    """

    kind: str = "tree"
    chosen: str = "lightgbm"
    scheme: Literal["holdout", "crossfit"] = "holdout"
    folds: int = 0
    reason: str = ""
    candidates: tuple[CandidateFacts, ...] = ()
    logistic_c: float | None = None
    blend_weight: float | None = None


class PolicySettings(_Frozen):
    """The MQL rule training was asked for (the fitted values are in ``policy.json``)."""

    rule: str
    target: float
    per_region: bool = False


def request_form_of(dataset: DatasetInfo | None, snapshot_rule: str | None) -> RequestForm:
    """``features`` for a model trained on a ``lead_snapshot`` dataset config, else ``lead``."""
    snapshot = (
        dataset is not None and dataset.kind == "lead_snapshot"
    ) or snapshot_rule == "lead_snapshot"
    return "features" if snapshot else "lead"


class BundleMetadata(_Frozen):
    """``metadata.json`` of a model bundle.

    Attributes:
        format_version: Bundle format (``BUNDLE_FORMAT_VERSION`` when written).
        model_name: Registered model name it was trained for.
        created_at: When it was trained (UTC, ISO 8601).
        request_form: What the service asks for to score a lead (see ``RequestForm``).
        horizon_days: Label horizon of its training set (None: a lead snapshot export).
        snapshot_rule: Snapshot rule of its training set.
        max_lead_age_days: Age beyond which its training set stopped snapshotting a lead
            (None: not recorded, or a lead snapshot export). Part of the population its
            labels were drawn from, which promotion compares.
        data_fingerprint: Hash of the training frame it was fitted on.
        source_fingerprint: Fingerprint recorded in the training set's own metadata.
        rows_total: Snapshots in the training set.
        window: First/last ``as_of``, rows, leads and positives per period.
        boundaries: Period starts, to cut the same test period again.
        dropped_rows: Snapshots in no period.
        population_rows: Open leads per period (``valid``, ``test``).
        calibration_method: ``isotonic``, ``platt``, ``beta`` or ``none``.
        calibration_fallback: Why the calibration is not the one asked for (``auto``
            left out a candidate whose fit would not rise with the margin); None if it is.
        calibration_requested: The method training was asked for (``auto`` included;
            None: not recorded, as in older bundles).
        calibration_cv_log_loss: Cross-validated log loss of each candidate ``auto``
            compared on the calibration rows (empty: an explicit method, or older bundles).
        calibration_min_block_rows: The smallest evidence block allowed (None: not
            recorded).
        calibration_block_rows: Rows of each evidence block (isotonic blocks on the
            calibration rows, lowest margin first), whichever method was chosen.
        training: How the booster was fitted.
        policy_config: The MQL rule asked for.
        features: Model columns, in order.
        catalogue: A dataset config's features (empty: the built-in catalogue).
        split_spec: A dataset config's split (None: the pipeline's time split).
        points_rules: A dataset config's points-based score.
        dataset: The dataset config the training set came from.
        test_metrics: Test metrics per scorer, added after evaluation.
        test_metrics_by_region: Model test metrics per region.
        population: The leads it was trained on and is meant to score (None: not
            recorded, as in older bundles and ``lead_snapshot`` models: no rule applies).
        icp: The ideal customer profile of its ``icp_*`` features (None: the catalogue's).
        monotone: Monotone constraints: asked, applied, and the validation AUC with and
            without them (None: not recorded, as in older bundles).
        model_choice: The registered margin model, the candidates and why it won
            (older bundles: a LightGBM model chosen on a validation period).
    """

    format_version: int = BUNDLE_FORMAT_VERSION
    model_name: str = DEFAULT_MODEL_NAME
    created_at: str | None = None
    request_form: RequestForm = "lead"
    horizon_days: int | None = None
    snapshot_rule: str | None = None
    max_lead_age_days: int | None = None
    data_fingerprint: str | None = None
    source_fingerprint: str | None = None
    rows_total: int = 0
    window: SplitWindow | None = None
    boundaries: SplitBoundaries | None = None
    dropped_rows: int = 0
    population_rows: dict[str, int] = Field(default_factory=dict)
    calibration_method: str | None = None
    calibration_fallback: str | None = None
    calibration_requested: str | None = None
    calibration_cv_log_loss: dict[str, float] = Field(default_factory=dict)
    calibration_min_block_rows: int | None = None
    calibration_block_rows: tuple[int, ...] = ()
    training: TrainingFacts = Field(default_factory=TrainingFacts)
    policy_config: PolicySettings | None = None
    features: tuple[str, ...] = ()
    catalogue: tuple[FeatureSpec, ...] = ()
    split_spec: SplitSpec | None = None
    points_rules: PointsRules | None = None
    dataset: DatasetInfo | None = None
    test_metrics: dict[str, Any] = Field(default_factory=dict)
    test_metrics_by_region: dict[str, Any] = Field(default_factory=dict)
    population: Population | None = None
    icp: IcpProfile | None = None
    monotone: MonotoneFacts | None = None
    model_choice: ModelChoice = Field(default_factory=ModelChoice)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form written to ``metadata.json``."""
        return self.model_dump(mode="json", fallback=str)

    @classmethod
    def from_json(cls, payload: object, source: object) -> BundleMetadata:
        """Read ``metadata.json``, refusing any other format.

        Raises:
            ModelArtifactError: the format version is not ours or the content does not
                match it; the message says to retrain.
        """
        version = payload.get("format_version") if isinstance(payload, dict) else None
        if version != BUNDLE_FORMAT_VERSION:
            raise ModelArtifactError(
                f"{source} has artifact format {version!r}; this leadscore reads format "
                f"{BUNDLE_FORMAT_VERSION}: retrain the model with this leadscore "
                "(leadscore train) to get a bundle it can load"
            )
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "metadata"
            raise ModelArtifactError(
                f"{source}: malformed metadata.json ({exc.error_count()} problem(s), e.g. "
                f"{where}: {error['msg']}); retrain the model with this leadscore"
            ) from exc
