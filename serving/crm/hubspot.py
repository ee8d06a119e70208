"""HubSpot: leadscore's values on contacts, lifecycle stage and lead status back.

Through the official ``hubspot-api-client``: the contact properties ``leadscore_*`` (in
the property group ``leadscore``, both created when missing) are written with
``crm.contacts.batch_api.update``, 100 contacts a request (HubSpot's batch limit); the
statuses come back with ``crm.contacts.search_api`` (contacts modified since the last
pull, oldest first). The store's lead id is the HubSpot contact id.

Every call goes through ``_call``: a 429 is retried after its ``Retry-After``, a 401 or
403 is a ``CrmAuthError`` that says which token and scopes are needed.
"""

from __future__ import annotations

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
    pull_cursor,
    push,
    record_pulled,
    retry_after_seconds,
    with_retries,
)

SYSTEM = "hubspot"
OBJECT = "contacts"
GROUP = "leadscore"
BATCH = 100
"""Contacts per batch update (HubSpot's limit)."""
SEARCH_PAGE = 100
SEARCH_WINDOW = 10_000
"""HubSpot's search returns at most this many results per query: past it, the pull
starts a new query from the newest modification time read."""
TIMEOUT = 30.0
"""Seconds a request may take before it counts as failed (a hung connection)."""
BUSY = (429, 502, 503, 504)
"""Answers retried after ``Retry-After`` (or a backoff): rate limits and a busy HubSpot."""
SCOPES = (
    "crm.objects.contacts.read, crm.objects.contacts.write, crm.schemas.contacts.read, "
    "crm.schemas.contacts.write"
)


class RecordsRefused(CrmError):
    """HubSpot refused a request for what is in it (400, 404, 409), not for who asks."""


@dataclass(frozen=True)
class PropertySpec:
    """One ``leadscore_*`` contact property: its name, HubSpot type and field type."""

    name: str
    label: str
    type: str
    field_type: str
    description: str

    def create_body(self) -> dict[str, Any]:
        """The body of ``POST /crm/v3/properties/contacts`` for it."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP,
            "description": self.description,
        }
        if self.type == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        return body


PROPERTIES = {
    "probability": PropertySpec(
        "leadscore_probability",
        "Leadscore probability",
        "number",
        "number",
        "Calibrated probability that the lead converts within the horizon (0-1).",
    ),
    "score": PropertySpec(
        "leadscore_score", "Leadscore score", "number", "number", "Lead score, 0-100."
    ),
    "grade": PropertySpec(
        "leadscore_grade", "Leadscore grade", "string", "text", "Grade A1-D4 (fit and intent)."
    ),
    "mql": PropertySpec(
        "leadscore_mql",
        "Leadscore MQL",
        "bool",
        "booleancheckbox",
        "Whether the lead is a marketing-qualified lead at the current threshold.",
    ),
    "reasons": PropertySpec(
        "leadscore_reasons",
        "Leadscore reasons",
        "string",
        "textarea",
        "The strongest reasons for the score.",
    ),
    "next_action": PropertySpec(
        "leadscore_next_action",
        "Leadscore next best action",
        "string",
        "textarea",
        "The action most likely to raise the lead's chance of converting.",
    ),
}
"""leadscore's fields as HubSpot contact properties."""

LIFECYCLE = {
    "salesqualifiedlead": Disposition("sql"),
    "opportunity": Disposition("opportunity"),
    "customer": Disposition("won"),
    "evangelist": Disposition("won"),
}
"""``lifecyclestage`` values that are a sales disposition (the others are not one)."""
LEAD_STATUS = {
    "ATTEMPTED_TO_CONTACT": Disposition("accepted"),
    "CONNECTED": Disposition("accepted"),
    "IN_PROGRESS": Disposition("accepted"),
    "OPEN_DEAL": Disposition("opportunity"),
    "UNQUALIFIED": Disposition("rejected", "bad_fit"),
    "BAD_TIMING": Disposition("rejected", "bad_timing"),
}
"""``hs_lead_status`` values (HubSpot's defaults) that are a disposition; ``NEW`` and
``OPEN`` are not (nobody worked the lead yet)."""
STATUS_FIELDS = ("lifecyclestage", "hs_lead_status")
OWNER_PROPERTY = "hubspot_owner_id"
"""The contact's owner (a HubSpot owner id), pulled into the lead's owner."""


def spell(values: dict[str, Any]) -> dict[str, str]:
    """leadscore's values as HubSpot takes them: property names, every value a string
    (numbers in plain notation, booleans ``true`` / ``false``, a missing value ``""``)."""
    out = {}
    for key, value in values.items():
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        out[PROPERTIES[key].name] = text
    return out


STATUSES: StatusMap = {"lifecyclestage": dict(LIFECYCLE), "hs_lead_status": dict(LEAD_STATUS)}
"""The default status mapping (``--statuses`` adds to it)."""


