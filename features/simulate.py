"""Deterministic simulator of a B2B lead funnel, with a known ground truth.

The simulator writes the four tables the pipeline reads (``leads``, ``accounts``,
``activities``, ``conversions``) plus a ``ground_truth`` table that is never a model
input. Because every outcome is drawn from a probability the simulator knows, evaluation
can report the *oracle* AUC: the best ranking any model could reach on the same
snapshots (:func:`oracle_probability`).

Generative model (times are days since ``start``; the data end is ``start + months``):

Accounts
    About ``n_leads / 4`` companies. Industry has skewed frequencies (Software and
    Manufacturing common, Energy rare), region is skewed (NA about half) and the
    country is drawn within the region. ``employee_count`` is lognormal (median about
    60, heavy tail: most companies are small, about 1 % have 5000+ employees, 4 % of
    leads work at one) with industry-specific offsets; ``annual_revenue`` is
    employees times a lognormal revenue-per-employee whose median depends on the
    industry.

Leads
    Creation dates follow growth over the period (about +65 %), month seasonality
    (dips in August and December, a Christmas trough) and a weekday pattern; the time
    of day follows local business hours of the region (timestamps are UTC). Leads
    attach to accounts with probability rising with company size. Seniority depends
    on company size (founders at small firms), the department on the seniority, and
    the job title is drawn from variants consistent with both. Lead source is skewed.
    Email uses the company's domain or a free-mail domain (more likely for students
    and small companies); about 3 % of human addresses (half of the bots') are
    invalid and bounce.

Latent quantities (in ``ground_truth``)
    ``fit_score`` (log-odds scale) adds effects of seniority, department (Marketing,
    Executive, Sales and revenue Operations buy), ICP industry, size (a mid-market sweet
    spot: tiny firms have no need yet, the largest buy from incumbents), a seniority x
    size interaction (founders at small firms buy, CEOs of large ones delegate to their
    managers), region and free mail, plus a little unobserved noise: fit is almost
    fully observable from the lead's attributes. ``intent`` (latent buying interest)
    rises with fit, depends on the lead source and has a moderate private component,
    which behaviour reveals (web, pricing and email rates rise steeply with intent).
    About 2.5 % of leads are bots: bursts of page and pricing views seconds apart at
    any hour, spam forms, email link scanners; they never convert.

Conversion: a two-stage process with an honest oracle
    A lead enters a *buying episode* with probability ``p_episode`` (logistic in
    intent, whose coefficient differs by region: strongest in APAC, weakest in LATAM,
    and in fit). The episode starts ``S`` days after creation, lognormal with median
    ``55 * exp(-0.3 * intent)`` (sigma 1.6: most start within months, a long tail
    later), and ends with a decision ``R`` days later, Erlang(3, scale) with a scale
    growing with company size (median 11 days at 1-10 employees, 19 at 51-200, 53 at
    5000+: enterprise deals take longer, so how long ago a lead showed intent means
    different things by size). The decision is a win with probability ``p_win``
    (logistic in fit, intent, a bonus for a VP or director at an ICP-sized company
    with high intent, the lead source (warm introductions from referrals and partners
    close more often for the same interest, outbound and syndicated leads less) and
    regional offsets). ``p_convert = p_episode * p_win`` is the
    probability used for the lead's outcome; the episode intercept is calibrated so
    that 14 % of human leads would convert given unlimited time (about 10 % do within
    the data, as late conversions are censored; the latent delay has a median of
    about 75 days, the observed one about 55). During an episode the lead shows buying behaviour
    (frequent sessions heavy in pricing and demo pages, demo requests, trials,
    contact forms, more email opens and webinars; its start is a distinctive burst of
    sessions within days, with demo requests, trials and sales contacts soon after;
    one episode in 25 leaves little trace), so high-intent activity intensifies in the
    weeks before ``converted_at``. After a loss the lead goes quiet (5 % of its web
    rate, a tenth of its email opens); after a win activities stop a few weeks later
    (the lead becomes a customer).

Activities (about 55 per lead)
    Web sessions (1-4 events minutes apart) come from a creation burst that decays
    within days, a baseline rate (rising with intent) that decays with lead age
    towards a plateau, random research bursts, and the buying episode. Researchers
    (students, hands-on engineers and analysts) browse and download far more and
    often sign up for a trial without ever buying; session
    times are thinned by weekday, month and regional business-hour modulation.
    Email campaigns (weekly newsletter, monthly product update, promotions, some
    regional) produce opens (rising with intent, declining with lead age), clicks (a
    fraction of opens, each followed by a page view; the security gateways of some
    larger companies, like most bots, open and click every email within a minute),
    hard bounces (invalid
    addresses at the first send, job changes later; no email activity follows) and
    unsubscribes (likewise). Webinars are registered for days before the event and
    sometimes attended. Inbound leads have a creation activity exactly at
    ``created_at`` (form, download or webinar registration). No activity is before
    ``created_at`` or at/after the data end, and ``other`` is never emitted.

Why the oracle is an upper bound: every activity at time ``u`` is drawn from the lead's
latent state at ``u`` (attributes, intent, whether a buying episode has started or
been decided) plus independent noise. Given the latent state at ``as_of``, the future
outcome is therefore independent of everything observable before ``as_of``, so the
oracle probability, which conditions on that latent state, ranks at least as well as
any model of the observable tables (up to sampling noise in a finite evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.catalogue import (
    ACTIVITY_TYPES,
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

__all__ = ["Simulation", "oracle_probability", "simulate"]

_US_PER_DAY = 86_400_000_000
_DT_UNIT = "datetime64[us]"
_MIN = 1.0 / 1440.0
_SEC = 1.0 / 86_400.0

# --- Conversion process (shared by the simulator and the oracle) -----------------------
_EPISODE_MEDIAN_DAYS = 55.0
_EPISODE_INTENT_SPEEDUP = 0.5
_EPISODE_SIGMA = 1.2
_DECISION_SHAPE = 3
_DECISION_SCALE_DAYS = {"1-10": 4.0, "11-50": 5.5, "51-200": 7.0, "201-1000": 10.0,
                        "1001-5000": 14.0, "5000+": 20.0}
"""Erlang scale of the decision delay by company size: enterprise deals take longer."""
_TARGET_HUMAN_CONVERSION = 0.14
_WIN_INTERCEPT = -0.9

# --- Firmographics ---------------------------------------------------------------------
_REGION_WEIGHTS = {"NA": 0.52, "EMEA": 0.28, "APAC": 0.13, "LATAM": 0.07}
_COUNTRIES: dict[str, tuple[tuple[str, float, str], ...]] = {
    "NA": (("US", 0.86, ".com"), ("CA", 0.14, ".ca")),
    "EMEA": (
        ("GB", 0.28, ".co.uk"), ("DE", 0.24, ".de"), ("FR", 0.16, ".fr"),
        ("NL", 0.12, ".nl"), ("ES", 0.10, ".es"), ("SE", 0.10, ".se"),
    ),
    "APAC": (("AU", 0.30, ".com.au"), ("JP", 0.22, ".co.jp"), ("SG", 0.16, ".sg"),
             ("IN", 0.32, ".in")),
    "LATAM": (("BR", 0.45, ".com.br"), ("MX", 0.30, ".com.mx"), ("AR", 0.13, ".com.ar"),
              ("CL", 0.12, ".cl")),
}
_UTC_OFFSET_HOURS = {"NA": -6, "EMEA": 1, "APAC": 7, "LATAM": -4}
# industry: (account share, log-size offset, median revenue per employee in USD, name words)
_INDUSTRY_PROFILE: dict[str, tuple[float, float, float, tuple[str, ...]]] = {
    "Software": (0.20, 0.0, 210e3, ("Software", "Technologies", "Labs", "Systems")),
    "Financial Services": (0.10, 0.5, 350e3, ("Capital", "Financial", "Partners")),
    "Healthcare": (0.09, 0.4, 160e3, ("Health", "Medical", "Care")),
    "Manufacturing": (0.12, 0.5, 260e3, ("Industries", "Manufacturing", "Components")),
    "Retail": (0.08, 0.3, 180e3, ("Retail", "Stores", "Brands")),
    "Education": (0.07, 0.2, 80e3, ("Academy", "Learning", "Institute")),
    "Government": (0.04, 1.0, 120e3, ("Agency", "Authority", "Council")),
    "Professional Services": (0.12, -0.2, 150e3, ("Consulting", "Advisors", "Group")),
    "Media": (0.05, -0.1, 200e3, ("Media", "Studios", "Publishing")),
    "Telecommunications": (0.03, 0.9, 420e3, ("Telecom", "Networks", "Communications")),
    "Energy": (0.03, 0.8, 600e3, ("Energy", "Power", "Utilities")),
    "Non-profit": (0.07, -0.5, 60e3, ("Foundation", "Trust", "Alliance")),
}
_NAME_HEADS = (
    "North", "Blue", "Apex", "Bright", "Silver", "Red", "Summit", "Clear", "Iron", "Green",
    "Nova", "Peak", "River", "Stone", "Swift", "True", "Vertex", "Atlas", "Cedar", "Harbor",
    "Orion", "Pioneer", "Quantum", "Lumen", "Golden", "Evergreen", "Crystal", "Falcon",
    "Maple", "Sterling", "Aurora", "Beacon", "Cobalt", "Delta", "Ember", "Granite",
)
_NAME_TAILS = (
    "wind", "field", "bridge", "point", "line", "stack", "path", "works", "ware", "gate",
    "forge", "scale", "light", "wave", "core", "shift", "sight", "mark", "span", "vale",
    "rock", "leaf", "star", "view",
)
_FIRST_NAMES = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "david",
    "elena", "sofia", "lukas", "emma", "noah", "olivia", "liam", "mia", "lucas", "ana",
    "carlos", "maria", "jose", "yuki", "hiroshi", "wei", "li", "priya", "rahul", "aarav",
    "ananya", "oliver", "charlotte", "jack", "amelia", "felix", "lea", "hugo", "chloe",
    "lars", "ingrid", "daan", "sanne", "pablo", "lucia", "mateo", "valentina", "chen", "mei",
)
_LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "martin",
    "muller", "schmidt", "schneider", "dubois", "bernard", "rossi", "devries", "jansen",
    "andersson", "johansson", "lopez", "gonzalez", "rodriguez", "silva", "santos", "sato",
    "suzuki", "tanaka", "wang", "zhang", "tan", "lim", "sharma", "patel", "singh", "kumar",
    "taylor", "wilson", "thomas", "moore", "clark", "walker", "young", "king", "wright",
)
_FREE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
                 "proton.me")
_FREE_DOMAIN_WEIGHTS = (0.55, 0.12, 0.14, 0.10, 0.06, 0.03)

# --- Leads -----------------------------------------------------------------------------
_SENIORITY_WEIGHTS = {"C-Level": 0.05, "VP": 0.08, "Director": 0.15, "Manager": 0.25,
                      "Individual Contributor": 0.40, "Student": 0.07}
_DEPT_GIVEN_SENIORITY: dict[str, tuple[float, ...]] = {
    # Executive, Marketing, Sales, IT, Engineering, Finance, Operations, HR, Other
    "C-Level": (0.55, 0.10, 0.10, 0.06, 0.07, 0.06, 0.04, 0.02, 0.00),
    "VP": (0.00, 0.28, 0.20, 0.14, 0.12, 0.07, 0.10, 0.05, 0.04),
    "Director": (0.00, 0.28, 0.20, 0.14, 0.12, 0.07, 0.10, 0.05, 0.04),
    "Manager": (0.00, 0.28, 0.20, 0.14, 0.12, 0.07, 0.10, 0.05, 0.04),
    "Individual Contributor": (0.00, 0.22, 0.18, 0.14, 0.18, 0.07, 0.10, 0.05, 0.06),
    "Student": (0.00, 0.10, 0.00, 0.00, 0.10, 0.00, 0.00, 0.00, 0.80),
}
_SOURCE_PROFILE: dict[str, tuple[float, float]] = {  # share, intent effect
    "organic_search": (0.22, 0.1), "paid_search": (0.15, 0.0), "social": (0.08, -0.2),
    "referral": (0.06, 0.5), "webinar": (0.09, 0.2), "event": (0.07, 0.2),
    "content_syndication": (0.12, -0.4), "outbound": (0.11, -0.5), "partner": (0.04, 0.3),
    "direct": (0.06, 0.4),
}
_MONTH_FACTOR = (1.0, 1.0, 1.1, 1.0, 1.05, 0.95, 0.85, 0.7, 1.1, 1.15, 1.05, 0.75)
_WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.25)

# --- Latent effects (log-odds scale) ---------------------------------------------------
_SENIORITY_FIT = {"C-Level": 0.9, "VP": 0.9, "Director": 0.7, "Manager": 0.3,
                  "Individual Contributor": -0.3, "Student": -1.8}
_DEPT_FIT = {"Executive": 0.5, "Marketing": 0.6, "Sales": 0.4, "IT": 0.0,
             "Engineering": -0.5, "Finance": -0.2, "Operations": 0.4, "HR": -0.4,
             "Other": -0.6}
_REGION_FIT = {"NA": 0.15, "EMEA": 0.0, "APAC": -0.1, "LATAM": -0.2}
_REGION_INTENT_COEF = {"NA": 0.8, "EMEA": 0.45, "APAC": 1.2, "LATAM": 0.2}
_REGION_WIN = {"NA": 0.5, "EMEA": 0.0, "APAC": -0.6, "LATAM": -1.2}
_REGION_WEB = {"NA": 0.0, "EMEA": -0.1, "APAC": -0.2, "LATAM": -0.3}
_REGION_EMAIL = {"NA": 0.0, "EMEA": -0.1, "APAC": -0.4, "LATAM": -0.2}
_FIT_CENTER = 0.3
_SIZE_FIT = np.array([-0.6, 0.0, 0.2, 0.3, -0.1, -1.0])
"""Fit by size band beyond the ICP flag: the product's sweet spot is mid-market."""
_SENIORITY_SIZE_FIT = np.array([
    # 1-10, 11-50, 51-200, 201-1000, 1001-5000, 5000+
    [-0.8, 0.2, 0.2, -0.3, -0.9, -1.2],  # C-Level: founders buy, big-company CEOs delegate
    [-0.3, 0.0, 0.1, 0.2, 0.2, 0.1],  # VP
    [-0.3, 0.0, 0.1, 0.2, 0.2, 0.2],  # Director
    [-0.2, 0.0, 0.1, 0.3, 0.4, 0.4],  # Manager: runs marketing ops at larger firms
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Individual Contributor
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Student
])
"""Seniority x company size: who actually owns the purchase depends on the size."""
_BOT_SHARE = 0.025

