"""The API under hostile and broken input: schemathesis from the OpenAPI document, and
hand-made abuse, against a real ``bentoml serve``.

Every answer must be below 500, and every 4xx must say what is wrong: a JSON ``detail``
that, for a validation error, names the field (``loc``) and the problem (``msg``).
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from reliability_support import TOKEN, budget
from schemathesis import GenerationMode

from serving.schemas import MAX_ACTIVITIES, MAX_BATCH, MAX_BODY_BYTES

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHOLE_BODY = {"json_invalid", "model_type", "model_attributes_type", "dict_type", "list_type"}
"""Errors about the body as a whole (not JSON, not an object): they have no field."""
SEEN: Counter = Counter()
"""Requests sent by the fuzz, by status class (reported in the summary)."""


def check_answer(response) -> None:
    """No 5xx; a 4xx carries a JSON ``detail`` that names the field when it is about one."""
    status = response.status_code
    SEEN[f"{status // 100}xx"] += 1
    assert status < 500, (
        f"{status} for {response.request.method} {response.request.url}: {response.text[:500]}"
    )
    if 400 <= status < 500:
        where = f"{status} for {response.request.method} {response.request.url}"
        if status in (404, 405) and response.text in ("Not Found", "Method Not Allowed"):
            return  # the router's own answer for a path no route matches (e.g. "/samples/%0A")
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{where}: not JSON: {response.text[:300]!r}") from None
        assert "detail" in body, response.text[:500]
        detail = body["detail"]
        if isinstance(detail, list):
            for item in detail:
                assert item.get("msg"), item
                if item.get("type") not in WHOLE_BODY and status == 400:
                    # Rules across fields (created_at after as_of, mismatched ids) are
                    # reported at the field they are about, like any other error.
                    assert item.get("loc"), f"a validation error without its field: {item}"
        else:
            assert isinstance(detail, str) and detail


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_the_openapi_document(guarded, mode):
    """Generated requests for every operation of ``/docs.json``: zero 5xx, every 4xx
    explained. Positive mode sends valid bodies (they must be scored), negative mode
    bodies that break the schema (they must be refused cleanly)."""
    api = schemathesis.openapi.from_url(f"{guarded.url}/docs.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/score", "/score_batch", "/model"}
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @given(case=strategy)
        @settings(
            max_examples=budget(75, 1500),
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            check_answer(case.call(headers=AUTH, timeout=60))

        try:
            run()
        except Unsatisfiable:  # nothing to break in this mode (a GET without parameters)
            assert mode == GenerationMode.NEGATIVE


def test_fuzz_summary():
    """Runs after the fuzz (file order): it really sent requests, and none was a 5xx."""
    sent = sum(SEEN.values())
    print(f"\nfuzzed requests: {sent} {dict(SEEN)}")
    assert sent >= budget(250, 4000)
    assert SEEN["5xx"] == 0


def _lead(**extra) -> dict:
    return {
        "lead": {"lead_id": "L-1", "created_at": "2024-01-01T00:00:00Z"},
        "as_of": "2024-06-01T00:00:00Z",
        **extra,
    }


def _post(
    client: httpx.Client,
    path: str,
    content: bytes | str | None = None,
    body: object = None,
    **headers: str,
) -> httpx.Response:
    if body is not None:
        content = json.dumps(body)
    r = client.post(path, content=content, headers={"content-type": "application/json", **headers})
    check_answer(r)
    return r


def test_hostile_bodies_are_answered_cleanly(authed):
    """Oversized, deeply nested, NaN, wrong types, unicode, far timestamps, huge lists."""
    activity = {"occurred_at": "2024-02-01T00:00:00Z", "activity_type": "page_view"}
    cases = {
        "deeply nested": ('{"lead":' + "[" * 100_000 + "]" * 100_000 + "}", 400, ""),
        "NaN": (
            '{"lead":{"lead_id":"x","created_at":"2024-01-01"},"account":{"employee_count":NaN}}',
            400,
            "employee_count",
        ),
        "Infinity": (
            '{"lead":{"lead_id":"x","created_at":"2024-01-01"},'
            '"account":{"annual_revenue":Infinity}}',
            400,
            "annual_revenue",
        ),
        "not JSON": ("{", 400, ""),
        "empty body": ("", 400, ""),
        "a list": ("[]", 400, ""),
        "wrong type": (json.dumps(_lead(activities="lots")), 400, "activities"),
        "number as id": (
            json.dumps({"lead": {"lead_id": 5, "created_at": "2024-01-01"}}),
            400,
            "lead_id",
        ),
        "far past": (
            json.dumps({"lead": {"lead_id": "x", "created_at": "0001-01-01"}}),
            400,
            "created_at",
        ),
        "far future": (json.dumps(_lead(as_of="9999-12-31T23:59:59")), 400, "as_of"),
        "huge year": (json.dumps(_lead(as_of="+275760-09-13T00:00:00Z")), 400, "as_of"),
        "too many activities": (
            json.dumps(_lead(activities=[activity] * (MAX_ACTIVITIES + 1))),
            400,
            "activities",
        ),
        "too many leads": (json.dumps({"leads": [_lead()] * (MAX_BATCH + 1)}), 400, "leads"),
        "huge text": (
            json.dumps({"lead": {"lead_id": "x" * 10_000, "created_at": "2024-01-01"}}),
            400,
            "lead_id",
        ),
        "unknown field": (json.dumps(_lead(senority="VP")), 400, "senority"),
        "null byte and emoji": (
            json.dumps(
                {
                    "lead": {
                        "lead_id": "\x00😀\u202e",
                        "created_at": "2024-01-01",
                        "seniority": "巫师",
                    }
                }
            ),
            200,
            "",
        ),
        "lone surrogate": ('{"lead":{"lead_id":"\\ud800","created_at":"2024-01-01"}}', None, ""),
        "invalid UTF-8": (b'{"lead":{"lead_id":"\xff\xfe","created_at":"2024-01-01"}}', 400, ""),
    }
    for name, (content, want, field) in cases.items():
        path = "/score_batch" if name == "too many leads" else "/score"
        r = _post(authed, path, content)
        if want is not None:
            assert r.status_code == want, (name, r.status_code, r.text[:300])
        if field:
            assert field in r.text, (name, r.text[:300])
    big = b'{"lead": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    r = _post(authed, "/score", big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():
        for _ in range(MAX_BODY_BYTES // 1_000_000 + 2):
            yield b" " * 1_000_000

    r = authed.post("/score", content=chunks(), headers={"content-type": "application/json"})
    check_answer(r)
    assert r.status_code == 413
    for form in ("multipart/form-data", "application/x-www-form-urlencoded"):
        r = _post(authed, "/score_batch", b'{"leads": []}', **{"content-type": form})
        assert r.status_code == 415, (form, r.text)
