"""Fake CRMs on loopback for the sync tests: HubSpot's and Salesforce's REST endpoints
that leadscore uses, with their documented request and response shapes.

Each fake keeps its records in memory, records every request, checks the bearer token,
and can be scripted to fail: ``faults`` is a list of (path prefix, status, headers)
answered once each, in order, instead of the real answer, once ``faults_after`` matching
requests went through (``CLOSE``: the connection is closed unanswered; ``HANG``: nothing
is answered for ``hang_seconds``); ``revoke_after`` revokes the token after that many
write requests (a token revoked mid-run).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd

from store.runs import RunInfo, write_run

CLOSE = -1
"""A fault's status that closes the connection without an answer."""
HANG = -2
"""A fault's status that answers nothing for ``hang_seconds``, then closes."""


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
    hang_seconds: float = 3.0
    faults_after: int = 0

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
                if status in (CLOSE, HANG):  # no answer at all
                    if status == HANG:
                        time.sleep(fake.hang_seconds)
                    self.close_connection = True
                    return
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
                if self.faults_after > 0:
                    self.faults_after -= 1
                    break
                del self.faults[i]
                return status, None if status < 0 else self.error(status), headers
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
    missing_is_400: bool = False

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
            if self.missing_is_400 and set(i["id"] for i in body["inputs"]) - set(self.contacts):
                return 400, {"status": "error", "message": "Object not found",
                             "category": "VALIDATION_ERROR"}, {}  # fmt: skip
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


def score_leads(engine, ids, as_of: str, score: int = 70, mql: bool = True, source="batch") -> None:
    """A run scoring ``ids`` (created 2025-01-01) with a full card each."""
    frame = pd.DataFrame(
        {
            "lead_id": ids,
            "probability": score / 100,
            "score": score,
            "grade": "A1" if mql else "C3",
            "mql": mql,
            "threshold": 0.5,
            "created_at": pd.Timestamp("2025-01-01"),
            "reasons": [
                {
                    "positive": [
                        {"signal": "pricing", "group": "intent", "sentence": "Visited pricing"},
                        {"signal": "size", "group": "fit", "sentence": "Large company"},
                    ],
                    "negative": [],
                }
            ]
            * len(ids),
            "next_best_actions": [[{"action": "call", "sentence": "Call within a day"}]] * len(ids),
        }
    )
    info = RunInfo(source=source, as_of=pd.Timestamp(as_of), model_name="m",
                   model_version="1", threshold=0.5)  # fmt: skip
    write_run(engine, info, frame)


def qs(path: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(path).query)


SF_DATA = "/services/data/v59.0/"


@dataclass
class FakeSalesforce(Fake):
    """``/services/data/v59.0``: Lead describe, Tooling CustomField, sObject Collections
    PATCH, and SOQL queries on Lead (by LastModifiedDate) and Opportunity (by Id)."""

    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    created_fields: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2000
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_lead(self, lid: str, when: datetime, **values: Any) -> None:
        self.leads[lid] = {"Status": "Open - Not Contacted", "IsConverted": False, **values}
        self.leads[lid]["LastModifiedDate"] = when

    def is_write(self, path: str) -> bool:
        return path.startswith(SF_DATA + "composite/sobjects")

    def error(self, status: int) -> Any:
        codes = {401: "INVALID_SESSION_ID", 429: "REQUEST_LIMIT_EXCEEDED", 404: "NOT_FOUND"}
        return [{"message": "Session expired or invalid" if status == 401 else "error",
                 "errorCode": codes.get(status, "UNKNOWN_EXCEPTION")}]  # fmt: skip

    def _lead(self, lid: str) -> dict[str, Any]:
        row = dict(self.leads[lid])
        row["LastModifiedDate"] = row["LastModifiedDate"].strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return {"attributes": {"type": "Lead", "url": f"{SF_DATA}sobjects/Lead/{lid}"},
                "Id": lid, **row}  # fmt: skip

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        route = urlparse(path).path
        if route == SF_DATA + "sobjects/Lead/describe":
            standard = [{"name": "Id", "type": "id"}, {"name": "Status", "type": "picklist"}]
            custom = [{"name": n, "type": t, "custom": True} for n, t in self.fields.items()]
            return 200, {"name": "Lead", "fields": standard + custom}, {}
        if route == SF_DATA + "tooling/sobjects/CustomField":
            name = body["FullName"].split(".", 1)[1]
            kind = {"Number": "double", "Text": "string", "Checkbox": "boolean",
                    "LongTextArea": "textarea"}[body["Metadata"]["type"]]  # fmt: skip
            self.fields[name] = kind
            self.created_fields.append(body)
            return 201, {"id": "00N" + name[:12], "success": True, "errors": []}, {}
        if route == SF_DATA + "composite/sobjects" and method == "PATCH":
            assert len(body["records"]) <= 200
            self.updates.append(body)
            out = []
            for record in body["records"]:
                lid = record["id"]
                if lid not in self.leads:
                    out.append({"success": False, "errors": [
                        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted",
                         "fields": []}]})  # fmt: skip
                    continue
                values = {k: v for k, v in record.items() if k not in ("attributes", "id")}
                unknown = set(values) - set(self.fields)
                if unknown:
                    out.append({"success": False, "errors": [
                        {"statusCode": "INVALID_FIELD", "message": str(unknown), "fields": []}
                    ]})  # fmt: skip
                    continue
                self.leads[lid].update(values)
                self.leads[lid]["LastModifiedDate"] = datetime.now(UTC)
                out.append({"id": lid, "success": True, "errors": []})
            return 200, out, {}
        if route.startswith(SF_DATA + "query/01gFAKE-"):
            start = int(route.rsplit("-", 1)[1])
            return 200, self._page(self.cursors["01gFAKE"], start), {}
        if route == SF_DATA + "query":
            soql = qs(path)["q"][0]
            return 200, self._query(soql), {}
        return 404, self.error(404), {}

    def _query(self, soql: str) -> dict[str, Any]:
        import re

        if " FROM Opportunity " in soql:
            ids = re.findall(r"'([^']*)'", soql)
            records = [{"attributes": {"type": "Opportunity"}, "Id": i, **self.opportunities[i]}
                       for i in ids if i in self.opportunities]  # fmt: skip
            return {"totalSize": len(records), "done": True, "records": records}
        assert " FROM Lead" in soql
        low = None
        match = re.search(r"LastModifiedDate >= (\S+)", soql)
        if match:
            low = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        ids = sorted(
            (i for i in self.leads if low is None or self.leads[i]["LastModifiedDate"] >= low),
            key=lambda i: (self.leads[i]["LastModifiedDate"], i),
        )
        return self._page([self._lead(i) for i in ids], 0)

    def _page(self, records: list[dict[str, Any]], start: int) -> dict[str, Any]:
        """``page_size`` records from ``start``, with ``nextRecordsUrl`` when more remain."""
        self.cursors["01gFAKE"] = records
        page = records[start : start + self.page_size]
        answer: dict[str, Any] = {"totalSize": len(records), "done": True, "records": page}
        if start + self.page_size < len(records):
            answer["done"] = False
            answer["nextRecordsUrl"] = f"{SF_DATA}query/01gFAKE-{start + self.page_size}"
        return answer
