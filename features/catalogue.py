"""The feature catalogue: every model input declared once, as data.

Training, serving, explanations and the model card all read this list, so a
feature's name, group, dtype and plain-language sentence can never drift apart
between the place it is computed and the place it is explained.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import re
import string
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from leadscore.errors import LeadscoreError

Group = Literal["fit", "engagement"]
Dtype = Literal["category", "float", "int", "bool"]
Direction = Literal["increasing", "decreasing"]
"""Expected effect of more of a signal on the score (no direction: it may go either way)."""

_TOKEN = r"(?:(?P<word>[A-Za-z]+)\(s\)|\[(?P<one>[^|\[\]]*)\|(?P<many>[^|\[\]]*)\])"
_COUNTED_TOKEN = re.compile(r"(?P<number>-?\d[\d,]*(?:\.\d+)?)(?P<between>[^\d(\[]*?)" + _TOKEN)
_BARE_TOKEN = re.compile(_TOKEN)


def _agree(match: re.Match[str]) -> str:
    number = match.groupdict().get("number")
    one = number is not None and number.lstrip("-") == "1"
    word = match.group("word")
    form = (
        (word + ("" if one else "s")) if word is not None else match.group("one" if one else "many")
    )
    return match.group("number") + match.group("between") + form if number is not None else form


def pluralise(text: str) -> str:
    """Make each plural token of a rendered sentence agree with the number shown before it.

    Templates write ``time(s)`` (regular plural) or ``[piece|pieces]`` (any other), and
    the sentence is rendered first, so the grammar follows the number a rep reads: "1
    day", "2 days", "0 days", and "2 days" for a 1.5 shown as ``{value:.0f}``. A token
    with no number before it takes the plural.
    """
    if "(s)" not in text and "|" not in text:
        return text  # most sentences: no token, no scan (reasons are built per request)
    return _agreeing(text)


@functools.lru_cache(maxsize=8192)
def _agreeing(text: str) -> str:
    """``pluralise`` of a sentence with tokens, remembered: the same counts recur in every
    request, and the regular expressions cost more than the rest of a reason."""
    return _BARE_TOKEN.sub(_agree, _COUNTED_TOKEN.sub(_agree, text))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


ACTIVITY_TYPES: tuple[str, ...] = (
    "page_view",
    "pricing_page_view",
    "demo_page_view",
    "email_open",
    "email_click",
    "email_bounce",
    "content_download",
    "webinar_registered",
    "webinar_attended",
    "form_submit",
    "demo_request",
    "trial_signup",
    "unsubscribe",
    "other",
)
"""Activity types the contract accepts. Unknown types are rejected or mapped to ``other``."""

HIGH_INTENT_TYPES: tuple[str, ...] = (
    "pricing_page_view",
    "demo_page_view",
    "demo_request",
    "trial_signup",
    "form_submit",
)
"""Activities that signal buying intent rather than curiosity."""

WINDOWS_DAYS: tuple[int, ...] = (7, 30, 90)

ACTIVITY_ABSENT: dict[str, str] = {
    "page_view": "Has not viewed any web pages",
    "pricing_page_view": "Has not visited the pricing page",
    "demo_page_view": "Has not looked at the demo page",
    "email_open": "Has not opened any marketing emails",
    "email_click": "Has not clicked any marketing emails",
    "email_bounce": "Had no bounced emails",
    "content_download": "Has not downloaded any content",
    "webinar_registered": "Has not registered for a webinar",
    "webinar_attended": "Has not attended a webinar",
    "form_submit": "Has not submitted a web form",
    "demo_request": "Has not requested a demo",
    "trial_signup": "Has not signed up for a trial",
    "unsubscribe": "Has not unsubscribed",
    "other": "Had no other recorded activities",
}

ACTIVITY_PHRASES: dict[str, str] = {
    "page_view": "Viewed {value:.0f} web page(s)",
    "pricing_page_view": "Visited the pricing page {value:.0f} time(s)",
    "demo_page_view": "Looked at the demo page {value:.0f} time(s)",
    "email_open": "Opened {value:.0f} marketing email(s)",
    "email_click": "Clicked {value:.0f} link(s) in marketing emails",
    "email_bounce": "Had {value:.0f} email(s) bounce",
    "content_download": "Downloaded {value:.0f} [piece|pieces] of content",
    "webinar_registered": "Registered for {value:.0f} webinar(s)",
    "webinar_attended": "Attended {value:.0f} webinar(s)",
    "form_submit": "Submitted {value:.0f} web form(s)",
    "demo_request": "Requested a demo {value:.0f} time(s)",
    "trial_signup": "Signed up for a trial {value:.0f} time(s)",
    "unsubscribe": "Unsubscribed from emails {value:.0f} time(s)",
    "other": "Had {value:.0f} other recorded [activity|activities]",
}

SENIORITIES: tuple[str, ...] = (
    "C-Level",
    "VP",
    "Director",
    "Manager",
    "Individual Contributor",
    "Student",
)
DEPARTMENTS: tuple[str, ...] = (
    "Executive",
    "Marketing",
    "Sales",
    "IT",
    "Engineering",
    "Finance",
    "Operations",
    "HR",
    "Other",
)
INDUSTRIES: tuple[str, ...] = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Government",
    "Professional Services",
    "Media",
    "Telecommunications",
    "Energy",
    "Non-profit",
)
REGIONS: tuple[str, ...] = ("NA", "EMEA", "APAC", "LATAM")
LEAD_SOURCES: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "social",
    "referral",
    "webinar",
    "event",
    "content_syndication",
    "outbound",
    "partner",
    "direct",
)
SIZE_BANDS: tuple[str, ...] = ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+")
SIZE_EDGES: tuple[float, ...] = (10, 50, 200, 1000, 5000)
REVENUE_BANDS: tuple[str, ...] = ("<1M", "1-10M", "10-50M", "50-250M", "250M-1B", "1B+")
REVENUE_EDGES: tuple[float, ...] = (1e6, 1e7, 5e7, 2.5e8, 1e9)
EMAIL_DOMAIN_TYPES: tuple[str, ...] = ("corporate", "free", "unknown")
SALES_STAGES: tuple[str, ...] = ("accepted", "rejected", "sql", "opportunity", "won", "lost")
"""What sales does with an MQL, in funnel order (``rejected`` and ``lost`` end an episode):
the lead store's dispositions and the simulator's sales process share this vocabulary."""
REJECTION_REASONS: tuple[str, ...] = (
    "bad_fit",
    "no_budget",
    "bad_timing",
    "no_contact",
    "existing_customer",
    "duplicate",
    "spam",
    "other",
)
"""The standard reason codes reps record when they reject an MQL."""

ICP_INDUSTRIES: frozenset[str] = frozenset(
    {"Software", "Financial Services", "Healthcare", "Telecommunications"}
)
"""Ideal customer profile used for the ``icp_*`` signals (override per dataset config)."""
ICP_SIZE_BANDS: frozenset[str] = frozenset({"201-1000", "1001-5000", "5000+"})
ICP_SENIORITIES: frozenset[str] = frozenset({"C-Level", "VP", "Director"})


class FeatureSpec(BaseModel):
    """One model input: the one feature definition every stage shares.

    The catalogue below declares the built-in ones, a dataset config declares its own,
    ``runtime.encoding.InputSpec`` stores the fitted ones (with the categories learned
    on the training split) in the model artifact, and a training set's metadata carries
    a config's catalogue. Validated once where it is built or read; sentences are then
    plain attribute reads, cheap enough for every request.

    Attributes:
        name: Column name in the training set and in the model.
        group: ``fit`` (who the lead is) or ``engagement`` (what the lead did);
            the A1–D4 grade sums SHAP contributions per group.
        dtype: ``category`` features are passed to LightGBM natively.
        template: Sentence for a sales rep; ``{value}`` is the feature's value.
        description: What the feature measures, for the model card and docs.
        categories: Vocabulary of a categorical: fixed up front in the catalogue, or
            learned at fit time (most frequent first) in a fitted ``InputSpec``.
        zero_template: Sentence used instead of ``template`` when the value is 0
            ("Has not visited the pricing page..." reads better than "0 times").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    group: Group
    dtype: Dtype
    template: str
    description: str
    categories: tuple[str, ...] = ()
    zero_template: str = ""

    def __init__(
        self,
        name: str,
        group: Group,
        dtype: Dtype,
        template: str,
        description: str,
        categories: tuple[str, ...] = (),
        zero_template: str = "",
        **extra: Any,
    ) -> None:
        """Positional arguments keep the catalogue below readable as a table of data."""
        super().__init__(
            name=name,
            group=group,
            dtype=dtype,
            template=template,
            description=description,
            categories=categories,
            zero_template=zero_template,
            **extra,
        )

    def sentence(self, value: object) -> str:
        """Render the plain-language reason for one value of this feature."""
        if _missing(value):
            return f"{self.description}: not known"
        if self.zero_template and isinstance(value, int | float) and value == 0:
            return pluralise(self.zero_template)
        try:
            text = self.template.format(value=value)
        except (ValueError, TypeError):
            text = self.template.replace("{value:.0f}", str(value)).format(value=value)
        return pluralise(text)


