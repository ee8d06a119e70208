"""The feature catalogue: every model input declared once, as data.

Training, serving, explanations and the model card all read this list, so a
feature's name, group, dtype and plain-language sentence can never drift apart
between the place it is computed and the place it is explained.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Group = Literal["fit", "engagement"]
Dtype = Literal["category", "float", "int", "bool"]

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
    "page_view": "Viewed {value:.0f} web pages",
    "pricing_page_view": "Visited the pricing page {value:.0f} times",
    "demo_page_view": "Looked at the demo page {value:.0f} times",
    "email_open": "Opened {value:.0f} marketing emails",
    "email_click": "Clicked {value:.0f} links in marketing emails",
    "email_bounce": "Had {value:.0f} emails bounce",
    "content_download": "Downloaded {value:.0f} pieces of content",
    "webinar_registered": "Registered for {value:.0f} webinars",
    "webinar_attended": "Attended {value:.0f} webinars",
    "form_submit": "Submitted {value:.0f} web forms",
    "demo_request": "Requested a demo {value:.0f} times",
    "trial_signup": "Signed up for a trial {value:.0f} times",
    "unsubscribe": "Unsubscribed from emails {value:.0f} times",
    "other": "Had {value:.0f} other recorded activities",
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
        if value is None or (isinstance(value, float) and value != value):
            return f"{self.description}: not known"
        if self.zero_template and isinstance(value, int | float) and value == 0:
            return self.zero_template
        try:
            return self.template.format(value=value)
        except (ValueError, TypeError):
            return self.template.replace("{value:.0f}", str(value)).format(value=value)


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
            "Matches {value:.0f} of 3 ideal-customer criteria",
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
                    ACTIVITY_PHRASES[activity] + f" in the last {days} days",
                    f"Count of {activity} activities in the {days} days before scoring",
                    zero_template=ACTIVITY_ABSENT[activity] + f" in the last {days} days",
                )
            )
    specs += [
        FeatureSpec(
            "n_activities_30d",
            "engagement",
            "float",
            "Had {value:.0f} recorded interactions in the last 30 days",
            "All activities in the last 30 days",
            zero_template="Has not interacted with us in the last 30 days",
        ),
        FeatureSpec(
            "n_high_intent_30d",
            "engagement",
            "float",
            "Showed buying intent {value:.0f} times in the last 30 days",
            "Pricing/demo views, demo requests, trials and forms in the last 30 days",
            zero_template="Showed no buying intent in the last 30 days",
        ),
        FeatureSpec(
            "days_since_last_activity",
            "engagement",
            "float",
            "Last interaction was {value:.0f} days ago",
            "Days since the most recent activity",
            zero_template="Interacted with us today",
        ),
        FeatureSpec(
            "days_since_last_high_intent",
            "engagement",
            "float",
            "Last showed buying intent {value:.0f} days ago",
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
            "Became a lead {value:.0f} days ago",
            "Days since the lead was created",
        ),
        FeatureSpec(
            "active_days_90d",
            "engagement",
            "float",
            "Was active on {value:.0f} different days in the last 90 days",
            "Distinct days with any activity in the last 90 days",
        ),
    ]
    return specs


CATALOGUE: tuple[FeatureSpec, ...] = tuple(_fit_features() + _engagement_features())
"""Every feature the built-in pipeline computes, in model column order."""


def by_name(catalogue: tuple[FeatureSpec, ...] = CATALOGUE) -> dict[str, FeatureSpec]:
    """Index a catalogue by feature name."""
    return {spec.name: spec for spec in catalogue}


def feature_names(catalogue: tuple[FeatureSpec, ...] = CATALOGUE) -> list[str]:
    """Model column order."""
    return [spec.name for spec in catalogue]
