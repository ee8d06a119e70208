"""Request and response models of the scoring API, with limits and field descriptions.

A request comes in one of two forms, matching the two kinds of model:

* the **lead form** mirrors the data contract (``features.contract``): one row of
  ``leads``, the matching row of ``accounts`` and the lead's rows of ``activities``, for
  a model trained on the contract's tables (the simulator, or a ``tables`` dataset
  config);
* the **features form** (``{"features": {name: value, ...}, "lead_id"?, "as_of"?}``)
  carries one row of a ``lead_snapshot`` dataset config: the model's own feature values
  by name, as the config cleaned them (``features.dataset_config.snapshot_frame``).

``ScoreRequest`` is the union of the two (``LeadFormRequest | FeaturesFormRequest``), told
apart by the key a body carries (``request_form``, a pydantic ``Discriminator``); exactly
one of ``lead`` and ``features`` must be given. Validate requests with ``parse_request``,
``parse_request_json`` or ``parse_batch_json``. Which form a model takes, and
its feature names and types, are only known once the model is loaded, so those checks
happen in ``serving.scorer.score_requests`` (still a 400 naming the field). Everything that
can be checked without the model is checked here, while the request is parsed, so a
malformed request is answered with HTTP 400 naming the field before any work is done,
and a batch that BentoML merges from several callers can never fail because of one
caller's bad input.

Documented handling of awkward input:

* Text is stripped, and empty text counts as missing, exactly as the contract does.
* Missing optional fields (job title, region, firmographics, e-mail, the whole
  ``account``) are scored as unknown: the model routes missing values like it did in
  training.
* Unknown categories (a seniority or industry never seen in training) are scored as
  unknown too, and the response lists them in ``warnings``.
* Unknown activity types are counted as ``other`` (the contract's
  ``unknown_activity='other'``) and reported in ``warnings``.
* An empty activity list is valid: the lead is scored on fit alone.
* A model trained on a ``tables`` dataset config takes its extra lead columns as further
  keys of ``lead``, by feature name (``GET /model`` lists them in ``inputs``), typed as
  training typed the export (``features.dataset_config.lead_column``); a key the model
  does not take is a 400 naming it, and a missing or null one is scored as unknown.
* Activities after ``as_of`` are ignored (features are point-in-time) and counted in
  ``warnings``; a lead created after ``as_of`` is rejected, since it did not exist yet.
* Timestamps with a time zone are converted to UTC; timestamps without one are UTC;
  years outside 1970–2199 are rejected.
* NaN and Infinity are rejected wherever a number is expected.

Limits (each violation is a 4xx naming the limit): ``MAX_BODY_BYTES`` per request body
(413), ``MAX_ACTIVITIES`` per lead, ``MAX_BATCH`` leads and ``MAX_BATCH_ACTIVITIES``
activities per batch, 128 characters per identifier, 200 per free-text field, 64 per
activity type, ``MAX_FEATURES`` values per features-form request (400).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError
from typing_extensions import TypeAliasType

from features.catalogue import (
    ACTIVITY_TYPES,
    DEPARTMENTS,
    INDUSTRIES,
    LEAD_SOURCES,
    REGIONS,
    SENIORITIES,
)
from runtime.metadata import RequestForm  # by name, as ``GET /model`` states it

MAX_ACTIVITIES = 5_000
"""Activities per lead in one request; a year of heavy engagement fits comfortably."""
MAX_BATCH = 1_000
"""Leads per ``/score_batch`` request."""
MAX_BATCH_ACTIVITIES = 200_000
"""Activities across all leads of one ``/score_batch`` request (bounds its memory)."""
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Request body size (32 MiB): a full batch of ``MAX_BATCH_ACTIVITIES`` fits; larger bodies
are answered 413 by ``serving.auth.ApiGuard`` before they are parsed."""
MAX_FEATURES = 1_000
"""Feature values per features-form request (a lead-snapshot model has a few dozen)."""
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2200, 1, 1)


def _clean_text(value: object) -> object:
    """Strip text and treat empty text as missing, as ``features.contract`` does."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _strip(value: object) -> object:
    """Strip required text; emptiness is then reported by the length check."""
    return value.strip() if isinstance(value, str) else value


def _utc_naive(value: datetime) -> datetime:
    """Convert to tz-naive UTC (the contract's timestamp convention) and bound the year."""
    if value.tzinfo is not None:
        offset = value.utcoffset()
        try:
            value = value.replace(tzinfo=None) - offset if offset else value.replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 (found by the fuzz)
            raise ValueError(
                f"timestamp {value.isoformat()} is outside {EARLIEST.year}–{LATEST.year}"
            ) from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"timestamp {value.isoformat()} is outside {EARLIEST.year}–{LATEST.year}")
    return value


