"""Keep request values out of the server log.

When a request body fails validation, BentoML answers 400 and logs the exception with
its traceback (``bentoml._internal.server.http_app.log_exception``). A pydantic
``ValidationError`` prints the offending *input value* (``input_value='jane@acme.com'``),
so e-mail addresses, names or whatever a client sent would end up in the log. The filter
installed here rewrites such records before any handler sees them: the log line keeps the
route, the number of errors, each field (``lead.created_at``), the message and the error
type, but no value, and no BentoML-internal traceback for what is a client error (the
line is logged as a warning). An exception that merely *contains* a validation error in
its chain keeps its traceback, with each validation error's text redacted the same way.

The 400 answer itself is not affected: it never carried the values
(``include_input=False``) and still names every field.
"""

from __future__ import annotations

import logging
import traceback

BENTOML_ERROR_LOGGERS = ("bentoml._internal.server.http_app", "bentoml.serve", "bentoml.leadscore")
"""Loggers that log request exceptions: BentoML's ``log_exception``, its task endpoints,
and the service's own (``serving.hot_route``)."""


def _validation_errors(exc: BaseException | None) -> list[BaseException]:
    """The pydantic validation errors in ``exc``'s chain (cause and context)."""
    from pydantic import ValidationError
    from pydantic_core import ValidationError as CoreValidationError

    found, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ValidationError | CoreValidationError):
            found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def describe(exc: BaseException) -> str:
    """A validation error without the values: ``N validation errors for T: field: msg
    [type=…]; …``."""
    errors = exc.errors(include_input=False, include_context=False, include_url=False)
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(body)"
        parts.append(f"{where}: {error.get('msg', '')} [type={error.get('type', '')}]")
    title = getattr(exc, "title", "the request")
    return (
        f"{len(errors)} validation error{'s' if len(errors) != 1 else ''} for {title}: "
        + "; ".join(parts)
    )


class RedactRequestValues(logging.Filter):
    """Rewrites records whose exception holds a pydantic validation error (see module)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        found = _validation_errors(exc)
        if not found:
            return True
        message = record.getMessage()
        if exc is found[0]:  # the request body was invalid: one line, no traceback
            record.msg = f"{message}: {describe(exc)}"
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        else:  # a failure that wraps one: keep the traceback, minus the values
            text = "".join(traceback.format_exception(*record.exc_info))
            for error in found:
                text = text.replace(str(error), describe(error))
            record.msg = f"{message}\n{text.rstrip()}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


_FILTER = RedactRequestValues()


def redact_request_values() -> None:
    """Install the filter on BentoML's request-error loggers (idempotent)."""
    for name in BENTOML_ERROR_LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
