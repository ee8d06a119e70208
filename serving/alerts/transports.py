"""The receivers: Slack's incoming webhook and ``chat.postMessage`` (``slack_sdk``) and a
generic webhook signed with a shared secret (httpx).

Every transport sends one message and either returns or raises ``DeliveryError`` with a
message that says what the receiver did (answered 500, took too long, closed the
connection, refused it) and whether trying again can help: ``transient`` failures (the
receiver is down, overloaded or rate-limiting, with its Retry-After) are retried later;
permanent ones (a channel that does not exist, a payload refused) are not. The clients'
own retries are off: the outbox schedules retries, so a run never sleeps on a receiver.

The generic webhook signs ``timestamp + "." + body`` with HMAC-SHA256 and sends it as
``X-Leadscore-Signature: sha256=<hex>`` with ``X-Leadscore-Timestamp``; ``verify`` is
what a receiver runs (and the tests do).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.error
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

import leadscore
from leadscore.errors import LeadscoreError

SIGNATURE_HEADER = "X-Leadscore-Signature"
TIMESTAMP_HEADER = "X-Leadscore-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_TOLERANCE = 300
"""Seconds a receiver should accept a signed timestamp for (replays older are refused)."""
_SLACK_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
"""``chat.postMessage`` errors that a later attempt can get past."""


class DeliveryError(LeadscoreError, RuntimeError):
    """A receiver did not take an alert; the message says what it did instead.

    Attributes:
        transient: Whether trying again later can help (receiver down, 5xx, 429).
        retry_after: Seconds the receiver asked to wait (Retry-After), if it said.
    """

    def __init__(self, message: str, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Transport(Protocol):
    """Something that delivers one message to one destination."""

    name: str

    def send(self, message: dict[str, Any], key: str) -> None:
        """Deliver ``message`` (idempotency ``key``), or raise ``DeliveryError``."""


def shown(url: str) -> str:
    """A URL fit for messages: scheme and host only (a Slack webhook's path is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else url


def _retry_after(headers: Any) -> float | None:
    value = None if headers is None else headers.get("Retry-After") or headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _network(where: str, exc: BaseException, timeout: float) -> DeliveryError:
    """A network failure (no answer, a closed or refused connection) as a clear message."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError | socket.timeout | httpx.TimeoutException):
        what = f"no answer within {timeout:g}s (timed out)"
    elif isinstance(
        reason, http.client.RemoteDisconnected | httpx.RemoteProtocolError | ConnectionResetError
    ):
        what = "the receiver closed the connection without answering"
    elif isinstance(reason, ConnectionRefusedError | httpx.ConnectError):
        what = "cannot connect: the receiver is down or refuses connections"
    else:
        what = f"{type(reason).__name__}: {reason}"
    return DeliveryError(f"{where}: {what}", transient=True)


def _by_status(where: str, status: int, body: str, headers: Any) -> DeliveryError:
    detail = " ".join(body.split())[:200] or "no body"
    if status == 429:
        wait = _retry_after(headers)
        after = f", retry after {wait:g}s" if wait is not None else ""
        return DeliveryError(f"{where}: rate limited (429{after})", True, wait)
    transient = status >= 500 or status == 408
    return DeliveryError(f"{where}: the receiver answered {status} ({detail})", transient)


class SlackWebhook:
    """A Slack incoming webhook (one channel, fixed by the webhook)."""

    def __init__(self, name: str, url: str, timeout: float) -> None:
        from slack_sdk.webhook import WebhookClient

        self.name = name
        self.url = url
        self.timeout = timeout
        self._client = WebhookClient(url=url, timeout=timeout, retry_handlers=[])

    def send(self, message: dict[str, Any], key: str) -> None:
        """POST the message; Slack answers ``ok`` (200) or an error word with a 4xx."""
        where = f"Slack webhook {self.name} ({shown(self.url)})"
        try:
            response = self._client.send(text=message["text"], blocks=message.get("blocks"))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _network(where, exc, self.timeout) from None
        if response.status_code != 200:
            raise _by_status(where, response.status_code, response.body or "", response.headers)


class SlackChat:
    """``chat.postMessage`` to a channel with a bot token."""

    def __init__(
        self, name: str, token: str, channel: str, timeout: float, base_url: str | None = None
    ) -> None:
        from slack_sdk import WebClient

        self.name = name
        self.channel = channel
        self.timeout = timeout
        options: dict[str, Any] = {"base_url": base_url.rstrip("/") + "/"} if base_url else {}
        self._client = WebClient(
            token=token, timeout=int(max(1, timeout)), retry_handlers=[], **options
        )
        self._client.timeout = timeout  # type: ignore[assignment]  # urllib takes a float too

    def send(self, message: dict[str, Any], key: str) -> None:
        """Post the message; an ``ok: false`` answer names Slack's error code."""
        from slack_sdk.errors import SlackApiError

        where = f"Slack chat.postMessage to {self.channel}"
        try:
            self._client.chat_postMessage(
                channel=self.channel, text=message["text"], blocks=message.get("blocks")
            )
        except SlackApiError as exc:
            response = exc.response
            status = int(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", None)
            error = str(response.get("error", "") if hasattr(response, "get") else "")
            error = " ".join(error.split()).rstrip(": ")[:200] or "no error code"
            if status == 429 or error == "ratelimited":
                wait = _retry_after(headers)
                after = f", retry after {wait:g}s" if wait is not None else ""
                raise DeliveryError(f"{where}: rate limited (429{after})", True, wait) from None
            transient = status >= 500 or error in _SLACK_TRANSIENT
            what = f"HTTP {status}: {error}" if status and status != 200 else error
            raise DeliveryError(f"{where}: Slack answered {what}", transient) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _network(where, exc, self.timeout) from None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Leadscore-Signature`` of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """Whether ``signature`` is ours over ``body`` and ``timestamp`` is recent (a receiver's
    check: compare in constant time, refuse replays older than ``tolerance`` seconds)."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class GenericWebhook:
    """A JSON POST to any URL, signed, with the alert's idempotency key."""

    def __init__(self, name: str, url: str, secret: str, timeout: float) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout)

    def send(self, message: dict[str, Any], key: str) -> None:
        """POST the JSON body; any 2xx is delivered, 429 / 5xx / 408 are retried later."""
        body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"leadscore/{leadscore.__version__}",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.secret, stamp, body),
            IDEMPOTENCY_HEADER: key,
        }
        where = f"webhook {shown(self.url)}"
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise _network(where, exc, self.timeout) from None
        if not 200 <= response.status_code < 300:
            raise _by_status(where, response.status_code, response.text, response.headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
