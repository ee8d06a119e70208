"""The try-a-lead page (``/try``) in a real headless Chromium (Debian's), against the real
server."""

from __future__ import annotations

import json
import re

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/try")
    page.wait_for_selector("#sample-select[data-loaded='true']")
    yield page
    context.close()
    assert not errors, errors


def test_pick_a_sample_and_read_its_score_card(page, server):
    options = page.locator("#sample-select option")
    assert options.count() == 7
    value = options.nth(1).get_attribute("value")
    page.select_option("#sample-select", value)
    page.wait_for_function("document.getElementById('payload').value.length > 10")
    payload = json.loads(page.input_value("#payload"))
    page.click("#score-btn")
    page.wait_for_selector("#card:not([hidden])")

    expected = httpx.post(server.url + "/score", json=payload).json()
    grade = page.inner_text("#grade")
    assert re.fullmatch(r"[A-D][1-4]", grade)
    assert grade == expected["grade"]
    assert page.inner_text("#probability") == f"{100 * expected['probability']:.1f}%"
    low, high = expected["probability_low"], expected["probability_high"]
    assert low <= expected["probability"] <= high
    wide = high - low > 0.10 or (high - low > expected["probability"] and high >= 0.05)
    assert page.is_visible("#probability-range") == wide
    if wide:
        assert page.inner_text("#probability-range").startswith("likely ")
    assert page.inner_text("#mql") == ("Yes" if expected["mql"] else "No")
    assert page.inner_text("#score") == str(expected["score"])
    shown = page.locator("#reasons-positive .reason .sentence").all_inner_texts()
    wanted = [r["sentence"] for r in expected["reasons"]["positive"]]
    assert len(shown) == len(wanted) > 0
    for text, sentence in zip(shown, wanted, strict=True):
        assert text.startswith(sentence)
    assert page.locator("#reasons-negative .reason").count() == len(expected["reasons"]["negative"])
    widths = page.eval_on_selector_all(
        "#reasons-positive .bar", "bars => bars.map(b => parseFloat(b.style.width))"
    )
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    actions = page.locator("#next-actions li")
    assert actions.count() == len(expected["next_best_actions"])
    for i, action in enumerate(expected["next_best_actions"]):
        assert actions.nth(i).get_attribute("data-action") == action["action"]
        assert actions.nth(i).inner_text().startswith(action["sentence"])
    assert "lead-scoring" in page.inner_text("#model-line")


def test_the_page_shows_what_would_raise_the_score(page, server):
    """A cold lead: the page lists the actions that would raise its score, best first."""
    payload = {
        "lead": {"lead_id": "COLD-1", "created_at": "2024-05-01T00:00:00Z", "region": "EMEA"},
        "activities": [{"occurred_at": "2024-05-02T10:00:00Z", "activity_type": "email_open"}],
        "as_of": "2024-06-01T00:00:00Z",
    }
    expected = httpx.post(server.url + "/score", json=payload).json()["next_best_actions"]
    assert expected, "a cold lead has actions that would raise its score"
    page.fill("#payload", json.dumps(payload))
    page.click("#score-btn")
    page.wait_for_selector("#next-actions li")
    shown = page.locator("#next-actions li").all_inner_texts()
    assert len(shown) == len(expected)
    for text, action in zip(shown, expected, strict=True):
        assert text.startswith(action["sentence"])
        assert f"score {action['score']}" in text


def test_pasted_json_is_scored(page):
    payload = {
        "lead": {
            "lead_id": "PASTED-1",
            "created_at": "2024-05-01T00:00:00Z",
            "seniority": "Director",
            "region": "EMEA",
        },
        "activities": [{"occurred_at": "2024-05-20T10:00:00Z", "activity_type": "demo_request"}],
        "as_of": "2024-06-01T00:00:00Z",
    }
    page.fill("#payload", json.dumps(payload))
    page.click("#score-btn")
    page.wait_for_selector("#card:not([hidden])")
    assert "PASTED-1" in page.inner_text("#card-sub")
    assert re.fullmatch(r"[A-D][1-4]", page.inner_text("#grade"))


def test_bad_input_shows_the_field_not_a_crash(page):
    page.fill("#payload", "{not json")
    page.click("#score-btn")
    assert "not valid JSON" in page.inner_text("#error")
    page.fill("#payload", json.dumps({"lead": {"lead_id": "X", "created_at": "someday"}}))
    page.click("#score-btn")
    page.wait_for_function("document.getElementById('error').textContent.includes('HTTP 400')")
    assert "lead.created_at" in page.inner_text("#error")
    assert page.locator("#card").is_hidden()


@pytest.mark.parametrize(
    ("probability", "low", "high", "shown"),
    [
        (0.30, 0.18, 0.45, "likely 18.0% – 45.0%"),  # 27 points wide
        (0.04, 0.015, 0.09, "likely 1.5% – 9.0%"),  # wider than 4% and reaching 5%
        (0.03, 0.005, 0.08, "likely 0.50% – 8.0%"),  # under 1%: two decimals
        (0.005, 0.002, 0.02, None),  # wide relative to 0.5%, but unlikely either way
        (0.30, 0.27, 0.33, None),  # narrow
        (0.30, None, None, None),  # a model without intervals
    ],
)
def test_the_interval_is_shown_only_when_it_is_wide(page, server, probability, low, high, shown):
    payload = {"lead": {"lead_id": "RANGE-1", "created_at": "2024-05-01T00:00:00Z"}}
    card = httpx.post(server.url + "/score", json=payload).json()
    card.update(probability=probability, probability_low=low, probability_high=high)
    page.route("**/score", lambda route: route.fulfill(json=card))
    page.fill("#payload", json.dumps(payload))
    page.click("#score-btn")
    page.wait_for_selector("#card:not([hidden])")
    assert page.inner_text("#probability") == f"{100 * probability:.1f}%"
    assert page.is_visible("#probability-range") == (shown is not None)
    if shown:
        assert page.inner_text("#probability-range") == shown
