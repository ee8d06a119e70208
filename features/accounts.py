"""Account features, point in time: one pure function for training and scoring.

An account (a company) is bought by a buying group, so its score reads all its people at
once: firmographics, how many people are engaged and how recently, their seniority mix,
which buying-group personas (``features.personas``) are engaged and which are missing,
the best and summed lead scores when the lead model's probabilities are given, and
momentum (engagement this week against the weekly average of the prior three).

:func:`account_features` is the one computation: training calls it on snapshots of past
dates, scoring on today's. It reads only rows at or before each ``as_of`` (activities
``occurred_at <= as_of``, leads ``created_at <= as_of``, conversions ``converted_at <=
as_of``), so no later row can reach a feature. :func:`account_labels` gives the label: at
least one conversion of the account's leads in ``(as_of, as_of + horizon]`` (a lead
created after ``as_of`` counts: the question is whether the company buys).

Leads whose ``account_id`` is missing or not in the accounts table cannot be rolled up:
they stay leads (the lead score is unaffected) and are returned in
``AccountFeatures.unattached``, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import ACTIVITY_TYPES, FeatureSpec, SignalSpec
from features.contract import TIMESTAMP_UNIT
from features.personas import DEFAULT_PERSONAS, PersonaSpec, persona_codes
from leadscore.errors import LeadscoreError

ENGAGING_TYPES: tuple[str, ...] = tuple(
    t for t in ACTIVITY_TYPES if t not in ("email_open", "email_bounce", "unsubscribe", "other")
)
"""Activities that show a person engaging (email opens are left out: security gateways
and image proxies open mail for nobody)."""
HIGH_INTENT_TYPES: tuple[str, ...] = (
    "pricing_page_view",
    "demo_page_view",
    "demo_request",
    "trial_signup",
    "form_submit",
)
SENIOR = ("C-Level", "VP", "Director")
ENGAGED_DAYS = 30
"""A person is engaged when they did something engaging in the last 30 days."""
RECENT_DAYS = 14
MAX_LEAD_AGE_DAYS = 180
"""Accounts are snapshotted while one of their leads is open and at most this old (the
lead pipeline's own population rule), so the roll-up and the account model see the same
accounts."""

FIRMOGRAPHIC = ("industry", "region", "employee_count", "annual_revenue")
CATEGORICAL = ("industry", "region")
PEOPLE = (
    "people",
    "open_people",
    "new_people_30d",
    "engaged_7d",
    "engaged_14d",
    "engaged_30d",
    "engaged_senior_30d",
    "days_since_last_activity",
    "days_since_first_person",
    "converted_before",
)
SENIORITY_MIX = ("senior_people", "senior_share", "student_people")
ACTIVITY = (
    "activities_7d",
    "activities_prior_21d",
    "high_intent_30d",
    "engaged_people_momentum",
    "activity_momentum",
)
COVERAGE = ("personas_present", "personas_engaged")
SCORES = ("best_lead_probability", "summed_lead_probability", "rollup_probability")


class AccountInputError(LeadscoreError, ValueError):
    """Account features cannot be computed from these tables; says which column is missing."""


@dataclass(frozen=True)
class AccountFeatures:
    """Account snapshots with their features, and the leads no account could hold.

    Attributes:
        frame: ``account_id``, ``as_of`` and one column per feature (see
            :func:`feature_names`), in the order of the snapshots.
        unattached: Lead ids whose ``account_id`` is missing or unknown (sorted).
    """

    frame: pd.DataFrame
    unattached: tuple[str, ...]


def feature_names(
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS, with_scores: bool = True
) -> list[str]:
    """The account model's columns, in order."""
    persona_cols = [f"engaged_{p.name}" for p in personas]
    return [
        *FIRMOGRAPHIC,
        *PEOPLE,
        *SENIORITY_MIX,
        *ACTIVITY,
        *COVERAGE,
        *persona_cols,
        *(SCORES if with_scores else ()),
    ]


_SENTENCES: dict[str, tuple[str, str]] = {
    "industry": ("Industry: {value}", "The company's industry"),
    "region": ("Region: {value}", "Where most of its people are"),
    "employee_count": ("{value:,.0f} employees", "Company size"),
    "annual_revenue": ("Annual revenue {value:,.0f}", "Company revenue"),
    "people": ("{value:.0f} people known at the company", "Leads created so far"),
    "open_people": ("{value:.0f} open leads", "Leads not converted, at most 180 days old"),
    "new_people_30d": ("{value:.0f} new people in the last 30 days", "New leads, 30 days"),
    "engaged_7d": ("{value:.0f} people engaged in the last 7 days", "Engaged people, 7 days"),
    "engaged_14d": ("{value:.0f} people engaged in the last 14 days", "Engaged people, 14 days"),
    "engaged_30d": ("{value:.0f} people engaged in the last 30 days", "Engaged people, 30 days"),
    "engaged_senior_30d": (
        "{value:.0f} directors or above engaged in the last 30 days",
        "Engaged senior people, 30 days",
    ),
    "days_since_last_activity": (
        "Last engagement {value:.0f} days ago",
        "Days since anyone at the company engaged",
    ),
    "days_since_first_person": (
        "First person arrived {value:.0f} days ago",
        "Age of the relationship",
    ),
    "converted_before": ("{value:.0f} earlier conversions", "Conversions before as_of"),
    "senior_people": ("{value:.0f} directors or above", "Senior people known"),
    "senior_share": ("{value:.0%} of its people are directors or above", "Senior share"),
    "student_people": ("{value:.0f} students", "Students among its people"),
    "activities_7d": ("{value:.0f} activities this week", "Activities, 7 days"),
    "activities_prior_21d": (
        "{value:.0f} activities in the three weeks before",
        "Activities, days 8-28",
    ),
    "high_intent_30d": (
        "{value:.0f} pricing, demo, trial or form actions in 30 days",
        "High-intent activities, 30 days",
    ),
    "engaged_people_momentum": (
        "Engaged people this week vs the prior weekly average: {value:+.1f}",
        "People momentum",
    ),
    "activity_momentum": (
        "Activities this week vs the prior weekly average: {value:+.1f}",
        "Activity momentum",
    ),
    "personas_present": ("{value:.0f} buying-group personas known", "Personas present"),
    "personas_engaged": (
        "{value:.0f} buying-group personas engaged in 30 days",
        "Personas engaged",
    ),
    "best_lead_probability": ("Best lead: {value:.0%}", "Highest lead probability"),
    "summed_lead_probability": ("Summed lead probability {value:.2f}", "Sum of lead probabilities"),
    "rollup_probability": (
        "Roll-up of its leads: {value:.0%}",
        "1 - prod(1 - p) over open leads",
    ),
}


def account_catalogue(
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS, with_scores: bool = True
) -> tuple[FeatureSpec, ...]:
    """The account features as catalogue entries (``runtime.encoding.InputSpec`` reads them):
    firmographics are ``fit``, everything about the people is ``engagement``."""
    specs = []
    for name in feature_names(personas, with_scores):
        if name.startswith("engaged_") and name not in _SENTENCES:
            persona = name.removeprefix("engaged_").replace("_", " ")
            template = f"{{value:.0f}} engaged {persona}(s) in 30 days"
            description = f"Engaged people of persona {persona}, 30 days"
        else:
            template, description = _SENTENCES[name]
        group = "fit" if name in FIRMOGRAPHIC else "engagement"
        dtype = "category" if name in CATEGORICAL else "float"
        specs.append(FeatureSpec(name, group, dtype, template, description))
    return tuple(specs)


def account_signals(personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS) -> tuple[SignalSpec, ...]:
    """Families of account features told as one reason each (their exact SHAP values
    summed, ``runtime.reasons``): "3 people engaged in the last 14 days (5 in 30), 1 of
    them a director or above"; features in none are reasons of their own."""
    persona_cols = tuple(f"engaged_{p.name}" for p in personas)
    return (
        SignalSpec(
            name="engaged_people",
            features=("engaged_7d", "engaged_14d", "engaged_30d", "engaged_senior_30d"),
            template="{engaged_14d:.0f} people engaged in the last 14 days "
            "({engaged_30d:.0f} in 30), {engaged_senior_30d:.0f} of them directors or above",
            description="How many of the company's people engage, and how senior",
        ),
        SignalSpec(
            name="buying_group",
            features=("personas_present", "personas_engaged", *persona_cols),
            template="{personas_engaged:.0f} of the buying group's personas engaged in 30 "
            "days ({personas_present:.0f} known)",
            description="Persona coverage of the buying group (features.personas)",
        ),
        SignalSpec(
            name="momentum",
            features=(
                "activities_7d",
                "activities_prior_21d",
                "engaged_people_momentum",
                "activity_momentum",
            ),
            template="{activities_7d:.0f} activities this week against "
            "{activities_prior_21d:.0f} in the three weeks before",
            free=("engaged_people_momentum", "activity_momentum"),
            description="This week's engagement against the weekly average of the prior three",
        ),
        SignalSpec(
            name="lead_scores",
            features=SCORES,
            template="Its leads: best {best_lead_probability:.0%}, all together "
            "{rollup_probability:.0%}",
            description="The lead model's probabilities of the account's open leads",
        ),
        SignalSpec(
            name="company_size",
            features=("employee_count", "annual_revenue"),
            description="Employees and revenue",
        ),
    )


def _require(table: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AccountInputError(f"{name}: missing column(s) {', '.join(missing)}")


def _times(values: pd.Series) -> np.ndarray:
    return np.asarray(pd.to_datetime(values), dtype=TIMESTAMP_UNIT)


def unattached_leads(leads: pd.DataFrame, accounts: pd.DataFrame) -> np.ndarray:
    """Mask of the leads whose ``account_id`` is missing or not in ``accounts``."""
    account = leads["account_id"]
    known = account.isin(set(accounts["account_id"].dropna()))
    return (account.isna() | ~known).to_numpy()


def account_snapshots(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    conversions: pd.DataFrame,
    dates: Sequence[pd.Timestamp] | pd.DatetimeIndex,
) -> pd.DataFrame:
    """Every (account_id, as_of) at which the account has an open lead to score.

    An open lead: created at or before ``as_of``, not converted by then, at most
    ``MAX_LEAD_AGE_DAYS`` old (the lead pipeline's population). Unattached leads make no
    account snapshot.
    """
    attached = leads.loc[~unattached_leads(leads, accounts)]
    converted = attached["lead_id"].map(conversions.groupby("lead_id")["converted_at"].min())
    created = pd.to_datetime(attached["created_at"])
    rows = []
    for as_of in pd.DatetimeIndex(dates):
        age = as_of - created
        is_open = (age >= pd.Timedelta(0)) & (age <= pd.Timedelta(days=MAX_LEAD_AGE_DAYS))
        is_open &= ~(converted <= as_of).fillna(False).astype(bool)
        ids = np.unique(attached.loc[is_open, "account_id"].astype(str))
        rows.append(pd.DataFrame({"account_id": ids, "as_of": as_of}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["account_id"])
    out["as_of"] = (
        out["as_of"].astype(TIMESTAMP_UNIT) if len(out) else pd.Series(dtype=TIMESTAMP_UNIT)
    )
    return out.reset_index(drop=True)


def account_labels(
    snapshots: pd.DataFrame,
    leads: pd.DataFrame,
    conversions: pd.DataFrame,
    horizon_days: int,
    known_only: bool = False,
) -> np.ndarray:
    """1 where one of the account's leads converts in ``(as_of, as_of + horizon]``.

    ``known_only`` counts only leads created at or before ``as_of`` (what a roll-up of
    today's leads can see), to tell how much of the label comes from people yet to arrive.
    """
    conv = conversions.merge(
        leads[["lead_id", "account_id", "created_at"]], on="lead_id", how="inner"
    )
    conv = conv.dropna(subset=["account_id"])
    snaps = snapshots[["account_id", "as_of"]].reset_index(drop=True)
    snaps = snaps.assign(_row=np.arange(len(snaps)))
    pairs = snaps.merge(
        conv[["account_id", "converted_at", "created_at"]], on="account_id", how="inner"
    )
    at = pd.to_datetime(pairs["converted_at"])
    start = pd.to_datetime(pairs["as_of"])
    hit = (at > start) & (at <= start + pd.Timedelta(days=horizon_days))
    if known_only:
        hit &= pd.to_datetime(pairs["created_at"]) <= start
    label = np.zeros(len(snaps), dtype=np.int8)
    label[pairs.loc[hit.to_numpy(), "_row"].to_numpy()] = 1
    return label


def _lead_state(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    converted_at: np.ndarray,
    as_of: np.datetime64,
) -> pd.DataFrame:
    """Per lead existing at ``as_of``: its engagement windows, reading nothing later."""
    day = np.timedelta64(1, "D")
    created = _times(leads["created_at"])
    exists = created <= as_of
    lead = leads.loc[exists, ["lead_id", "account_id", "seniority", "persona"]].copy()
    lead["created"] = created[exists]
    lead["converted"] = converted_at[exists] <= as_of
    at = activities["_at"].to_numpy()
    window = (at <= as_of) & (at > as_of - 90 * day)
    acts = activities.loc[window]
    age = (as_of - acts["_at"].to_numpy()) / day
    engaging = acts["_engaging"].to_numpy()
    per = pd.DataFrame(
        {
            "lead_id": acts["lead_id"].to_numpy(),
            "last": np.where(engaging, age, np.inf),
            "e7": engaging & (age < 7),
            "e14": engaging & (age < RECENT_DAYS),
            "e30": engaging & (age < ENGAGED_DAYS),
            "prior": engaging & (age >= 7) & (age < 28),
            "a7": age < 7,
            "a_prior": (age >= 7) & (age < 28),
            "hi30": acts["_high"].to_numpy() & (age < ENGAGED_DAYS),
        }
    )
    agg = per.groupby("lead_id", sort=False).agg(
        last=("last", "min"),
        e7=("e7", "any"),
        e14=("e14", "any"),
        e30=("e30", "any"),
        prior=("prior", "any"),
        a7=("a7", "sum"),
        a_prior=("a_prior", "sum"),
        hi30=("hi30", "sum"),
    )
    lead = lead.join(agg, on="lead_id")
    for col in ("e7", "e14", "e30", "prior"):
        lead[col] = lead[col].astype("boolean").fillna(False).astype(bool)
    for col in ("a7", "a_prior", "hi30"):
        lead[col] = lead[col].fillna(0).astype(np.int64)
    lead["last"] = lead["last"].fillna(np.inf)
    return lead


@dataclass(frozen=True)
class _People:
    """The attached leads with their personas, their first conversion time, and their
    activities flagged as engaging or high-intent; the unattached lead ids."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    converted_at: np.ndarray
    unattached: tuple[str, ...]


def _people(tables: dict[str, pd.DataFrame], personas: Sequence[PersonaSpec]) -> _People:
    """What every account computation reads, checked and prepared once."""
    leads, accounts = tables["leads"], tables["accounts"]
    activities, conversions = tables["activities"], tables["conversions"]
    _require(leads, "leads", ("lead_id", "account_id", "created_at", "seniority", "department"))
    _require(accounts, "accounts", ("account_id",))
    _require(activities, "activities", ("lead_id", "occurred_at", "activity_type"))
    _require(conversions, "conversions", ("lead_id", "converted_at"))
    loose = unattached_leads(leads, accounts)
    unattached = tuple(sorted(leads.loc[loose, "lead_id"].astype(str)))
    leads = leads.loc[~loose].reset_index(drop=True)
    codes = persona_codes(
        leads["seniority"].to_numpy(dtype=object),
        leads["department"].to_numpy(dtype=object),
        personas,
    )
    leads = leads.assign(persona=codes, account_id=leads["account_id"].astype(str))
    first_conv = conversions.groupby("lead_id")["converted_at"].min()
    converted_at = _times(leads["lead_id"].map(first_conv))
    kind = activities["activity_type"].astype(str)
    acts = pd.DataFrame(
        {
            "lead_id": activities["lead_id"].to_numpy(),
            "_at": _times(activities["occurred_at"]),
            "_engaging": kind.isin(ENGAGING_TYPES).to_numpy(),
            "_high": kind.isin(HIGH_INTENT_TYPES).to_numpy(),
        }
    )
    acts = acts.loc[acts["lead_id"].isin(set(leads["lead_id"]))]
    return _People(leads, acts, converted_at, unattached)


def account_features(
    tables: dict[str, pd.DataFrame],
    snapshots: pd.DataFrame,
    lead_scores: pd.DataFrame | None = None,
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS,
) -> AccountFeatures:
    """Point-in-time features of each (account_id, as_of) in ``snapshots``.

    Args:
        tables: ``leads``, ``accounts``, ``activities`` and ``conversions`` (the data
            contract's tables; conversions may be empty when scoring).
        snapshots: ``account_id`` and ``as_of`` (e.g. :func:`account_snapshots`).
        lead_scores: Optional ``lead_id``, ``as_of``, ``probability``: the lead model's
            calibrated probabilities at the same dates. Without them the score columns
            are NaN.
        personas: The buying group (``features.personas``).

    Returns:
        The features in the order of ``snapshots``, plus the unattached leads.

    Raises:
        AccountInputError: a table lacks a column the features need.
    """
    _require(snapshots, "snapshots", ("account_id", "as_of"))
    people = _people(tables, personas)
    leads, acts, converted_at = people.leads, people.activities, people.converted_at
    unattached = people.unattached
    accounts = tables["accounts"]
    firmo = _firmographics(accounts, leads)
    snaps = snapshots[["account_id", "as_of"]].reset_index(drop=True)
    snaps = snaps.assign(account_id=snaps["account_id"].astype(str), _row=np.arange(len(snaps)))
    parts = []
    for as_of, group in snaps.groupby("as_of", sort=True):
        when = np.datetime64(pd.Timestamp(as_of).to_datetime64(), "us")
        state = _lead_state(leads, acts, converted_at, when)
        scores = None
        if lead_scores is not None:
            at = lead_scores.loc[pd.to_datetime(lead_scores["as_of"]) == pd.Timestamp(as_of)]
            scores = at.set_index("lead_id")["probability"]
        part = _roll_up(state, when, personas, scores)
        parts.append(group.join(part, on="account_id"))
    frame = pd.concat(parts) if parts else snaps.copy()
    frame = frame.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    frame = frame.join(firmo, on="account_id")
    names = feature_names(personas)
    for name in names:
        if name not in frame:
            frame[name] = np.nan
    zero = [
        c
        for c in names
        if c
        not in (
            *FIRMOGRAPHIC,
            *SCORES,
            "days_since_last_activity",
            "days_since_first_person",
            "senior_share",
        )
    ]
    frame[zero] = frame[zero].fillna(0)
    for name in CATEGORICAL:
        frame[name] = frame[name].astype("category")
    return AccountFeatures(frame[["account_id", "as_of", *names]], unattached)


def _firmographics(accounts: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Industry, size and revenue from the accounts table; region from its leads."""
    table = accounts.drop_duplicates("account_id").set_index(
        accounts.drop_duplicates("account_id")["account_id"].astype(str)
    )
    out = pd.DataFrame(index=table.index)
    out["industry"] = table.get("industry", np.nan)
    out["employee_count"] = pd.to_numeric(table.get("employee_count"), errors="coerce")
    out["annual_revenue"] = pd.to_numeric(table.get("annual_revenue"), errors="coerce")
    if "region" in leads:
        region = (
            leads.dropna(subset=["region"])
            .groupby("account_id")["region"]
            .agg(lambda s: s.mode().iat[0])
        )
        out["region"] = region.reindex(out.index)
    else:
        out["region"] = np.nan
    return out


def _roll_up(
    state: pd.DataFrame,
    as_of: np.datetime64,
    personas: Sequence[PersonaSpec],
    scores: pd.Series | None,
) -> pd.DataFrame:
    """One row per account of the lead states at ``as_of``."""
    day = np.timedelta64(1, "D")
    s = state.assign(
        senior=state["seniority"].isin(SENIOR).to_numpy(),
        student=(state["seniority"] == "Student").to_numpy(),
        age=(as_of - state["created"].to_numpy()) / day,
    )
    s["open"] = ~s["converted"] & (s["age"] <= MAX_LEAD_AGE_DAYS)
    s["new30"] = s["age"] < 30
    s["senior_e30"] = s["senior"] & s["e30"]
    s["has_persona"] = s["persona"] >= 0
    by = s.groupby("account_id", sort=False)
    out = pd.DataFrame(
        {
            "people": by.size(),
            "open_people": by["open"].sum(),
            "new_people_30d": by["new30"].sum(),
            "engaged_7d": by["e7"].sum(),
            "engaged_14d": by["e14"].sum(),
            "engaged_30d": by["e30"].sum(),
            "engaged_senior_30d": by["senior_e30"].sum(),
            "days_since_last_activity": by["last"].min().replace(np.inf, np.nan),
            "days_since_first_person": by["age"].max(),
            "converted_before": by["converted"].sum(),
            "senior_people": by["senior"].sum(),
            "student_people": by["student"].sum(),
            "activities_7d": by["a7"].sum(),
            "activities_prior_21d": by["a_prior"].sum(),
            "high_intent_30d": by["hi30"].sum(),
        }
    )
    out["senior_share"] = out["senior_people"] / out["people"]
    prior_people = by["prior"].sum()
    out["engaged_people_momentum"] = out["engaged_7d"] - prior_people / 3.0
    out["activity_momentum"] = out["activities_7d"] - out["activities_prior_21d"] / 3.0
    named = s.loc[s["has_persona"]]
    out["personas_present"] = named.groupby("account_id")["persona"].nunique()
    engaged = named.loc[named["e30"]]
    out["personas_engaged"] = engaged.groupby("account_id")["persona"].nunique()
    for i, p in enumerate(personas):
        out[f"engaged_{p.name}"] = engaged.loc[engaged["persona"] == i].groupby("account_id").size()
    if scores is not None:
        prob = s["lead_id"].map(scores).astype(np.float64)
        scored = s.assign(p=prob, log_miss=np.log1p(-np.clip(prob, 0.0, 1.0 - 1e-12)))
        scored = scored.loc[scored["p"].notna()]
        sb = scored.groupby("account_id")
        out["best_lead_probability"] = sb["p"].max()
        out["summed_lead_probability"] = sb["p"].sum()
        out["rollup_probability"] = 1.0 - np.exp(sb["log_miss"].sum())
    return out


def missing_personas(
    frame: pd.DataFrame, personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS
) -> list[list[str]]:
    """For each row of an account features frame, the personas nobody engaged in 30 days."""
    cols = [f"engaged_{p.name}" for p in personas]
    values = frame[cols].to_numpy()
    return [[p.name for p, v in zip(personas, row, strict=True) if not v > 0] for row in values]


def next_contacts(
    tables: dict[str, pd.DataFrame],
    snapshots: pd.DataFrame,
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS,
    top: int = 3,
) -> list[list[dict[str, str]]]:
    """For each (account_id, as_of), the known people to reach next: those whose persona
    nobody at the account engaged in 30 days, at most ``top``, in persona order (the
    declared buying group) and, within a persona, most recently engaged first.

    Each contact is ``{"lead_id", "persona"}``; like the features, it reads nothing after
    ``as_of`` and leaves converted leads out.
    """
    _require(snapshots, "snapshots", ("account_id", "as_of"))
    people = _people(tables, personas)
    names = [p.name for p in personas]
    snaps = snapshots[["account_id", "as_of"]].reset_index(drop=True)
    out: list[list[dict[str, str]]] = [[] for _ in range(len(snaps))]
    for as_of, group in snaps.groupby("as_of", sort=True):
        when = np.datetime64(pd.Timestamp(as_of).to_datetime64(), "us")
        state = _lead_state(people.leads, people.activities, people.converted_at, when)
        state = state.loc[state["persona"] >= 0]
        hot = state.loc[state["e30"]]
        engaged = set(zip(hot["account_id"], hot["persona"], strict=True))
        candidates = state.loc[~state["converted"]].sort_values(["persona", "last"])
        by_account = dict(list(candidates.groupby("account_id", sort=False)))
        for row, account in zip(group.index, group["account_id"].astype(str), strict=True):
            people_here = by_account.get(account)
            if people_here is None:
                continue
            missing = ~pd.Series(
                [(account, p) in engaged for p in people_here["persona"]], index=people_here.index
            )
            chosen = people_here.loc[missing].head(top)
            out[row] = [
                {"lead_id": str(lead), "persona": names[int(code)]}
                for lead, code in zip(chosen["lead_id"], chosen["persona"], strict=True)
            ]
    return out
