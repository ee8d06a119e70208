"""``POST /feedback`` on the real ``bentoml serve``: behind the scoring token, into an SQLite
lead store, idempotent, all or nothing, errors naming the event and the field."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
import serving_support as testing

from serving.launch import RunningServer, start_server
from store.engine import open_store
from store.feedback import leads_dispositions
from store.runs import RunInfo, write_run

pytestmark = pytest.mark.slow

TOKEN = "feedback-token-0123456789abcdef"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite lead store that knows the leads F1 and F2 (created 2025-01-01)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'leadscore.db'}"
    engine = open_store(url)
    frame = pd.DataFrame(
        {
            "lead_id": ["F1", "F2"],
            "probability": 0.7,
            "probability_low": 0.6,
            "probability_high": 0.8,
            "score": 70,
            "grade": "A1",
            "mql": True,
            "threshold": 0.5,
            "created_at": pd.Timestamp("2025-01-01"),
        }
    )
    info = RunInfo(
        source="batch",
        as_of=pd.Timestamp("2025-03-01"),
        model_name="m",
        model_version="1",
        threshold=0.5,
    )
    write_run(engine, info, frame)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def guarded(root: Path, store_url: str) -> RunningServer:
    """The session champion served with a token and that store."""
    settings = testing.session_settings(root).replace(db_url=store_url)
    server = start_server(
        settings, log_path=root / "feedback-server.log", extra_env={"LEADSCORE_API_TOKEN": TOKEN}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(guarded: RunningServer):
    with httpx.Client(
        base_url=guarded.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


def _stored(store_url: str) -> pd.DataFrame:
    engine = open_store(store_url, migrate=False)
    try:
        return leads_dispositions(engine)
    finally:
        engine.dispose()


def test_feedback_needs_the_scoring_token(guarded: RunningServer) -> None:
    event = {"lead_id": "F1", "stage": "accepted", "occurred_at": "2025-03-02T09:00:00Z"}
    assert httpx.post(f"{guarded.url}/feedback", json=event).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert httpx.post(f"{guarded.url}/feedback", json=event, headers=wrong).status_code == 401


def test_one_event_or_a_list_recorded_once(http: httpx.Client, store_url: str) -> None:
    one = {"lead_id": "F1", "stage": "accepted", "occurred_at": "2025-03-02T10:00:00+01:00"}
    r = http.post("/feedback", json=one)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 1,
        "recorded": 1,
        "duplicates": 0,
        "flagged": 0,
        "reflagged": 0,
        "owners": 0,
    }
    events = [
        one,  # sent again: a duplicate
        {"lead_id": "F2", "stage": "won", "occurred_at": "2025-03-05", "recorded_by": "ann"},
        {
            "lead_id": "F2",
            "stage": "rejected",
            "reason_code": "bad_fit",
            "reason_text": "too small",
            "occurred_at": "2025-03-06",
        },
    ]
    r = http.post("/feedback", json=events)
    assert r.status_code == 200, r.text
    counts = r.json()
    assert (counts["recorded"], counts["duplicates"], counts["flagged"]) == (2, 1, 1)
    stored = _stored(store_url)
    assert len(stored) == 3
    first = stored.iloc[0]
    assert (first["lead_id"], first["stage"], first["recorded_by"]) == ("F1", "accepted", "api")
    assert first["occurred_at"] == pd.Timestamp("2025-03-02 09:00")  # to UTC
    assert set(stored["source"]) == {"api"}


def test_refused_events_are_named_and_nothing_is_recorded(
    http: httpx.Client, store_url: str
) -> None:
    before = len(_stored(store_url))
    events = [
        {"lead_id": "F1", "stage": "sql", "occurred_at": "2025-03-09"},
        {"lead_id": "F1", "stage": "oportunity", "occurred_at": "2025-03-10"},
        {"lead_id": "nobody", "stage": "won", "occurred_at": "2025-03-10"},
    ]
    r = http.post("/feedback", json=events)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert "2 of 3 row(s) refused" in answer["error"]
    located = {tuple(d["loc"]): d["msg"] for d in answer["detail"]}
    assert "did you mean 'opportunity'?" in located[("body", 1, "stage")]
    assert "unknown lead 'nobody'" in located[("body", 2, "lead_id")]
    one = {"lead_id": "F1", "stage": "rejected", "occurred_at": "2025-03-10"}
    r = http.post("/feedback", json=one)
    assert r.status_code == 400
    assert r.json()["detail"][0]["loc"] == ["body", "reason_code"]
    assert len(_stored(store_url)) == before


def test_a_malformed_body_is_a_422_naming_the_field(http: httpx.Client) -> None:
    r = http.post("/feedback", json=[{"lead_id": "F1", "stage": "sql"}])
    assert r.status_code == 422
    assert any(d["loc"][-1] == "occurred_at" for d in r.json()["detail"])
    r = http.post("/feedback", json={"lead_id": "F1", "stage": "sql", "occurred_at": "soon"})
    assert r.status_code == 422


def test_the_report_is_served_from_the_store_behind_the_token(
    guarded: RunningServer, http: httpx.Client
) -> None:
    assert httpx.get(f"{guarded.url}/report").status_code == 401
    answer = http.get("/report")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "Scoring at a glance" in page and "2 leads scored by model version 1" in page
    assert "<script" not in page and "<link" not in page and 'src="' not in page
    assert 'href="http' not in page  # self-contained: nothing to fetch