Member = tuple[FeatureSpec, object, float]
"""One feature of a signal as a reason sees it: its spec, its value and its SHAP value."""


class SignalSpec(BaseModel):
    """A family of features that describe one behaviour, explained as one reason.

    The 7/30/90-day counts of one activity split the model's credit between them, often
    with opposite signs ("87 pricing visits in 90 days" lowering the score right under
    "22 in 7 days" raising it). A reason is therefore given per signal: the exact SHAP
    values of its features summed, told in one sentence that merges the windows.

    Attributes:
        name: The signal's name (a reason's ``feature``); a one-feature signal is named
            after its feature.
        features: Its member features (every model feature belongs to exactly one signal).
        template: Sentence for a rep. With ``windows``: ``{value}`` is the count of the
            shortest window with any, ``{days}`` that window ("Visited the pricing page
            {value:.0f} time(s) in the last {days} day(s)"), and the longest window is
            added in parentheses when it says more ("(87 in 90 days)"). Without: ``{value}``
            is the value of the member that moved the score most and ``{<feature>}`` any
            member's value; empty: the sentence of the member that moved the score most.
        absent_template: With ``windows``, the sentence when every count is 0 (``{days}``:
            the longest window): "Has not visited the pricing page in {days} day(s)".
        windows: Days of each member's window, in the order of ``features`` (windowed
            count families only).
        direction: ``increasing``: more of it never lowers the score (a positive-intent
            activity); ``decreasing``: more of it never raises it; None: either way.
        opposite: Members whose relation to the signal is the reverse of its direction
            (days since the last one: more days means less of the behaviour).
        free: Members with no expected direction at all (ratios, trends).
        description: What the signal describes, for the model card.
        enforced: The model was trained to obey ``direction`` (monotone constraints,
            ``training.monotone``), so a lowering reason can say "less than typical".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    features: tuple[str, ...]
    template: str = ""
    absent_template: str = ""
    windows: tuple[int, ...] = ()
    direction: Direction | None = None
    opposite: tuple[str, ...] = ()
    free: tuple[str, ...] = ()
    description: str = ""
    enforced: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> SignalSpec:
        """Refuse a signal whose parts do not fit together, naming the part."""
        problems = signal_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def feature_direction(self, feature: str) -> int:
        """Expected sign of the score's response to more of ``feature`` (0: no expectation)."""
        if self.direction is None or feature in self.free or feature not in self.features:
            return 0
        sign = 1 if self.direction == "increasing" else -1
        return -sign if feature in self.opposite else sign

    def counts(self) -> tuple[str, ...]:
        """Members that count the behaviour (neither ``opposite`` nor ``free``)."""
        return tuple(f for f in self.features if f not in self.opposite and f not in self.free)

    def sentence(self, members: Sequence[Member]) -> tuple[str, object]:
        """The reason's sentence and the value it quotes, for the members of one lead.

        A signal declared ``increasing`` whose features together lower the score is told
        as what is missing: "Has not visited the pricing page in 30 days (2 in 90 days)".
        When the model obeys the direction (``enforced``), a lowering reason can only
        mean less of it than the typical lead, and says so ("..., less than typical").

        Args:
            members: Each member's spec, value and SHAP value, in ``features`` order.
        """
        short = self.direction == "increasing" and sum(c for _, _, c in members) < 0
        if self.windows:
            return self._windowed(members, short)
        lead = max(members, key=lambda m: abs(m[2]))
        text, value = lead[0].sentence(lead[1]), lead[1]
        if self.template:
            values = {spec.name: v for spec, v, _ in members}
            if not any(_missing(v) for v in values.values()):
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    text = pluralise(self.template.format(value=lead[1], **values))
        counted = lead[0].name in self.counts() and isinstance(value, int | float)
        if short and self.enforced and counted and value > 0:  # type: ignore[operator]
            text += LESS_THAN_TYPICAL
        return text, value

    def _windowed(self, members: Sequence[Member], short: bool) -> tuple[str, object]:
        """ "Visited the pricing page 22 times in the last 7 days (87 in 90 days)"."""
        pairs = [(days, value) for days, (_, value, _) in zip(self.windows, members, strict=True)]
        known = [(d, v) for d, v in pairs if not _missing(v)]
        if not known:
            spec = members[-1][0]
            return f"{self.description or spec.description}: not known", None
        seen = [(d, v) for d, v in known if isinstance(v, int | float) and v > 0]
        longest_days, longest = known[-1]
        if not seen:
            if not self.absent_template:
                return members[-1][0].sentence(longest), longest
            return pluralise(self.absent_template.format(days=longest_days)), longest
        days, value = seen[0]
        after = f" ({longest:.0f} in {longest_days} day(s))"
        none_since = [d for d, v in known if d < days]
        if short and none_since and self.absent_template:
            # Holding the score back: nothing recent, only older activity.
            older = [f"{value:.0f} in {days} day(s)"]
            if longest_days != days and longest != value:
                older.append(f"{longest:.0f} in {longest_days} day(s)")
            text = self.absent_template.format(days=none_since[-1]) + f" ({', '.join(older)})"
            return pluralise(text), 0.0
        text = self.template.format(value=value, days=days)
        if longest_days != days and longest != value:
            text += after
        return pluralise(text + (LESS_THAN_TYPICAL if short and self.enforced else "")), value


