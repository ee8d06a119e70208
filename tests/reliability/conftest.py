"""Fixtures of the reliability suite: a live server behind a bearer token, and the budget.

``make test`` runs a bounded version (a few hundred fuzzed requests, one kill per
stage). ``LEADSCORE_RELIABILITY_FULL=1`` (or ``-m reliability_full``) runs the full
one: thousands of fuzzed requests and kills at several points of every stage.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import serving_support as testing
from reliability_support import TOKEN

from serving.launch import RunningServer, start_server


@pytest.fixture(scope="session")
def guarded(root: Path) -> RunningServer:
    """A real ``bentoml serve`` of the session champion with ``LEADSCORE_API_TOKEN`` set."""
    log = root / "guarded-server.log"
    server = start_server(
        testing.session_settings(root), log_path=log, extra_env={"LEADSCORE_API_TOKEN": TOKEN}
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def authed(guarded: RunningServer):
    """An HTTP client of the guarded server that sends the token."""
    with httpx.Client(
        base_url=guarded.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


@pytest.fixture(scope="session")
def sample(root: Path) -> dict:
    """One valid ``/score`` body."""
    import json

    from serving.samples import list_samples

    folder = testing.session_samples(root)
    return json.loads((folder / f"{list_samples(folder)[0]['name']}.json").read_text())