def _at(
    loc: tuple[str | int, ...], kind: str, message: str, context: dict[str, Any] | None = None
) -> ValidationError:
    """A rule that spans several fields, reported at the field it is about (``loc``), so a
    400 names that field in ``detail[].loc`` as well as in its message."""
    return ValidationError.from_exception_data(
        "ScoreRequest",
        [InitErrorDetails(type=PydanticCustomError(kind, message, context), loc=loc, input=None)],
    )


def utc_now() -> datetime:
    """Current time as tz-naive UTC, the default ``as_of``."""
    return datetime.now(UTC).replace(tzinfo=None)


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


Timestamp = Annotated[datetime, AfterValidator(_utc_naive)]
_Text = Annotated[str, StringConstraints(max_length=200)]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
OptText = Annotated[_Text | None, BeforeValidator(_clean_text)]
Identifier = Annotated[_Id, BeforeValidator(_strip)]
OptIdentifier = Annotated[_Id | None, BeforeValidator(_clean_text)]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=10_000)


_MAX_NUMBER = 1e15


def _feature_value(value: object) -> object:
    """Check one features-form value: text (stripped, empty = missing), a finite number
    within ±1e15, true/false or null. One error naming the feature, whatever is wrong."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > _MAX_NUMBER:
            raise PydanticCustomError("feature_number", "a number must be finite and within ±1e15")
        return value
    if isinstance(value, str):
        value = value.strip()
        if len(value) > 200:
            raise PydanticCustomError("feature_text", "text is longer than 200 characters")
        return value or None
    kinds: dict[type, str] = {dict: "an object", list: "a list"}
    kind = kinds.get(type(value), type(value).__name__)
    raise PydanticCustomError(
        "feature_value",
        "a feature value must be text, a number, true/false or null, got {kind}",
        {"kind": kind},
    )


_FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FeatureValue = Annotated[
    Any,
    PlainValidator(_feature_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 200},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]
"""One value of a features-form request, or of an extra lead column in the lead form: text,
number, true/false or null (unknown)."""
_EXTRA_LEAD_COLUMN: JsonDict = {
    "anyOf": [
        {"type": "string", "maxLength": 200},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ],
    "description": "An extra lead column of a model trained on a `tables` dataset config "
    "(`GET /model`, `inputs`), by feature name: text for a category, a number, true/false "
    "(or yes/no, 1/0) for a boolean; null is unknown. Any other key is a 400 naming it.",
}


class Lead(BaseModel):
    """One lead's profile: a row of the contract's ``leads`` table.

    A model trained on a ``tables`` dataset config may take extra lead columns (its
    ``fit`` features read from the leads file): they come as further keys of the lead,
    by feature name, each a ``FeatureValue``. Which names the served model takes is
    only known once it is loaded (``GET /model``, ``inputs``), so an unknown key is
    refused by ``serving.leadform`` (a 400 naming ``lead.<key>``), not here.
    """

    model_config = ConfigDict(
        extra="allow",
        allow_inf_nan=False,
        str_max_length=10_000,
        json_schema_extra={"additionalProperties": _EXTRA_LEAD_COLUMN},
    )
    __pydantic_extra__: dict[str, FeatureValue] = Field(init=False)

    lead_id: Identifier = Field(description="Unique lead identifier, echoed in the response.")
    account_id: OptIdentifier = Field(
        None, description="The lead's company; must match `account.account_id` when both are given."
    )
    created_at: Timestamp = Field(
        description="When the lead entered the CRM (ISO 8601; UTC unless it has an offset). "
        "Must not be after `as_of`."
    )
    job_title: OptText = Field(None, description="Free-text job title (not used by the model).")
    seniority: OptText = Field(
        None,
        description=f"Seniority, one of: {_choices(SENIORITIES)}. Other values are scored "
        "as unknown.",
    )
    department: OptText = Field(
        None,
        description=f"Department, one of: {_choices(DEPARTMENTS)}. Other values are "
        "scored as unknown.",
    )
    country: OptText = Field(None, description="ISO country code of the lead.")
    region: OptText = Field(
        None,
        description=f"Sales region, one of: {_choices(REGIONS)}. Picks the region's MQL "
        "threshold where the policy has one.",
    )
    lead_source: OptText = Field(
        None, description=f"Acquisition channel, one of: {_choices(LEAD_SOURCES)}."
    )
    email: OptText = Field(
        None,
        description="Optional; only its domain is used (corporate vs free mail). Missing "
        "means unknown.",
    )


class Account(BaseModel):
    """The lead's company: a row of the contract's ``accounts`` table."""

    model_config = _STRICT

    account_id: OptIdentifier = Field(None, description="Account identifier.")
    company_name: OptText = Field(None, description="Company name (not used by the model).")
    industry: OptText = Field(
        None,
        description=f"Industry, one of: {_choices(INDUSTRIES)}. Other values are scored "
        "as unknown.",
    )
    employee_count: float | None = Field(
        None, ge=0, le=1e8, description="Number of employees (banded by the model)."
    )
    annual_revenue: float | None = Field(
        None, ge=0, le=1e14, description="Annual revenue in USD (banded by the model)."
    )
    country: OptText = Field(None, description="Headquarters country.")


class Activity(BaseModel):
    """One engagement event: a row of the contract's ``activities`` table.

    Validated natively, with no Python validator per field, since a lead may send
    thousands: text is stripped by the config, and ``occurred_at`` keeps the offset it was
    sent with (none means UTC) and is bounded to 1970–2199 by pydantic itself; the
    scorer reads it as seconds since the epoch (``serving.leadform``).
    """

    model_config = ConfigDict(**_STRICT, str_strip_whitespace=True)

    occurred_at: datetime = Field(
        ge=EARLIEST.replace(tzinfo=UTC),
        lt=LATEST.replace(tzinfo=UTC),
        description="When it happened (ISO 8601; UTC unless it has an offset; years "
        "1970–2199). Activities after `as_of` are ignored.",
    )
    activity_type: str = Field(
        min_length=1,
        max_length=64,
        description=f"One of: {_choices(ACTIVITY_TYPES)}. Unknown types count as `other`.",
    )
    detail: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="Optional free text: page, asset, campaign (not used by the model)."
    )
    lead_id: OptIdentifier = Field(
        None, description="Optional; when given it must equal `lead.lead_id`."
    )


_EXAMPLE_LEAD_FORM: JsonDict = {
    "lead": {
        "lead_id": "L-1001",
        "account_id": "A-77",
        "created_at": "2024-05-02T09:30:00Z",
        "seniority": "Director",
        "department": "Marketing",
        "region": "EMEA",
        "country": "DE",
        "lead_source": "webinar",
        "email": "jane@acme.example",
    },
    "account": {
        "account_id": "A-77",
        "industry": "Software",
        "employee_count": 850,
        "annual_revenue": 120000000,
    },
    "activities": [
        {"occurred_at": "2024-06-20T10:00:00Z", "activity_type": "pricing_page_view"},
        {"occurred_at": "2024-06-21T15:12:00Z", "activity_type": "demo_request"},
    ],
    "as_of": "2024-07-01T00:00:00Z",
}
_EXAMPLE_FEATURES_FORM: JsonDict = {
    "lead_id": "P-42",
    "features": {
        "lead_origin": "Lead Add Form",
        "time_on_website": 1500,
        "occupation": "Working Professional",
        "do_not_email": False,
    },
    "as_of": "2019-01-01T00:00:00Z",
}
_REQUEST_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


def _now_if_null(value: object) -> object:
    """``"as_of": null`` means now, like leaving it out."""
    return utc_now() if value is None else value


AsOf = Annotated[Timestamp, BeforeValidator(_now_if_null, json_schema_input_type=datetime | None)]
"""``as_of``: a timestamp, or now (UTC) when left out or null."""


def _refuse(kind: str, message: str) -> Callable[[object], None]:
    """Validator of a key that belongs to the other request form: refused with ``message``
    when it carries a value. Null, blank text and an empty list count as not given (as
    the fields themselves read them), so a client that always sends every key keeps
    working."""

    def refuse(value: object) -> None:
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            return None
        raise PydanticCustomError(kind, message)

    return refuse


_LEAD_FORM_KEY = "to the lead form: a `features` request carries every value in `features`"
_NotBoth = Annotated[
    Any,
    PlainValidator(
        _refuse(
            "lead_and_features",
            "give either `lead` (the lead form) or `features` (the features form), not both",
        )
    ),
    SkipJsonSchema(),
]
_LeadIdOfFeaturesForm = Annotated[
    Any,
    PlainValidator(
        _refuse(
            "lead_id_in_lead_form",
            "the top-level `lead_id` belongs to the features form: in the "
            "lead form put it in `lead.lead_id`",
        )
    ),
    SkipJsonSchema(),
]
_AccountOfLeadForm = Annotated[
    Any,
    PlainValidator(_refuse("features_form", f"`account` belongs {_LEAD_FORM_KEY}")),
    SkipJsonSchema(),
]
_ActivitiesOfLeadForm = Annotated[
    Any,
    PlainValidator(_refuse("features_form", f"`activities` belong {_LEAD_FORM_KEY}")),
    SkipJsonSchema(),
]
"""Keys of the other form (left out of each form's JSON schema: they are no part of it)."""


class _RequestOptions(BaseModel):
    """What both request forms share: the moment to score at and how much to explain."""

    model_config = _REQUEST_CONFIG

    as_of: AsOf = Field(
        default_factory=utc_now,
        description="Score the lead as of this moment (default: now, "
        "UTC). Only activities at or before it are used.",
    )
    top_reasons: int | None = Field(
        None,
        ge=1,
        le=20,
        description="How many positive and how many negative reasons to return "
        "(default: the service's setting, 5).",
    )
    include_contributions: bool = Field(
        False,
        description="Also return every feature's SHAP contribution, not just the top reasons.",
    )
    next_best_actions: int | None = Field(
        None,
        ge=0,
        le=20,
        description="How many next best actions to return: the actions that would raise "
        "the score most if they happened now, each scored by the model (default 3; 0 "
        "turns them off and spares their cost).",
    )


class LeadFormRequest(_RequestOptions):
    """The lead form: one lead's profile, its account and its recent activities, for a
    model trained on the contract's tables (the simulator, or a ``tables`` config)."""

    model_config = ConfigDict(**_REQUEST_CONFIG, json_schema_extra={"example": _EXAMPLE_LEAD_FORM})
    form: ClassVar[Literal["lead"]] = "lead"

    lead: Lead = Field(description="The lead's profile.")
    account: Account | None = Field(
        None,
        description="The lead's company; omit it when unknown (firmographics are then "
        "scored as unknown).",
    )
    activities: list[Activity] = Field(
        default_factory=list,
        max_length=MAX_ACTIVITIES,
        description="The lead's activities, in any order. Send at least the last 90 days; "
        "older ones only matter for 'days since last (high-intent) activity'. May be empty.",
    )
    features: _NotBoth = Field(None, exclude=True, repr=False)
    lead_id: _LeadIdOfFeaturesForm = Field(None, exclude=True, repr=False)

    @property
    def scored_id(self) -> str:
        """The lead id echoed in the answer."""
        return self.lead.lead_id

    @model_validator(mode="after")
    def _consistent(self) -> LeadFormRequest:
        """The rules that span several fields, each reported at the field it is about."""
        if self.lead.created_at > self.as_of:
            raise _at(
                ("lead", "created_at"),
                "created_after_as_of",
                "lead.created_at ({created}) is after as_of ({as_of}): a lead cannot be scored "
                "before it exists",
                {"created": self.lead.created_at.isoformat(), "as_of": self.as_of.isoformat()},
            )
        if self.account is not None:
            lead_acc, acc = self.lead.account_id, self.account.account_id
            if lead_acc and acc and lead_acc != acc:
                raise _at(
                    ("account", "account_id"),
                    "account_mismatch",
                    "account.account_id ({acc}) does not match lead.account_id ({lead_acc})",
                    {"acc": acc, "lead_acc": lead_acc},
                )
        for i, activity in enumerate(self.activities):
            if activity.lead_id is not None and activity.lead_id != self.lead.lead_id:
                raise _at(
                    ("activities", i, "lead_id"),
                    "activity_lead_mismatch",
                    "activities[{i}].lead_id ({got}) does not match lead.lead_id ({want})",
                    {"i": i, "got": activity.lead_id, "want": self.lead.lead_id},
                )
        return self


class FeaturesFormRequest(_RequestOptions):
    """The features form: a lead-snapshot model's feature values by name, for a model
    trained on a ``lead_snapshot`` dataset config (one row of that export)."""

    model_config = ConfigDict(
        **_REQUEST_CONFIG, json_schema_extra={"example": _EXAMPLE_FEATURES_FORM}
    )
    form: ClassVar[Literal["features"]] = "features"

    features: dict[_FeatureName, FeatureValue] = Field(
        max_length=MAX_FEATURES,
        description="The lead's feature values keyed by the model's feature names (`GET "
        "/model` lists them), as the config declares them: text for categories, numbers, "
        "true/false or yes/no or 1/0 for booleans. Missing or null features are scored as "
        "unknown; an unknown name or a value of the wrong type is a 400 naming the feature.",
        examples=[_EXAMPLE_FEATURES_FORM["features"]],
    )
    lead_id: OptIdentifier = Field(
        None,
        description="The lead's identifier, echoed in the response (empty there when not given).",
    )
    lead: _NotBoth = Field(None, exclude=True, repr=False)
    account: _AccountOfLeadForm = Field(None, exclude=True, repr=False)
    activities: _ActivitiesOfLeadForm = Field(None, exclude=True, repr=False)

    @property
    def scored_id(self) -> str:
        """The lead id echoed in the answer (empty when not given)."""
        return self.lead_id or ""


LEAD_FORM = "lead form"
FEATURES_FORM = "features form"
_TAGS = (LEAD_FORM, FEATURES_FORM)


def request_form(value: object) -> str | None:
    """Which form a request body is in, from the key it carries: ``lead`` or ``features``.

    A body with both is read as the lead form, which then refuses ``features`` ("not
    both"); a body with neither gets the discriminator's error. Anything that is not an
    object is handed to the lead form, which says it must be one.
    """
    if isinstance(value, dict):
        if value.get("lead") is not None:
            return LEAD_FORM
        return FEATURES_FORM if value.get("features") is not None else None
    return FEATURES_FORM if isinstance(value, FeaturesFormRequest) else LEAD_FORM


ScoreRequest = TypeAliasType(
    "ScoreRequest",
    Annotated[
        Annotated[LeadFormRequest, Tag(LEAD_FORM)]
        | Annotated[FeaturesFormRequest, Tag(FEATURES_FORM)],
        Discriminator(
            request_form,
            custom_error_type="lead_or_features",
            custom_error_message="give `lead` (the lead's profile, with optional `account` and "
            "`activities`) or `features` (a lead-snapshot model's feature values by name)",
        ),
        Field(
            description="One lead to score, in the form the served model takes (`GET /model`, "
            "`request_form`): the lead form (`lead`, `account`, `activities`) or the features "
            "form (`features`, `lead_id`).",
            json_schema_extra={"example": _EXAMPLE_LEAD_FORM},
        ),
    ],
)
"""One lead to score: a ``LeadFormRequest`` or a ``FeaturesFormRequest``, told apart by
``request_form`` (the key the body carries). Validate with ``parse_request`` and
``parse_request_json``, which report every error at the field it is about. A named
alias rather than a bare ``Annotated`` union: BentoML re-applies the metadata of an
``Annotated`` list item (``BatchLeads``), and a discriminator must be applied once."""


_R = TypeVar("_R")


def _bounded_batch(leads: list[_R]) -> list[_R]:
    """Refuse batches whose activities together would take too long or too much memory."""
    total = sum(len(lead.activities) for lead in leads if isinstance(lead, LeadFormRequest))
    if total > MAX_BATCH_ACTIVITIES:
        raise ValueError(
            f"the batch holds {total} activities; at most {MAX_BATCH_ACTIVITIES} "
            "per request: split it"
        )
    return leads


_Leads = Annotated[
    list[_R],
    Field(
        max_length=MAX_BATCH,
        description="Leads to score, each shaped like the body of "
        "`/score`; answers come back in the same order.",
    ),
    AfterValidator(_bounded_batch),
]
BatchLeads = _Leads[ScoreRequest]
"""The ``leads`` of ``/score_batch``: at most ``MAX_BATCH`` leads and
``MAX_BATCH_ACTIVITIES`` activities in all."""


class ScoreBatchBody(BaseModel, Generic[_R]):
    """The body of ``/score_batch`` (``{"leads": [...]}``), as BentoML's own input model
    for the method reads it; ``ScoreBatchBody[LeadFormRequest]`` is the same body with
    every lead in one form (see ``parse_batch_json``)."""

    model_config = ConfigDict(extra="forbid")

    leads: _Leads[_R]


_REQUEST_ADAPTER: TypeAdapter[ScoreRequest] = TypeAdapter(ScoreRequest)
_FORMS: dict[RequestForm, type[LeadFormRequest] | type[FeaturesFormRequest]] = {
    "lead": LeadFormRequest,
    "features": FeaturesFormRequest,
}
_BATCHES: dict[RequestForm | None, type[ScoreBatchBody[Any]]] = {
    None: ScoreBatchBody[ScoreRequest],
    "lead": ScoreBatchBody[LeadFormRequest],
    "features": ScoreBatchBody[FeaturesFormRequest],
}


def _at_the_fields(exc: ValidationError, title: str, start: int = 0) -> ValidationError:
    """``exc`` with each error located where the body has it.

    Pydantic puts the tag of the form it tried (``lead form``) into the location of every
    error from inside it, at ``start`` (where a request begins: 0 in ``/score``, 2 in
    ``/score_batch``, after ``leads``, index); a client knows nothing of tags, so it is
    taken out. A body in neither form is reported at ``lead``, the field to add. Types,
    messages and inputs are kept.
    """
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if len(loc) > start and loc[start] in _TAGS:
            loc = loc[:start] + loc[start + 1 :]
        elif error["type"] == "lead_or_features":
            loc = (*loc, "lead")
        details.append(
            InitErrorDetails(
                type=PydanticCustomError(error["type"], "{msg}", {"msg": error["msg"]}),
                loc=loc,
                input=error["input"],
            )
        )
    return ValidationError.from_exception_data(title, details)


def parse_request(data: object) -> LeadFormRequest | FeaturesFormRequest:
    """Validate one request (a dict as JSON would give it, or a request model).

    Raises:
        pydantic.ValidationError: naming each field that is wrong (HTTP 400).
    """
    try:
        return _REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _at_the_fields(exc, "ScoreRequest") from None


def parse_request_json(
    body: bytes | str, form: RequestForm | None = None
) -> LeadFormRequest | FeaturesFormRequest:
    """Validate the JSON body of ``/score``.

    Args:
        body: The request body.
        form: The form the served model takes, tried first. Pydantic hands a callable
            discriminator the body as Python objects, which costs about a quarter of the
            parsing; a body in the expected form is read straight into its model instead.
            Anything else goes through ``ScoreRequest``, so requests and errors come out
            the same either way.

    Raises:
        pydantic.ValidationError: naming each field that is wrong (HTTP 400).
    """
    if form is not None:
        try:
            return _FORMS[form].model_validate_json(body)
        except ValidationError:
            pass  # answered by the union below, with its errors
    try:
        return _REQUEST_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise _at_the_fields(exc, "ScoreRequest") from None


def parse_batch_json(
    body: bytes | str, form: RequestForm | None = None
) -> list[LeadFormRequest | FeaturesFormRequest]:
    """Validate the JSON body of ``/score_batch`` (``{"leads": [...]}``) and return its leads.

    Args:
        body: The request body.
        form: The form the served model takes, tried first for every lead (see
            ``parse_request_json``).

    Raises:
        pydantic.ValidationError: naming each lead (``leads``, index) and field that is
            wrong (HTTP 400).
    """
    if form is not None:
        try:
            return _BATCHES[form].model_validate_json(body).leads
        except ValidationError:
            pass  # answered by the union below, with its errors
    try:
        return _BATCHES[None].model_validate_json(body).leads
    except ValidationError as exc:
        raise _at_the_fields(exc, "ScoreBatchBody", start=2) from None


class ReasonFeature(BaseModel):
    """One model feature of a reason's signal."""

    feature: str = Field(description="Model feature name (see the feature catalogue).")
    value: str | float | None = Field(
        description="The feature's value for this lead; null when unknown."
    )
    contribution: float = Field(description="The feature's own exact SHAP value (log-odds).")


class Reason(BaseModel):
    """One signal's contribution to a lead's score (a signal is a family of features
    describing one behaviour, e.g. pricing-page visits over 7, 30 and 90 days)."""

    feature: str = Field(description="The signal's name (a lone feature's signal: its name).")
    signal: str = Field("", description="The signal's name (see the feature catalogue).")
    group: Literal["fit", "engagement"] = Field(
        description="`fit` (who the lead is) or `engagement` (what the lead did)."
    )
    value: str | float | None = Field(
        description="The value the sentence quotes for this lead; null when unknown."
    )
    contribution: float = Field(
        description="Exact SHAP contribution in log-odds (the sum of its features' SHAP "
        "values): positive raises the score."
    )
    sentence: str = Field(description="The reason in plain words for a sales rep.")
    features: list[ReasonFeature] = Field(
        default_factory=list,
        description="The signal's features with their values and SHAP values.",
    )


class NextBestAction(BaseModel):
    """What one action would do to a lead's score if it happened now (at `as_of`)."""

    action: str = Field(
        description="The action: an activity type (e.g. `demo_request`) or the name a "
        "dataset config gave it."
    )
    probability: float = Field(
        ge=0, le=1, description="The calibrated probability the lead would then have."
    )
    score: int = Field(ge=0, le=100, description="The 0–100 score it would then have.")
    mql: bool = Field(description="Whether it would then be an MQL.")
    grade: str = Field(pattern=r"^[A-D][1-4]$", description="The grade it would then have.")
    gain: float = Field(
        gt=0, description="The rise in probability (`probability` minus the lead's own)."
    )
    sentence: str = Field(description="What the action would do, in plain words.")


class Reasons(BaseModel):
    """The strongest contributions in each direction, strongest first."""

    positive: list[Reason] = Field(description="Contributions that raise the score.")
    negative: list[Reason] = Field(description="Contributions that lower the score.")


class ModelRef(BaseModel):
    """Which model produced an answer."""

    name: str = Field(description="Registered model name.")
    version: str = Field(description="Registry version (or `local` for a bundle folder).")
    alias: str | None = Field(description="Registry alias it was served under, if any.")


class ScoreResponse(BaseModel):
    """A lead's score card."""

    lead_id: str = Field(description="The lead's identifier, from the request.")
    as_of: datetime = Field(description="The moment the lead was scored at (UTC).")
    probability: float = Field(
        ge=0,
        le=1,
        description="Calibrated probability that the lead converts within the model's horizon.",
    )
    probability_low: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Lower end of the 95% interval around `probability`: how sure the "
        "validation evidence behind it is (the Beta-posterior interval of the calibration "
        "block the lead falls in, or the delta-method interval of a Platt or beta fit).",
    )
    probability_high: float | None = Field(
        None, ge=0, le=1, description="Upper end of that interval."
    )
    score: int = Field(
        ge=0,
        le=100,
        description="0–100: the share of leads in the validation period that scored lower.",
    )
    mql: bool = Field(description="Marketing-qualified: `probability >= threshold`.")
    threshold: float = Field(description="The MQL threshold applied to this lead.")
    threshold_region: str | None = Field(
        description="The region whose own threshold was applied; null for the global one."
    )
    grade: str = Field(
        pattern=r"^[A-D][1-4]$",
        description="Letter A–D: fit (A best); digit 1–4: "
        "engagement (1 most engaged); from the SHAP sums of each feature group.",
    )
    raw_score: float = Field(description="The model's raw output (log-odds) before calibration.")
    base_value: float = Field(
        description="SHAP base value: `base_value + sum(contributions) == raw_score`."
    )
    reasons: Reasons = Field(description="Top positive and negative reasons.")
    contributions: dict[str, float] | None = Field(
        None, description="Every feature's SHAP contribution, when `include_contributions`."
    )
    next_best_actions: list[NextBestAction] = Field(
        default_factory=list,
        description="The actions that would raise the score most if they happened now, "
        "best first (at most `next_best_actions` of the request, only those with a gain); "
        "each computed by re-scoring the lead with it, by the same features and model.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Input that was accepted but handled specially "
        "(unknown categories, activities after `as_of`, ...).",
    )
    model: ModelRef = Field(description="The model that produced this answer.")