LESS_THAN_TYPICAL = ", less than typical"
"""Added to a positive-intent reason that lowers the score: there was less of it than usual."""


def signal_problems(signal: SignalSpec) -> list[str]:
    """What is wrong with one signal's declaration, each naming the key at fault."""
    problems: list[str] = []
    if not signal.features:
        problems.append(f"signal {signal.name!r}: features must name at least one feature")
    repeated = sorted({f for f in signal.features if signal.features.count(f) > 1})
    if repeated:
        problems.append(f"signal {signal.name!r}: features lists {repeated} more than once")
    for key in ("opposite", "free"):
        stray = [f for f in getattr(signal, key) if f not in signal.features]
        if stray:
            problems.append(f"signal {signal.name!r}: {key} names {stray}, not among its features")
    if signal.windows and len(signal.windows) != len(signal.features):
        problems.append(
            f"signal {signal.name!r}: windows gives {len(signal.windows)} day counts for "
            f"{len(signal.features)} features"
        )
    if signal.windows and list(signal.windows) != sorted(set(signal.windows)):
        problems.append(f"signal {signal.name!r}: windows must rise, got {list(signal.windows)}")
    allowed = {"value", "days"} if signal.windows else {"value", *signal.features}
    for key in ("template", "absent_template"):
        fields = _template_fields(getattr(signal, key))
        if fields is None:
            problems.append(f"signal {signal.name!r}: {key} is not a valid template")
            continue
        unknown = sorted(fields - allowed)
        if unknown:
            problems.append(
                f"signal {signal.name!r}: {key} names {unknown}; it may use "
                f"{{{'}, {'.join(sorted(allowed))}}}"
            )
    if signal.windows and not signal.template:
        problems.append(f"signal {signal.name!r}: a windowed signal needs a template")
    return problems


