"""What a training set says about itself: typed, versioned metadata.

The feature stage writes it (inside the Parquet file and as a JSON sidecar), dataset
configs build it in memory, and training, evaluation, serving and the CLI read it. One
model instead of a free dict means a reader gets an attribute or a clear error, never a
``KeyError`` half-way through a run, and a file written in another format is refused up
front with what to do about it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.actions import ActionSpec
from features.catalogue import FeatureSpec, SignalSpec
from features.eligibility import Population
from leadscore.errors import LeadscoreError

TRAINING_SET_FORMAT_VERSION = 1
"""Bump when a training set's metadata changes shape; older files are then refused."""

DatasetKind = Literal["tables", "lead_snapshot"]
SplitKind = Literal["time", "stratified"]
DataEndRule = Literal["given", "latest", "before_export", "before_outliers"]
"""How a build's data end was chosen (``features.pipeline.resolve_window``):

* ``given``: stated by the user (``--data-end``).
* ``latest``: the latest timestamp in the data; nothing lies after it.
* ``before_export``: the latest timestamp not after the export time; later rows (dated
  in the future of the export) were left out.
* ``before_outliers``: the latest timestamp before a tiny, isolated tail of outliers
  (and not after the export time); the tail was left out.
"""


class TrainingSetFormatError(LeadscoreError, ValueError):
    """A training set was written in a metadata format this leadscore does not read."""


class _Frozen(BaseModel):
    """Immutable, and refuses keys it does not know (a typo is an error, not ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _Lenient(BaseModel):
    """Immutable, for blocks copied from a user's config: keys we do not use are dropped
    (they were ignored before; refusing them here would break a working config)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class OutcomeInfo(_Lenient):
    """How a ``lead_snapshot`` config decides that a lead converted.

    Attributes:
        in_file: File (name only) listing converted ids, when the outcome is a second file.
        column: Outcome column (or the id column of ``in_file``).
        positive: Values of ``column`` that mean converted.
    """

    in_file: str | None = None
    column: str | int | None = None
    positive: tuple[Any, ...] | None = None


class DatasetInfo(_Lenient):
    """The dataset config a training set came from (``features.dataset_config``).

    Attributes:
        name: The config's name.
        kind: ``tables`` (mapped onto the contract's tables) or ``lead_snapshot`` (one
            row per lead, no activity log).
        config: Path of the config on the machine that built the training set.
        id: ``lead_snapshot``: the id column (None: rows are numbered).
        outcome: ``lead_snapshot``: how conversions are read.
        time: ``lead_snapshot``: the column holding each lead's scoring time.
        as_of: ``lead_snapshot``: one fixed scoring time for every lead.
        lead_columns: ``tables``: each extra lead feature's column in the leads table
            (batch scoring reads it there, as training did).
        actions: The next best actions the config declared (``actions:``); None when it
            declared none (a ``tables`` model then has the built-in ones).
    """

    name: str
    kind: DatasetKind
    config: str | None = None
    id: str | int | None = None
    outcome: OutcomeInfo | None = None
    time: str | None = None
    as_of: str | None = None
    lead_columns: dict[str, str] | None = None
    actions: tuple[ActionSpec, ...] | None = None


class SplitSpec(_Lenient):
    """A dataset config's split (``training.split.split_from_spec`` cuts it).

    Attributes:
        kind: ``stratified`` (random hold-out) or ``time`` (test = rows at or after ``at``).
        at: ``time``: the first test date, ``YYYY-MM-DD``.
        test_fraction: ``stratified``: share of rows held out for the test.
        valid_fraction: Share of the training side used for validation.
        seed: Seed of the random cuts.
    """

    kind: SplitKind
    at: str | None = None
    test_fraction: float | None = None
    valid_fraction: float = 0.2
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The plain form ``split_from_spec`` takes (unset entries left out)."""
        return self.model_dump(exclude_none=True)


class PointsRules(_Frozen):
    """A dataset config's points-based score, the baseline the model is compared with.

    Attributes:
        threshold: Points at which a lead is an MQL.
        rules: One mapping per rule (``feature`` plus ``values``, ``per`` or ``at_least``),
            as ``training.baselines.RulePoints`` reads them.
    """

    threshold: float = 50.0
    rules: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The plain form ``RulePoints.from_dict`` takes."""
        return {"threshold": self.threshold, "rules": [dict(r) for r in self.rules]}


class RowsAfterEnd(_Frozen):
    """Rows of one timestamp column dated after the data end (left out of the build).

    Attributes:
        table: The contract's table.
        column: Its timestamp column.
        count: Rows after the data end.
        examples: A few of their keys (``lead_id=...``).
    """

    table: str
    column: str
    count: int
    examples: tuple[str, ...] = ()