class ModelInfo(BaseModel):
    """What the service is serving, for people and monitoring."""

    name: str = Field(description="Registered model name.")
    version: str = Field(description="Registry version.")
    alias: str | None = Field(description="Registry alias served.")
    source: Literal["registry", "bento", "folder"] = Field(
        description="Where it was loaded from: the MLflow registry, the model packaged in "
        "the Bento, or a bundle folder."
    )
    run_id: str | None = Field(None, description="MLflow run that trained it.")
    trained_on: dict[str, Any] = Field(
        default_factory=dict,
        description="Training data: first/last `as_of`, rows, leads and "
        "conversions of the train, validation and test periods, the label horizon and the "
        "snapshot rule.",
    )
    metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="Held-out test metrics per scorer (`model`, the baselines) and `by_region`.",
    )
    policy: dict[str, Any] = Field(
        description="MQL policy: rule, target, global and per-region thresholds, grade cuts."
    )
    features: list[str] = Field(description="Model features, in model column order.")
    request_form: RequestForm = Field(
        "lead",
        description="The request form `/score` takes for this model: `lead` "
        "(profile, account, activities) or `features` (feature values by name, for a model "
        "trained on a `lead_snapshot` dataset config).",
    )
    inputs: list[dict[str, Any]] | None = Field(
        None,
        description="The values a request carries by name, each with its `name`, `dtype` "
        "(category, float, int, bool), `group`, `description` and the `categories` the "
        "model knows: for the features form every feature; for the lead form the extra lead "
        "columns of a model trained on a `tables` dataset config, sent as further keys of "
        "`lead` (null when the model takes none).",
    )
    next_best_actions: list[ActionInfo] = Field(
        default_factory=list,
        description="The actions ranked for every lead as `next_best_actions`: the built-in "
        "activities, or those its dataset config declares (empty: none).",
    )