# --- Web content -----------------------------------------------------------------------
_PAGES = (
    "/", "/product", "/product/scoring", "/product/integrations", "/customers", "/blog",
    "/blog/lead-scoring-101", "/blog/mql-vs-sql", "/blog/intent-data", "/blog/abm-playbook",
    "/blog/funnel-benchmarks", "/about", "/careers", "/docs", "/docs/api", "/security",
    "/compare", "/resources", "/partners", "/events", "/case-studies/fintech",
    "/case-studies/saas", "/solutions/marketing", "/solutions/sales", "/contact",
)
_ASSETS = (
    "ebook-lead-scoring-guide", "report-state-of-b2b-marketing", "whitepaper-intent-data",
    "template-icp-worksheet", "checklist-crm-hygiene", "ebook-abm-basics",
    "report-benchmarks", "case-study-fintech", "case-study-saas", "datasheet-platform",
    "guide-roi-calculator", "infographic-funnel",
)
_WEBINAR_TOPICS = (
    "scoring-best-practices", "pipeline-forecasting", "abm-in-practice", "product-tour",
    "customer-panel", "data-quality", "sales-marketing-alignment", "ai-for-revops",
)
_PROMO_TOPICS = ("spring-offer", "feature-launch", "case-study", "event-invite",
                 "trial-nudge", "survey", "year-end")
