"""What a dataset config may say, as pydantic models, and its problems in plain words.

``DatasetConfig`` is a union on ``kind``: ``TablesConfig`` (files mapped onto the data
contract's four tables) or ``LeadSnapshotConfig`` (one row per lead). The models check
each value on its own (types, allowed words, unknown keys); ``cross_problems`` checks what
spans several sections (duplicate feature names, points rules naming a declared feature).
``validate_config`` runs both and words every problem the way a user reads the config
(``features[3] (lead_source): dtype must be one of category, float, int, bool, got
'text' (did you mean ...?)``). When some values are wrong it still returns a best-effort
config (``salvage``) so the data behind the config can be checked in the same pass.

``train`` stays an opaque mapping here: the training stage types it with its own
``TrainConfig`` (``training.config``), since features may not import training.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails

from features.actions import ActionSpec, action_name, activity_action, feature_action
from features.catalogue import (
    ACTIVITY_TYPES,
    CATALOGUE,
    CATALOGUE_SIGNALS,
    FeatureSpec,
    SignalSpec,
    signal_problems,
)
from features.contract import CONTRACT
from leadscore.errors import LeadscoreError

Kind = Literal["tables", "lead_snapshot"]
Group = Literal["fit", "engagement"]
Dtype = Literal["category", "float", "int", "bool"]
Transform = Literal["dayofweek", "month", "day", "dayofyear", "hour", "weekofyear"]
SplitKind = Literal["time", "stratified"]
KINDS: tuple[str, ...] = get_args(Kind)
GROUPS: tuple[str, ...] = get_args(Group)
DTYPES: tuple[str, ...] = get_args(Dtype)
TRANSFORMS: tuple[str, ...] = get_args(Transform)
SPLIT_KINDS: tuple[str, ...] = get_args(SplitKind)
# The contract's own columns (``features.contract.CONTRACT``), as the words a config may
# map onto: declared once there, so a column added to the contract is mappable here too.
CONTRACT_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(c.name for c in schema.columns) for table, schema in CONTRACT.items()
}
LeadsColumn = Literal[CONTRACT_COLUMNS["leads"]]  # type: ignore[valid-type]
AccountsColumn = Literal[CONTRACT_COLUMNS["accounts"]]  # type: ignore[valid-type]
ActivitiesColumn = Literal[CONTRACT_COLUMNS["activities"]]  # type: ignore[valid-type]
ConversionsColumn = Literal[CONTRACT_COLUMNS["conversions"]]  # type: ignore[valid-type]
RESERVED = ("lead_id", "as_of", "label")
DEFAULT_POSITIVE = (1, "true", "yes")

# What to say when a required section is missing, by its place in the config.
HINTS = {
    "kind": f"which kind of config is this? one of {', '.join(KINDS)}",
    "source": "which file holds one row per lead? give `source: {file: ...}`",
    "source.file": "which file holds one row per lead?",
    "id": "which column identifies a lead? (`id: null` numbers the rows)",
    "outcome": (
        "give `column` and `positive` values, or `in_file` (`file`, `column`): a "
        "lead converted when its id appears there"
    ),
    "features": "declare at least one feature (a list of mappings)",
    "tables": "give leads, activities and conversions (accounts optional), each with "
    "`file` and `columns` (contract column: source column)",
    "tables.*": "give `file` and `columns` (contract column: source column)",
    "split.at": "a time split needs `at: YYYY-MM-DD` (test = rows at or after it)",
}


class DatasetConfigError(LeadscoreError, ValueError):
    """A dataset config or the data it points at is unusable; lists every problem."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: {len(self.problems)} problem(s)\n{lines}")


