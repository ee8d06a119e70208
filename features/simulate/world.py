"""Parameters of the simulated world: every number that shapes the funnel.

They live apart from the sampling code so that the world can be read, and tuned, in
one place; the other modules of the package only read them. Effects are on the
log-odds scale unless stated otherwise; times are float days since the data start.
Changing any value changes the tables every seed produces.
"""

from __future__ import annotations

import numpy as np

# --- Units (the simulator's clock counts float days) ------------------------------------
_US_PER_DAY = 86_400_000_000
_DT_UNIT = "datetime64[us]"
_MIN = 1.0 / 1440.0
_SEC = 1.0 / 86_400.0

# --- Conversion process (shared by the simulator and the oracle) -----------------------
_EPISODE_MEDIAN_DAYS = 55.0
_EPISODE_INTENT_SPEEDUP = 0.5
_EPISODE_SIGMA = 1.2
_DECISION_SHAPE = 3
_DECISION_SCALE_DAYS = {
    "1-10": 4.0,
    "11-50": 5.5,
    "51-200": 7.0,
    "201-1000": 10.0,
    "1001-5000": 14.0,
    "5000+": 20.0,
}
"""Erlang scale of the decision delay by company size: enterprise deals take longer."""
_TARGET_HUMAN_CONVERSION = 0.14
_WIN_INTERCEPT = -0.9
_BUYING_GROUP_WIN = 0.3
"""Win log-odds per buying-group persona (``features.personas.DEFAULT_PERSONAS``) already
present at the lead's account when the lead arrives, beyond the first (up to four):
multi-threaded deals close more often. Centred on the human leads, so the conversion rate
stays on target and only who wins moves."""
_ACCOUNT_INTENT_SHARE = 0.35
"""Share of the private intent variance that an account's leads have in common (a buying
project at the company): colleagues research together, so their outcomes are correlated."""

# --- Firmographics ---------------------------------------------------------------------
_REGION_WEIGHTS = {"NA": 0.52, "EMEA": 0.28, "APAC": 0.13, "LATAM": 0.07}
_COUNTRIES: dict[str, tuple[tuple[str, float, str], ...]] = {
    "NA": (("US", 0.86, ".com"), ("CA", 0.14, ".ca")),
    "EMEA": (
        ("GB", 0.28, ".co.uk"),
        ("DE", 0.24, ".de"),
        ("FR", 0.16, ".fr"),
        ("NL", 0.12, ".nl"),
        ("ES", 0.10, ".es"),
        ("SE", 0.10, ".se"),
    ),
    "APAC": (
        ("AU", 0.30, ".com.au"),
        ("JP", 0.22, ".co.jp"),
        ("SG", 0.16, ".sg"),
        ("IN", 0.32, ".in"),
    ),
    "LATAM": (
        ("BR", 0.45, ".com.br"),
        ("MX", 0.30, ".com.mx"),
        ("AR", 0.13, ".com.ar"),
        ("CL", 0.12, ".cl"),
    ),
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
    "North",
    "Blue",
    "Apex",
    "Bright",
    "Silver",
    "Red",
    "Summit",
    "Clear",
    "Iron",
    "Green",
    "Nova",
    "Peak",
    "River",
    "Stone",
    "Swift",
    "True",
    "Vertex",
    "Atlas",
    "Cedar",
    "Harbor",
    "Orion",
    "Pioneer",
    "Quantum",
    "Lumen",
    "Golden",
    "Evergreen",
    "Crystal",
    "Falcon",
    "Maple",
    "Sterling",
    "Aurora",
    "Beacon",
    "Cobalt",
    "Delta",
    "Ember",
    "Granite",
)
_NAME_TAILS = (
    "wind",
    "field",
    "bridge",
    "point",
    "line",
    "stack",
    "path",
    "works",
    "ware",
    "gate",
    "forge",
    "scale",
    "light",
    "wave",
    "core",
    "shift",
    "sight",
    "mark",
    "span",
    "vale",
    "rock",
    "leaf",
    "star",
    "view",
)
_FIRST_NAMES = (
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elena",
    "sofia",
    "lukas",
    "emma",
    "noah",
    "olivia",
    "liam",
    "mia",
    "lucas",
    "ana",
    "carlos",
    "maria",
    "jose",
    "yuki",
    "hiroshi",
    "wei",
    "li",
    "priya",
    "rahul",
    "aarav",
    "ananya",
    "oliver",
    "charlotte",
    "jack",
    "amelia",
    "felix",
    "lea",
    "hugo",
    "chloe",
    "lars",
    "ingrid",
    "daan",
    "sanne",
    "pablo",
    "lucia",
    "mateo",
    "valentina",
    "chen",
    "mei",
)
_LAST_NAMES = (
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "martin",
    "muller",
    "schmidt",
    "schneider",
    "dubois",
    "bernard",
    "rossi",
    "devries",
    "jansen",
    "andersson",
    "johansson",
    "lopez",
    "gonzalez",
    "rodriguez",
    "silva",
    "santos",
    "sato",
    "suzuki",
    "tanaka",
    "wang",
    "zhang",
    "tan",
    "lim",
    "sharma",
    "patel",
    "singh",
    "kumar",
    "taylor",
    "wilson",
    "thomas",
    "moore",
    "clark",
    "walker",
    "young",
    "king",
    "wright",
)
_FREE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me")
_FREE_DOMAIN_WEIGHTS = (0.55, 0.12, 0.14, 0.10, 0.06, 0.03)