_FIXED_DETAILS = ("/pricing", "/demo", "/contact-sales", "/demo-request", "/trial-signup",
                  "/newsletter-signup")

_T = {name: i for i, name in enumerate(ACTIVITY_TYPES)}


@dataclass(frozen=True, eq=False)
class Simulation:
    """The simulated tables plus the ground truth behind them.

    Attributes:
        leads: One row per lead (``lead_id``, ``account_id``, ``created_at``,
            ``job_title``, ``seniority``, ``department``, ``country``, ``region``,
            ``lead_source``, ``email``).
        accounts: One row per company (``account_id``, ``company_name``, ``industry``,
            ``employee_count``, ``annual_revenue``, ``country``).
        activities: Event stream sorted by ``(lead_id, occurred_at)``.
        conversions: At most one row per lead (``lead_id``, ``converted_at``).
        ground_truth: Latent quantities per lead; never a model input. ``p_convert`` is
            the probability used to draw the outcome; the episode columns are what
            :func:`oracle_probability` conditions on.
    """

    leads: pd.DataFrame
    accounts: pd.DataFrame
    activities: pd.DataFrame
    conversions: pd.DataFrame
    ground_truth: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the four tables a real CRM export would contain (no ground truth)."""
        return {
            "leads": self.leads,
            "accounts": self.accounts,
            "activities": self.activities,
            "conversions": self.conversions,
        }


@dataclass(frozen=True)
class _Calendar:
    """Time axis of one simulation: days since ``start`` and activity modulation."""

    start: pd.Timestamp
    n_days: float
    day_factor: np.ndarray  # per calendar day, mean 1 (weekday x month x holidays)
    hour_factor: np.ndarray  # (region, UTC hour), mean 1 per region
    start_frac: float  # fraction of the day at which ``start`` falls

    @property
    def peak(self) -> float:
        """Upper bound of the modulation, the candidate multiplier for thinning."""
        return float(self.day_factor.max() * self.hour_factor.max())

    def modulation(self, t: np.ndarray, region: np.ndarray) -> np.ndarray:
        """Relative activity level at times ``t`` for leads in ``region`` (mean 1)."""
        day = np.floor(t + self.start_frac).astype(np.int64)
        day = np.clip(day, 0, len(self.day_factor) - 1)
        hour = np.floor(((t + self.start_frac) % 1.0) * 24).astype(np.int64) % 24
        return self.day_factor[day] * self.hour_factor[region, hour]


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


@dataclass(frozen=True)
class _Latent:
    """Latent quantities that drive behaviour and outcomes (see module docstring)."""

    fit: np.ndarray
    intent: np.ndarray
    p_episode: np.ndarray
    p_win: np.ndarray
    episode_median: np.ndarray
    decision_scale: np.ndarray
    episode_start: np.ndarray  # days since start; inf when no episode
    decided: np.ndarray  # days since start; inf when no episode
    won: np.ndarray
    active_until: np.ndarray  # activities stop here (a few weeks after a win)
    visibility: np.ndarray  # how much of the episode leaves a digital trace


@dataclass
class _Events:
    """Accumulates activity rows as parallel arrays before the DataFrame is built."""

    lead: list[np.ndarray]
    t: list[np.ndarray]
    kind: list[np.ndarray]
    detail: list[np.ndarray]

    def add(self, lead: np.ndarray, t: np.ndarray, kind: np.ndarray | int,
            detail: np.ndarray | int) -> None:
        """Append events; scalars for ``kind``/``detail`` are broadcast."""
        n = len(lead)
        self.lead.append(np.asarray(lead, dtype=np.int64))
        self.t.append(np.asarray(t, dtype=np.float64))
        self.kind.append(np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,)))
        self.detail.append(np.broadcast_to(np.asarray(detail, dtype=np.int32), (n,)))


@dataclass(frozen=True)
class _Details:
    """Vocabulary of the ``detail`` column; events store integer codes into it."""

    values: tuple[str, ...]
    pages: int
    assets: int
    campaigns: int
    webinars: int
    fixed: int

    def code(self, value: str) -> int:
        """Code of a fixed detail such as ``/pricing``."""
        return self.fixed + _FIXED_DETAILS.index(value)


# --- Small helpers ---------------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lookup(mapping: dict[str, float], vocab: tuple[str, ...]) -> np.ndarray:
    """Effect per vocabulary code, so effects index with code arrays."""
    return np.array([mapping[name] for name in vocab], dtype=np.float64)


def _draw(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` codes from fixed weights (inverse CDF: fast and seed-stable)."""
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _draw_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One code per row of a (rows, k) probability matrix."""
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((rng.random(len(probs))[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and position within owner for ``counts[i]`` items per owner."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _strings(values: np.ndarray | list[str] | tuple[str, ...], codes: np.ndarray) -> pd.Series:
    """Pandas ``str`` column from codes into a small vocabulary (-1 gives missing).

    Going through an Arrow ``take`` is several times faster than object arrays for
    millions of rows.
    """
    vocab = pa.array(list(values), type=pa.large_string())
    codes = np.asarray(codes, dtype=np.int64)
    idx = pa.array(codes, mask=codes < 0)
    taken = pa.chunked_array([vocab.take(idx)])
    return pd.Series(pd.array(taken, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))


def _text(series: pd.Series) -> pd.Series:
    """Normalise to the default pandas ``str`` dtype."""
    return series.astype(pd.StringDtype("pyarrow", na_value=np.nan))


def _to_datetime(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """Days since ``start`` to ``datetime64[us]`` (rounding is monotone, so order holds)."""
    base = np.datetime64(start.to_datetime64(), "us").astype(np.int64)
    finite = np.isfinite(days)
    us = np.where(finite, np.round(np.where(finite, days, 0.0) * _US_PER_DAY), 0).astype(np.int64)
    out = (base + us).astype(_DT_UNIT)
    out[~finite] = np.datetime64("NaT")
    return out


def _to_days(values: pd.Series | np.ndarray, origin: np.datetime64) -> np.ndarray:
    """Datetimes to float days since ``origin``; NaT becomes +inf (never happened).

    Accepts strings, any datetime unit and tz-aware values (converted to naive UTC), so
    callers can pass snapshots however they were built.
    """
    series = pd.Series(pd.to_datetime(pd.Series(values).to_numpy()))
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = series.to_numpy(dtype=_DT_UNIT)
    days = (arr.astype(np.int64) - origin.astype(np.int64)) / _US_PER_DAY
    return np.where(np.isnat(arr), np.inf, days)


def _ids(prefix: str, n: int, width: int) -> pd.Series:
    numbers = pd.Series(np.arange(1, n + 1)).astype(str)
    return _text(prefix + numbers.str.zfill(max(width, len(str(n)))))


# --- Calendar --------------------------------------------------------------------------

def _calendar(start: str, months: int) -> _Calendar:
    """Day and hour modulation: weekdays, month seasonality, Christmas, business hours."""
    t0 = pd.Timestamp(start)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert("UTC").tz_localize(None)
    end = t0 + pd.DateOffset(months=months)
    n_days = (end - t0) / pd.Timedelta(days=1)
    days = pd.date_range(t0.normalize(), periods=int(np.ceil(n_days)) + 1, freq="D")
    factor = (np.asarray(_WEEKDAY_FACTOR)[days.day_of_week]
              * np.asarray(_MONTH_FACTOR)[days.month - 1])
    holiday = ((days.month == 12) & (days.day >= 22)) | ((days.month == 1) & (days.day <= 2))
    factor = np.where(holiday, factor * 0.45, factor)
    hours = np.arange(24)
    local = np.array([[(h + _UTC_OFFSET_HOURS[r]) % 24 for h in hours] for r in REGIONS])
    business = (local >= 8) & (local < 18)
    profile = np.where(business, 1.0, 0.12) * np.where(local == 12, 0.8, 1.0)
    profile = np.where((local >= 18) & (local < 22), 0.35, profile)
    return _Calendar(
        start=t0,
        n_days=float(n_days),
        day_factor=factor / factor.mean(),
        hour_factor=profile / profile.mean(axis=1, keepdims=True),
        start_frac=float((t0 - t0.normalize()) / pd.Timedelta(days=1)),
    )


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


def _accounts(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Companies with skewed industry/region and heavy-tailed size and revenue."""
    profile = [_INDUSTRY_PROFILE[name] for name in INDUSTRIES]
    industry = _draw(rng, np.array([p[0] for p in profile]), n)
    region = _draw(rng, _lookup(_REGION_WEIGHTS, REGIONS), n)
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
    table = pd.DataFrame({
        "account_id": _ids("A", n, 5),
        "company_name": _text(name),
        "industry": _strings(INDUSTRIES, industry),
        "employee_count": employees,
        "annual_revenue": revenue,
        "country": _strings([row[1] for row in flat_countries], country),
    })
    codes = {"industry": industry, "region": region, "country": country,
             "employees": employees, "domain": domain.to_numpy(dtype=object)}
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