def _template_fields(template: str) -> set[str] | None:
    """Names a template formats (None: it does not parse)."""
    try:
        return {
            name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        }
    except ValueError:
        return None


def _fit_features() -> list[FeatureSpec]:
    cat = "category"
    return [
        FeatureSpec("seniority", "fit", cat, "Seniority is {value}", "Seniority", SENIORITIES),
        FeatureSpec("department", "fit", cat, "Works in {value}", "Department", DEPARTMENTS),
        FeatureSpec("industry", "fit", cat, "Company is in {value}", "Industry", INDUSTRIES),
        FeatureSpec(
            "company_size_band",
            "fit",
            cat,
            "Company has {value} employees",
            "Company size band (employees)",
            SIZE_BANDS,
        ),
        FeatureSpec(
            "revenue_band",
            "fit",
            cat,
            "Company revenue is {value}",
            "Annual revenue band (USD)",
            REVENUE_BANDS,
        ),
        FeatureSpec("region", "fit", cat, "Based in {value}", "Sales region", REGIONS),
        FeatureSpec(
            "lead_source", "fit", cat, "Came in through {value}", "Lead source", LEAD_SOURCES
        ),
        FeatureSpec(
            "email_domain_type",
            "fit",
            cat,
            "Uses a {value} email address",
            "Email domain type",
            EMAIL_DOMAIN_TYPES,
        ),
        FeatureSpec(
            "icp_industry",
            "fit",
            "int",
            "Industry is one we sell best to",
            "Industry is in the ideal customer profile",
            zero_template="Industry is outside our ideal customer profile",
        ),
        FeatureSpec(
            "icp_size",
            "fit",
            "int",
            "Company size fits our ideal customer profile",
            "Company size is in the ideal customer profile",
            zero_template="Company size is outside our ideal customer profile",
        ),
        FeatureSpec(
            "icp_seniority",
            "fit",
            "int",
            "Is a decision maker (Director or above)",
            "Seniority is Director or above",
            zero_template="Is not a decision maker (below Director)",
        ),
        FeatureSpec(
            "icp_score",
            "fit",
            "int",
            "Matches {value:.0f} of 3 ideal-customer [criterion|criteria]",
            "Number of ideal-customer-profile criteria met",
        ),
    ]