def disposition(status: Pulled, statuses: StatusMap | None = None) -> Disposition | None:
    """The disposition a pulled status means (None: not one)."""
    return (statuses or STATUSES).get(status.field, {}).get(status.value)


def _api_exceptions() -> tuple[type[Exception], ...]:
    from hubspot.crm.contacts import ApiException as ContactsError
    from hubspot.crm.properties import ApiException as PropertiesError

    return (ContactsError, PropertiesError)


def _body_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message") or "").strip()
    except (TypeError, ValueError, AttributeError):
        return ""


@dataclass
class HubSpot:
    """A HubSpot account reached with a private app's access token.

    Attributes:
        token: The private app's access token (``LEADSCORE_HUBSPOT_TOKEN``).
        host: The API's base URL (a local server in tests).
        sleep: How to wait out a 429 (tests pass a recorder).
        timeout: Seconds a request may take.
        statuses: Which status values are which disposition (``read_status_map``).
    """

    token: str
    host: str = "https://api.hubapi.com"
    sleep: Callable[[float], None] = time.sleep
    timeout: float = TIMEOUT
    statuses: StatusMap = field(default_factory=lambda: dict(STATUSES))
    _client: Any = field(default=None, init=False, repr=False)

    @property
    def client(self) -> Any:
        """The ``hubspot.HubSpot`` client, made on first use."""
        if self._client is None:
            import hubspot
            from urllib3.util.retry import Retry

            # connection errors only: 429s are ours to retry, after Retry-After
            retry = Retry(
                total=2,
                connect=2,
                read=0,
                status=0,
                backoff_factor=0.5,
                respect_retry_after_header=False,
                raise_on_status=False,
            )
            self._client = hubspot.HubSpot(
                access_token=self.token, host=self.host.rstrip("/"), retry=retry
            )
        return self._client

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call`` with 429s retried and HubSpot's refusals made clear errors."""
        import urllib3

        errors = _api_exceptions()

        def once() -> Any:
            try:
                return call()
            except errors as exc:
                status = getattr(exc, "status", None)
                headers = getattr(exc, "headers", None) or {}
                if status in BUSY:
                    wait = retry_after_seconds(headers.get("Retry-After"))
                    raise RateLimited(wait, status) from None
                detail = _body_message(exc) or getattr(exc, "reason", "") or ""
                if status in (401, 403):
                    raise CrmAuthError(
                        f"hubspot: {what}: the access token was refused ({status}"
                        f"{': ' + detail if detail else ''}); it may be revoked, expired or "
                        f"missing a scope ({SCOPES}): set LEADSCORE_HUBSPOT_TOKEN to a valid "
                        "private app token and run again"
                    ) from None
                error = RecordsRefused if status in (400, 404, 409) else CrmError
                raise error(
                    f"hubspot: {what} failed ({status}{': ' + detail if detail else ''})"
                ) from None
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                raise CrmError(f"hubspot: {what}: cannot reach {self.host}: {exc}") from None

        return with_retries(SYSTEM, once, self.sleep)

    def ensure_properties(self) -> list[str]:
        """Create the ``leadscore`` group and the ``leadscore_*`` properties that are
        missing; returns what was created.

        Raises:
            CrmSchemaError: when a property exists with another type.
        """
        properties = self.client.crm.properties
        created = []
        groups = self._call(
            "reading the contact property groups",
            lambda: properties.groups_api.get_all(OBJECT, _request_timeout=self.timeout),
        )
        if GROUP not in {g.name for g in groups.results}:
            body = {"name": GROUP, "label": "Leadscore", "displayOrder": -1}
            self._call(
                "creating the property group 'leadscore'",
                lambda: properties.groups_api.create(OBJECT, body, _request_timeout=self.timeout),
            )
            created.append(f"group {GROUP}")
        existing = self._call(
            "reading the contact properties",
            lambda: properties.core_api.get_all(OBJECT, _request_timeout=self.timeout),
        )
        by_name = {p.name: p for p in existing.results}
        for spec in PROPERTIES.values():
            have = by_name.get(spec.name)
            if have is not None:
                if have.type != spec.type:
                    raise CrmSchemaError(
                        f"hubspot: the contact property {spec.name!r} exists with type "
                        f"{have.type!r} ({have.field_type}); leadscore writes {spec.type!r} "
                        f"({spec.field_type}). Delete or rename that property in HubSpot "
                        "(Settings > Properties) and run again; leadscore then creates it"
                    )
                continue
            body = spec.create_body()
            self._call(
                f"creating the contact property {spec.name!r}",
                lambda body=body: properties.core_api.create(
                    OBJECT, body, _request_timeout=self.timeout
                ),  # type: ignore[misc]
            )
            created.append(spec.name)
        return created

    def update(self, batch: Sequence[Change]) -> BatchOutcome:
        """One batch update; the ids HubSpot updated, and why it refused the others.

        When HubSpot refuses the whole batch for what is in it (400, 404, 409: a contact
        that is gone, a value it will not take), the batch is split in halves until the
        refused contacts are alone, so one bad record never holds the others back.
        """
        try:
            return self._update(batch)
        except RecordsRefused as exc:
            if len(batch) == 1:
                return BatchOutcome(accepted=[], refused={batch[0].lead_id: str(exc)})
            half = len(batch) // 2
            first, second = self.update(batch[:half]), self.update(batch[half:])
            return BatchOutcome(
                accepted=first.accepted + second.accepted,
                refused={**first.refused, **second.refused},
            )

    def _update(self, batch: Sequence[Change]) -> BatchOutcome:
        inputs = [{"id": c.lead_id, "properties": c.changed} for c in batch]
        response = self._call(
            f"updating {len(inputs)} contacts",
            lambda: self.client.crm.contacts.batch_api.update(
                {"inputs": inputs}, _request_timeout=self.timeout
            ),
        )
        accepted = [str(r.id) for r in response.results or []]
        refused: dict[str, str] = {}
        for error in getattr(response, "errors", None) or []:
            ids = (getattr(error, "context", None) or {}).get("ids") or []
            for lead in ids:
                refused[str(lead)] = str(getattr(error, "message", "") or error.category)
        done = set(accepted)
        for change in batch:  # neither updated nor explained: not updated all the same
            if change.lead_id not in done and change.lead_id not in refused:
                refused[change.lead_id] = "not in HubSpot's answer"
        return BatchOutcome(accepted=accepted, refused=refused)

    def search_modified(self, since: datetime | None) -> tuple[list[Pulled], int]:
        """Contacts modified at or after ``since`` (all, when None), oldest first, as
        their status fields; and how many records were read."""
        out: list[Pulled] = []
        records = 0
        low = since
        while True:
            after: str | None = None
            newest = low
            while True:
                body: dict[str, Any] = {
                    "properties": [*STATUS_FIELDS, OWNER_PROPERTY, "lastmodifieddate"],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "limit": SEARCH_PAGE,
                }
                if low is not None:
                    millis = int(low.replace(tzinfo=UTC).timestamp() * 1000)
                    body["filterGroups"] = [
                        {
                            "filters": [
                                {
                                    "propertyName": "lastmodifieddate",
                                    "operator": "GTE",
                                    "value": str(millis),
                                }
                            ]
                        }
                    ]
                if after is not None:
                    body["after"] = after
                page = self._call(
                    "searching modified contacts",
                    lambda body=body: self.client.crm.contacts.search_api.do_search(
                        body, _request_timeout=self.timeout
                    ),  # type: ignore[misc]
                )
                for record in page.results or []:
                    records += 1
                    props = record.properties or {}
                    modified = _when(props.get("lastmodifieddate")) or _naive(record.updated_at)
                    newest = modified if newest is None or modified > newest else newest
                    for name in STATUS_FIELDS:
                        if props.get(name):
                            out.append(Pulled(str(record.id), name, str(props[name]), modified))
                    if props.get(OWNER_PROPERTY):
                        owner = str(props[OWNER_PROPERTY])
                        out.append(Pulled(str(record.id), OWNER, owner, modified))
                paging = getattr(page, "paging", None)
                nxt = getattr(paging, "next", None) if paging else None
                after = getattr(nxt, "after", None) if nxt else None
                if after is None or int(after) >= SEARCH_WINDOW:
                    break
            if after is None or newest == low:
                return out, records
            low = newest  # the search window is full: go on from the newest read

    def pull(self, engine: Engine) -> PullResult:
        """Read contacts modified since the last pull; their statuses into dispositions."""
        statuses, records = self.search_modified(pull_cursor(engine, SYSTEM))
        return record_pulled(
            engine, SYSTEM, statuses, lambda s: disposition(s, self.statuses), records
        )


def _naive(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime.now(UTC).replace(tzinfo=None)


def _when(text: Any) -> datetime | None:
    """HubSpot's ISO time (``2025-01-02T03:04:05.678Z``) as tz-naive UTC."""
    if not text:
        return None
    try:
        return _naive(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


def sync(
    engine: Engine,
    hub: HubSpot | None,
    do_push: bool = True,
    do_pull: bool = True,
    dry_run: bool = False,
    batch_size: int = BATCH,
) -> SyncResult:
    """Pull statuses, then push changed values (pull first: a push modifies contacts).

    A dry run talks to nobody and writes nothing: it lists what a push would send.
    """
    from serving.crm.sync import print_changes

    result = SyncResult()
    pending = changes(engine, SYSTEM, spell)
    if dry_run:
        result.push = PushResult(system=SYSTEM, changed=len(pending), dry_run=True)
        result.dry_lines = print_changes(pending)
        return result
    if hub is None:
        raise CrmError("hubspot: no access token: set LEADSCORE_HUBSPOT_TOKEN or give --token")
    if do_pull:
        result.pull = hub.pull(engine)
    if do_push:
        result.created = hub.ensure_properties()
        result.push = push(engine, SYSTEM, pending, hub.update, batch_size)
    return result
