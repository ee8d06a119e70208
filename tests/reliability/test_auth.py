"""Optional bearer-token authentication, unit-tested and over HTTP against ``bentoml serve``."""

from __future__ import annotations

import hmac

import httpx
import pytest
from reliability_support import TOKEN

from serving import auth


def test_token_is_optional_and_validated():
    assert auth.token_from_env({}) is None
    assert auth.token_from_env({auth.TOKEN_ENV: "   "}) is None
    assert auth.token_from_env({auth.TOKEN_ENV: TOKEN}) == TOKEN.encode()
    with pytest.raises(auth.TokenError, match="too short") as short:
        auth.token_from_env({auth.TOKEN_ENV: "abc123"})
    assert "abc123" not in str(short.value)
    with pytest.raises(auth.TokenError, match="printable ASCII") as spaced:
        auth.token_from_env({auth.TOKEN_ENV: "a secret with spaces inside"})
    assert "secret" not in str(spaced.value)


def test_token_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    expected = TOKEN.encode()
    assert auth.token_matches(b"Bearer " + expected, expected)
    assert auth.token_matches(b"bearer  " + expected, expected)
    assert not auth.token_matches(b"Bearer " + expected[:-1], expected)
    assert not auth.token_matches(b"Basic " + expected, expected)
    assert not auth.token_matches(b"", expected)
    assert not auth.token_matches(None, expected)
    assert len(calls) == 3  # every bearer comparison went through compare_digest


@pytest.mark.slow
def test_scoring_routes_need_the_token_over_http(guarded, sample):
    url = guarded.url
    cases = {
        "none": {},
        "wrong": {"Authorization": "Bearer " + TOKEN[:-1] + "x"},
        "prefix": {"Authorization": "Bearer " + TOKEN[:-1]},
        "basic": {"Authorization": f"Basic {TOKEN}"},
        "bare": {"Authorization": TOKEN},
    }
    for route, body in (("/score", sample), ("/score_batch", {"leads": [sample]})):
        for name, headers in cases.items():
            r = httpx.post(url + route, json=body, headers=headers, timeout=30)
            assert r.status_code == 401, (route, name, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in r.json()["detail"]
            assert TOKEN not in r.text
        ok = httpx.post(
            url + route, json=body, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status_code == 200, ok.text
    # Probes, monitoring, the OpenAPI document and the page stay open.
    for route in ("/readyz", "/livez", "/docs.json", "/model", "/", "/try"):
        assert httpx.get(url + route, timeout=30).status_code == 200, route


@pytest.mark.slow
def test_token_never_reaches_the_log(guarded, authed, sample):
    authed.post("/score", json=sample)
    httpx.post(
        guarded.url + "/score",
        json=sample,
        timeout=30,
        headers={"Authorization": f"Bearer {TOKEN[::-1]}"},
    )
    log = guarded.log_tail(10_000_000)
    assert "/score" in log  # the access log is on, and still
    assert TOKEN not in log and TOKEN[::-1] not in log


@pytest.mark.slow
def test_a_malformed_token_stops_bentoml_serve(root, tmp_path):
    import subprocess

    import serving_support as testing

    from serving.launch import free_port, serve_command, server_env

    env = server_env(testing.session_settings(root), {auth.TOKEN_ENV: "short-secret"})
    result = subprocess.run(
        serve_command("127.0.0.1", free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "LEADSCORE_API_TOKEN is too short" in out
    assert "short-secret" not in out
