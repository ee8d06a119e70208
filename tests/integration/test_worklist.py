"""The reps' worklist: its queries on SQLite and PostgreSQL, ``GET /worklist`` and
``GET /leads/{lead_id}`` on the real ``bentoml serve`` behind a token, and the page in
Chromium (filter, sort, page, open a lead, accept one and reject one, the store has both);
the same for the account list (``GET /accounts``, ``/accounts/{id}``, ``/account-view``).

Set ``LEADSCORE_SCREENSHOTS=docs/img`` to write the docs' screenshots from the page test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import serving_support as testing

from serving.account_view import AccountQuery, account_detail, account_list
from serving.launch import RunningServer, start_server
from serving.worklist import WorklistError, WorklistQuery, lead_detail, parse_time, worklist
from store.engine import open_store
from store.feedback import leads_dispositions, set_owners
from store.history import account_momentum, momentum
from store.runs import RunInfo, write_account_run, write_run

TOKEN = "worklist-token-0123456789abcdef"
RUNS = ("2025-03-01", "2025-03-08", "2025-03-15", "2025-04-05")
REGIONS = ("EMEA", "NA", "APAC")
SOURCES = ("web", "event", "partner", "paid_search")
OWNERS = ("ann.lee", "bo.chen", "cara.diaz")
N_LEADS = 64
PERSONAS = ("economic_buyer", "technical_evaluator", "champion", "end_user")


def account_of(i: int) -> str:
    """Four leads an account: L-1000..L-1003 work at A-100, and so on."""
    return f"A-{100 + i // 4}"


def _card(score: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stored reasons (by signal, fit and engagement) and next best actions of a score."""
    visits = max(1, score // 8)
    reasons = {
        "positive": [
            {
                "signal": "pricing_page_visits",
                "group": "engagement",
                "sentence": f"Visited the pricing page {visits} times in the last 30 days",
                "contribution": round(0.02 * score, 4),
            },
            {
                "signal": "seniority",
                "group": "fit",
                "sentence": "Director: buyers at this level convert more often",
                "contribution": 0.31,
            },
        ],
        "negative": [
            {
                "signal": "days_since_last_activity",
                "group": "engagement",
                "sentence": "No activity for 12 days",
                "contribution": -0.22,
            }
        ],
    }
    actions = [
        {
            "action": "demo_request",
            "score": min(100, score + 15),
            "probability": round(min(1.0, score / 100 + 0.12), 4),
            "mql": score + 15 >= 60,
            "grade": "A1",
            "gain": 0.12,
            "sentence": "A demo request would raise the score",
        }
    ]
    return reasons, actions


def _accounts(leads: pd.DataFrame) -> pd.DataFrame:
    """An account run from a lead run: an account scores its best lead, engaged people are
    those scoring 40+, one persona a person (in order), the rest missing."""
    rows = []
    for account, people in leads.groupby("account_id", sort=True):
        engaged = people[people["score"] >= 40].sort_values("lead_id")
        personas = list(PERSONAS[: len(engaged)])
        best = int(people["score"].max())
        rows.append(
            {
                "account_id": account,
                "probability": best / 105,
                "probability_low": best / 130,
                "probability_high": min(1.0, best / 85),
                "score": best,
                "grade": ("A" if best >= 60 else "B") + str(min(4, 1 + len(engaged))),
                "mqa": best >= 70,
                "threshold": 0.66,
                "region": people["region"].iloc[0],
                "leads": len(people),
                "engaged": len(engaged),
                "reasons": {
                    "positive": [
                        {
                            "signal": "engaged_people",
                            "group": "engagement",
                            "sentence": f"{len(engaged)} people engaged in the last 30 days",
                            "contribution": 0.4,
                        }
                    ],
                    "negative": [],
                },
                "buying_group": {
                    "engaged": personas,
                    "missing": list(PERSONAS[len(personas) :]),
                    "next_contacts": [
                        {"lead_id": lead, "persona": "end_user", "why": "opened 3 emails"}
                        for lead in people["lead_id"].iloc[:1]
                        if len(personas) < len(PERSONAS)
                    ],
                },
            }
        )
    return pd.DataFrame(rows)


def fill_store(url: str, leads: int = N_LEADS) -> None:
    """``leads`` leads over four batch runs (so 7- and 30-day momentum exist), owners from
    a CRM import for most of them, two leads missing from the second run and two new in
    the last one (no momentum)."""
    engine = open_store(url)
    rng = np.random.default_rng(17)
    ids = [f"L-{1000 + i}" for i in range(leads)]
    base = rng.integers(20, 90, leads)
    try:
        for k, day in enumerate(RUNS):
            score = np.clip(base + rng.integers(-12, 13, leads) * k, 0, 100).astype(int)
            keep = np.ones(leads, dtype=bool)
            if k == 1:
                keep[:2] = False  # L-1000 and L-1001 are missing from the second run
            if k < len(RUNS) - 1:
                keep[-2:] = False  # the last two leads are new in the last run
            cards = [_card(int(s)) for s in score]
            frame = pd.DataFrame(
                {
                    "lead_id": ids,
                    "probability": score / 110,
                    "probability_low": score / 140,
                    "probability_high": np.minimum(1.0, score / 90),
                    "score": score,
                    "grade": [("A" if s >= 60 else "B" if s >= 40 else "C") + "2" for s in score],
                    "mql": score >= 60,
                    "threshold": 0.55,
                    "region": [REGIONS[i % 3] for i in range(leads)],
                    "lead_source": [SOURCES[i % 4] for i in range(leads)],
                    "created_at": pd.Timestamp("2025-02-01"),
                    "reasons": [c[0] for c in cards],
                    "next_best_actions": [c[1] for c in cards],
                    "account_id": [account_of(i) for i in range(leads)],
                }
            )[keep]
            info = RunInfo(
                source="batch",
                as_of=pd.Timestamp(day),
                model_name="lead-scoring",
                model_version=str(k + 1),
                threshold=0.55,
            )
            write_run(engine, info, frame)
            write_account_run(engine, info, _accounts(frame))
        set_owners(engine, {lead: OWNERS[i % 3] for i, lead in enumerate(ids) if i % 5})
    finally:
        engine.dispose()


# ---- the queries, on both databases -----------------------------------------------------


def _reference(engine: Any) -> pd.DataFrame:
    """``store.history.momentum`` joined to the states: what the worklist must equal."""
    with engine.connect() as connection:
        states = pd.read_sql("SELECT * FROM lead_states", connection)
    moves = momentum(engine)[["lead_id", "momentum_7d", "momentum_30d"]]
    return states.merge(moves, on="lead_id")


def _all(engine: Any, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = worklist(engine, WorklistQuery(limit=7, offset=offset, **kw))
        out += page.leads
        offset += 7
        if offset >= page.total:
            assert len(out) == page.total
            return out


def _same(a: Any, b: Any) -> bool:
    return (a is None and pd.isna(b)) or a == b


def test_worklist_queries_equal_the_store_reads(store_url: str) -> None:
    fill_store(store_url, leads=24)
    engine = open_store(store_url, migrate=False)
    try:
        ref = _reference(engine).set_index("lead_id")
        rows = _all(engine)
        assert {r["lead_id"] for r in rows} == set(ref.index)
        for row in rows:
            want = ref.loc[row["lead_id"]]
            assert _same(row["momentum_7d"], want["momentum_7d"]), row
            assert _same(row["momentum_30d"], want["momentum_30d"]), row
            assert row["score"] == want["score"] and _same(row["owner"], want["owner"])
        new_leads = {"L-1022", "L-1023"}
        assert {r["lead_id"] for r in rows if r["momentum_7d"] is None} == new_leads
        assert {r["lead_id"] for r in rows if r["momentum_30d"] is None} == new_leads
        # Sort: score desc, ties by lead id; momentum desc with the None ones last.
        assert [(-r["score"], r["lead_id"]) for r in rows] == sorted(
            (-r["score"], r["lead_id"]) for r in rows
        )
        by_move = _all(engine, sort="momentum_7d")
        moves = [r["momentum_7d"] for r in by_move]
        known = [m for m in moves if m is not None]
        assert known == sorted(known, reverse=True) and moves[: len(known)] == known
        up = _all(engine, sort="momentum_30d", descending=False)
        ascending = [r["momentum_30d"] for r in up]
        known = [m for m in ascending if m is not None]
        assert ascending == [*sorted(known), None, None]  # None last in either order
        # Filters.
        mqls = _all(engine, mql=True)
        assert {r["lead_id"] for r in mqls} == set(ref.index[ref["mql"].astype(bool)])
        emea = _all(engine, region=("EMEA", "NA"), grade=("A2", "B2"))
        want = ref[ref["region"].isin(["EMEA", "NA"]) & ref["grade"].isin(["A2", "B2"])]
        assert {r["lead_id"] for r in emea} == set(want.index)
        owned = _all(engine, owner=("ann.lee",), lead_source=("web", "event"))
        want = ref[(ref["owner"] == "ann.lee") & ref["lead_source"].isin(["web", "event"])]
        assert {r["lead_id"] for r in owned} == set(want.index) and len(owned) > 0
        since = pd.Timestamp("2025-03-10")
        new = _all(engine, new_since=since, sort="mql_since")
        want = ref[ref["mql_since"].notna() & (pd.to_datetime(ref["mql_since"]) > since)]
        assert {r["lead_id"] for r in new} == set(want.index)
        assert all(r["mql"] for r in new)
        # One lead's drawer.
        detail = lead_detail(engine, "L-1005")
        assert detail is not None
        assert [p["as_of"][:10] for p in detail["timeline"]] == list(RUNS)
        assert detail["card"]["model_version"] == "4"
        assert detail["card"]["probability_low"] <= detail["card"]["probability"]
        assert lead_detail(engine, "nobody") is None
    finally:
        engine.dispose()


def test_bad_queries_name_the_field() -> None:
    with pytest.raises(WorklistError, match="sort"):
        WorklistQuery(sort="name")
    with pytest.raises(WorklistError, match="limit"):
        WorklistQuery(limit=0)
    with pytest.raises(WorklistError, match="offset"):
        WorklistQuery(offset=-1)
    with pytest.raises(WorklistError, match="new_since"):
        parse_time("last tuesday", "new_since")
    assert parse_time("2025-03-01T10:00:00+01:00", "x") == pd.Timestamp("2025-03-01 09:00")


def test_account_list_equals_the_store_reads(store_url: str) -> None:
    fill_store(store_url, leads=24)
    engine = open_store(store_url, migrate=False)
    try:
        with engine.connect() as connection:
            states = pd.read_sql("SELECT * FROM account_states", connection)
        ref = states.merge(account_momentum(engine), on="account_id", suffixes=("", "_h"))
        ref = ref.set_index("account_id")
        rows = account_list(engine, AccountQuery(mqa=None, limit=500)).accounts
        assert [r["account_id"] for r in rows] == sorted(
            ref.index, key=lambda a: (-ref.loc[a, "score"], a)
        )
        for row in rows:
            want = ref.loc[row["account_id"]]
            assert _same(row["momentum_7d"], want["momentum_7d"]), row
            assert _same(row["momentum_28d"], want["momentum_28d"]), row
            assert row["engaged"] == want["engaged"] and row["leads"] == want["leads"]
        mqas = account_list(engine, AccountQuery(mqa=True, limit=500))
        assert {r["account_id"] for r in mqas.accounts} == set(ref.index[ref["mqa"].astype(bool)])
        by_people = account_list(engine, AccountQuery(sort="engaged", limit=500)).accounts
        assert [r["engaged"] for r in by_people] == sorted(ref["engaged"], reverse=True)
        detail = account_detail(engine, "A-101")
        assert detail is not None
        assert [p["lead_id"] for p in detail["people"]] == sorted(
            (f"L-{1004 + k}" for k in range(4)),
            key=lambda lead: -next(p["score"] for p in detail["people"] if p["lead_id"] == lead),
        )
        assert detail["people_total"] == 4
        group = detail["card"]["buying_group"]
        assert set(group["engaged"]) | set(group["missing"]) == set(PERSONAS)
        assert [p["as_of"][:10] for p in detail["timeline"]] == list(RUNS)
        assert account_detail(engine, "nobody") is None
        with pytest.raises(WorklistError, match="sort"):
            AccountQuery(sort="mql_since")
    finally:
        engine.dispose()


# ---- the service -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wl_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('worklist') / 'leadscore.db'}"
    fill_store(url)
    return url


@pytest.fixture(scope="module")
def guarded(root: Path, wl_store: str) -> RunningServer:
    """The session champion served with a token and the worklist's store."""
    settings = testing.session_settings(root).replace(db_url=wl_store)
    server = start_server(
        settings, log_path=root / "worklist-server.log", extra_env={"LEADSCORE_API_TOKEN": TOKEN}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(guarded: RunningServer):
    with httpx.Client(
        base_url=guarded.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


@pytest.mark.slow
def test_lead_store_routes_need_the_token(guarded: RunningServer) -> None:
    for path in (
        "/worklist",
        "/worklist/facets",
        "/leads/L-1001",
        "/leads/nobody",
        "/accounts",
        "/accounts/facets",
        "/accounts/A-100",
    ):
        r = httpx.get(guarded.url + path, timeout=30)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
    for path in ("/", "/try", "/account-view", "/static/common.js", "/static/accounts.js"):
        assert httpx.get(guarded.url + path, timeout=30).status_code == 200, path


@pytest.mark.slow
def test_worklist_endpoint_filters_sorts_and_pages(http: httpx.Client, wl_store: str) -> None:
    first = http.get("/worklist", params={"limit": 10}).json()
    assert set(first) == {"total", "limit", "offset", "sort", "order", "as_of", "leads"}
    assert (first["total"], first["limit"], first["sort"], first["order"]) == (
        N_LEADS,
        10,
        "score",
        "desc",
    )
    assert first["as_of"] == "2025-04-05T00:00:00"
    lead = first["leads"][0]
    assert set(lead) == {
        "lead_id",
        "score",
        "probability",
        "grade",
        "mql",
        "mql_since",
        "region",
        "lead_source",
        "owner",
        "created_at",
        "last_as_of",
        "mql_episodes",
        "momentum_7d",
        "momentum_30d",
    }
    second = http.get("/worklist", params={"limit": 10, "offset": 10}).json()
    ids = [r["lead_id"] for r in first["leads"] + second["leads"]]
    assert len(set(ids)) == 20
    everything = http.get("/worklist", params={"limit": 500}).json()["leads"]
    assert [r["lead_id"] for r in everything[:20]] == ids

    r = http.get(
        "/worklist",
        params=[("mql", "true"), ("region", "EMEA"), ("region", "APAC"), ("sort", "momentum_7d")],
    ).json()
    want = [x for x in everything if x["mql"] and x["region"] in ("EMEA", "APAC")]
    assert r["total"] == len(want) > 0
    moves = [x["momentum_7d"] for x in r["leads"]]
    known = [m for m in moves if m is not None]
    assert moves == sorted(known, reverse=True) + [None] * (len(moves) - len(known))
    owned = http.get("/worklist", params={"owner": "bo.chen", "lead_source": "web"}).json()
    assert owned["total"] == sum(
        x["owner"] == "bo.chen" and x["lead_source"] == "web" for x in everything
    )
    old_first = http.get("/worklist", params={"sort": "mql_since", "order": "asc", "mql": "true"})
    since = [x["mql_since"] for x in old_first.json()["leads"]]
    assert since == sorted(since)
    new = http.get("/worklist", params={"new_since": "2025-03-20", "mql": "true"}).json()
    assert new["total"] == sum(x["mql"] and x["mql_since"] > "2025-03-20" for x in everything)
    facets = http.get("/worklist/facets").json()
    assert facets["region"] == sorted(REGIONS) and facets["owner"] == sorted(OWNERS)

    for params, field in (
        ({"sort": "name"}, "sort"),
        ({"order": "up"}, "order"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -5}, "offset"),
        ({"new_since": "soon"}, "new_since"),
    ):
        bad = http.get("/worklist", params=params)
        assert bad.status_code == 400, params
        assert bad.json()["detail"].startswith(field), bad.text
    assert http.get("/worklist", params={"mql": "maybe"}).status_code == 422


@pytest.mark.slow
def test_lead_endpoint_and_404(http: httpx.Client) -> None:
    r = http.get("/leads/L-1001")
    assert r.status_code == 200, r.text
    lead = r.json()
    assert set(lead) == {"lead_id", "state", "card", "timeline", "dispositions", "activity"}
    card = lead["card"]
    assert card["probability_low"] <= card["probability"] <= card["probability_high"]
    assert [x["signal"] for x in card["reasons"]["positive"]] == [
        "pricing_page_visits",
        "seniority",
    ]
    assert card["next_best_actions"][0]["action"] == "demo_request"
    assert [p["as_of"][:10] for p in lead["timeline"]] == [RUNS[0], *RUNS[2:]]  # not in run 2
    assert lead["timeline"][-1]["score"] == card["score"] == lead["state"]["score"]
    assert lead["state"]["momentum_7d"] == card["score"] - lead["timeline"][-2]["score"]
    assert lead["dispositions"] == []
    new = http.get(f"/leads/L-{1000 + N_LEADS - 1}").json()
    assert len(new["timeline"]) == 1 and new["state"]["momentum_7d"] is None
    assert [s["effect"] for s in lead["activity"]["signals"]] == ["raises", "lowers"]
    assert "no activity log" in lead["activity"]["source"]
    missing = http.get("/leads/NOPE-1")
    assert missing.status_code == 404 and "NOPE-1" in missing.json()["detail"]


# ---- the page --------------------------------------------------------------------------


def _shoot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("LEADSCORE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def _rows(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#rows tr", "rows => rows.map(r => r.dataset.leadId)"
    )
    return ids


def _wait_list(page: Any, version: int) -> int:
    page.wait_for_function(
        f"Number(document.getElementById('worklist').dataset.version || 0) > {version}"
    )
    return int(page.get_attribute("#worklist", "data-version"))


@pytest.mark.slow
@pytest.mark.browser
def test_the_worklist_page(browser, guarded, http, wl_store, tmp_path) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(guarded.url + "/")
        # The service has a token: the page asks for it once, then loads the list.
        page.wait_for_selector("#token-box:not([hidden])")
        page.fill("#token", TOKEN)
        page.press("#token", "Enter")
        version = _wait_list(page, 0)
        mqls = http.get("/worklist", params={"mql": "true", "limit": 50}).json()
        assert _rows(page) == [x["lead_id"] for x in mqls["leads"]]
        assert page.inner_text("#page-info") == f"1–{len(mqls['leads'])} of {mqls['total']}"
        assert page.is_visible("text=scores as of 2025-04-05")

        # All leads: two pages of 50.
        page.select_option("#f-mql", "")
        version = _wait_list(page, version)
        assert page.inner_text("#page-info") == f"1–50 of {N_LEADS}"
        page.click("#next")
        version = _wait_list(page, version)
        assert page.inner_text("#page-info") == f"51–{N_LEADS} of {N_LEADS}"
        page.click("#prev")
        version = _wait_list(page, version)
        _shoot(page, "worklist.png", tmp_path)

        # Filter by region, then sort by momentum (a header is a button).
        page.select_option("#f-region", "EMEA")
        version = _wait_list(page, version)
        emea = http.get("/worklist", params={"region": "EMEA", "limit": 50}).json()
        assert _rows(page) == [x["lead_id"] for x in emea["leads"]]
        assert set(page.locator("#rows td:nth-child(6)").all_inner_texts()) == {"EMEA"}
        page.click("th[data-sort='momentum_7d'] button")
        version = _wait_list(page, version)
        assert page.get_attribute("th[data-sort='momentum_7d']", "aria-sort") == "descending"
        by_move = http.get(
            "/worklist", params={"region": "EMEA", "sort": "momentum_7d", "limit": 50}
        ).json()
        assert _rows(page) == [x["lead_id"] for x in by_move["leads"]]

        # Open the first lead with the keyboard: its button, Enter.
        first = by_move["leads"][0]["lead_id"]
        page.focus(f"#rows button[data-lead-id='{first}']")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#drawer[data-lead-id='{first}']:not([hidden])")
        detail = http.get(f"/leads/{first}").json()
        card = detail["card"]
        assert page.inner_text("#drawer-title") == first
        assert page.inner_text("#d-probability") == f"{100 * card['probability']:.1f}%"
        low, high = card["probability_low"], card["probability_high"]
        assert page.inner_text("#d-range") == f"likely {100 * low:.1f}% – {100 * high:.1f}%"
        assert page.inner_text("#d-grade") == card["grade"]
        assert page.locator("#d-positive li").count() == len(card["reasons"]["positive"])
        assert page.locator("#d-negative li").count() == len(card["reasons"]["negative"])
        assert page.get_attribute("#d-actions li", "data-action") == "demo_request"
        assert page.locator("#d-timeline svg circle").count() == len(detail["timeline"])
        assert "no activity log" in page.inner_text("#d-activity-note")
        assert page.inner_text("#d-dispositions") == "none yet"

        # Accept it, with the rep's name kept for the next visit.
        page.fill("#rep-name", "dana.rep")
        page.dispatch_event("#rep-name", "change")
        page.click("#accept-btn")
        page.wait_for_selector("#d-dispositions li[data-stage='accepted']")
        assert "Accepted" in page.inner_text("#fb-status")
        _shoot(page, "drawer.png", tmp_path)

        # Esc closes the drawer and gives the focus back to the lead's button.
        page.keyboard.press("Escape")
        page.wait_for_selector("#drawer", state="hidden")
        assert page.evaluate("document.activeElement.dataset.leadId") == first

        # Reject another lead with a reason.
        second = by_move["leads"][1]["lead_id"]
        page.click(f"#rows tr[data-lead-id='{second}'] td:nth-child(2)")  # a row click opens too
        page.wait_for_selector(f"#drawer[data-lead-id='{second}']:not([hidden])")
        page.select_option("#reject-reason", "no_budget")
        page.fill("#reject-text", "budget frozen until Q3")
        page.click("#reject-btn")
        page.wait_for_selector("#d-dispositions li[data-stage='rejected']")
        assert "no_budget: budget frozen until Q3" in page.inner_text("#d-dispositions")

        engine = open_store(wl_store, migrate=False)
        try:
            stored = leads_dispositions(engine, lead_ids=[first, second])
            stored = stored.astype(object).where(stored.notna(), None)
        finally:
            engine.dispose()
        got = {
            (r.lead_id, r.stage, r.reason_code, r.reason_text, r.recorded_by)
            for r in stored.itertuples()
        }
        assert got == {
            (first, "accepted", None, None, "dana.rep"),
            (second, "rejected", "no_budget", "budget frozen until Q3", "dana.rep"),
        }
        # The name was kept (localStorage), the token for this tab (sessionStorage).
        page.reload()
        page.wait_for_selector("body[data-loaded='true']")
        assert page.input_value("#rep-name") == "dana.rep"
        assert page.is_hidden("#token-box")
    finally:
        context.close()
    assert not errors, errors


@pytest.mark.slow
def test_the_pages_have_no_external_assets(http: httpx.Client) -> None:
    page = http.get("/").text
    assert 'src="static/worklist.js"' in page and 'href="static/worklist.css"' in page
    assert "https://" not in page and "http://" not in page
    assert 'href="try"' in page and 'href="./"' in http.get("/try").text
    for name in ("common.js", "worklist.js", "accounts.js"):
        script = http.get(f"/static/{name}")
        assert script.headers["content-type"].startswith("text/javascript"), name
        assert "https://" not in script.text, name
    assert "fetch(path" in http.get("/static/common.js").text
    accounts = http.get("/account-view").text
    assert 'src="static/common.js"' in accounts and "https://" not in accounts
    assert 'href="account-view"' in page
    assert http.get("/static/try.html").status_code == 404  # only the page's own assets
    assert http.get("/static/..%2Fservice.py").status_code == 404


@pytest.mark.slow
def test_an_empty_or_unmigrated_store(root: Path, tmp_path: Path) -> None:
    """A migrated store with no runs is an empty worklist; an unmigrated one is a 503 that
    says what to run (in-process service, no token)."""
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(empty).dispose()
    settings = testing.session_settings(root)
    with testing.service_client(settings.replace(db_url=empty)) as client:
        page = client.get("/worklist").json()
        assert (page["total"], page["leads"], page["as_of"]) == (0, [], None)
        assert client.get("/worklist/facets").json() == {
            "region": [],
            "grade": [],
            "lead_source": [],
            "owner": [],
        }
        assert client.get("/leads/L-1").status_code == 404
        # A CRM id with a slash, as the page sends it (encodeURIComponent).
        engine = open_store(empty, migrate=False)
        frame = pd.DataFrame(
            {"lead_id": ["0015/X 7"], "probability": [0.4], "score": [55], "grade": ["B2"]}
        ).assign(mql=False, threshold=0.5)
        info = RunInfo(
            source="online",
            as_of=pd.Timestamp("2025-05-01"),
            model_name="m",
            model_version="1",
            threshold=0.5,
        )
        write_run(engine, info, frame)
        engine.dispose()
        lead = client.get("/leads/0015%2FX%207").json()
        assert lead["lead_id"] == "0015/X 7" and lead["card"]["reasons"]["positive"] == []
        assert client.get("/worklist").json()["leads"][0]["momentum_7d"] is None
    bare = f"sqlite:///{tmp_path / 'bare.db'}"
    with testing.service_client(settings.replace(db_url=bare)) as client:
        for path in ("/worklist", "/worklist/facets", "/leads/L-1"):
            r = client.get(path)
            assert r.status_code == 503, path
            assert "leadscore db upgrade" in r.json()["detail"]


@pytest.mark.slow
def test_account_endpoints(http: httpx.Client) -> None:
    first = http.get("/accounts", params={"mqa": "false", "sort": "momentum_28d"}).json()
    assert set(first) == {"total", "limit", "offset", "sort", "order", "as_of", "accounts"}
    assert first["total"] == len(first["accounts"]) > 0
    assert not any(a["mqa"] for a in first["accounts"])
    assert http.get("/accounts/facets").json()["region"] == sorted(REGIONS)
    bad = http.get("/accounts", params={"sort": "lead_source"})
    assert bad.status_code == 400 and "sort" in bad.json()["detail"]
    detail = http.get("/accounts/A-100").json()
    assert {p["lead_id"] for p in detail["people"]} == {"L-1000", "L-1001", "L-1002", "L-1003"}
    assert (
        detail["state"]["momentum_7d"] == detail["card"]["score"] - detail["timeline"][-2]["score"]
    )
    missing = http.get("/accounts/NOPE-1")
    assert missing.status_code == 404 and "NOPE-1" in missing.json()["detail"]


def _account_rows(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#rows tr", "rows => rows.map(r => r.dataset.accountId)"
    )
    return ids


def _wait_accounts(page: Any, version: int) -> int:
    page.wait_for_function(
        f"Number(document.getElementById('accounts').dataset.version || 0) > {version}"
    )
    return int(page.get_attribute("#accounts", "data-version"))


@pytest.mark.slow
@pytest.mark.browser
def test_the_account_page(browser, guarded, http, tmp_path) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(guarded.url + "/")
        page.wait_for_selector("#token-box:not([hidden])")
        page.fill("#token", TOKEN)
        page.press("#token", "Enter")
        page.wait_for_selector("body[data-loaded='true']")
        page.click("#accounts-link")  # the token is kept for the tab
        version = _wait_accounts(page, 0)
        mqas = http.get("/accounts", params={"mqa": "true"}).json()
        assert _account_rows(page) == [a["account_id"] for a in mqas["accounts"]]
        page.select_option("#f-mqa", "")
        version = _wait_accounts(page, version)
        page.click("th[data-sort='engaged'] button")
        version = _wait_accounts(page, version)
        ranked = http.get("/accounts", params={"sort": "engaged"}).json()
        assert _account_rows(page) == [a["account_id"] for a in ranked["accounts"]]
        # Open an account with a missing persona: its buying group and people.
        target = next(a for a in ranked["accounts"] if a["engaged"] < len(PERSONAS))
        account = target["account_id"]
        page.focus(f"#rows button[data-account-id='{account}']")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#drawer[data-account-id='{account}']:not([hidden])")
        detail = http.get(f"/accounts/{account}").json()
        missing = [p.replace("_", " ") for p in detail["card"]["buying_group"]["missing"]]
        assert page.inner_text("#d-missing") == "Missing: " + ", ".join(missing)
        people = page.eval_on_selector_all(
            "#d-people tr", "rows => rows.map(r => r.dataset.leadId)"
        )
        assert people == [p["lead_id"] for p in detail["people"]]
        contact = detail["card"]["buying_group"]["next_contacts"][0]["lead_id"]
        assert contact in page.inner_text("#d-next")
        assert page.locator("#d-timeline circle").count() == len(detail["timeline"])
        _shoot(page, "accounts.png", tmp_path)
        page.keyboard.press("Escape")
        page.wait_for_selector("#drawer", state="hidden")
        # The links alerts carry open the account, or the lead, straight away.
        page.goto(guarded.url + "/account-view#account=A-101")
        page.wait_for_selector("#drawer[data-account-id='A-101']:not([hidden])")
        page.goto(guarded.url + "/#lead=L-1005")
        page.wait_for_selector("#drawer[data-lead-id='L-1005']:not([hidden])")
        assert page.inner_text("#drawer-title") == "L-1005"
    finally:
        context.close()
    assert not errors, errors