class ActionInfo(BaseModel):
    """One action the served model ranks for every lead (``next_best_actions``)."""

    name: str = Field(description="Its name, as `next_best_actions[].action` gives it.")
    phrase: str = Field(description='How its sentence starts ("A demo request").')
    activity: str | None = Field(
        None, description="The activity type appended at `as_of` (lead-form models)."
    )
    feature: str | None = Field(
        None, description="The feature it changes (models of a `lead_snapshot` config)."
    )
    set: str | float | bool | None = Field(None, description="The value `feature` is set to.")
    add: float | None = Field(None, description="The number added to `feature`.")


class SampleInfo(BaseModel):
    """A sample lead payload the page offers."""

    name: str = Field(description="File stem; fetch it from `/samples/{name}`.")
    lead_id: str = Field(description="The sample's lead id.")
    label: str = Field(description="Short description shown in the picker.")


# ---- POST /feedback: sales dispositions into the lead store ---------------------------------

MAX_FEEDBACK = 5_000
"""Events per ``/feedback`` request (a day of a team's dispositions; bulk history goes
through ``leadscore feedback import``)."""
_Name = Annotated[str | None, StringConstraints(max_length=200), BeforeValidator(_clean_text)]


class FeedbackEvent(BaseModel):
    """One sales disposition: what a rep did with a lead, and when.

    Shapes and types are checked here (a 422 naming the field); the funnel's rules (a
    known stage and reason code, a lead the store knows, a time after the lead existed)
    are the store's (``store.feedback``), the same for every way feedback comes in, and
    answered 400 naming the event and the field.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lead_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The lead, as it was scored."
    )
    stage: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="accepted, rejected, sql, opportunity, won or lost (any case).",
        examples=["accepted"],
    )
    occurred_at: Timestamp = Field(
        description="When it happened (ISO 8601; UTC unless it carries an offset)."
    )
    reason_code: Annotated[str | None, StringConstraints(max_length=32)] = Field(
        None,
        description="Why a lead was rejected: bad_fit, no_budget, bad_timing, no_contact, "
        "existing_customer, duplicate, spam or other. Required for `rejected`, refused "
        "for every other stage.",
    )
    reason_text: Annotated[
        str | None, StringConstraints(max_length=4000), BeforeValidator(_clean_text)
    ] = Field(None, description="Free text: the rep's own words.")
    recorded_by: _Name = Field(None, description="Who recorded it (default: `api`).")
    owner: _Name = Field(None, description="The lead's owner in the CRM, if it changed.")


FeedbackBody = Annotated[
    FeedbackEvent | Annotated[list[FeedbackEvent], Field(min_length=1, max_length=MAX_FEEDBACK)],
    Field(description="One event, or a list of at most 5,000."),
]
"""The body of ``POST /feedback``: one event or a list of them."""


class FeedbackResponse(BaseModel):
    """What recording the events did (recording the same event again is a duplicate)."""

    received: int = Field(description="Events in the request.")
    recorded: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events already stored (or repeated): not stored again.")
    flagged: int = Field(
        description="New events stored with the flag `out_of_order` (a stage recorded before "
        "the stage that precedes it in the funnel): kept, and counted apart in the funnel."
    )
    reflagged: int = Field(0, description="Stored events whose flag these events changed.")
    owners: int = Field(0, description="Leads whose owner was set or changed.")