class IcpProfile(_Frozen):
    """The ideal customer profile behind a training set's ``icp_*`` features.

    Recorded so that every place computing features for a model built on it (batch
    scoring, the service) uses the same profile (``features.pipeline.icp_of``).

    Attributes:
        industries: Industries in the profile.
        size_bands: Company size bands in it.
        seniorities: Seniorities in it.
    """

    industries: tuple[str, ...]
    size_bands: tuple[str, ...]
    seniorities: tuple[str, ...]


class TrainingSetMetadata(_Frozen):
    """What a reader needs to trust a training set.

    Every field has a default, so a bare frame (no metadata at all) is
    ``TrainingSetMetadata()``. The pipeline fills the window, counts and rule; a dataset
    config adds its catalogue, split, points, ``train`` settings and dataset facts.

    Attributes:
        format_version: Metadata format (``TRAINING_SET_FORMAT_VERSION`` when written).
        horizon_days: Label horizon (None for a ``lead_snapshot`` config).
        snapshot_rule: ``monthly``, ``weekly``, ``after_creation`` or ``lead_snapshot``.
        snapshot_offsets_days: Days after creation of the ``after_creation`` rule.
        max_lead_age_days: Age beyond which calendar rules stop snapshotting a lead.
        data_start: First lead creation in the data.
        data_end: Last moment the data covers: no label window runs past it, and rows
            after it are left out (``rows_after_data_end``).
        data_end_rule: How ``data_end`` was chosen (see ``DataEndRule``).
        export_time: The export time a default data end was bounded by, when one was
            given (None: the build's own clock, or a data end given outright).
        latest_timestamp: The latest timestamp anywhere in the input, after the data end
            when rows were left out.
        rows_after_data_end: Per timestamp column, the rows dated after the data end.
        first_as_of: Earliest snapshot time.
        last_as_of: Latest snapshot time.
        rows: Snapshots.
        positives: Snapshots that converted within the horizon.
        leads: Distinct leads.
        activities: Activities in the input tables up to the data end.
        features: Feature columns, in model order.
        fingerprint: Hash of the frame, added when the training set is written.
        dataset: The dataset config it came from, if any.
        catalogue: A dataset config's features (empty: the built-in catalogue).
        signals: A dataset config's feature families (empty: the catalogue's, and one
            signal per other feature).
        split: A dataset config's split (None: the pipeline's time split).
        points: A dataset config's points-based score.
        train: A dataset config's ``train`` settings, as the config gave them. They are
            typed by the training stage's own ``training.config.TrainConfig`` (this stage
            cannot import it), which reports every wrong key when the config is loaded.
        excluded: Columns a dataset config excluded, as it declared them.
        population: The eligibility rule its snapshots were planned with (None: not a
            snapshot pipeline, e.g. a ``lead_snapshot`` config).
        icp: The ideal customer profile of its ``icp_*`` features (None: the catalogue's).
    """

    format_version: int = TRAINING_SET_FORMAT_VERSION
    horizon_days: int | None = None
    snapshot_rule: str | None = None
    snapshot_offsets_days: tuple[int, ...] | None = None
    max_lead_age_days: int | None = None
    data_start: str | None = None
    data_end: str | None = None
    data_end_rule: DataEndRule | None = None
    export_time: str | None = None
    latest_timestamp: str | None = None
    rows_after_data_end: tuple[RowsAfterEnd, ...] = ()
    first_as_of: str | None = None
    last_as_of: str | None = None
    rows: int | None = None
    positives: int | None = None
    leads: int | None = None
    activities: int | None = None
    features: tuple[str, ...] = ()
    fingerprint: str | None = None
    dataset: DatasetInfo | None = None
    catalogue: tuple[FeatureSpec, ...] = ()
    signals: tuple[SignalSpec, ...] = ()
    split: SplitSpec | None = None
    points: PointsRules | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    excluded: tuple[Any, ...] = ()
    population: Population | None = None
    icp: IcpProfile | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as written to the sidecar and into the Parquet file."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, payload: object, source: object) -> TrainingSetMetadata:
        """Read metadata written by ``to_json``, refusing any other format.

        Args:
            payload: The parsed JSON.
            source: The file it came from, named in the error.

        Raises:
            TrainingSetFormatError: the format version is not ours, or the content does
                not match it; the message says to rebuild the training set.
        """
        version = payload.get("format_version") if isinstance(payload, dict) else None
        rebuild = (
            "rebuild it with this leadscore (leadscore features, or load the dataset config again)"
        )
        if version != TRAINING_SET_FORMAT_VERSION:
            raise TrainingSetFormatError(
                f"{source} was written in training-set format {version!r}; this leadscore "
                f"reads format {TRAINING_SET_FORMAT_VERSION}: {rebuild}"
            )
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise TrainingSetFormatError(
                f"{source} has malformed training-set metadata ({exc.error_count()} "
                f"problem(s): {_first_problem(exc)}): {rebuild}"
            ) from exc


def _first_problem(exc: ValidationError) -> str:
    """The first problem of a validation error, as ``location: message``."""
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or 'metadata'}: {error['msg']}"