def _engagement_features() -> list[FeatureSpec]:
    specs: list[FeatureSpec] = []
    for activity in ACTIVITY_TYPES:
        for days in WINDOWS_DAYS:
            specs.append(
                FeatureSpec(
                    f"n_{activity}_{days}d",
                    "engagement",
                    "float",
                    ACTIVITY_PHRASES[activity] + f" in the last {days} day(s)",
                    f"Count of {activity} activities in the {days} days before scoring",
                    zero_template=ACTIVITY_ABSENT[activity] + f" in the last {days} day(s)",
                )
            )
    specs += [
        FeatureSpec(
            "n_activities_30d",
            "engagement",
            "float",
            "Had {value:.0f} recorded interaction(s) in the last 30 days",
            "All activities in the last 30 days",
            zero_template="Has not interacted with us in the last 30 days",
        ),
        FeatureSpec(
            "n_high_intent_30d",
            "engagement",
            "float",
            "Showed buying intent {value:.0f} time(s) in the last 30 days",
            "Pricing/demo views, demo requests, trials and forms in the last 30 days",
            zero_template="Showed no buying intent in the last 30 days",
        ),
        FeatureSpec(
            "days_since_last_activity",
            "engagement",
            "float",
            "Last interaction was {value:.0f} day(s) ago",
            "Days since the most recent activity",
            zero_template="Interacted with us today",
        ),
        FeatureSpec(
            "days_since_last_high_intent",
            "engagement",
            "float",
            "Last showed buying intent {value:.0f} day(s) ago",
            "Days since the most recent high-intent activity",
            zero_template="Showed buying intent today",
        ),
        FeatureSpec(
            "trend_7d_vs_30d",
            "engagement",
            "float",
            "Activity this week is {value:.1f}x the weekly rate of the previous 30 days",
            "Activities in the last 7 days relative to the weekly rate of the 30 days before",
        ),
        FeatureSpec(
            "email_ctr_90d",
            "engagement",
            "float",
            "Clicked {value:.0%} of opened emails in the last 90 days",
            "Email clicks divided by email opens over 90 days",
        ),
        FeatureSpec(
            "days_since_created",
            "engagement",
            "float",
            "Became a lead {value:.0f} day(s) ago",
            "Days since the lead was created",
        ),
        FeatureSpec(
            "active_days_90d",
            "engagement",
            "float",
            "Was active on {value:.0f} different day(s) in the last 90 days",
            "Distinct days with any activity in the last 90 days",
        ),
    ]
    return specs


CATALOGUE: tuple[FeatureSpec, ...] = tuple(_fit_features() + _engagement_features())
"""Every feature the built-in pipeline computes, in model column order."""

INCREASING_ACTIVITIES: tuple[str, ...] = (
    "pricing_page_view",
    "demo_page_view",
    "email_click",
    "content_download",
    "webinar_attended",
    "form_submit",
    "demo_request",
    "trial_signup",
)
"""Positive-intent activities: more of them never lowers the score."""
DECREASING_ACTIVITIES: tuple[str, ...] = ("email_bounce", "unsubscribe")
"""Activities that signal a lead slipping away: more of them never raises the score."""