def _time_of_day(rng: np.random.Generator, cal: _Calendar, day: np.ndarray,
                 region: np.ndarray) -> np.ndarray:
    """Move each time within its day to a business-hours time for its region."""
    hour_cdf = np.cumsum(cal.hour_factor, axis=1)
    hour_cdf /= hour_cdf[:, -1:]
    u = rng.random(len(day))
    hour = (u[:, None] >= hour_cdf[region]).sum(axis=1)
    frac = (hour + rng.random(len(day))) / 24.0 - cal.start_frac
    t = np.floor(day + cal.start_frac) + frac
    t = np.where(t < 0, t + 1, t)
    return np.clip(t, 0.0, np.nextafter(cal.n_days, 0))


def _job_titles(rng: np.random.Generator, seniority: np.ndarray,
                department: np.ndarray) -> pd.Series:
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


def _leads(rng: np.random.Generator, cal: _Calendar, n: int,
           acc: dict[str, np.ndarray]) -> tuple[_Leads, dict[str, pd.Series]]:
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
    icp_industry = np.isin(np.asarray(INDUSTRIES)[acc["industry"][account]],
                           list(ICP_INDUSTRIES))
    leads = _Leads(created=created, account=account, seniority=seniority,
                   department=department, region=region, source=source, free_email=free,
                   invalid_email=invalid, is_bot=is_bot, icp_size=icp_size,
                   icp_industry=icp_industry, size_band=band)
    # A few leads work from another country of the same region (remote staff, branches).
    country = np.where(rng.random(n) < 0.05, _country_in_region(rng, region),
                       acc["country"][account])
    text = {
        "job_title": _job_titles(rng, seniority, department),
        "email": _emails(rng, free, acc["domain"][account]),
        "country": country,
    }
    return leads, text


# --- Latent state and outcome ----------------------------------------------------------

def _win_logit(fit: np.ndarray, intent: np.ndarray, senior_icp: np.ndarray,
               region: np.ndarray) -> np.ndarray:
    """Log-odds of winning a buying episode.

    Fit, a senior-buyer-at-ICP-size x intent interaction, and regional offsets.
    """
    return (_WIN_INTERCEPT + 0.5 * fit + 0.1 * intent
            + 1.8 * senior_icp * np.clip(intent, 0.0, None)
            + _lookup(_REGION_WIN, REGIONS)[region])


def _calibrate_intercept(base: np.ndarray, win: np.ndarray, target: float) -> float:
    """Intercept of the episode logit giving mean ``p_episode * p_win == target``.

    Bisection on the realised population keeps the conversion rate on target whatever
    the sample's mix of personas; it is deterministic given the sample.
    """
    lo, hi = -12.0, 6.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(_sigmoid(mid + base) * win) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _latent(rng: np.random.Generator, cal: _Calendar, ld: _Leads) -> _Latent:
    """Fit, intent, buying episode, decision and win; see the module docstring."""
    n = len(ld.created)
    fit = (_lookup(_SENIORITY_FIT, SENIORITIES)[ld.seniority]
           + _lookup(_DEPT_FIT, DEPARTMENTS)[ld.department]
           + 0.6 * ld.icp_industry + 0.7 * ld.icp_size
           + _lookup(_REGION_FIT, REGIONS)[ld.region]
           + _SIZE_FIT[ld.size_band]
           + _SENIORITY_SIZE_FIT[ld.seniority, ld.size_band]
           - 0.4 * ld.free_email + 0.15 * rng.standard_normal(n)) - _FIT_CENTER
    source_effect = np.array([_SOURCE_PROFILE[s][1] for s in LEAD_SOURCES])[ld.source]
    intent = (0.6 * fit + 1.0 * source_effect + 0.4 * rng.standard_normal(n)
              - 0.6 * ld.invalid_email)
    senior_icp = np.isin(np.asarray(SENIORITIES)[ld.seniority], ["VP", "Director"])
    senior_icp = senior_icp & ld.icp_size
    # Warm introductions (referrals, partners) close more often for the same interest.
    p_win = _sigmoid(_win_logit(fit, intent, senior_icp, ld.region) + 2.5 * source_effect)
    base = _lookup(_REGION_INTENT_COEF, REGIONS)[ld.region] * intent + 0.25 * fit
    human = ~ld.is_bot
    intercept = _calibrate_intercept(base[human], p_win[human], _TARGET_HUMAN_CONVERSION)
    p_episode = np.where(human, _sigmoid(intercept + base), 0.0)
    p_win = np.where(human, p_win, 0.0)

    has_episode = rng.random(n) < p_episode
    won = (rng.random(n) < p_win) & has_episode
    median = _episode_median(intent)
    start = ld.created + median * np.exp(_EPISODE_SIGMA * rng.standard_normal(n))
    scale = _lookup(_DECISION_SCALE_DAYS, SIZE_BANDS)[ld.size_band]
    decided = start + rng.gamma(_DECISION_SHAPE, scale, n)
    start = np.where(has_episode, start, np.inf)
    decided = np.where(has_episode, decided, np.inf)
    handover = rng.gamma(2.0, 12.0, n)
    active_until = np.minimum(np.where(won, decided + handover, np.inf), cal.n_days)
    visibility = np.exp(0.2 * rng.standard_normal(n)) * np.where(rng.random(n) < 0.04, 0.3, 1.0)
    return _Latent(fit=fit, intent=intent, p_episode=p_episode, p_win=p_win,
                   episode_median=median, decision_scale=scale, episode_start=start,
                   decided=decided, won=won, active_until=active_until, visibility=visibility)


def _episode_median(intent: np.ndarray) -> np.ndarray:
    """Median days from creation to a buying episode: keener leads start sooner."""
    return np.clip(_EPISODE_MEDIAN_DAYS * np.exp(-_EPISODE_INTENT_SPEEDUP * intent), 7.0, 200.0)


# --- Activity components ---------------------------------------------------------------