def did_you_mean(word: object, choices: Sequence[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# Value types: each check words its own problem (read after the key's name).


def _scalar(value: Any) -> Any:
    if not isinstance(value, str | int | float):
        raise ValueError(f"must be text, a number or true/false, got {value!r}")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _day(value: Any) -> str:
    when: Any
    try:
        when = pd.Timestamp(value)
    except (ValueError, TypeError):
        when = pd.NaT
    if pd.isna(when):
        raise ValueError(f"must be a date (YYYY-MM-DD), got {value!r}")
    return str(when.date())


def _moment(value: Any) -> str:
    when: Any
    try:
        when = pd.Timestamp(str(value))
    except ValueError:
        when = pd.NaT
    if pd.isna(when):
        raise ValueError(f"must be a date, got {value!r}")
    return str(value)


def _fraction(value: float) -> float:
    if not 0.0 < value < 0.9:
        raise ValueError(f"must be between 0 and 0.9, got {value}")
    return value


def _template(value: str) -> str:
    if "{value" not in value:
        raise ValueError(f"must contain {{value}}, got {value!r}")
    return value


def _activity_type(value: str) -> str:
    if value not in ACTIVITY_TYPES:
        raise ValueError(
            f"{value!r} is not a known activity type{did_you_mean(value, ACTIVITY_TYPES)}"
        )
    return value


def _column_spec(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


def _none_if_empty(value: Any) -> Any:
    return value or None


Scalar = Annotated[Any, AfterValidator(_scalar)]
Number = Annotated[Any, AfterValidator(_number)]
Day = Annotated[str, BeforeValidator(_day)]
Moment = Annotated[str, BeforeValidator(_moment)]
Fraction = Annotated[float, AfterValidator(_fraction)]
Template = Annotated[str, AfterValidator(_template)]
ActivityType = Annotated[str, AfterValidator(_activity_type)]
Text = Annotated[str, BeforeValidator(str)]


class Section(BaseModel):
    """A part of a config: unknown keys are problems (with a "did you mean")."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadOptions(Section):
    """A file to read and how: separator, encoding, values that mean "missing"."""

    file: str
    sep: str = ","
    encoding: str = "utf-8"
    na_values: list[Scalar] = []


class InFile(ReadOptions):
    """A file whose ids are the converted leads (``column``: the id column there)."""

    column: str | None = None


class Outcome(Section):
    """Which leads converted: a ``column`` and its ``positive`` values, or ``in_file``."""

    column: str | None = None
    positive: list[Scalar] = list(DEFAULT_POSITIVE)
    in_file: InFile | None = None


class TimeColumn(Section):
    """The column holding each lead's scoring time (``time: Column`` is short for it)."""

    column: str
    format: str | None = None


class Excluded(Section):
    """A column left out on purpose, and why (``exclude: [Column]`` is short for it)."""

    column: str
    reason: str | None = None


class Split(Section):
    """How to hold out the test set: ``time`` (rows at or after ``at``) or ``stratified``."""

    kind: SplitKind
    at: Day | None = None
    test_fraction: Fraction | None = None
    valid_fraction: Fraction = 0.2
    seed: int = 0

    def spec(self) -> dict[str, Any]:
        """The split as ``training.split.split_from_spec`` reads it."""
        spec: dict[str, Any] = {"kind": self.kind}
        if self.at is not None:
            spec["at"] = self.at
        if self.test_fraction is not None or self.kind == "stratified":
            spec["test_fraction"] = 0.25 if self.test_fraction is None else self.test_fraction
        return spec | {"valid_fraction": self.valid_fraction, "seed": self.seed}


DEFAULT_SPLIT = {"kind": "stratified", "test_fraction": 0.25, "seed": 0}


class PointsRule(Section):
    """One rule of the points-based baseline (``training.baselines.RulePoints``)."""

    feature: str
    values: dict[Text, Number] | None = None
    per: Number | None = None
    cap: Number | None = None
    at_least: Number | None = None
    points: Number | None = None


class Points(Section):
    """The hand-set points of the points-based baseline, and its MQL threshold."""

    threshold: float = 50.0
    rules: list[PointsRule] = []

    def spec(self) -> dict[str, Any]:
        """The rules as ``training.baselines.RulePoints.from_dict`` reads them."""
        return {
            "threshold": float(self.threshold),
            "rules": [r.model_dump(exclude_unset=True) for r in self.rules],
        }


class ActionConfig(Section):
    """One next best action (``actions:``; see ``features.actions``).

    A ``tables`` config's action is an activity type the lead could do now
    (``{activity: demo_request}``); a ``lead_snapshot`` config's is a change of one declared
    feature: ``{feature: total_visits, add: 1}`` or ``{feature: last_activity, set: SMS
    Sent}``. ``phrase`` is how a sentence about it starts ("A callback", read as "A
    callback now would raise the score from 41 to 78"); ``name`` is what answers call it.
    ``cross_problems`` checks what depends on the kind and the features.
    """

    name: str | None = None
    phrase: str | None = None
    activity: ActivityType | None = None
    feature: str | None = None
    set: Scalar | None = None
    add: Number | None = None

    @property
    def label(self) -> str | None:
        """How a problem names it: its name, activity or feature."""
        return self.name or self.activity or self.feature

    def to_spec(self, features: Mapping[str, FeatureConfig]) -> ActionSpec:
        """As stored with the model (``DatasetInfo.actions``); the config must be valid."""
        if self.activity is not None:
            return activity_action(self.activity, self.phrase, self.name)
        feature = features[str(self.feature)]
        return feature_action(
            str(self.feature),
            feature.description or str(self.feature),
            set_to=self.set,
            add=None if self.add is None else float(self.add),
            phrase=self.phrase,
            name=self.name,
        )


class FeatureConfig(Section):
    """One feature: where it comes from, how to clean it and how to say it in a reason."""

    name: str | None = None
    column: str | None = None
    group: Group = "fit"
    dtype: Dtype = "category"
    template: Template | None = None
    description: str | None = None
    transform: Transform | None = None
    format: str | None = None
    na_values: list[Scalar] = []
    map: dict[Any, Any] | None = None

    @property
    def key(self) -> str | None:
        """The feature's name (its column when no name is given)."""
        return self.name or self.column

    @property
    def source(self) -> str | None:
        """The column it is read from (its name when no column is given)."""
        return self.column or self.name

    def to_spec(self) -> FeatureSpec:
        """As a catalogue entry."""
        name = str(self.key)
        template = self.template or f"{self.description or name}: {{value}}"
        return FeatureSpec(name, self.group, self.dtype, template, self.description or name)


class SignalConfig(Section):
    """A family of features told as one reason (``features.catalogue.SignalSpec``): their
    SHAP values summed, one sentence. Features not in any signal are signals of their own.
    """

    name: str
    features: list[str] = Field(min_length=1)
    template: str | None = None
    direction: Literal["increasing", "decreasing"] | None = None
    opposite: list[str] = []

    def to_spec(self) -> SignalSpec:
        """As a catalogue signal (call after ``cross_problems`` found nothing wrong)."""
        return SignalSpec(
            name=self.name,
            features=tuple(self.features),
            template=self.template or "",
            direction=self.direction,
            opposite=tuple(self.opposite),
        )


class TableSpec(ReadOptions):
    """A file mapped onto one contract table (each table's ``columns``: contract column: its
    column in the file)."""

    timestamp_format: str | None = None
    activity_types: dict[str, ActivityType] = {}


class LeadsTable(TableSpec):
    """The leads file."""

    columns: dict[LeadsColumn, str] = {}


class AccountsTable(TableSpec):
    """The accounts file."""

    columns: dict[AccountsColumn, str] = {}


class ActivitiesTable(TableSpec):
    """The activity log (``activity_types``: source name: contract activity type)."""

    columns: dict[ActivitiesColumn, str] = {}


class ConversionsTable(TableSpec):
    """The conversions file."""

    columns: dict[ConversionsColumn, str] = {}


class Tables(Section):
    """The contract's tables; without ``accounts`` each lead's account is its own id."""

    leads: LeadsTable
    accounts: AccountsTable | None = None
    activities: ActivitiesTable
    conversions: ConversionsTable


class PipelineOptions(Section):
    """The point-in-time pipeline's settings (``features.pipeline.PipelineConfig``)."""

    horizon_days: int = 90
    snapshots: str = "monthly"


class ConfigBase(Section):
    """What both kinds share."""

    name: str | None = None
    split: Split | None = None
    actions: list[ActionConfig] | None = None
    points: Annotated[Points | None, BeforeValidator(_none_if_empty)] = None
    train: Annotated[dict[str, Any], BeforeValidator(lambda v: v or {})] = {}
    features: list[FeatureConfig] = []
    signals: list[SignalConfig] = []
    # How a CRM export of sales dispositions maps onto feedback events; typed and checked
    # by ``features.dataset_config.feedback`` (``cross_problems``), read by the feedback import.
    feedback: dict[str, Any] | None = None
    # The buying group's personas (``features.personas``), checked there (``cross_problems``).
    personas: list[Any] | None = None


class TablesConfig(ConfigBase):
    """Files and columns mapped onto the data contract; the pipeline builds snapshots."""

    kind: Literal["tables"]
    tables: Tables
    pipeline: Annotated[PipelineOptions, BeforeValidator(lambda v: v or {})] = PipelineOptions()
    unknown_activity: Literal["reject", "other"] = "reject"


class LeadSnapshotConfig(ConfigBase):
    """One row per lead with aggregated behaviour, its outcome and scoring time."""

    kind: Literal["lead_snapshot"]
    source: ReadOptions
    id: str | None
    outcome: Outcome
    time: Annotated[TimeColumn | None, BeforeValidator(_column_spec)] = None
    as_of: Moment | None = None
    exclude: list[Annotated[Excluded, BeforeValidator(_column_spec)]] = []
    features: list[FeatureConfig] = Field(min_length=1)


DatasetConfig = Annotated[TablesConfig | LeadSnapshotConfig, Field(discriminator="kind")]
MODELS: dict[str, type[TablesConfig] | type[LeadSnapshotConfig]] = {
    "tables": TablesConfig,
    "lead_snapshot": LeadSnapshotConfig,
}


@functools.cache
def _adapter() -> TypeAdapter[Any]:
    """The union's validator, built once on first use."""
    return TypeAdapter(DatasetConfig)


def validate_config(
    raw: Mapping[str, Any],
) -> tuple[TablesConfig | LeadSnapshotConfig | None, list[str]]:
    """A config's model and every problem of its values, in plain words.

    Returns:
        The config (a best-effort one built from the values that are right when some are
        wrong; None when even its ``kind`` is unknown) and the problems.
    """
    try:
        config = _adapter().validate_python(raw)
    except ValidationError as exc:
        problems = problems_of(exc, raw)
        kind = raw.get("kind")
        model = MODELS.get(kind) if isinstance(kind, str) else None
        salvaged = salvage(model, raw) if model else None
        return salvaged, problems + (cross_problems(salvaged) if salvaged else [])
    return config, cross_problems(config)


def cross_problems(config: TablesConfig | LeadSnapshotConfig) -> list[str]:
    """Problems that span sections: feature names, excluded features, points rules."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, f in enumerate(config.features):
        if not f.key:
            problems.append(f"features[{i}]: needs a name or a column")
            continue
        where = f"features[{i}] ({f.key})"
        if f.key in seen:
            problems.append(f"{where}: duplicate feature name")
        seen.add(f.key)
        if f.key in RESERVED:
            problems.append(f"{where}: {f.key!r} is reserved; choose another name")
    if isinstance(config, LeadSnapshotConfig):
        excluded = {e.column for e in config.exclude or () if e is not None}
        for f in config.features:
            if f.source in excluded:
                problems.append(
                    f"features: column {f.source!r} is both a feature and "
                    "excluded (see its exclude reason)"
                )
        if not config.time and not config.as_of:
            problems.append(
                "give `time` (a column with each lead's scoring time) or a fixed `as_of` date"
            )
        if config.outcome and config.outcome.in_file is None and not config.outcome.column:
            problems.append(f"outcome: {HINTS['outcome']}")
    problems += action_problems(config)
    if config.feedback is not None:
        from features.dataset_config.feedback import feedback_problems

        problems += feedback_problems(config.feedback)
    if config.personas is not None:
        from features.personas import persona_problems

        problems += persona_problems(config.personas)
    names = catalogue_names(config)
    for i, rule in enumerate(config.points.rules if config.points else ()):
        if rule.feature is not None and rule.feature not in names:
            problems.append(
                f"points.rules[{i}]: feature {rule.feature!r} is not a declared "
                f"feature{did_you_mean(rule.feature, names)}"
            )
        given = rule.model_fields_set
        if not given & {"values", "per", "at_least"}:
            problems.append(
                f"points.rules[{i}]: give `values` (points per value), `per` "
                "(points per unit, optional `cap`) or `at_least` with `points`"
            )
        elif not given & {"values", "per", "points"}:
            problems.append(f"points.rules[{i}]: `at_least` needs `points`")
    return problems + signal_config_problems(config, names)


def signal_config_problems(
    config: TablesConfig | LeadSnapshotConfig, names: list[str]
) -> list[str]:
    """Declared signals that name unknown features, share one, mix groups or misuse their
    template, each worded as ``signals[i] (name): ...``."""
    problems: list[str] = []
    groups = {f.name: f.group for f in CATALOGUE} | {
        str(f.key): f.group for f in config.features if f.key
    }
    builtin = {n for s in CATALOGUE_SIGNALS for n in s.features}
    owner: dict[str, str] = {}
    seen: set[str] = set()
    for i, signal in enumerate(config.signals or ()):
        if signal is None:
            continue
        where = f"signals[{i}] ({signal.name})"
        if signal.name in seen:
            problems.append(f"{where}: duplicate signal name")
        seen.add(signal.name)
        for name in signal.features:
            if name not in names:
                problems.append(
                    f"{where}: feature {name!r} is not a declared feature"
                    f"{did_you_mean(name, names)}"
                )
            elif name in owner:
                problems.append(f"{where}: feature {name!r} is already in signal {owner[name]!r}")
            elif isinstance(config, TablesConfig) and name in builtin:
                problems.append(
                    f"{where}: feature {name!r} belongs to a built-in signal; declare signals "
                    "for the config's own features"
                )
            else:
                owner[name] = signal.name
        if len({groups[n] for n in signal.features if n in groups}) > 1:
            problems.append(f"{where}: mixes fit and engagement features")
        spec = SignalSpec.model_construct(
            name=signal.name,
            features=tuple(signal.features),
            template=signal.template or "",
            absent_template="",
            windows=(),
            direction=signal.direction,
            opposite=tuple(signal.opposite),
            free=(),
            description="",
        )
        for problem in signal_problems(spec):
            problems.append(f"{where}: {problem.split(': ', 1)[1]}")
    return problems


_ACTION_EXAMPLE = "e.g. {feature: total_visits, add: 1} or {feature: last_activity, set: ...}"


def action_problems(config: TablesConfig | LeadSnapshotConfig) -> list[str]:
    """Problems of the ``actions:`` list that depend on the kind and the declared features:
    an activity for a ``tables`` config; for a ``lead_snapshot`` one, a declared feature
    with exactly one of ``set`` (a value its dtype takes) and ``add`` (numeric features)."""
    from features.dataset_config.values import type_column

    problems: list[str] = []
    declared = {f.key: f for f in config.features if f.key}
    seen: set[str] = set()
    for i, action in enumerate(config.actions or ()):
        where = f"actions[{i}]" + (f" ({action.label})" if action.label else "")
        name = action.name or action_name(action.activity, action.feature, action.set, action.add)
        if name in seen:
            problems.append(f"{where}: duplicate action {name!r}; give each its own `name`")
        seen.add(str(name))
        given = action.model_fields_set
        if isinstance(config, TablesConfig):
            if given & {"feature", "set", "add"}:
                problems.append(
                    f"{where}: a tables config's action is an activity: give `activity` "
                    "(e.g. demo_request); `feature`, `set` and `add` are for lead_snapshot "
                    "configs"
                )
            elif "activity" not in given:
                problems.append(f"{where}: give `activity` (an activity type, e.g. demo_request)")
            continue
        if "activity" in given:
            problems.append(
                f"{where}: a lead_snapshot config has no activity log: an action changes "
                f"a feature ({_ACTION_EXAMPLE}), not `activity`"
            )
            continue
        if action.feature is None:
            problems.append(f"{where}: give `feature` with `set` or `add` ({_ACTION_EXAMPLE})")
            continue
        feature = declared.get(action.feature)
        if feature is None:
            problems.append(
                f"{where}: feature {action.feature!r} is not a declared "
                f"feature{did_you_mean(action.feature, list(declared))}"
            )
            continue
        if ("set" in given) == ("add" in given):
            problems.append(f"{where}: give exactly one of `set` (a value) and `add` (a number)")
        elif "add" in given and action.add is not None and feature.dtype not in ("float", "int"):
            problems.append(
                f"{where}: add: {action.feature} is a {feature.dtype} feature, not a "
                "number: use `set`"
            )
        elif "set" in given and (
            action.set is None or type_column([action.set], feature.dtype) is None
        ):
            problems.append(
                f"{where}: set: {action.set!r} is not a {feature.dtype} value "
                f"({_WANTS[feature.dtype]}) for {action.feature}"
            )
    return problems


_WANTS = {
    "category": "text",
    "float": "a number",
    "int": "a number",
    "bool": "true/false or yes/no",
}


def config_actions(config: TablesConfig | LeadSnapshotConfig) -> tuple[ActionSpec, ...] | None:
    """A valid config's actions as stored with the model (None: it declared none)."""
    if config.actions is None:
        return None
    declared = {str(f.key): f for f in config.features if f.key}
    return tuple(a.to_spec(declared) for a in config.actions)


def catalogue_names(config: TablesConfig | LeadSnapshotConfig) -> list[str]:
    """Names of every feature a config's model will have."""
    declared = [f.key for f in config.features if f.key]
    if isinstance(config, TablesConfig):
        return [f.name for f in CATALOGUE] + declared
    return declared


def salvage(model: type[BaseModel], raw: Any) -> Any:
    """A model instance from the values of ``raw`` that are right (None when none can be).

    Used to check the data behind a config whose values are partly wrong, so a broken
    config still gets every problem of its data reported in the same pass: a section
    that is wrong is left out (None), a list keeps its usable items, a value that is wrong
    falls back to its default.
    """
    if not isinstance(raw, Mapping):
        return None
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in raw:
            if field.is_required():
                values[name] = _empty(field.annotation)
            continue
        annotation = (
            Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        )
        value = _salvage_value(annotation, raw[name])
        if value is None:  # wrong: its default, still marked as given (model_fields_set)
            value = (
                _empty(field.annotation)
                if field.is_required()
                else field.get_default(call_default_factory=True)
            )
        values[name] = value
    return model.model_construct(**values)


def _empty(annotation: Any) -> Any:
    """What a required section that could not be read becomes: [] for a list, else None."""
    return [] if get_origin(_unwrap(annotation)) is list else None


def _salvage_value(annotation: Any, raw: Any) -> Any:
    try:
        return TypeAdapter(annotation).validate_python(raw)
    except ValidationError:
        pass
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return salvage(inner, raw)
    if get_origin(inner) is list and isinstance(raw, list):
        item = get_args(inner)[0]
        return [v for v in (_salvage_value(item, r) for r in raw) if v is not None]
    return None


def _unwrap(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


class _Step(NamedTuple):
    part: str | int
    step: str  # field, item, key (a dict value), dict-key (a dict's key itself)
    annotation: Any  # the type at this place (None when unknown)
    parent: Any  # the type holding it


def _walk(root: Any, loc: Sequence[str | int]) -> list[_Step]:
    """Each place of an error's ``loc`` with the type found there."""
    steps: list[_Step] = []
    annotation, i = root, 0
    while i < len(loc):
        part, inner = loc[i], _unwrap(annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            field = inner.model_fields.get(str(part))
            step = _Step(part, "field", field.annotation if field else None, inner)
        elif get_origin(inner) is list:
            step = _Step(part, "item", get_args(inner)[0], inner)
        elif get_origin(inner) is dict:
            key, value = get_args(inner)
            if i + 1 < len(loc) and loc[i + 1] == "[key]":
                step, i = _Step(part, "dict-key", key, inner), i + 1
            else:
                step = _Step(part, "key", value, inner)
        else:
            step = _Step(part, "?", None, inner)
        steps.append(step)
        annotation, i = step.annotation, i + 1
    return steps


def _place(steps: Sequence[_Step], raw: Any, prefix: str = "") -> str:
    """``features[3] (lead_source)``, ``tables.leads.columns``, ``map['x']``."""
    place, value = prefix, raw
    for s in steps:
        if s.step == "dict-key":
            break
        if s.step == "item":
            place += f"[{s.part}]"
            index = int(s.part)
            value = value[index] if isinstance(value, list) and len(value) > index else None
            label = (
                (value.get("name") or value.get("column")) if isinstance(value, Mapping) else None
            )
            if label:
                place += f" ({label})"
            continue
        place += f"[{s.part!r}]" if s.step == "key" else (f".{s.part}" if place else str(s.part))
        value = value.get(s.part) if isinstance(value, Mapping) else None
    return place


def describe(
    error: ErrorDetails,
    raw: Mapping[str, Any],
    root: type[BaseModel] | None = None,
    prefix: str = "",
) -> str:
    """One pydantic error as a sentence naming its place in the config.

    ``('lead_snapshot', 'features', 3, 'dtype')`` becomes ``features[3] (lead_source):
    dtype must be one of category, float, int, bool, got 'text'``.

    Args:
        error: One of ``ValidationError.errors()``.
        raw: The input that was validated (it names list items: ``features[3] (name)``).
        root: The model validated; None for a dataset config (``DatasetConfig``, whose
            first place is the kind).
        prefix: Where ``raw`` sits in a larger config (``train``).
    """
    loc = list(error["loc"])
    if root is None:
        kind = raw.get("kind")
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            if "kind" not in raw:
                return f"kind: {HINTS['kind']}"
            return (
                f"kind must be one of {', '.join(KINDS)}, got {kind!r}{did_you_mean(kind, KINDS)}"
            )
        root, loc = MODELS[str(kind)], loc[1:]  # the first place is the union's tag
    steps = _walk(root, loc)
    text, where = _message(error, steps)
    if where == "parent" or (where == "field" and steps and steps[-1].step == "field"):
        parent = _place(steps[:-1], raw, prefix)
        if where == "field":
            text = f"{steps[-1].part} {text}"
        return f"{parent}: {text}" if parent else text
    place = _place(steps, raw, prefix)
    return f"{place}: {text}" if place else text


def problems_of(
    exc: ValidationError,
    raw: Mapping[str, Any],
    root: type[BaseModel] | None = None,
    prefix: str = "",
) -> list[str]:
    """Every error of ``exc`` as a sentence (see ``describe``)."""
    return [describe(error, raw, root, prefix) for error in exc.errors()]


TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def _message(error: ErrorDetails, steps: list[_Step]) -> tuple[str, str]:
    """The words of one error, and where they go: after the ``field``'s name, after the
    ``place`` (a whole sentence) or after the ``parent`` holding an unknown key."""
    kind, given = error["type"], error.get("input")
    shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
    last = steps[-1] if steps else None
    path = ".".join(
        "*" if s.step in ("item", "key") else str(s.part) for s in steps if s.step != "dict-key"
    )
    hint = next((h for pattern, h in HINTS.items() if fnmatch.fnmatchcase(path, pattern)), None)
    if kind == "missing":
        return (hint, "place") if hint else ("is required", "field")
    if kind == "too_short" and hint:
        return hint, "place"
    if kind == "extra_forbidden" and last is not None:
        known = (
            list(last.parent.model_fields)
            if isinstance(last.parent, type) and issubclass(last.parent, BaseModel)
            else []
        )
        suggestion = did_you_mean(last.part, known) or (
            f" (known: {', '.join(known)})" if known else ""
        )
        return f"unknown key {last.part!r}{suggestion}", "parent"
    if kind == "literal_error":
        choices = get_args(_unwrap(last.annotation)) if last else ()
        words = ", ".join(str(c) for c in choices) or error.get("ctx", {}).get("expected", "")
        if last is not None and last.step == "dict-key":
            return (
                f"{last.part!r} is not one of {words}{did_you_mean(last.part, choices)}",
                "place",
            )
        return f"must be one of {words}, got {shown}{did_you_mean(given, choices)}", "field"
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"])), "field"
    if kind in TYPE_WORDS:
        return f"{TYPE_WORDS[kind]}, got {shown}", "field"
    return f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {shown}", "field"
