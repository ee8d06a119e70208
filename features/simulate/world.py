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