def _const_process(rng: np.random.Generator, owner: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events at constant ``rate`` per day on ``[lo, hi)`` for each owner."""
    span = np.maximum(hi - lo, 0.0)
    count = rng.poisson(rate * span)
    who, _ = _ragged(count)
    return owner[who], lo[who] + rng.random(len(who)) * span[who]


def _decay_process(rng: np.random.Generator, owner: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, total: np.ndarray,
                   tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Poisson events with rate ``total / tau * exp(-(t - lo) / tau)`` on ``[lo, hi)``."""
    span = np.maximum(hi - lo, 0.0)
    mass = 1.0 - np.exp(-span / tau)
    count = rng.poisson(total * mass)
    who, _ = _ragged(count)
    u = rng.random(len(who))
    return owner[who], lo[who] - tau * np.log1p(-u * mass[who])


def _thin(rng: np.random.Generator, cal: _Calendar, lead: np.ndarray, t: np.ndarray,
          region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep candidates with probability modulation / peak (weekday, season, hours)."""
    keep = rng.random(len(t)) * cal.peak < cal.modulation(t, region[lead])
    return lead[keep], t[keep]


def _expand_sessions(rng: np.random.Generator, lead: np.ndarray, t: np.ndarray,
                     p_more: float, gap_minutes: float) -> tuple[np.ndarray, np.ndarray]:
    """Each session becomes a few events minutes apart (a click-stream burst)."""
    size = rng.geometric(1.0 - p_more, len(t))
    who, pos = _ragged(size)
    gaps = np.where(pos > 0, rng.exponential(gap_minutes * _MIN, len(who)), 0.0)
    csum = np.cumsum(gaps)
    first = np.cumsum(size) - size
    offset = csum - csum[first][who]
    return lead[who], t[who] + offset


def _web_types(rng: np.random.Generator, probs: np.ndarray,
               details: _Details) -> tuple[np.ndarray, np.ndarray]:
    """Draw activity types and details for web events.

    ``probs`` has one row per event over (page_view, pricing, demo page, content
    download, form submit).
    """
    choice = _draw_rows(rng, probs)
    kinds = np.array([_T["page_view"], _T["pricing_page_view"], _T["demo_page_view"],
                      _T["content_download"], _T["form_submit"]], dtype=np.int8)[choice]
    n = len(choice)
    page_w = 1.0 / np.arange(1, details.pages + 1) ** 0.9
    page = _draw(rng, page_w, n)
    asset = rng.integers(0, details.assets, n) + details.pages
    form = np.where(rng.random(n) < 0.7, details.code("/contact-sales"),
                    details.code("/newsletter-signup"))
    detail = np.select(
        [choice == 0, choice == 1, choice == 2, choice == 3],
        [page, details.code("/pricing"), details.code("/demo"), asset], form,
    ).astype(np.int32)
    detail = np.where(rng.random(n) < 0.03, -1, detail)  # tracking gaps
    return kinds, detail


def _web_activity(rng: np.random.Generator, cal: _Calendar, ld: _Leads, lat: _Latent,
                  details: _Details, out: _Events) -> None:
    """Human web sessions: creation burst, decaying baseline, research bursts, episode."""
    human = np.flatnonzero(~ld.is_bot)
    c, end = ld.created[human], lat.active_until[human]
    intent = lat.intent[human]
    k = cal.peak
    personal = np.exp(0.2 * rng.standard_normal(len(human))
                      + _lookup(_REGION_WEB, REGIONS)[ld.region[human]])
    researcher = _researcher(ld)[human]
    rate = 0.03 * np.exp(1.0 * intent) * personal * np.where(researcher, 2.5, 1.0)
    parts = [
        _decay_process(rng, human, c, end, k * 1.6 * np.exp(0.8 * intent), 3.0),
        _const_process(rng, human, c, end, k * 0.15 * rate),
        _decay_process(rng, human, c, end, k * 0.8 * rate * 60.0, 60.0),
    ]
    burst_lead, burst_t = _const_process(rng, human, c, end, 0.006 * np.exp(0.6 * intent))
    per_burst = rng.poisson(4.0 * k, len(burst_t))
    who, _ = _ragged(per_burst)
    parts.append((burst_lead[who], burst_t[who] + rng.exponential(1.5, len(who))))
    lead = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    lead, t = _thin(rng, cal, lead, t, ld.region)
    # After a lost deal the lead disengages: 15 % of the baseline rate.
    keep = ~_after_loss(lat, lead, t) | (rng.random(len(t)) < 0.05)
    lead, t = _expand_sessions(rng, lead[keep], t[keep], p_more=0.4, gap_minutes=3.0)
    sig = _sigmoid(2.0 * lat.intent[lead] - 1.5)
    probs = np.column_stack([
        np.ones(len(lead)), 0.02 + 0.08 * sig, 0.01 + 0.03 * sig,
        np.where(_researcher(ld)[lead], 0.15, 0.05), 0.003 + 0.007 * sig,
    ])
    probs[:, 0] = 1.0 - probs[:, 1:].sum(axis=1)
    kinds, detail = _web_types(rng, probs, details)
    out.add(lead, t, kinds, detail)
    # Researchers kick the tyres: free trials and a look at the demo page, no purchase.
    res = np.flatnonzero(_researcher(ld) & ~ld.is_bot)
    when = ld.created[res] + rng.exponential(12.0, len(res))
    trial = rng.random(len(res)) < 0.4
    out.add(res[trial], when[trial], _T["trial_signup"], details.code("/trial-signup"))
    look = rng.random(len(res)) < 0.5
    out.add(res[look], when[look] - rng.exponential(0.05, len(res))[look], _T["demo_page_view"],
            details.code("/demo"))
    _episode_activity(rng, cal, ld, lat, details, out)


def _researcher(ld: _Leads) -> np.ndarray:
    """Students and hands-on engineers read and download a lot without buying."""
    sen = np.asarray(SENIORITIES)[ld.seniority]
    dept = np.asarray(DEPARTMENTS)[ld.department]
    return (sen == "Student") | ((sen == "Individual Contributor")
                                 & np.isin(dept, ["Engineering", "Other"]))


def _episode_activity(rng: np.random.Generator, cal: _Calendar, ld: _Leads, lat: _Latent,
                      details: _Details, out: _Events) -> None:
    """Buying behaviour between episode start and decision (never depends on the outcome)."""
    ep = np.flatnonzero(np.isfinite(lat.episode_start))
    lo = lat.episode_start[ep]
    hi = np.minimum(lat.decided[ep], lat.active_until[ep])
    strength = np.exp(0.3 * lat.intent[ep]) * lat.visibility[ep]
    lead, t = _const_process(rng, ep, lo, hi, cal.peak * 0.8 * strength)
    # The start of an episode is a distinctive burst: several sessions in a few days.
    kick_lead, kick_t = _decay_process(rng, ep, lo, hi, cal.peak * 4.0 * lat.visibility[ep], 2.0)
    lead, t = np.concatenate([kick_lead, lead]), np.concatenate([kick_t, t])
    lead, t = _thin(rng, cal, lead, t, ld.region)
    lead, t = _expand_sessions(rng, lead, t, p_more=0.6, gap_minutes=2.5)
    n = len(lead)
    probs = np.tile([0.52, 0.25, 0.12, 0.07, 0.04], (n, 1))
    kinds, detail = _web_types(rng, probs, details)
    out.add(lead, t, kinds, detail)

    seen = np.minimum(lat.visibility[ep] * 1.5, 1.0)
    for kind, prob, delay, code in (
        ("demo_request", 0.7, 2.0, "/demo-request"),
        ("demo_request", 0.15, 10.0, "/demo-request"),
        ("trial_signup", 0.40, 4.0, "/trial-signup"),
        ("form_submit", 0.50, 1.5, "/contact-sales"),
    ):
        hit = rng.random(len(ep)) < prob * seen
        when = lo + rng.exponential(delay, len(ep))
        ok = hit & (when < hi)
        out.add(ep[ok], when[ok], _T[kind], details.code(code))


def _bot_activity(rng: np.random.Generator, cal: _Calendar, ld: _Leads,
                  details: _Details, out: _Events) -> None:
    """Bots: round-the-clock bursts of many page and pricing views seconds apart."""
    bots = np.flatnonzero(ld.is_bot)
    if len(bots) == 0:
        return
    c = ld.created[bots]
    rate = 6.0 * np.exp(0.5 * rng.standard_normal(len(bots))) / 365.0
    lead, t = _const_process(rng, bots, c, np.full(len(bots), cal.n_days), rate)
    lead = np.concatenate([bots, lead])  # a first burst right after the form fill
    t = np.concatenate([c + rng.exponential(0.2, len(bots)), t])
    size = 5 + rng.poisson(25.0 * np.exp(0.4 * rng.standard_normal(len(t))))
    who, pos = _ragged(size)
    gaps = np.where(pos > 0, rng.exponential(6.0 * _SEC, len(who)), 0.0)
    csum = np.cumsum(gaps)
    first = np.cumsum(size) - size
    lead, t = lead[who], t[who] + csum - csum[first][who]
    probs = np.tile([0.72, 0.18, 0.08, 0.0, 0.02], (len(lead), 1))
    kinds, detail = _web_types(rng, probs, details)
    detail = np.where(kinds == _T["page_view"],
                      rng.integers(0, details.pages, len(lead)), detail).astype(np.int32)
    out.add(lead, t, kinds, detail)


def _campaigns(rng: np.random.Generator, cal: _Calendar) -> tuple[np.ndarray, np.ndarray,
                                                                   list[str]]:
    """Email calendar: weekly newsletter, monthly product update, promotions.

    Returns send times (days, sorted), target region (-1 = all) and names.
    """
    days = pd.date_range(cal.start.normalize(), periods=int(np.ceil(cal.n_days)) + 1, freq="D")
    offs = np.arange(len(days)) - cal.start_frac
    quiet = ((days.month == 12) & (days.day >= 20)) | ((days.month == 1) & (days.day <= 3))
    week = np.asarray(days.isocalendar().week, dtype=np.int64)
    news = (days.day_of_week == 1) & ~quiet & ~((days.month == 8) & (week % 2 == 1))
    update = (days.day_of_week == 3) & (days.day <= 7) & ~quiet
    promo_day = (days.day_of_week < 5) & ~quiet & (rng.random(len(days)) < 2.0 / 21.0)
    times, regions, names = [], [], []
    for mask, hour, kind in ((news, 14.0, "newsletter"), (update, 15.0, "product-update")):
        idx = np.flatnonzero(mask)
        times.append(offs[idx] + hour / 24.0)
        regions.append(np.full(len(idx), -1))
        names += [f"{kind}-{d:%Y-%m-%d}" for d in days[idx]]
    idx = np.flatnonzero(promo_day)
    target = np.where(rng.random(len(idx)) < 0.4, rng.integers(0, len(REGIONS), len(idx)), -1)
    hours = np.where(target < 0, 13.0,
                     (9 - np.asarray([_UTC_OFFSET_HOURS[r] for r in REGIONS]))[target] % 24)
    topics = rng.integers(0, len(_PROMO_TOPICS), len(idx))
    times.append(offs[idx] + hours / 24.0)
    regions.append(target)
    names += [f"promo-{_PROMO_TOPICS[k]}-{d:%Y-%m-%d}" for k, d in zip(topics, days[idx],
                                                                          strict=True)]
    t = np.concatenate(times)
    reg = np.concatenate(regions)
    order = np.argsort(t, kind="stable")
    names_arr = np.asarray(names, dtype=object)[order]
    keep = (t[order] > 0) & (t[order] < cal.n_days)
    return t[order][keep], reg[order][keep], list(names_arr[keep])


def _webinars(cal: _Calendar) -> tuple[np.ndarray, list[str]]:
    """Webinar calendar: 2nd and 4th Wednesday at 16:00 UTC, none in August or late Dec."""
    days = pd.date_range(cal.start.normalize(), periods=int(np.ceil(cal.n_days)) + 1, freq="D")
    nth = (days.day - 1) // 7
    mask = ((days.day_of_week == 2) & np.isin(nth, [1, 3]) & (days.month != 8)
            & ~((days.month == 12) & (days.day >= 20)))
    idx = np.flatnonzero(mask)
    t = np.arange(len(days))[idx] - cal.start_frac + 16.0 / 24.0
    names = [f"webinar-{d:%Y-%m-%d}-{_WEBINAR_TOPICS[i % len(_WEBINAR_TOPICS)]}"
             for i, d in enumerate(days[idx])]
    keep = (t > 0) & (t < cal.n_days)
    return t[keep], [n for n, k in zip(names, keep, strict=True) if k]


def _in_episode(lat: _Latent, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each lead was in its buying episode at time ``t`` (state, not outcome)."""
    return (lat.episode_start[lead] <= t) & (t < lat.decided[lead])


def _after_loss(lat: _Latent, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each lead's buying episode had been lost by time ``t``."""
    return ~lat.won[lead] & (lat.decided[lead] <= t)


def _email_activity(rng: np.random.Generator, ld: _Leads, lat: _Latent,
                    send: np.ndarray, target: np.ndarray, first_code: int,
                    details: _Details, out: _Events) -> None:
    """Emit opens, clicks, bounces and unsubscribes for every campaign a lead receives."""
    n = len(ld.created)
    lo = np.searchsorted(send, ld.created, side="right")
    hi = np.searchsorted(send, lat.active_until, side="left")
    owner, pos = _ragged(np.maximum(hi - lo, 0))
    camp = lo[owner] + pos
    keep = (target[camp] < 0) | (target[camp] == ld.region[owner])
    owner, camp = owner[keep], camp[keep]
    per_lead = np.bincount(owner, minlength=n)
    rank = np.arange(len(owner)) - (np.cumsum(per_lead) - per_lead)[owner]

    bounce = np.where(ld.invalid_email, 0, rng.geometric(0.0015, n) - 1)
    unsub_rate = np.where(ld.is_bot, 1e-9, 0.003 * np.exp(-0.4 * lat.intent))
    unsub = rng.geometric(np.clip(unsub_rate, 1e-9, 1.0), n) - 1
    stop = np.minimum(bounce, unsub)
    # Link scanners: most bots, and the security gateways of many larger companies,
    # which "open" and "click" every email within a minute of delivery.
    u_scan = rng.random(n)
    scanner = (ld.is_bot & (u_scan < 0.6)) | (~ld.free_email & (ld.size_band >= 3)
                                              & (u_scan < 0.1))
    personal = 0.8 * rng.standard_normal(n) + _lookup(_REGION_EMAIL, REGIONS)[ld.region]

    # The end of the list: a hard bounce, or an unsubscribe after opening that email.
    at_stop = np.flatnonzero(rank == stop[owner])
    who, t_stop_send = owner[at_stop], send[camp[at_stop]]
    bounced = bounce[who] <= unsub[who]
    left = ~bounced & ~ld.is_bot[who]
    t_left_open = t_stop_send + _open_delay(rng, len(who))
    t_left = t_left_open + rng.uniform(1, 5, len(who)) * _MIN
    t_stop = np.full(n, np.inf)
    t_stop[who[bounced]] = t_stop_send[bounced] + _MIN
    t_stop[who[left]] = t_left[left]

    # Opens and clicks of the emails received before that (never after the stop time).
    idx = np.flatnonzero((rank < stop[owner]) & ~ld.is_bot[owner])
    o, t_send = owner[idx], send[camp[idx]]
    episode = _in_episode(lat, o, t_send)
    p_open = _sigmoid(-1.7 + 0.8 * lat.intent[o] + personal[o] + 1.0 * episode)
    p_open *= np.exp(-(t_send - ld.created[o]) / 400.0)
    p_open *= np.where(_after_loss(lat, o, t_send), 0.1, 1.0)
    hit = np.flatnonzero(rng.random(len(o)) < p_open)
    o, t_send, episode, code = o[hit], t_send[hit], episode[hit], first_code + camp[idx[hit]]
    t_open = t_send + _open_delay(rng, len(o))
    p_click = _sigmoid(-1.7 + 0.4 * lat.intent[o] + 0.9 * episode)
    t_click = t_open + rng.exponential(2.0 * _MIN, len(o))
    opened = t_open < t_stop[o]
    clicked = opened & (rng.random(len(o)) < p_click) & (t_click < t_stop[o])
    out.add(o[opened], t_open[opened], _T["email_open"], code[opened])
    out.add(o[clicked], t_click[clicked], _T["email_click"], code[clicked])
    landing = rng.integers(0, details.pages, int(clicked.sum())).astype(np.int32)
    out.add(o[clicked], t_click[clicked] + 20 * _SEC, _T["page_view"], landing)

    # Link scanners "open" and "click" every email within a minute.
    idx = np.flatnonzero((rank < stop[owner]) & scanner[owner])
    t_scan = send[camp[idx]] + rng.uniform(15, 60, len(idx)) * _SEC
    out.add(owner[idx], t_scan, _T["email_open"], first_code + camp[idx])
    out.add(owner[idx], t_scan + 5 * _SEC, _T["email_click"], first_code + camp[idx])

    stop_code = first_code + camp[at_stop]
    out.add(who[bounced], t_stop_send[bounced] + _MIN, _T["email_bounce"], stop_code[bounced])
    out.add(who[left], t_left_open[left], _T["email_open"], stop_code[left])
    out.add(who[left], t_left[left], _T["unsubscribe"], stop_code[left])


def _open_delay(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from send to open: lognormal, median three hours, a tail of days."""
    return np.exp(np.log(3.0 / 24.0) + 1.2 * rng.standard_normal(n))


def _webinar_activity(rng: np.random.Generator, ld: _Leads, lat: _Latent,
                      when: np.ndarray, first_code: int, out: _Events) -> None:
    """Registrations days before a webinar (more likely in an episode), some attend."""
    if len(when) == 0:
        return
    lo = np.searchsorted(when, ld.created + 2.0, side="right")
    hi = np.searchsorted(when, lat.active_until, side="left")
    owner, pos = _ragged(np.maximum(hi - lo, 0))
    web = lo[owner] + pos
    human = ~ld.is_bot[owner]
    owner, web = owner[human], web[human]
    t_web = when[web]
    reg_t = t_web - np.exp(np.log(5.0) + 0.8 * rng.standard_normal(len(web)))
    created = ld.created[owner]
    reg_t = np.where(reg_t < created, created + rng.random(len(web)) * (t_web - created), reg_t)
    is_webinar_source = np.asarray(LEAD_SOURCES)[ld.source[owner]] == "webinar"
    p_reg = 0.012 * np.exp(0.6 * lat.intent[owner] + 1.2 * _in_episode(lat, owner, reg_t))
    p_reg = p_reg * np.where(_researcher(ld)[owner], 3.0, 1.0)
    p_reg = np.minimum(p_reg * np.where(is_webinar_source, 1.5, 1.0), 0.6)
    reg = rng.random(len(web)) < p_reg
    p_attend = _sigmoid(-0.2 + 0.5 * lat.intent[owner] + 0.8 * _in_episode(lat, owner, t_web))
    attend = reg & (rng.random(len(web)) < p_attend)
    t_att = t_web + rng.uniform(0, 20, len(web)) * _MIN
    out.add(owner[reg], reg_t[reg], _T["webinar_registered"], first_code + web[reg])
    out.add(owner[attend], t_att[attend], _T["webinar_attended"], first_code + web[attend])


def _creation_activity(rng: np.random.Generator, ld: _Leads, lat: _Latent,
                       webinar_t: np.ndarray, details: _Details, out: _Events) -> None:
    """Emit the activity that created an inbound lead, exactly at ``created_at``."""
    n = len(ld.created)
    src = np.asarray(LEAD_SOURCES)[ld.source]
    u = rng.random(n)
    form = (((src == "organic_search") & (u < 0.4)) | ((src == "paid_search") & (u < 0.5))
            | ((src == "direct") & (u < 0.6)) | ld.is_bot)
    download = (~form & (((src == "organic_search") & (u < 0.8))
                         | ((src == "paid_search") & (u < 0.8))
                         | ((src == "social") & (u < 0.4)) | (src == "content_syndication")))
    form_code = np.where(rng.random(n) < 0.5, details.code("/contact-sales"),
                         details.code("/newsletter-signup"))
    idx = np.flatnonzero(form)
    out.add(idx, ld.created[idx], _T["form_submit"], form_code[idx])
    idx = np.flatnonzero(download)
    asset = details.pages + rng.integers(0, details.assets, n)
    out.add(idx, ld.created[idx], _T["content_download"], asset[idx])
    if len(webinar_t) == 0:
        return
    nxt = np.searchsorted(webinar_t, ld.created, side="right")
    reg = (src == "webinar") & (nxt < len(webinar_t)) & ~ld.is_bot
    idx = np.flatnonzero(reg)
    web = nxt[idx]
    out.add(idx, ld.created[idx], _T["webinar_registered"], details.webinars + web)
    attend = rng.random(len(idx)) < _sigmoid(0.2 + 0.5 * lat.intent[idx])
    t_att = webinar_t[web] + rng.uniform(0, 20, len(idx)) * _MIN
    out.add(idx[attend], t_att[attend], _T["webinar_attended"], details.webinars + web[attend])


# --- Assembly --------------------------------------------------------------------------

def _lead_time_order(lead: np.ndarray, us: np.ndarray, n_leads: int, max_us: int) -> np.ndarray:
    """Stable order by (lead, time).

    One stable argsort of a packed int64 key is about 3x faster than ``np.lexsort``;
    the packing is used whenever both parts fit in 62 bits (up to ~130k leads over 26
    months), otherwise it falls back to ``lexsort``. Both give the same order.
    """
    time_bits = max(1, int(max_us).bit_length())
    lead_bits = max(1, int(n_leads).bit_length())
    if time_bits + lead_bits <= 62:
        return np.argsort((lead.astype(np.int64) << time_bits) | us, kind="stable")
    return np.lexsort((us, lead))


def _activities(rng: np.random.Generator, cal: _Calendar, ld: _Leads, lat: _Latent,
                lead_ids: pd.Series) -> pd.DataFrame:
    """All activity components, clipped to each lead's life and sorted."""
    send, target, campaign_names = _campaigns(rng, cal)
    webinar_t, webinar_names = _webinars(cal)
    values = (_PAGES + _ASSETS + tuple(campaign_names) + tuple(webinar_names)
              + _FIXED_DETAILS)
    details = _Details(
        values=values, pages=len(_PAGES), assets=len(_ASSETS),
        campaigns=len(_PAGES) + len(_ASSETS),
        webinars=len(_PAGES) + len(_ASSETS) + len(campaign_names),
        fixed=len(_PAGES) + len(_ASSETS) + len(campaign_names) + len(webinar_names),
    )
    out = _Events([], [], [], [])
    _creation_activity(rng, ld, lat, webinar_t, details, out)
    _web_activity(rng, cal, ld, lat, details, out)
    _bot_activity(rng, cal, ld, details, out)
    _email_activity(rng, ld, lat, send, target, details.campaigns, details, out)
    _webinar_activity(rng, ld, lat, webinar_t, details.webinars, out)

    lead = np.concatenate(out.lead)
    t = np.concatenate(out.t)
    kind = np.concatenate(out.kind)
    detail = np.concatenate(out.detail)
    ok = (t >= ld.created[lead]) & (t < lat.active_until[lead]) & (t < cal.n_days)
    lead, kind, detail = lead[ok], kind[ok], detail[ok]
    us = np.round(t[ok] * _US_PER_DAY).astype(np.int64)
    order = _lead_time_order(lead, us, len(ld.created), int(np.ceil(cal.n_days * _US_PER_DAY)))
    lead, us, kind, detail = lead[order], us[order], kind[order], detail[order]
    base = np.datetime64(cal.start.to_datetime64(), "us").astype(np.int64)
    return pd.DataFrame({
        "lead_id": _strings(lead_ids.to_numpy(dtype=object), lead),
        "occurred_at": (base + us).astype(_DT_UNIT),
        "activity_type": _strings(ACTIVITY_TYPES, kind),
        "detail": _strings(values, detail),
    })


def simulate(n_leads: int, seed: int = 0, start: str = "2024-01-01",
             months: int = 18) -> Simulation:
    """Simulate a B2B lead funnel; the same arguments always give identical tables.

    Args:
        n_leads: Number of leads (accounts are about a quarter of that).
        seed: Seed of the single random generator every draw comes from.
        start: First day of the data (tz-naive UTC, or tz-aware and converted).
        months: Length of the data window; nothing happens at or after its end.

    Returns:
        The four tables plus the ground truth (see the module docstring).
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    rng = np.random.default_rng(seed)
    cal = _calendar(start, months)
    accounts, acc = _accounts(rng, max(1, n_leads // 4))
    ld, text = _leads(rng, cal, n_leads, acc)
    lat = _latent(rng, cal, ld)

    lead_ids = _ids("L", n_leads, 6)
    created_at = _to_datetime(cal.start, ld.created)
    flat_countries = [row[1] for row in _flat_countries()]
    leads = pd.DataFrame({
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
    })
    activities = _activities(rng, cal, ld, lat, lead_ids)

    converted = lat.won & (lat.decided < cal.n_days)
    idx = np.flatnonzero(converted)
    conversions = pd.DataFrame({
        "lead_id": _strings(lead_ids.to_numpy(dtype=object), idx),
        "converted_at": _to_datetime(cal.start, lat.decided[idx]),
    })
    latent_conversion = np.where(lat.won, lat.decided, np.inf)
    ground_truth = pd.DataFrame({
        "lead_id": lead_ids,
        "created_at": created_at,
        "p_convert": lat.p_episode * lat.p_win,
        "p_episode": lat.p_episode,
        "p_win": lat.p_win,
        "fit_score": lat.fit,
        "intent": lat.intent,
        "is_bot": ld.is_bot,
        "invalid_email": ld.invalid_email,
        "episode_median_days": lat.episode_median,
        "decision_scale_days": lat.decision_scale,
        "episode_start_at": _to_datetime(cal.start, lat.episode_start),
        "decided_at": _to_datetime(cal.start, lat.decided),
        "won": lat.won,
        "latent_converted_at": _to_datetime(cal.start, latent_conversion),
        "observed_until": _to_datetime(cal.start, np.full(n_leads, cal.n_days)),
    })
    return Simulation(leads=leads, accounts=accounts, activities=activities,
                      conversions=conversions, ground_truth=ground_truth)


# --- Oracle ----------------------------------------------------------------------------

def _decision_cdf(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """CDF of the episode-to-decision delay, Erlang(3, ``scale`` days)."""
    z = np.maximum(x, 0.0) / scale
    return np.where(x > 0, 1.0 - np.exp(-z) * (1.0 + z + 0.5 * z * z), 0.0)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF via a Chebyshev erfc fit (relative error below 1.2e-7).

    numpy has no ``erf`` and the project does not depend on scipy directly.
    """
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(-x * x + poly)
    return np.where(z >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def _start_cdf(x: np.ndarray, median: np.ndarray) -> np.ndarray:
    """CDF of the creation-to-episode delay (lognormal)."""
    safe = np.maximum(x, 1e-12)
    return np.where(x > 0, _norm_cdf(np.log(safe / median) / _EPISODE_SIGMA), 0.0)


def _not_started_probability(age: np.ndarray, until: np.ndarray, median: np.ndarray,
                             scale: np.ndarray, p_episode: np.ndarray, p_win: np.ndarray,
                             nodes: int = 32) -> np.ndarray:
    """P(episode starts and is won within ``(age, until]`` | no episode by ``age``).

    The numerator ``p_episode * p_win * integral f_S(s) G(until - s) ds`` is integrated
    over ``log s`` (Gauss-Legendre), where the lognormal density is a smooth Gaussian.
    Mass below one minute of lead age is negligible and skipped.
    """
    x, w = np.polynomial.legendre.leggauss(nodes)
    lo = np.log(np.maximum(age, _MIN))
    hi = np.log(np.maximum(until, _MIN))
    half = 0.5 * (hi - lo)
    log_s = (lo + half)[:, None] + half[:, None] * x[None, :]
    z = (log_s - np.log(median)[:, None]) / _EPISODE_SIGMA
    density = np.exp(-0.5 * z * z) / (_EPISODE_SIGMA * np.sqrt(2.0 * np.pi))
    integrand = density * _decision_cdf(until[:, None] - np.exp(log_s), scale[:, None])
    integral = half * (integrand @ w)
    f_lo = _start_cdf(age, median)
    return p_episode * p_win * integral / np.maximum(1.0 - p_episode * f_lo, 1e-12)


def oracle_probability(ground_truth: pd.DataFrame, snapshots: pd.DataFrame,
                       horizon_days: int = 90,
                       leads: pd.DataFrame | None = None) -> np.ndarray:
    """Probability that a lead converts in ``(as_of, as_of + horizon]``, given none yet.

    This is the probability under the simulator's own generative model. It conditions
    on the lead's latent state at ``as_of`` and nothing later: fit, intent and the two
    stage probabilities, whether its buying episode had started by ``as_of`` (and
    when), and whether that episode had already been decided (lost). It
    never uses a draw that lies after ``as_of`` (the future episode start, the decision
    delay or the win), so it is the best prediction possible from all information
    available at ``as_of``. The window is truncated at the data end
    (``observed_until``) because later conversions are not in the data. Bots, leads
    already converted by ``as_of`` and leads already lost get 0.

    With ``S`` the episode start, ``G`` the decision-delay CDF, ``F_S`` the start CDF,
    ``t = as_of - created_at`` and ``T`` the truncated window end (both in lead age):

    * episode started, undecided: ``p_win * (G(T - S) - G(t - S)) / (1 - G(t - S))``;
    * not started: ``p_episode * p_win * int_t^T f_S(s) G(T - s) ds / (1 - p_episode F_S(t))``.

    Args:
        ground_truth: ``Simulation.ground_truth`` (or the same columns read from disk).
        snapshots: Columns ``lead_id`` and ``as_of``.
        horizon_days: Length of the label window in days.
        leads: Optional leads table; its ``created_at`` is used when ``ground_truth``
            lacks that column.

    Returns:
        Float64 array aligned with ``snapshots``, values in ``[0, 1]``.
    """
    gt_ids = pd.Index(ground_truth["lead_id"].astype(str))
    pos = gt_ids.get_indexer(snapshots["lead_id"].astype(str))
    if (pos < 0).any():
        missing = snapshots["lead_id"].to_numpy()[pos < 0][:5]
        raise KeyError(f"lead_id not in ground_truth: {list(missing)}")
    if "created_at" in ground_truth:
        created_col = ground_truth["created_at"]
    elif leads is not None:
        created_col = leads.set_index("lead_id")["created_at"].reindex(gt_ids)
    else:
        raise ValueError("created_at is needed: pass leads or a ground_truth that has it")
    origin = np.datetime64("2000-01-01", "us")

    def col(values: pd.Series) -> np.ndarray:
        return _to_days(values, origin)[pos]

    created = col(created_col)
    as_of = _to_days(snapshots["as_of"], origin)
    start = col(ground_truth["episode_start_at"])
    decided = col(ground_truth["decided_at"])
    converted = col(ground_truth["latent_converted_at"])
    until = np.minimum(as_of + horizon_days, col(ground_truth["observed_until"]))
    p_episode = ground_truth["p_episode"].to_numpy(dtype=np.float64)[pos]
    p_win = ground_truth["p_win"].to_numpy(dtype=np.float64)[pos]
    median = ground_truth["episode_median_days"].to_numpy(dtype=np.float64)[pos]
    scale = ground_truth["decision_scale_days"].to_numpy(dtype=np.float64)[pos]
    bot = ground_truth["is_bot"].to_numpy(dtype=bool)[pos]

    out = np.zeros(len(pos), dtype=np.float64)
    alive = ~bot & (converted > as_of) & (decided > as_of) & (until > as_of)
    started = alive & (start <= as_of)
    if started.any():
        done = _decision_cdf(as_of[started] - start[started], scale[started])
        later = _decision_cdf(until[started] - start[started], scale[started])
        out[started] = p_win[started] * (later - done) / np.maximum(1.0 - done, 1e-12)
    waiting = np.flatnonzero(alive & ~started)
    for chunk in np.array_split(waiting, max(1, len(waiting) // 200_000 + 1)):
        if len(chunk):
            out[chunk] = _not_started_probability(
                as_of[chunk] - created[chunk], until[chunk] - created[chunk],
                median[chunk], scale[chunk], p_episode[chunk], p_win[chunk],
            )
    return np.clip(out, 0.0, 1.0)