def _activity_signal(activity: str) -> SignalSpec:
    direction: Direction | None = (
        "increasing"
        if activity in INCREASING_ACTIVITIES
        else "decreasing"
        if activity in DECREASING_ACTIVITIES
        else None
    )
    return SignalSpec(
        name=activity,
        features=tuple(f"n_{activity}_{days}d" for days in WINDOWS_DAYS),
        template=ACTIVITY_PHRASES[activity] + " in the last {days} day(s)",
        absent_template=ACTIVITY_ABSENT[activity] + " in {days} day(s)",
        windows=WINDOWS_DAYS,
        direction=direction,
        description=f"{activity} activities over the last {', '.join(map(str, WINDOWS_DAYS))} days",
    )


def _catalogue_signals() -> tuple[SignalSpec, ...]:
    return (
        SignalSpec(
            name="seniority",
            features=("seniority", "icp_seniority"),
            description="Seniority, and whether it makes the lead a decision maker",
        ),
        SignalSpec(
            name="industry",
            features=("industry", "icp_industry"),
            description="Industry, and whether it is one we sell best to",
        ),
        SignalSpec(
            name="company_size_band",
            features=("company_size_band", "icp_size"),
            description="Company size, and whether it fits the ideal customer profile",
        ),
        *(_activity_signal(a) for a in ACTIVITY_TYPES),
        SignalSpec(
            name="buying_intent",
            features=("n_high_intent_30d", "days_since_last_high_intent"),
            direction="increasing",
            opposite=("days_since_last_high_intent",),
            description="Buying intent (pricing/demo views, demo requests, trials, forms)",
        ),
        SignalSpec(
            name="recent_activity",
            features=(
                "n_activities_30d",
                "active_days_90d",
                "days_since_last_activity",
                "trend_7d_vs_30d",
            ),
            description="How much and how recently the lead interacted with us",
        ),
    )


CATALOGUE_SIGNALS: tuple[SignalSpec, ...] = _catalogue_signals()
"""The built-in feature families; every other catalogue feature is a signal of its own."""


class SignalError(LeadscoreError, ValueError):
    """Declared signals that do not partition a model's features; names each problem."""


def signals_for(
    features: Sequence[FeatureSpec], declared: Sequence[SignalSpec] = ()
) -> tuple[SignalSpec, ...]:
    """Every feature in exactly one signal: ``declared``, then the catalogue's families
    whose features are all here (as the catalogue defines them), then one per feature left.

    Returned in model column order of each signal's first feature.

    Raises:
        SignalError: a declared signal names an unknown feature, shares one with another
            signal, or mixes fit and engagement features.
    """
    specs = {f.name: f for f in features}
    problems: list[str] = []
    owner: dict[str, str] = {}
    for signal in declared:
        for name in signal.features:
            if name not in specs:
                problems.append(
                    f"signal {signal.name!r}: feature {name!r} is not a model feature"
                    + _closest(name, list(specs))
                )
            elif name in owner:
                problems.append(
                    f"signal {signal.name!r}: feature {name!r} already belongs to signal "
                    f"{owner[name]!r}"
                )
            else:
                owner[name] = signal.name
        groups = {specs[n].group for n in signal.features if n in specs}
        if len(groups) > 1:
            problems.append(f"signal {signal.name!r}: mixes fit and engagement features")
    names = [s.name for s in declared]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"signal {name!r}: declared more than once")
    if problems:
        raise SignalError("; ".join(problems))
    chosen = list(declared)
    builtin = by_name()
    taken = {s.name for s in chosen} | set(owner)
    for signal in CATALOGUE_SIGNALS:
        members = signal.features
        if signal.name in taken or any(
            n not in specs or n in owner or specs[n].template != builtin[n].template
            for n in members
        ):
            continue
        chosen.append(signal)
        owner.update({n: signal.name for n in members})
    signal_names = {s.name for s in chosen}
    for f in features:
        if f.name not in owner:
            name = f.name if f.name not in signal_names else f"{f.name}_feature"
            chosen.append(SignalSpec(name=name, features=(f.name,), description=f.description))
            owner[f.name] = name
            signal_names.add(name)
    column = {name: j for j, name in enumerate(specs)}
    return tuple(sorted(chosen, key=lambda s: min(column[n] for n in s.features)))


def _closest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def by_name(catalogue: tuple[FeatureSpec, ...] = CATALOGUE) -> dict[str, FeatureSpec]:
    """Index a catalogue by feature name."""
    return {spec.name: spec for spec in catalogue}


def feature_names(catalogue: tuple[FeatureSpec, ...] = CATALOGUE) -> list[str]:
    """Model column order."""
    return [spec.name for spec in catalogue]
