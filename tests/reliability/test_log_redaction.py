"""Request values never reach the server log, while the 400 answer still names the field.

BentoML logs every invalid request body with the pydantic error, which prints the
offending value (``input_value='jane@acme.com'``); ``serving.log_redaction`` rewrites
those records. Checked against the live guarded server's log (whichever path answers the
route: BentoML's API or ``serving.hot_route``), and on the filter itself, on the records
BentoML writes.
"""

from __future__ import annotations

import io
import logging
import re
import time

import pytest
from pydantic import ValidationError

from serving.log_redaction import RedactRequestValues, describe
from serving.schemas import parse_request

SECRET = "jane.secret-lead@example.com"
BAD_BODIES = {  # route → a body whose invalid value is SECRET, and the field it names
    "/score": ({"lead": {"lead_id": "x", "created_at": SECRET}}, "created_at"),
    "/score_batch": (
        {
            "leads": [
                {
                    "lead": {"lead_id": "x", "created_at": "2024-01-01"},
                    "account": {"employee_count": SECRET},
                }
            ]
        },
        "employee_count",
    ),
}


@pytest.mark.slow
def test_invalid_values_are_not_logged_but_the_answer_names_the_field(guarded, authed):
    for path, (body, field) in BAD_BODIES.items():
        r = authed.post(path, json=body)
        assert r.status_code == 400, (path, r.text[:300])
        assert field in r.text and SECRET not in r.text, (path, r.text[:300])
    deadline = time.monotonic() + 10
    while not all(
        re.search(rf"path={path},[^)]*\) \(status=400", guarded.log_tail(10_000_000))
        for path in BAD_BODIES
    ):  # the access log has both answers: all is written
        assert time.monotonic() < deadline, guarded.log_tail()
        time.sleep(0.2)
    log = guarded.log_tail(10_000_000)
    assert SECRET not in log and "input_value" not in log
    for line in log.splitlines():  # where a 400 is logged (BentoML's path), it names the field
        if "validation error" in line and "/score_batch [POST]" in line:
            assert "leads.0.account.employee_count: Input should be a valid number" in line


def _validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_request({"lead": {"lead_id": "x", "created_at": SECRET}})
    return caught.value


def _formatted(exc: BaseException, logger: str = "bentoml._internal.server.http_app") -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    record = logging.getLogger(logger).makeRecord(
        logger,
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/score", "POST"),
        (type(exc), exc, exc.__traceback__),
    )
    assert RedactRequestValues().filter(record)
    handler.emit(record)
    return stream.getvalue()


def test_the_filter_drops_values_and_keeps_fields():
    exc = _validation_error()
    assert SECRET in str(exc)  # what pydantic would print
    text = _formatted(exc)
    assert SECRET not in text and "Traceback" not in text
    assert text.startswith("WARNING Exception on /score [POST]: 1 validation error for")
    assert "lead.created_at: Input should be a valid datetime" in text
    assert describe(exc) in text


def test_a_wrapped_validation_error_keeps_its_traceback_without_values():
    try:
        try:
            raise _validation_error()
        except ValidationError as inner:
            raise RuntimeError("scoring failed") from inner
    except RuntimeError as exc:
        text = _formatted(exc)
    assert SECRET not in text
    assert "Traceback" in text and "RuntimeError: scoring failed" in text
    assert text.startswith("ERROR ")  # a server error stays an error


def test_other_records_pass_unchanged():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert RedactRequestValues().filter(record) and record.getMessage() == "hello world"
