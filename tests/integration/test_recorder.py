"""The service records the scores it gives in the lead store, when (and only when) asked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import serving_support as testing
import sqlalchemy as sa

from serving.samples import list_samples
from store.engine import open_store
from store.runs import read_states
from store.schema import mql_events, scores, scoring_runs

pytestmark = pytest.mark.slow


def _payloads(folder: Path) -> list[dict]:
    return [json.loads((folder / f"{s['name']}.json").read_text()) for s in list_samples(folder)]


def _wait_for_rows(url: str, wanted: int, seconds: float = 20.0) -> None:
    engine = open_store(url)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with engine.connect() as c:
                if c.execute(sa.select(sa.func.count()).select_from(scores)).scalar() >= wanted:
                    return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {wanted} scores recorded after {seconds} s")
    finally:
        engine.dispose()


def test_recorded_scores_equal_the_answers(root, champion, store_url):
    settings = testing.session_settings(root).replace(record_scores=True, db_url=store_url)
    payloads = _payloads(settings.samples_dir)
    with testing.service_client(settings) as client:
        answers = [client.post("/score", json=p).json() for p in payloads[:3]]
        batch = client.post("/score_batch", json={"leads": payloads[3:]}).json()
        _wait_for_rows(store_url, len(payloads))
    cards = {c["lead_id"]: c for c in [*answers, *batch]}
    engine = open_store(store_url)
    try:
        with engine.connect() as c:
            stored = c.execute(sa.select(scores)).all()
            runs = c.execute(sa.select(scoring_runs)).all()
            entered = c.execute(sa.select(mql_events.c.lead_id)).scalars().all()
            states = read_states(c)
    finally:
        engine.dispose()
    assert {r.source for r in runs} == {"online"}
    assert {r.model_version for r in runs} == {answers[0]["model"]["version"]}
    assert len(stored) == len(payloads)
    for row in stored:
        card = cards[row.lead_id]
        assert row.probability == pytest.approx(card["probability"], abs=1e-12)
        assert (row.score, row.grade, row.mql) == (card["score"], card["grade"], card["mql"])
        assert [r["sentence"] for r in row.reasons["positive"]] == [
            r["sentence"] for r in card["reasons"]["positive"]
        ]
    lead = payloads[0]["lead"]
    first = states.set_index("lead_id").loc[lead["lead_id"]]
    assert first["region"] == lead.get("region")
    assert set(entered) == {lead_id for lead_id, c in cards.items() if c["mql"]}


def test_scores_are_not_recorded_by_default(root, champion, tmp_path):
    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    settings = testing.session_settings(root).replace(db_url=url)
    payloads = _payloads(settings.samples_dir)
    with testing.service_client(settings) as client:
        assert client.post("/score", json=payloads[0]).status_code == 200
    assert not (tmp_path / "leadscore.db").exists()
