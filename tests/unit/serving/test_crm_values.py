"""CRM sync's pure parts: the values a card sends, their spelling per CRM, fingerprints,
``Retry-After``, retries, and the status mapping file."""

from __future__ import annotations

import pytest

from serving.crm import hubspot, salesforce
from serving.crm.sync import (
    CrmError,
    Disposition,
    Pulled,
    RateLimited,
    card_values,
    fingerprint,
    parse_target,
    read_status_map,
    retry_after_seconds,
    with_retries,
)

ROW = {
    "probability": 0.71234,
    "score": 71,
    "grade": "A2",
    "mql": True,
    "reasons": '{"positive": [{"sentence": "a"}, {"sentence": "b"}, {"sentence": "c"}, '
    '{"sentence": "d"}], "negative": []}',
    "next_best_actions": [{"action": "call", "sentence": "Call"}],
}


def test_card_values_and_their_spelling_per_crm() -> None:
    values = card_values(ROW)
    assert values == {"probability": 0.7123, "score": 71, "grade": "A2", "mql": True,
                      "reasons": "a; b; c", "next_action": "Call"}  # fmt: skip
    assert hubspot.spell(values)["leadscore_mql"] == "true"
    assert hubspot.spell({**values, "grade": None})["leadscore_grade"] == ""
    assert salesforce.spell(values)["Leadscore_Score__c"] == 71
    empty = card_values({"probability": None, "score": None, "mql": False})
    assert empty["reasons"] is None and empty["next_action"] is None
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None


def test_with_retries_waits_then_gives_up_clearly() -> None:
    waits: list[float] = []
    calls = iter([RateLimited(2.0), RateLimited(None), "ok"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert with_retries("x", call, waits.append) == "ok"
    assert waits == [2.0, 2.0]  # Retry-After, then the backoff of the second attempt

    def always() -> None:
        raise RateLimited(1.0, 503)

    with pytest.raises(CrmError, match="still answering 503"):
        with_retries("x", always, lambda s: None, attempts=3)


def test_parse_target() -> None:
    assert parse_target("SQL") == Disposition("sql")
    assert parse_target("rejected:no_budget") == Disposition("rejected", "no_budget")
    assert parse_target("none") is None and parse_target(None) is None
    for bad, words in [("rejected", "needs a reason"), ("won:bad_fit", "only rejected"),
                       ("closed", "stage must be"), ("rejected:meh", "reason code")]:  # fmt: skip
        with pytest.raises(ValueError, match=words):
            parse_target(bad)


def test_status_map_file_overrides_defaults_and_names_bad_entries(tmp_path) -> None:
    good = tmp_path / "map.yaml"
    good.write_text("hs_lead_status:\n  NO_MONEY: rejected:no_budget\n  CONNECTED: none\n")
    merged = read_status_map(good, hubspot.STATUSES)
    pulled = Pulled("1", "hs_lead_status", "NO_MONEY", None)  # type: ignore[arg-type]
    assert hubspot.disposition(pulled, merged) == Disposition("rejected", "no_budget")
    connected = Pulled("1", "hs_lead_status", "CONNECTED", None)  # type: ignore[arg-type]
    assert hubspot.disposition(connected, merged) is None
    assert hubspot.disposition(connected) == Disposition("accepted")  # defaults untouched
    bad = tmp_path / "bad.yaml"
    bad.write_text("hs_lead_status:\n  X: closed\nStatus:\n  Y: sql\n")
    with pytest.raises(CrmError) as error:
        read_status_map(bad, hubspot.STATUSES)
    assert "hs_lead_status.X" in str(error.value) and "'Status' is not a status field" in str(
        error.value
    )
