"""The sales-rep page works against a service that requires a bearer token."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from reliability_support import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("LEADSCORE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def page_of(guarded):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(guarded.url + "/")
        yield page
        browser.close()


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
