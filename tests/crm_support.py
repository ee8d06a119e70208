"""Fake CRMs on loopback for the sync tests: HubSpot's and Salesforce's REST endpoints
that leadscore uses, with their documented request and response shapes.

Each fake keeps its records in memory, records every request, checks the bearer token,
and can be scripted to fail: ``faults`` is a list of (path prefix, status, headers)
answered once each, in order, before the real answer; ``revoke_after`` revokes the token
after that many write requests (a token revoked mid-run).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Fake:
    """What every fake shares: token, faults, request log, the server thread."""

    token: str = "good-token"
    faults: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    revoke_after: int | None = None
    writes: int = 0
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Fake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with fake.lock:
                    status, payload, headers = fake.answer(
                        method, self.path, body, self.headers.get("Authorization", "")
                    )
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def answer(
        self, method: str, path: str, body: Any, auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        self.requests.append((method, path, body))
        for i, (prefix, status, headers) in enumerate(self.faults):
            if urlparse(path).path.startswith(prefix):
                del self.faults[i]
                return status, self.error(status), headers
        if auth != f"Bearer {self.token}":
            return 401, self.error(401), {}
        if method in ("POST", "PATCH") and self.is_write(path):
            if self.revoke_after is not None and self.writes >= self.revoke_after:
                self.token = "revoked"
                return 401, self.error(401), {}
            self.writes += 1
        return self.route(method, path, body)

    def is_write(self, path: str) -> bool:
        raise NotImplementedError

    def error(self, status: int) -> Any:
        raise NotImplementedError

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


@dataclass
class FakeHubSpot(Fake):
    """``/crm/v3`` contacts (batch update, search) and contact properties and groups."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    modified: dict[str, datetime] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)

    def add_contact(self, cid: str, when: datetime, **props: str) -> None:
        self.contacts[cid] = dict(props)
        self.modified[cid] = when

    def is_write(self, path: str) -> bool:
        return path.startswith("/crm/v3/objects/contacts/batch/update")

    def error(self, status: int) -> Any:
        messages = {
            401: "Authentication credentials not found.",
            429: "You have reached your secondly limit.",
        }
        category = {401: "INVALID_AUTHENTICATION", 429: "RATE_LIMITS"}.get(status, "ERROR")
        return {
            "status": "error",
            "message": messages.get(status, "error"),
            "correlationId": "00000000-0000-0000-0000-000000000000",
            "category": category,
        }

    def _object(self, cid: str) -> dict[str, Any]:
        when = _iso(self.modified[cid])
        props = {**self.contacts[cid], "hs_object_id": cid, "lastmodifieddate": when}
        return {
            "id": cid,
            "properties": props,
            "createdAt": when,
            "updatedAt": when,
            "archived": False,
        }

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        now = _iso(datetime.now(UTC))
        route = urlparse(path).path
        if route == "/crm/v3/properties/contacts/groups":
            if method == "GET":
                return 200, {"results": list(self.groups.values())}, {}
            group = {"archived": False, "displayOrder": -1, **body}
            self.groups[body["name"]] = group
            return 201, group, {}
        if route == "/crm/v3/properties/contacts":
            if method == "GET":
                return 200, {"results": list(self.properties.values())}, {}
            if body["name"] in self.properties:
                return 409, self.error(409), {}
            prop = {"options": [], "description": "", **body}
            self.properties[body["name"]] = prop
            return 201, prop, {}
        if route == "/crm/v3/objects/contacts/batch/update":
            results, errors = [], []
            self.updates.append(body)
            for item in body["inputs"]:
                cid = item["id"]
                if cid not in self.contacts:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "message": "resource not found",
                            "context": {"ids": [cid]},
                        }
                    )
                    continue
                unknown = set(item["properties"]) - set(self.properties)
                if unknown:
                    return 400, {"status": "error", "message": f"unknown {unknown}"}, {}
                self.contacts[cid].update(item["properties"])
                self.modified[cid] = datetime.now(UTC)
                results.append(self._object(cid))
            answer = {
                "status": "COMPLETE",
                "results": results,
                "startedAt": now,
                "completedAt": now,
            }
            if errors:
                return 207, {**answer, "errors": errors, "numErrors": len(errors)}, {}
            return 200, answer, {}
        if route == "/crm/v3/objects/contacts/search":
            low = None
            for group in body.get("filterGroups") or []:
                for f in group["filters"]:
                    assert f["propertyName"] == "lastmodifieddate" and f["operator"] == "GTE"
                    low = datetime.fromtimestamp(int(f["value"]) / 1000, UTC)
            ids = sorted(
                (c for c in self.contacts if low is None or self.modified[c] >= low),
                key=lambda c: (self.modified[c], c),
            )
            start = int(body.get("after") or 0)
            page = ids[start : start + int(body.get("limit", 10))]
            answer: dict[str, Any] = {
                "total": len(ids),
                "results": [self._object(c) for c in page],
            }
            if start + len(page) < len(ids):
                answer["paging"] = {"next": {"after": str(start + len(page))}}
            return 200, answer, {}
        return 404, self.error(404), {}


def qs(path: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(path).query)
