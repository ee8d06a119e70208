"""The HTTP guard in front of the service: optional bearer token and a request-size limit.

One pure ASGI middleware (no Starlette request objects, so it adds microseconds):

* **Bearer token** (``LEADSCORE_API_TOKEN``): when set, every scoring route
  (``PROTECTED_PATHS``) answers 401 unless the request carries
  ``Authorization: Bearer <token>``. The comparison is ``hmac.compare_digest`` on bytes
  (constant time in the token's content), and the token is never logged: neither the
  expected nor the presented value appears in a log line, an error or a response. Health,
  metrics, the OpenAPI document, the page and ``/model`` stay open, so probes and
  monitoring keep working; unset or blank, every route is open (the default, for local use).
* **JSON only** on the scoring routes: a form or multipart body is answered 415 (BentoML
  would otherwise try to parse it as a form, and a multipart body without a boundary made
  it answer 500 — found by the schemathesis fuzz in ``tests/reliability``).
* **Body size** (``serving.schemas.MAX_BODY_BYTES``): a larger ``Content-Length`` is
  answered 413 before a byte is read; a chunked body is counted while it streams and
  refused as soon as it passes the limit, so no request can make a worker buffer more.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from leadscore.errors import LeadscoreError
from serving.schemas import MAX_BODY_BYTES

TOKEN_ENV = "LEADSCORE_API_TOKEN"
MIN_TOKEN_LENGTH = 16
"""Shorter tokens are refused at start-up: they could be guessed."""
PROTECTED_PATHS = frozenset(
    {
        "/score",
        "/score_batch",
        "/feedback",
        "/report",
        "/worklist",
        "/worklist/facets",
        "/accounts",
        "/accounts/facets",
    }
)
"""Routes that need the token when one is configured: everything that scores, records or
reads the lead store."""
PROTECTED_PREFIXES = ("/leads/", "/accounts/")
"""Path prefixes that need it too (``/leads/{lead_id}``, ``/accounts/{account_id}``: one
lead's or account's stored history)."""


def is_protected(path: str) -> bool:
    """Whether ``path`` needs the token when one is configured."""
    path = path.rstrip("/")
    return path in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TokenError(LeadscoreError, ValueError):
    """``LEADSCORE_API_TOKEN`` is set but unusable (the message never contains it)."""


def token_from_env(env: MutableMapping[str, str] | None = None) -> bytes | None:
    """The configured token as bytes, or None when authentication is off.

    Raises:
        TokenError: when the token is too short or holds whitespace or non-ASCII
            characters (an HTTP header could not carry it unchanged).
    """
    env = os.environ if env is None else env
    raw = env.get(TOKEN_ENV, "")
    if not raw.strip():
        return None
    if len(raw) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_LENGTH} "
            "characters (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`)"
        )
    if not raw.isascii() or any(c.isspace() for c in raw):
        raise TokenError(f"{TOKEN_ENV} must be printable ASCII without spaces")
    return raw.encode("ascii")


def token_matches(header: bytes | None, expected: bytes) -> bool:
    """Whether an ``Authorization`` header value carries ``expected`` as a bearer token.

    The scheme is case-insensitive (RFC 7235); the token is compared with
    ``hmac.compare_digest``, whose time does not depend on where the values differ.
    """
    if not header:
        return False
    scheme, _, presented = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(presented.strip(), expected)


async def _reply(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


UNAUTHORIZED = (
    "missing or invalid bearer token: send the header "
    f"'Authorization: Bearer <token>' with the service's {TOKEN_ENV}"
)
NOT_JSON = (
    "the scoring routes read a JSON body: send it with "
    "'Content-Type: application/json', not as a form"
)
TOO_LARGE = f"request body is larger than the limit of {MAX_BODY_BYTES:,} bytes: split it"


def _form_body(headers: dict[bytes, bytes]) -> bool:
    """Whether the body is declared as a form (BentoML would try to parse it as one)."""
    media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return media.startswith(b"multipart/") or media == b"application/x-www-form-urlencoded"


class ApiGuard:
    """ASGI middleware: bearer-token check on scoring routes and a body-size limit.

    Args:
        app: The wrapped ASGI application.
        token: The expected token; default: read from ``LEADSCORE_API_TOKEN`` once, here.
        max_body: Largest request body accepted, in bytes.
    """

    def __init__(
        self, app: ASGIApp, token: bytes | str | None = "env", max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.token = token_from_env() if token == "env" else token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and is_protected(scope.get("path", "")):
            header = dict(scope.get("headers") or ()).get(b"authorization")
            if not token_matches(header, self.token):  # type: ignore[arg-type]
                await _reply(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
        headers = dict(scope.get("headers") or ())
        if scope.get("path", "").rstrip("/") in PROTECTED_PATHS and _form_body(headers):
            await _reply(send, 415, NOT_JSON)
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body
            except ValueError:
                await _reply(send, 400, "content-length header is not a number")
                return
            if too_large:
                await _reply(send, 413, TOO_LARGE)
                return
            await self.app(scope, receive, send)
            return
        # No length declared (chunked upload): read it here, counting, then replay it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await _reply(send, 413, TOO_LARGE)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), None, receive), send)


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    """``receive`` that hands the buffered body over once, then defers to the server."""
    pending: list[Message] = (
        [first]
        if first is not None
        else [{"type": "http.request", "body": body, "more_body": False}]
    )

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