# --- Leads -----------------------------------------------------------------------------
_SENIORITY_WEIGHTS = {
    "C-Level": 0.05,
    "VP": 0.08,
    "Director": 0.15,
    "Manager": 0.25,
    "Individual Contributor": 0.40,
    "Student": 0.07,
}
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
    "organic_search": (0.22, 0.1),
    "paid_search": (0.15, 0.0),
    "social": (0.08, -0.2),
    "referral": (0.06, 0.5),
    "webinar": (0.09, 0.2),
    "event": (0.07, 0.2),
    "content_syndication": (0.12, -0.4),
    "outbound": (0.11, -0.5),
    "partner": (0.04, 0.3),
    "direct": (0.06, 0.4),
}
_MONTH_FACTOR = (1.0, 1.0, 1.1, 1.0, 1.05, 0.95, 0.85, 0.7, 1.1, 1.15, 1.05, 0.75)
_WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.25)

# --- Latent effects (log-odds scale) ---------------------------------------------------
_SENIORITY_FIT = {
    "C-Level": 0.9,
    "VP": 0.9,
    "Director": 0.7,
    "Manager": 0.3,
    "Individual Contributor": -0.3,
    "Student": -1.8,
}
_DEPT_FIT = {
    "Executive": 0.5,
    "Marketing": 0.6,
    "Sales": 0.4,
    "IT": 0.0,
    "Engineering": -0.5,
    "Finance": -0.2,
    "Operations": 0.4,
    "HR": -0.4,
    "Other": -0.6,
}
_REGION_FIT = {"NA": 0.15, "EMEA": 0.0, "APAC": -0.1, "LATAM": -0.2}
_REGION_INTENT_COEF = {"NA": 0.8, "EMEA": 0.45, "APAC": 1.2, "LATAM": 0.2}
_REGION_WIN = {"NA": 0.5, "EMEA": 0.0, "APAC": -0.6, "LATAM": -1.2}
_REGION_WEB = {"NA": 0.0, "EMEA": -0.1, "APAC": -0.2, "LATAM": -0.3}
_REGION_EMAIL = {"NA": 0.0, "EMEA": -0.1, "APAC": -0.4, "LATAM": -0.2}
_FIT_CENTER = 0.3
_SIZE_FIT = np.array([-0.6, 0.0, 0.2, 0.3, -0.1, -1.0])
"""Fit by size band beyond the ICP flag: the product's sweet spot is mid-market."""
_SENIORITY_SIZE_FIT = np.array(
    [
        # 1-10, 11-50, 51-200, 201-1000, 1001-5000, 5000+
        [-0.8, 0.2, 0.2, -0.3, -0.9, -1.2],  # C-Level: founders buy, big-company CEOs delegate
        [-0.3, 0.0, 0.1, 0.2, 0.2, 0.1],  # VP
        [-0.3, 0.0, 0.1, 0.2, 0.2, 0.2],  # Director
        [-0.2, 0.0, 0.1, 0.3, 0.4, 0.4],  # Manager: runs marketing ops at larger firms
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Individual Contributor
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Student
    ]
)
"""Seniority x company size: who actually owns the purchase depends on the size."""
_BOT_SHARE = 0.025

