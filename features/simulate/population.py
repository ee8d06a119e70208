"""Who is in the funnel: accounts (companies) and the leads who work at them.

Draws firmographics, creation times, personas, lead sources and email addresses, and
keeps the leads as integer codes (:class:`_Leads`) so the latent state and behaviour
can index effects with them; strings are only built for the output tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import (
    DEPARTMENTS,
    ICP_INDUSTRIES,
    ICP_SIZE_BANDS,
    INDUSTRIES,
    LEAD_SOURCES,
    REGIONS,
    SENIORITIES,
    SIZE_BANDS,
    SIZE_EDGES,
)
from features.simulate.arrays import _draw, _draw_rows, _ids, _lookup, _strings, _text
from features.simulate.timeline import _Calendar
from features.simulate.world import (
    _BOT_SHARE,
    _COUNTRIES,
    _DEPT_GIVEN_SENIORITY,
    _FIRST_NAMES,
    _FREE_DOMAIN_WEIGHTS,
    _FREE_DOMAINS,
    _INDUSTRY_PROFILE,
    _LAST_NAMES,
    _NAME_HEADS,
    _NAME_TAILS,
    _REGION_WEIGHTS,
    _SENIORITY_WEIGHTS,
    _SOURCE_PROFILE,
)


@dataclass(frozen=True)
class _Leads:
    """Lead attributes as integer codes (indices into the catalogue vocabularies)."""

    created: np.ndarray
    account: np.ndarray
    seniority: np.ndarray
    department: np.ndarray
    region: np.ndarray
    source: np.ndarray
    free_email: np.ndarray
    invalid_email: np.ndarray
    is_bot: np.ndarray
    icp_size: np.ndarray
    icp_industry: np.ndarray
    size_band: np.ndarray


# --- Accounts --------------------------------------------------------------------------


def _flat_countries() -> list[tuple[str, str, float, str]]:
    """(region, country, weight within region, top-level domain), country code order."""
    return [(r, c, w, tld) for r in REGIONS for c, w, tld in _COUNTRIES[r]]


def _country_in_region(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Country codes (into :func:`_flat_countries`) drawn within each region."""
    flat = _flat_countries()
    country = np.zeros(len(region), dtype=np.int64)
    u = rng.random(len(region))
    for r_code, r_name in enumerate(REGIONS):
        members = np.array([i for i, row in enumerate(flat) if row[0] == r_name])
        cdf = np.cumsum([flat[i][2] for i in members])
        pick = np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(cdf) - 1)
        country = np.where(region == r_code, members[pick], country)
    return country


