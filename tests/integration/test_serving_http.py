"""The real ``bentoml serve`` on a free loopback port, called over HTTP.

One server serves the whole session (``serving_support.session_server``); the page and
skew tests reuse it.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import serving_support as testing

from features.actions import ACTIONS
from serving.launch import free_port, serve_command, server_env, start_server
from serving.model_store import ModelNotAvailableError
from serving.samples import list_samples
from serving.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def samples(root: Path, server) -> list[dict]:
    folder = testing.session_samples(root)
    return [json.loads((folder / f"{s['name']}.json").read_text()) for s in list_samples(folder)]


def test_ready_and_alive(http):
    assert http.get("/readyz").status_code == 200
    assert http.get("/livez").status_code == 200


def test_workers_skip_the_training_only_imports(server, http):
    """LightGBM's scikit-learn import (~50 MB a process) stays out of the server's processes,
    which score all the same (``serving/__init__.py``)."""
    import psutil

    assert http.get("/readyz").status_code == 200
    root = psutil.Process(server.process.pid)
    processes = [root, *root.children(recursive=True)]
    loaded = [m.path for p in processes for m in p.memory_maps() if "/sklearn/" in m.path]
    assert loaded == []
    lightgbm = [m.path for p in processes for m in p.memory_maps() if "lib_lightgbm" in m.path]
    assert lightgbm  # the model is LightGBM's: its library is loaded, only sklearn is not


def test_score_over_http(http, samples, root):
    champion = testing.session_champion(root)
    r = http.post("/score", json=samples[0])
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["lead_id"] == samples[0]["lead"]["lead_id"]
    assert card["model"]["version"] == champion.version
    assert card["model"]["alias"] == "champion"
    assert card["reasons"]["positive"] or card["reasons"]["negative"]


def test_concurrent_batches_come_back_to_the_right_caller(http, samples):
    """Adaptive batching merges concurrent calls; each caller gets its own leads back."""
    expected = {p["lead"]["lead_id"]: http.post("/score", json=p).json() for p in samples}
    calls = [samples[i % len(samples) :] + samples[: i % len(samples)] for i in range(24)]

    def call(leads: list[dict]) -> list[dict]:
        r = http.post("/score_batch", json={"leads": leads})
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, calls))
    for leads, cards in zip(calls, answers, strict=True):
        assert [c["lead_id"] for c in cards] == [p["lead"]["lead_id"] for p in leads]
        for card in cards:
            assert not testing.card_differences(card, expected[card["lead_id"]])


def test_bad_input_over_http_is_a_400(http, samples):
    body = json.loads(json.dumps(samples[0]))
    body["lead"]["created_at"] = "yesterday-ish"
    r = http.post("/score", json=body)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["lead", "created_at"]
    r = http.post("/score", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = http.post("/score_batch", json={"leads": [{"lead": None}]})
    assert r.status_code == 400 and "leads" in r.text


def test_bentoml_python_client_takes_the_body_as_one_argument(server, samples, http):
    """``bentoml.SyncHTTPClient(url).score(body)``: the body is one positional argument
    (``score``'s parameter is positional-only: BentoML's root input), and the answer is
    the same card as a plain JSON POST."""
    import bentoml

    with bentoml.SyncHTTPClient(server.url) as client:
        card = client.score(samples[0])
        assert not testing.card_differences(card, http.post("/score", json=samples[0]).json())
        cards = client.score_batch(leads=samples[:2])
        assert [c["lead_id"] for c in cards] == [p["lead"]["lead_id"] for p in samples[:2]]
        with pytest.raises(bentoml.exceptions.BentoMLException) as caught:
            client.score({"lead": {"lead_id": "L-1", "created_at": "yesterday-ish"}})
        assert caught.value.error_code == 400 and "created_at" in str(caught.value)


def test_model_page_and_openapi_over_http(http):
    assert http.get("/model").json()["alias"] == "champion"
    assert "Score this lead" in http.get("/try").text
    assert "/score_batch" in http.get("/docs.json").json()["paths"]


def test_launcher_refuses_a_registry_without_champion(root, tmp_path):
    empty = Settings(
        tracking_uri=testing.session_empty_registry(root), bentoml_home=tmp_path / "bentoml"
    )
    with pytest.raises(
        ModelNotAvailableError, match=r"train one first|nothing has been trained there"
    ):
        start_server(empty, port=free_port())


def test_bentoml_serve_stops_with_a_clear_error_without_champion(root, tmp_path):
    empty = Settings(
        tracking_uri=testing.session_empty_registry(root), bentoml_home=tmp_path / "bentoml"
    )
    result = subprocess.run(
        serve_command("127.0.0.1", free_port()),
        env=server_env(empty),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no model to serve from the MLflow registry" in result.stdout + result.stderr


def _with_activity(payload: dict, activity_type: str) -> dict:
    """``payload`` with one more activity of ``activity_type`` at its ``as_of``, and no
    actions asked for: the lead re-scored as if the action had happened."""
    now = {"occurred_at": payload["as_of"], "activity_type": activity_type}
    return {**payload, "activities": [*payload["activities"], now], "next_best_actions": 0}


def test_next_best_actions_over_http_equal_rescoring_the_lead(http, samples):
    """``/score`` and ``/score_batch`` return each lead's next best actions, best first;
    each one's probability, score, MQL flag and grade are those of the lead re-scored
    over HTTP with that activity appended."""
    cards = [http.post("/score", json=p).json() for p in samples[:3]]
    cards += http.post("/score_batch", json={"leads": samples[3:]}).json()
    assert any(card["next_best_actions"] for card in cards)
    for payload, card in zip(samples, cards, strict=True):
        actions = card["next_best_actions"]
        assert len(actions) <= 3
        gains = [a["gain"] for a in actions]
        assert gains == sorted(gains, reverse=True) and all(g > 0 for g in gains)
        again = http.post(
            "/score_batch", json={"leads": [_with_activity(payload, a["action"]) for a in actions]}
        ).json()
        for action, rescored in zip(actions, again, strict=True):
            assert rescored["next_best_actions"] == []
            assert abs(action["probability"] - rescored["probability"]) <= 1e-12
            assert abs(action["gain"] - (rescored["probability"] - card["probability"])) <= 1e-12
            assert (action["score"], action["mql"], action["grade"]) == (
                rescored["score"],
                rescored["mql"],
                rescored["grade"],
            )
            assert f"from {card['score']} to {action['score']}" in action["sentence"] or (
                f"stays at {card['score']}" in action["sentence"]
            )


def test_a_request_chooses_how_many_next_best_actions(http, samples):
    """``next_best_actions``: 0 turns them off, more asks for more; out of 0–20 is a 400."""
    payload = samples[0]
    default = http.post("/score", json=payload).json()["next_best_actions"]
    none, more = http.post(
        "/score_batch",
        json={"leads": [{**payload, "next_best_actions": 0}, {**payload, "next_best_actions": 9}]},
    ).json()
    assert none["next_best_actions"] == []
    assert not testing.card_differences(more["next_best_actions"][: len(default)], default, 1e-12)
    assert len(default) <= 3 and len(more["next_best_actions"]) >= len(default)
    r = http.post("/score", json={**payload, "next_best_actions": 21})
    assert r.status_code == 400 and "next_best_actions" in r.text
    listed = http.get("/model").json()["next_best_actions"]
    assert [a["name"] for a in listed] == [a.name for a in ACTIONS]
    assert all(a["activity"] == a["name"] and a["phrase"] for a in listed)