# --- Web content -----------------------------------------------------------------------
_PAGES = (
    "/",
    "/product",
    "/product/scoring",
    "/product/integrations",
    "/customers",
    "/blog",
    "/blog/lead-scoring-101",
    "/blog/mql-vs-sql",
    "/blog/intent-data",
    "/blog/abm-playbook",
    "/blog/funnel-benchmarks",
    "/about",
    "/careers",
    "/docs",
    "/docs/api",
    "/security",
    "/compare",
    "/resources",
    "/partners",
    "/events",
    "/case-studies/fintech",
    "/case-studies/saas",
    "/solutions/marketing",
    "/solutions/sales",
    "/contact",
)
_ASSETS = (
    "ebook-lead-scoring-guide",
    "report-state-of-b2b-marketing",
    "whitepaper-intent-data",
    "template-icp-worksheet",
    "checklist-crm-hygiene",
    "ebook-abm-basics",
    "report-benchmarks",
    "case-study-fintech",
    "case-study-saas",
    "datasheet-platform",
    "guide-roi-calculator",
    "infographic-funnel",
)
_WEBINAR_TOPICS = (
    "scoring-best-practices",
    "pipeline-forecasting",
    "abm-in-practice",
    "product-tour",
    "customer-panel",
    "data-quality",
    "sales-marketing-alignment",
    "ai-for-revops",
)
_PROMO_TOPICS = (
    "spring-offer",
    "feature-launch",
    "case-study",
    "event-invite",
    "trial-nudge",
    "survey",
    "year-end",
)
_FIXED_DETAILS = (
    "/pricing",
    "/demo",
    "/contact-sales",
    "/demo-request",
    "/trial-signup",
    "/newsletter-signup",
)

