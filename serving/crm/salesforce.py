"""Salesforce: leadscore's values on Leads, Lead Status and conversions back.

Through ``simple-salesforce`` on the REST API: the custom fields ``Leadscore_*__c`` on
Lead (checked with ``sobjects/Lead/describe``, created when missing with the Tooling
API's ``CustomField``) are written with sObject Collections (``PATCH
composite/sobjects``, up to 200 records a request, ``allOrNone`` false so one bad
record does not stop the rest); statuses come back with SOQL (Leads modified since the
last pull; the converted ones' Opportunities for won / lost). The store's lead id is the
Salesforce Lead Id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from serving.crm.sync import (
    OWNER,
    BatchOutcome,
    Change,
    CrmAuthError,
    CrmError,
    CrmSchemaError,
    Disposition,
    Pulled,
    PullResult,
    PushResult,
    RateLimited,
    StatusMap,
    SyncResult,
    changes,
    print_changes,
    pull_cursor,
    push,
    record_pulled,
    retry_after_seconds,
    with_retries,
)

SYSTEM = "salesforce"
BATCH = 200
"""Records per sObject Collections request (Salesforce's limit)."""
API_VERSION = "59.0"
TIMEOUT = 60.0


@dataclass(frozen=True)
class FieldSpec:
    """One ``Leadscore_*__c`` field on Lead: API name, describe type, Tooling metadata."""

    name: str
    label: str
    describe_type: str
    metadata: dict[str, Any]


FIELDS = {
    "probability": FieldSpec(
        "Leadscore_Probability__c",
        "Leadscore Probability",
        "double",
        {"type": "Number", "precision": 5, "scale": 4},
    ),
    "score": FieldSpec(
        "Leadscore_Score__c",
        "Leadscore Score",
        "double",
        {"type": "Number", "precision": 3, "scale": 0},
    ),
    "grade": FieldSpec(
        "Leadscore_Grade__c", "Leadscore Grade", "string", {"type": "Text", "length": 4}
    ),
    "mql": FieldSpec(
        "Leadscore_MQL__c",
        "Leadscore MQL",
        "boolean",
        {"type": "Checkbox", "defaultValue": "false"},
    ),
    "reasons": FieldSpec(
        "Leadscore_Reasons__c",
        "Leadscore Reasons",
        "textarea",
        {"type": "LongTextArea", "length": 32768, "visibleLines": 3},
    ),
    "next_action": FieldSpec(
        "Leadscore_Next_Action__c",
        "Leadscore Next Action",
        "textarea",
        {"type": "LongTextArea", "length": 32768, "visibleLines": 3},
    ),
}
"""leadscore's fields as Lead custom fields."""

LEAD_STATUS = {
    "Working - Contacted": Disposition("accepted"),
    "Working": Disposition("accepted"),
    "Qualified": Disposition("sql"),
    "Closed - Converted": Disposition("sql"),
    "Unqualified": Disposition("rejected", "bad_fit"),
    "Closed - Not Converted": Disposition("rejected", "other"),
    "Nurturing": Disposition("rejected", "bad_timing"),
}
"""Lead ``Status`` values (Salesforce's default picklists) that are a disposition;
``Open - Not Contacted`` and ``New`` are not."""


def spell(values: dict[str, Any]) -> dict[str, Any]:
    """leadscore's values under the Lead custom fields' API names (JSON types kept)."""
    return {FIELDS[k].name: v for k, v in values.items()}


STATUSES: StatusMap = {"Status": dict(LEAD_STATUS)}
"""The default mapping of the mappable status field (``--statuses`` adds to it)."""


def disposition(status: Pulled, statuses: StatusMap | None = None) -> Disposition | None:
    """The disposition a pulled status means (None: not one)."""
    if status.field == "Status":
        return (statuses or STATUSES)["Status"].get(status.value)
    if status.field == "Converted":
        return Disposition("opportunity" if status.value == "opportunity" else "sql")
    if status.field == "Opportunity":
        return Disposition(status.value) if status.value in ("won", "lost") else None
    return None


def _when(text: Any) -> datetime | None:
    """A Salesforce datetime (``2025-01-02T03:04:05.000+0000``) or date as tz-naive UTC."""
    if not text:
        return None
    value = str(text)
    value = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _soql_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Salesforce:
    """A Salesforce org reached with a session id (an OAuth access token).

    Attributes:
        instance_url: The org's URL (``https://acme.my.salesforce.com``); an ``http://``
            URL (a local test server) is used as given.
        session_id: The session id or OAuth access token.
        version: The REST API version.
        sleep: How to wait out a 429 / 503 (tests pass a recorder).
        timeout: Seconds a request may take.
        statuses: Which Lead Status values are which disposition (``read_status_map``).
    """

    instance_url: str
    session_id: str
    version: str = API_VERSION
    sleep: Callable[[float], None] = time.sleep
    timeout: float = TIMEOUT
    statuses: StatusMap = field(default_factory=lambda: dict(STATUSES))
    _client: Any = field(default=None, init=False, repr=False)
    _last_headers: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @property
    def client(self) -> Any:
        """The ``simple_salesforce.Salesforce`` client, made on first use."""
        if self._client is None:
            import requests
            from simple_salesforce.api import Salesforce as Client

            session = requests.Session()

            def keep_headers(response: Any, *_args: Any, **_kwargs: Any) -> None:
                self._last_headers = dict(response.headers)

            session.hooks["response"].append(keep_headers)
            client = Client(
                instance_url=self.instance_url,
                session_id=self.session_id,
                version=self.version,
                session=session,
            )
            if self.instance_url.startswith("http://"):  # simple-salesforce assumes https
                client.base_url = client.base_url.replace("https://", "http://", 1)
            self._client = client
        return self._client

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call`` with 429 / 503 retried and Salesforce's refusals made clear errors."""
        import requests
        from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

        def once() -> Any:
            try:
                return call()
            except SalesforceExpiredSession:
                raise CrmAuthError(
                    f"salesforce: {what}: the session was refused (401: expired or revoked): "
                    "set LEADSCORE_SALESFORCE_SESSION_ID to a valid session id or OAuth access "
                    "token and run again"
                ) from None
            except SalesforceError as exc:
                status = getattr(exc, "status", None)
                if status in (429, 502, 503, 504):
                    header = self._last_headers.get("Retry-After")
                    raise RateLimited(retry_after_seconds(header), status) from None
                detail = _detail(getattr(exc, "content", None))
                if status == 403 and "REQUEST_LIMIT_EXCEEDED" in detail:
                    raise CrmError(
                        f"salesforce: {what}: the org's API request limit is used up "
                        f"({detail}); run again when it resets"
                    ) from None
                if status == 403:
                    raise CrmAuthError(
                        f"salesforce: {what}: refused (403: {detail}); the user needs "
                        "'API Enabled' and edit access to Lead and its Leadscore fields"
                    ) from None
                raise CrmError(f"salesforce: {what} failed ({status}: {detail})") from None
            except requests.RequestException as exc:
                raise CrmError(
                    f"salesforce: {what}: cannot reach {self.instance_url}: {exc}"
                ) from None

        return with_retries(SYSTEM, once, self.sleep)

    def rest(self, what: str, path: str, method: str = "GET", **kwargs: Any) -> Any:
        """One REST call (``path`` under ``/services/data/vXX.X/``)."""
        return self._call(
            what, lambda: self.client.restful(path, method=method, timeout=self.timeout, **kwargs)
        )

    def ensure_fields(self) -> list[str]:
        """Create the ``Leadscore_*__c`` Lead fields that are missing; returns those made.

        Raises:
            CrmSchemaError: when a field exists with another type.
        """
        described = self.rest("describing Lead", "sobjects/Lead/describe")
        have = {f["name"]: f for f in described.get("fields", [])}
        created = []
        for spec in FIELDS.values():
            existing = have.get(spec.name)
            if existing is not None:
                if existing.get("type") != spec.describe_type:
                    raise CrmSchemaError(
                        f"salesforce: the Lead field {spec.name!r} exists with type "
                        f"{existing.get('type')!r}; leadscore writes {spec.describe_type!r} "
                        f"({spec.metadata['type']}). Delete or rename that field in Setup > "
                        "Object Manager > Lead and run again; leadscore then creates it"
                    )
                continue
            body = {
                "FullName": f"Lead.{spec.name}",
                "Metadata": {"label": spec.label, **spec.metadata},
            }
            answer = self.rest(
                f"creating the Lead field {spec.name!r}",
                "tooling/sobjects/CustomField",
                method="POST",
                json=body,
            )
            if not (answer or {}).get("success", True):
                raise CrmSchemaError(
                    f"salesforce: cannot create the Lead field {spec.name!r}: "
                    f"{_detail(answer.get('errors'))}"
                )
            created.append(spec.name)
        return created

    def update(self, batch: Sequence[Change]) -> BatchOutcome:
        """One sObject Collections update; the ids updated, and why others were not."""
        records = [{"attributes": {"type": "Lead"}, "id": c.lead_id, **c.changed} for c in batch]
        answer = self.rest(
            f"updating {len(records)} Leads",
            "composite/sobjects",
            method="PATCH",
            json={"allOrNone": False, "records": records},
        )
        outcome = BatchOutcome(accepted=[])
        for change, result in zip(batch, answer or [], strict=False):
            if result.get("success"):
                outcome.accepted.append(change.lead_id)
            else:
                outcome.refused[change.lead_id] = _detail(result.get("errors"))
        return outcome

    def query(self, what: str, soql: str) -> list[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl``."""
        page = self.rest(what, "query", params={"q": soql})
        records = list(page.get("records", []))
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            tail = str(page["nextRecordsUrl"]).rstrip("/").rsplit("/", 1)[-1]
            page = self.rest(what, f"query/{tail}")
            records += page.get("records", [])
        return records

    def read_statuses(self, since: datetime | None) -> tuple[list[Pulled], int]:
        """Leads modified at or after ``since`` as their status, conversion and, for the
        converted ones, their Opportunity's outcome; and how many Leads were read."""
        where = f" WHERE LastModifiedDate >= {_soql_time(since)}" if since else ""
        leads = self.query(
            "reading modified Leads",
            "SELECT Id, Status, IsConverted, ConvertedDate, ConvertedOpportunityId, "
            f"LastModifiedDate, OwnerId, Owner.Name FROM Lead{where} ORDER BY LastModifiedDate",
        )
        out: list[Pulled] = []
        opportunities: dict[str, tuple[str, datetime]] = {}
        for lead in leads:
            lead_id = str(lead["Id"])
            modified = _when(lead.get("LastModifiedDate")) or datetime.now(UTC).replace(tzinfo=None)
            owner = lead.get("Owner")
            name = owner.get("Name") if isinstance(owner, dict) else None
            if name or lead.get("OwnerId"):
                out.append(Pulled(lead_id, OWNER, str(name or lead["OwnerId"]), modified))
            if lead.get("Status"):
                out.append(Pulled(lead_id, "Status", str(lead["Status"]), modified))
            if lead.get("IsConverted"):
                opportunity = lead.get("ConvertedOpportunityId")
                converted = _when(lead.get("ConvertedDate"))
                value = "opportunity" if opportunity else "converted"
                out.append(Pulled(lead_id, "Converted", value, modified, converted))
                if opportunity:
                    opportunities[str(opportunity)] = (lead_id, modified)
        ids = sorted(opportunities)
        for start in range(0, len(ids), 200):
            chunk = ", ".join(_quote(i) for i in ids[start : start + 200])
            for opp in self.query(
                "reading converted Opportunities",
                f"SELECT Id, IsClosed, IsWon, CloseDate FROM Opportunity WHERE Id IN ({chunk})",
            ):
                if not opp.get("IsClosed"):
                    continue
                lead_id, modified = opportunities[str(opp["Id"])]
                value = "won" if opp.get("IsWon") else "lost"
                closed = _when(opp.get("CloseDate"))
                out.append(Pulled(lead_id, "Opportunity", value, modified, closed))
        return out, len(leads)

    def pull(self, engine: Engine) -> PullResult:
        """Read Leads modified since the last pull; their statuses into dispositions."""
        statuses, records = self.read_statuses(pull_cursor(engine, SYSTEM))
        return record_pulled(
            engine, SYSTEM, statuses, lambda s: disposition(s, self.statuses), records
        )


def _detail(errors: Any) -> str:
    """Salesforce's error list (``[{"errorCode"|"statusCode", "message"}]``) in words."""
    if isinstance(errors, list):
        parts = []
        for e in errors:
            if isinstance(e, dict):
                code = e.get("errorCode") or e.get("statusCode") or ""
                parts.append(f"{code}: {e.get('message', '')}".strip(": "))
            else:
                parts.append(str(e))
        return "; ".join(parts)
    return str(errors or "")


def sync(
    engine: Engine,
    org: Salesforce | None,
    do_push: bool = True,
    do_pull: bool = True,
    dry_run: bool = False,
    batch_size: int = BATCH,
) -> SyncResult:
    """Pull statuses, then push changed values; a dry run talks to nobody, writes nothing."""
    result = SyncResult()
    pending = changes(engine, SYSTEM, spell)
    if dry_run:
        result.push = PushResult(system=SYSTEM, changed=len(pending), dry_run=True)
        result.dry_lines = print_changes(pending)
        return result
    if org is None:
        raise CrmError(
            "salesforce: no session: set LEADSCORE_SALESFORCE_INSTANCE_URL and "
            "LEADSCORE_SALESFORCE_SESSION_ID (or give --instance-url and --session-id)"
        )
    if do_pull:
        result.pull = org.pull(engine)
    if do_push:
        result.created = org.ensure_fields()
        result.push = push(engine, SYSTEM, pending, org.update, batch_size)
    return result
