"""``POST /score`` and ``/score_batch`` answered in the service's ASGI stack, without
BentoML's per-call IO.

BentoML spends about 0.4 ms of every call on its IO machinery (request object, input
model, serde, thread hop, response model) before and after the API method runs; for a
single lead that is more than computing and explaining the score. The service therefore
registers its ``/score`` and ``/score_batch`` handlers here and ``HotRoute``, an ASGI
middleware added to the BentoML service, answers those ``POST`` calls itself (a batch
in a worker thread, so a large one does not hold up single leads):

* the body is parsed and validated as the same ``ScoreRequest`` that BentoML
  documents in ``/docs.json`` (a validation error is the same HTTP 400, with the same
  ``{"error", "detail"}`` shape, naming each field, and never echoes input values);
* the cards are produced by the very routine behind the BentoML API methods, and
  serialised by ``ScoreResponse`` as BentoML would;
* everything outside it still applies: BentoML's metrics, access log, tracing, timeout
  and concurrency limit, and ``serving.auth.ApiGuard`` (token, body size, JSON only),
  which is added before this middleware and so runs first.

Until the service instance has registered its handler (while the worker starts), calls
pass through to BentoML, which answers as it does for any API that is not ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from serving.auth import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("bentoml.leadscore")

Handler = Callable[[bytes], bytes]
"""Request body → response body; raises ``ValidationError`` for a bad request (HTTP 400)."""

_HANDLERS: dict[str, Handler] = {}
_THREADED: set[str] = set()
_JSON_HEADERS = [(b"content-type", b"application/json")]


def register(path: str, handler: Handler, threaded: bool = False) -> None:
    """Serve ``POST path`` with ``handler`` from now on (called by the service instance).

    Args:
        path: The route.
        handler: Request body → response body.
        threaded: Run it in a worker thread: for calls that may take long enough (a batch
            of a thousand leads) to hold up every other request on the event loop. A
            single lead takes less than the hop to a thread costs, so it runs in line.
    """
    _HANDLERS[path] = handler
    if threaded:
        _THREADED.add(path)
    else:
        _THREADED.discard(path)


def validation_body(exc: ValidationError) -> bytes:
    """BentoML's 400 body for a validation error: field locations and messages, no input."""
    return json.dumps(
        {
            "error": f"{exc.error_count()} validation error for {exc.title}",
            "detail": exc.errors(include_context=False, include_input=False, include_url=False),
        }
    ).encode()


def answer(handler: Handler, body: bytes) -> tuple[int, bytes]:
    """Status and body for one call; errors are answered, never raised."""
    try:
        return 200, handler(body)
    except ValidationError as exc:
        return 400, validation_body(exc)
    except Exception:
        logger.exception("a hot-route call failed")
        return 500, b'{"error":"An unexpected error has occurred, please check the server log."}'


class HotRoute:
    """ASGI middleware answering registered ``POST`` routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, **_: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            _HANDLERS.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if scope["path"] in _THREADED:
            status, out = await asyncio.get_running_loop().run_in_executor(
                None, answer, handler, body
            )
        else:
            status, out = answer(handler, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})