# --- Sales process (``features.simulate.sales``) -----------------------------------------
# Figures from the domain notes (/work/shared/domain/README.md) where they give one; the
# rest are assumptions, chosen so the funnel lands in the ranges those notes describe.
_REPS_PER_REGION = {"NA": 4, "EMEA": 3, "APAC": 2, "LATAM": 1}
"""Sales reps per region (territories), roughly in proportion to lead volume
(``_REGION_WEIGHTS``); an account always goes to the same rep of its region."""
_REP_SPEED_SIGMA = 0.35
"""Log-sd of a rep's personal speed: some reps work their queue slower than others."""
_RESPONSE_MEDIAN_DAYS = 1.2
_RESPONSE_SIGMA = 1.0
"""Lognormal delay from MQL to accept/reject: most within a few days, about 1-2 % later
than the common 14-day SLA (domain notes: "a fixed number of days (often 14)")."""
_SLA_DAYS = 14.0
_WORK_HOURS = (8, 18)
"""Reps record dispositions in local working hours (``_UTC_OFFSET_HOURS``), weekdays."""
_REJECT_SPAM_BOT = 0.95
"""Bots' form fills are rejected as spam (a few slip through and go nowhere)."""
_REJECT_NO_CONTACT = (0.85, 0.03)
"""(invalid email, valid email): the rep cannot reach a bouncing address; a few valid
ones never answer either."""
_REJECT_EXISTING_CUSTOMER = (0.95, 0.12)
"""(the lead itself already bought, another lead of its company did): routed to account
management. Most leads at a customer company are a new team, hence a new deal."""
_REJECT_DUPLICATE = 0.03
_REJECT_OTHER = 0.03
"""Duplicates of existing CRM records and everything else (competitors, job seekers)."""
_REJECT_BAD_FIT = (-0.9, -1.3)
"""(intercept, slope on ``fit_score``): 29 % at fit 0, 10 % at fit 1, 85 % at -2 (students)."""
_REJECT_LOW_INTENT = (-1.0, -1.2)
"""(intercept, slope on ``intent``) of "not now" (no budget, bad timing), cut by
``_ENGAGED_REJECT_FACTOR`` for leads in (or about to start) a buying episode."""
_ENGAGED_REJECT_FACTOR = 0.25
_ENGAGED_WINDOW_DAYS = 30.0
"""A buying episode starting within this many days of the MQL is visible to the rep."""
_NO_BUDGET_SHARE = {"1-10": 0.7, "11-50": 0.55, "51-200": 0.4, "201-1000": 0.25}
"""Share of "not now" rejections given as no budget (else bad timing), by size band;
larger bands use ``_NO_BUDGET_SHARE_LARGE``."""
_NO_BUDGET_SHARE_LARGE = 0.15
_REASON_TEXT_SHARE = 0.4
"""Reps write a free-text note on this share of rejections (always for ``other``)."""
_SQL_LOGIT = (-1.2, 0.8, 0.3, 1.8)
"""(intercept, intent, fit, engaged) of an accepted MQL becoming an SQL."""
_SQL_DELAY = (2.0, 3.0)
_OPPORTUNITY_DELAY = (2.0, 1.5)
_STALL_DELAY = (2.0, 15.0)
_RECYCLE_DELAY = (2.0, 15.0)
"""Gamma (shape, scale in days at 51-200 employees) of accept -> SQL, episode -> opportunity,
SQL -> lost when nothing happens, and accepted -> recycled to nurture; every scale grows
with the company like the simulator's decision delay (``_DECISION_SCALE_DAYS``)."""
_REFERENCE_DECISION_SCALE = 7.0
_FIT_SPEEDUP = 0.2
"""Qualification (to SQL and to opportunity) is ``exp(-0.2 * fit)`` times as long: a lead
that plainly fits the ICP needs fewer discovery calls (an assumption)."""

# --- Drift scenarios (``features.simulate.drift``) ---------------------------------------
_SOURCE_SHIFT_SHARE = 0.5
_SOURCE_SHIFT_SOURCES = (("paid_search", 0.6), ("content_syndication", 0.4))
"""From the shift on, half of the new leads come from a new paid-search and syndication
budget (paid+syndication go from 27 % to about 63 % of leads)."""
_FLOOD_SHARE = 0.4
_FLOOD_SENIORITY = (("Student", 0.55), ("Individual Contributor", 0.45))
_FLOOD_SOURCES = (("social", 0.5), ("content_syndication", 0.3), ("paid_search", 0.2))
_FLOOD_MAX_EMPLOYEES = 10
_FLOOD_FREE_EMAIL = 0.85
"""A giveaway campaign: 40 % of the leads of its months are students and juniors at tiny
firms, mostly with free mail, from social and syndication."""

# Free-text notes reps write (domain notes: fewer than half of teams record standard reason
# codes, so the text is often all there is).
_REJECTION_TEXT: dict[str, tuple[str, ...]] = {
    "bad_fit": ("Not a decision maker", "Outside our ICP", "Wrong industry for us"),
    "no_budget": ("No budget this year", "Budget frozen", "Too expensive for them"),
    "bad_timing": ("Not a priority right now", "Revisit next quarter", "Just researching"),
    "no_contact": ("Email bounced", "No answer after 5 attempts", "Wrong phone number"),
    "existing_customer": ("Already a customer", "Account owned by customer success"),
    "duplicate": ("Duplicate of an existing contact", "Merged into existing lead"),
    "spam": ("Fake form fill", "Bot submission", "Gibberish name"),
    "other": ("Competitor research", "Job seeker", "Vendor pitching us", "Wrong region"),
}
_LOST_TEXT = ("Chose a competitor", "No decision", "Budget cut", "Building in-house")
_STALLED_TEXT = ("Went dark after discovery", "No project this year", "Not a priority")