def _accounts(
    rng: np.random.Generator, n: int, region_weights: Mapping[str, float] | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Companies with skewed industry/region and heavy-tailed size and revenue.

    ``region_weights`` (default ``_REGION_WEIGHTS``) is the share of companies per region;
    a preset (:mod:`features.simulate.presets`) narrows it to the markets a team sells in.
    """
    profile = [_INDUSTRY_PROFILE[name] for name in INDUSTRIES]
    industry = _draw(rng, np.array([p[0] for p in profile]), n)
    weights = _REGION_WEIGHTS if region_weights is None else region_weights
    region = _draw(rng, np.array([weights.get(r, 0.0) for r in REGIONS], dtype=np.float64), n)
    country = _country_in_region(rng, region)
    size_offset = np.array([p[1] for p in profile])[industry]
    employees = np.exp(np.log(50.0) + size_offset + 1.8 * rng.standard_normal(n))
    employees = np.clip(np.round(employees), 1, 400_000).astype(np.int64)
    rev_per_employee = np.array([p[2] for p in profile])[industry]
    revenue = employees * rev_per_employee * np.exp(0.5 * rng.standard_normal(n))
    revenue = np.round(revenue, -3).astype(np.float64)

    words = [w for p in profile for w in p[3]]
    word_offset = np.cumsum([0] + [len(p[3]) for p in profile])[:-1]
    word = word_offset[industry] + np.floor(
        rng.random(n) * np.array([len(p[3]) for p in profile])[industry]
    ).astype(np.int64)
    head = _strings(_NAME_HEADS, rng.integers(0, len(_NAME_HEADS), n))
    tail = _strings(_NAME_TAILS, rng.integers(0, len(_NAME_TAILS), n))
    word_s = _strings(words, word)
    name = head + tail + " " + word_s
    flat_countries = _flat_countries()
    tlds = [".com"] + [row[3] for row in flat_countries]
    tld = np.where(rng.random(n) < 0.45, 0, country + 1)  # many firms use .com anyway
    domain = (head + tail + word_s).str.lower() + _strings(tlds, tld)
    table = pd.DataFrame(
        {
            "account_id": _ids("A", n, 5),
            "company_name": _text(name),
            "industry": _strings(INDUSTRIES, industry),
            "employee_count": employees,
            "annual_revenue": revenue,
            "country": _strings([row[1] for row in flat_countries], country),
        }
    )
    codes = {
        "industry": industry,
        "region": region,
        "country": country,
        "employees": employees,
        "domain": domain.to_numpy(dtype=object),
    }
    return table, codes


# --- Leads -----------------------------------------------------------------------------


def _creation_days(rng: np.random.Generator, cal: _Calendar, n: int) -> np.ndarray:
    """Creation times with growth, seasonality and weekdays, sorted (ids follow time)."""
    n_whole = int(np.ceil(cal.n_days))
    day_idx = np.arange(n_whole)
    growth = np.exp(0.5 * day_idx / cal.n_days)
    weight = growth * cal.day_factor[:n_whole]
    weight[-1] *= cal.n_days - (n_whole - 1)  # the last day may be partial
    day = _draw(rng, weight, n)
    return np.sort(day + rng.random(n))


def _time_of_day(
    rng: np.random.Generator, cal: _Calendar, day: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Move each time within its day to a business-hours time for its region."""
    hour_cdf = np.cumsum(cal.hour_factor, axis=1)
    hour_cdf /= hour_cdf[:, -1:]
    u = rng.random(len(day))
    hour = (u[:, None] >= hour_cdf[region]).sum(axis=1)
    frac = (hour + rng.random(len(day))) / 24.0 - cal.start_frac
    t = np.floor(day + cal.start_frac) + frac
    t = np.where(t < 0, t + 1, t)
    return np.clip(t, 0.0, np.nextafter(cal.n_days, 0))


def _job_titles(
    rng: np.random.Generator, seniority: np.ndarray, department: np.ndarray
) -> pd.Series:
    """Job titles consistent with seniority and department (with wording variants)."""
    label = {"Executive": "Strategy", "Other": "Business Development"}
    c_level = {
        "Executive": ("CEO", "Chief Executive Officer", "Founder & CEO", "Co-Founder"),
        "Marketing": ("CMO", "Chief Marketing Officer"),
        "Sales": ("CRO", "Chief Revenue Officer", "Chief Sales Officer"),
        "IT": ("CIO", "Chief Information Officer"),
        "Engineering": ("CTO", "Chief Technology Officer"),
        "Finance": ("CFO", "Chief Financial Officer"),
        "Operations": ("COO", "Chief Operating Officer"),
        "HR": ("CHRO", "Chief People Officer"),
        "Other": ("Chief of Staff", "Chief Strategy Officer"),
    }
    contributor = {
        "Executive": ("Executive Assistant",),
        "Marketing": ("Marketing Specialist", "Marketing Coordinator", "Content Marketer"),
        "Sales": ("Account Executive", "Sales Development Representative", "Account Manager"),
        "IT": ("Systems Administrator", "IT Analyst", "Network Engineer"),
        "Engineering": ("Software Engineer", "Data Engineer", "Senior Software Engineer"),
        "Finance": ("Financial Analyst", "Accountant"),
        "Operations": ("Operations Analyst", "Operations Specialist"),
        "HR": ("HR Generalist", "Recruiter"),
        "Other": ("Consultant", "Analyst", "Specialist"),
    }
    templates = {
        "VP": ("VP {d}", "Vice President, {d}", "SVP {d}"),
        "Director": ("Director of {d}", "{d} Director", "Senior Director, {d}"),
        "Manager": ("{d} Manager", "Senior {d} Manager", "{d} Lead"),
    }
    student = ("Student", "Graduate Student", "MBA Candidate", "Intern")
    titles: list[str] = []
    offset = np.zeros((len(SENIORITIES), len(DEPARTMENTS)), dtype=np.int64)
    count = np.zeros_like(offset)
    for s, s_name in enumerate(SENIORITIES):
        for d, d_name in enumerate(DEPARTMENTS):
            if s_name == "C-Level":
                variants = c_level[d_name]
            elif s_name == "Individual Contributor":
                variants = contributor[d_name]
            elif s_name == "Student":
                variants = student
            else:
                dept = label.get(d_name, d_name)
                variants = tuple(t.format(d=dept) for t in templates[s_name])
            offset[s, d], count[s, d] = len(titles), len(variants)
            titles.extend(variants)
    n_var = count[seniority, department]
    variant = np.minimum(np.floor(rng.random(len(seniority)) ** 1.6 * n_var), n_var - 1)
    return _strings(titles, offset[seniority, department] + variant.astype(np.int64))


def _emails(rng: np.random.Generator, free: np.ndarray, domain: np.ndarray) -> pd.Series:
    """Corporate (company domain) or free-mail addresses with common local-part styles."""
    n = len(free)
    first = _strings(_FIRST_NAMES, rng.integers(0, len(_FIRST_NAMES), n))
    last = _strings(_LAST_NAMES, rng.integers(0, len(_LAST_NAMES), n))
    initial = first.str.slice(0, 1)
    style = rng.integers(0, 4, n)
    local = first + "." + last
    local = local.where(style != 1, initial + last)
    local = local.where(style != 2, first + last.str.slice(0, 1))
    local = local.where(style != 3, first)
    digits = _strings([f"{i:02d}" for i in range(100)], rng.integers(0, 100, n))
    free_local = (first + "." + last).where(rng.random(n) < 0.5, first + last + digits)
    free_domain = _strings(_FREE_DOMAINS, _draw(rng, np.asarray(_FREE_DOMAIN_WEIGHTS), n))
    corporate = local + "@" + pd.Series(domain, dtype="str")
    return _text(corporate.where(~free, free_local + "@" + free_domain))


def _leads(
    rng: np.random.Generator, cal: _Calendar, n: int, acc: dict[str, np.ndarray]
) -> tuple[_Leads, dict[str, pd.Series]]:
    """Leads: creation time, company, persona, source, email, bot and bounce flags."""
    n_acc = len(acc["industry"])
    weight = acc["employees"].astype(np.float64) ** 0.35 * rng.gamma(2.0, 0.5, n_acc)
    account = _draw(rng, weight, n)
    region = acc["region"][account]
    created = _time_of_day(rng, cal, _creation_days(rng, cal, n), region)
    order = np.argsort(created, kind="stable")
    created = created[order]
    account, region = account[order], region[order]

    employees = acc["employees"][account]
    sen_w = np.tile(_lookup(_SENIORITY_WEIGHTS, SENIORITIES), (n, 1))
    small = employees <= 50
    sen_w[:, 0] *= np.where(small, 3.0, np.where(employees > 1000, 0.5, 1.0))
    sen_w[:, 4] *= np.where(employees > 1000, 1.3, 1.0)
    seniority = _draw_rows(rng, sen_w)
    dept_w = np.array([_DEPT_GIVEN_SENIORITY[s] for s in SENIORITIES])
    department = _draw_rows(rng, dept_w[seniority])
    source = _draw(rng, np.array([_SOURCE_PROFILE[s][0] for s in LEAD_SOURCES]), n)

    is_student = np.asarray(SENIORITIES)[seniority] == "Student"
    p_free = np.where(employees <= 10, 0.45, np.where(employees <= 50, 0.25, 0.10))
    p_free = np.where(is_student, 0.8, p_free)
    free = rng.random(n) < p_free
    is_bot = rng.random(n) < _BOT_SHARE
    invalid = rng.random(n) < np.where(is_bot, 0.5, np.where(free, 0.05, 0.025))
    band = np.searchsorted(np.asarray(SIZE_EDGES), employees, side="left")
    icp_size = np.isin(np.asarray(SIZE_BANDS)[band], list(ICP_SIZE_BANDS))
    icp_industry = np.isin(np.asarray(INDUSTRIES)[acc["industry"][account]], list(ICP_INDUSTRIES))
    leads = _Leads(
        created=created,
        account=account,
        seniority=seniority,
        department=department,
        region=region,
        source=source,
        free_email=free,
        invalid_email=invalid,
        is_bot=is_bot,
        icp_size=icp_size,
        icp_industry=icp_industry,
        size_band=band,
    )
    # A few leads work from another country of the same region (remote staff, branches).
    country = np.where(
        rng.random(n) < 0.05, _country_in_region(rng, region), acc["country"][account]
    )
    text = {
        "job_title": _job_titles(rng, seniority, department),
        "email": _emails(rng, free, acc["domain"][account]),
        "country": country,
    }
    return leads, text


def _researcher(ld: _Leads) -> np.ndarray:
    """Students and hands-on engineers read and download a lot without buying."""
    sen = np.asarray(SENIORITIES)[ld.seniority]
    dept = np.asarray(DEPARTMENTS)[ld.department]
    return (sen == "Student") | (
        (sen == "Individual Contributor") & np.isin(dept, ["Engineering", "Other"])
    )


def _lead_table(
    ld: _Leads,
    text: dict[str, pd.Series],
    accounts: pd.DataFrame,
    lead_ids: pd.Series,
    created_at: np.ndarray,
) -> pd.DataFrame:
    """The ``leads`` table a CRM would export: the codes of ``ld`` as catalogue strings."""
    flat_countries = [row[1] for row in _flat_countries()]
    return pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": _text(accounts["account_id"].iloc[ld.account].reset_index(drop=True)),
            "created_at": created_at,
            "job_title": text["job_title"],
            "seniority": _strings(SENIORITIES, ld.seniority),
            "department": _strings(DEPARTMENTS, ld.department),
            "country": _strings(flat_countries, text["country"]),
            "region": _strings(REGIONS, ld.region),
            "lead_source": _strings(LEAD_SOURCES, ld.source),
            "email": text["email"],
        }
    )
