"""The try-a-lead page works against a service that requires a bearer token."""

from __future__ import annotations

import json
import re

import pytest
from reliability_support import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def page_of(browser, guarded):
    page = browser.new_page()
    page.goto(guarded.url + "/try")
    yield page
    page.close()


def test_page_asks_for_the_token_then_scores_with_it(page_of, sample):
    page = page_of
    page.fill("#payload", json.dumps(sample))
    page.click("#score-btn")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "API token" in page.inner_text("#error")
    page.fill("#token", TOKEN)
    page.click("#score-btn")
    page.wait_for_selector("#card:not([hidden])")
    assert re.fullmatch(r"[A-D][1-4]", page.inner_text("#grade"))
