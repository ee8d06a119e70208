"""``leadscore sync hubspot`` against a fake HubSpot on loopback, with the official client.

Every test runs on SQLite and PostgreSQL (``store_url``); no traffic leaves the machine.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from crm_support import CLOSE, HANG, FakeHubSpot, score_leads
from typer.testing import CliRunner

from leadscore.cli import app
from serving.crm.hubspot import PROPERTIES, HubSpot, sync
from serving.crm.sync import CrmAuthError, CrmError, CrmSchemaError, read_checkpoint
from store.engine import open_store
from store.feedback import leads_dispositions
from store.schema import crm_sync, lead_states

LEADS = 250
IDS = [str(1000 + i) for i in range(LEADS)]


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    score_leads(engine, IDS, "2025-03-01")
    yield engine
    engine.dispose()


@pytest.fixture
def fake():
    fake = FakeHubSpot().start()
    when = datetime(2025, 3, 2, tzinfo=UTC)
    for cid in IDS:
        fake.add_contact(cid, when, lifecyclestage="lead")
    yield fake
    fake.stop()


def _hub(fake: FakeHubSpot, waits: list[float] | None = None, token: str = "good-token"):
    sleep = waits.append if waits is not None else (lambda s: None)
    return HubSpot(token=token, host=fake.url, sleep=sleep)


def _env(engine, home: Path) -> dict[str, str]:
    """The CLI's environment for the store behind ``engine``."""
    url = engine.url.render_as_string(hide_password=False)
    return {"LEADSCORE_DB_URL": url, "LEADSCORE_HOME": str(home)}


def _sent_ids(fake: FakeHubSpot) -> list[str]:
    return [i["id"] for body in fake.updates for i in body["inputs"]]


def test_creates_group_and_properties_then_pushes_in_batches_of_100(engine, fake) -> None:
    result = sync(engine, _hub(fake), do_pull=False)
    assert "group leadscore" in result.created
    assert {p["name"]: p["type"] for p in fake.properties.values()} == {
        s.name: s.type for s in PROPERTIES.values()
    }
    assert all(p["groupName"] == "leadscore" for p in fake.properties.values())
    assert [len(b["inputs"]) for b in fake.updates] == [100, 100, 50]
    assert result.push.sent == LEADS and not result.push.refused
    contact = fake.contacts["1000"]
    assert contact["leadscore_score"] == "70" and contact["leadscore_probability"] == "0.7"
    assert contact["leadscore_mql"] == "true" and contact["leadscore_grade"] == "A1"
    assert contact["leadscore_reasons"] == "Visited pricing; Large company"
    assert contact["leadscore_next_action"] == "Call within a day"
    assert read_checkpoint(engine, "hubspot")["push_status"] == "done"


def test_second_run_sends_only_what_changed(engine, fake) -> None:
    sync(engine, _hub(fake), do_pull=False)
    fake.updates.clear()
    again = sync(engine, _hub(fake), do_pull=False)
    assert again.push.changed == 0 and fake.updates == [] and again.created == []
    score_leads(engine, ["1003", "1007"], "2025-03-08", score=40, mql=False, source="online")
    sync(engine, _hub(fake), do_pull=False)
    (body,) = fake.updates
    assert sorted(i["id"] for i in body["inputs"]) == ["1003", "1007"]
    sent = body["inputs"][0]["properties"]
    assert set(sent) == {
        "leadscore_probability", "leadscore_score", "leadscore_grade", "leadscore_mql"
    }  # fmt: skip
    assert sent["leadscore_mql"] == "false"


def test_a_property_with_another_type_is_a_clear_error_and_nothing_is_sent(engine, fake) -> None:
    fake.properties["leadscore_score"] = {
        "name": "leadscore_score", "label": "x", "type": "string", "fieldType": "text",
        "groupName": "contactinformation", "description": "", "options": [],
    }  # fmt: skip
    with pytest.raises(CrmSchemaError, match="'leadscore_score' exists with type 'string'"):
        sync(engine, _hub(fake), do_pull=False)
    assert fake.updates == []


def test_429_waits_for_retry_after_then_goes_on(engine, fake) -> None:
    fake.faults.append(("/crm/v3/objects/contacts/batch/update", 429, {"Retry-After": "7"}))
    fake.faults.append(("/crm/v3/properties/contacts", 429, {"Retry-After": "2"}))
    waits: list[float] = []
    result = sync(engine, _hub(fake, waits), do_pull=False)
    assert sorted(waits) == [2.0, 7.0]
    assert result.push.sent == LEADS and Counter(_sent_ids(fake)) == Counter(IDS)


def test_token_revoked_mid_run_stops_clearly_and_the_next_run_resumes(
    engine, fake, tmp_path
) -> None:
    fake.revoke_after = 1  # the second batch meets a revoked token
    with pytest.raises(CrmAuthError) as stopped:
        sync(engine, _hub(fake), do_pull=False)
    message = str(stopped.value)
    assert "refused" in message and "LEADSCORE_HUBSPOT_TOKEN" in message
    assert "100 of 250" in message
    checkpoint = read_checkpoint(engine, "hubspot")
    assert checkpoint["push_status"] == "stopped" and checkpoint["push_cursor"] == "1099"
    shown = CliRunner().invoke(app, ["sync", "status", "--json"], env=_env(engine, tmp_path))
    assert shown.exit_code == 0, shown.output
    assert "hubspot: push stopped after lead 1099" in shown.output
    assert "salesforce: never synced" in shown.output
    fake.token, fake.revoke_after = "new-token", None
    result = sync(engine, _hub(fake, token="new-token"), do_pull=False)
    assert result.push.sent == 150 and result.push.resumed_after == "1099"
    assert Counter(_sent_ids(fake)) == Counter(IDS)  # each contact exactly once
    assert read_checkpoint(engine, "hubspot")["push_status"] == "done"


def test_dry_run_changes_nothing(engine, fake) -> None:
    result = sync(engine, _hub(fake), dry_run=True)
    assert result.push.changed == LEADS and result.push.sent == 0
    assert result.dry_lines[0].startswith("1000: leadscore_probability: None -> '0.7'")
    assert fake.requests == []
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(crm_sync)).scalar() == 0


@pytest.mark.parametrize("whole_batch", [False, True], ids=["207", "400"])
def test_unknown_contact_is_reported_not_created(engine, fake, whole_batch) -> None:
    fake.missing_is_400 = whole_batch  # HubSpot refuses the batch, or answers 207
    del fake.contacts["1005"]
    result = sync(engine, _hub(fake), do_pull=False)
    assert result.push.sent == LEADS - 1 and "1005" in result.push.refused
    assert "1005" not in fake.contacts


def test_pulled_statuses_land_in_dispositions_once(engine, fake) -> None:
    when = datetime(2025, 3, 5, tzinfo=UTC)
    fake.add_contact("1001", when, lifecyclestage="salesqualifiedlead", hubspot_owner_id="77")
    fake.add_contact("1002", when, lifecyclestage="lead", hs_lead_status="UNQUALIFIED")
    fake.add_contact("1003", when, lifecyclestage="opportunity", hs_lead_status="CONNECTED")
    fake.add_contact("99999", when, lifecyclestage="customer")  # never scored
    first = sync(engine, _hub(fake), do_push=False)
    assert first.pull.recorded == 4 and first.pull.unknown_leads == 1
    assert first.pull.owners == 1
    with engine.connect() as c:
        owner = c.execute(sa.select(lead_states.c.owner).where(lead_states.c.lead_id == "1001"))
        assert owner.scalar() == "77"
    stored = leads_dispositions(engine)
    got = {(r.lead_id, r.stage, r.reason_code or None) for r in stored.fillna("").itertuples()}
    assert got == {
        ("1001", "sql", None), ("1002", "rejected", "bad_fit"),
        ("1003", "opportunity", None), ("1003", "accepted", None),
    }  # fmt: skip
    assert set(stored["recorded_by"]) == {"sync:hubspot"}
    # the push modifies every contact; pulling again records nothing new
    sync(engine, _hub(fake))
    again = sync(engine, _hub(fake), do_push=False)
    assert again.pull.recorded == 0
    assert len(leads_dispositions(engine)) == 4
    # a later change is a new event
    fake.add_contact("1001", datetime.now(UTC), lifecyclestage="customer")
    later = sync(engine, _hub(fake), do_push=False)
    assert later.pull.recorded == 1
    assert ("1001", "won") in {
        (r.lead_id, r.stage) for r in leads_dispositions(engine).itertuples()
    }


def test_cli_sync_hubspot_and_a_refused_token(store_url, fake, tmp_path) -> None:
    engine = open_store(store_url)
    score_leads(engine, IDS[:3], "2025-03-01")
    engine.dispose()
    env = {"LEADSCORE_HOME": str(tmp_path), "LEADSCORE_DB_URL": store_url,
           "LEADSCORE_HUBSPOT_HOST": fake.url}  # fmt: skip
    runner = CliRunner()
    dry = runner.invoke(app, ["sync", "hubspot", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "3 records would change" in dry.output
    bad = runner.invoke(app, ["sync", "hubspot", "--token", "wrong"], env=env)
    assert bad.exit_code == 2
    assert "error: hubspot" in bad.output and "token was refused (401" in bad.output
    ok = runner.invoke(
        app, ["sync", "hubspot", "--json"], env={**env, "LEADSCORE_HUBSPOT_TOKEN": "good-token"}
    )
    assert ok.exit_code == 0, ok.output
    assert '"sent": 3' in ok.output


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "failed (500"), (CLOSE, "cannot reach"), (HANG, "cannot reach")],
    ids=["500", "closed", "hung"],
)
def test_a_failing_hubspot_stops_clearly_and_the_next_run_sends_the_rest(
    engine, fake, status, words
) -> None:
    fake.hang_seconds = 2.0
    fake.faults.append(("/crm/v3/objects/contacts/batch/update", status, {}))
    fake.faults_after = 1  # the second batch fails
    hub = HubSpot(token="good-token", host=fake.url, sleep=lambda s: None, timeout=0.5)
    with pytest.raises(CrmError) as stopped:
        sync(engine, hub, do_pull=False)
    message = str(stopped.value)
    assert words in message and "100 of 250" in message and "sends the rest" in message
    assert read_checkpoint(engine, "hubspot")["push_cursor"] == "1099"
    result = sync(engine, _hub(fake), do_pull=False)
    assert result.push.sent == 150
    assert Counter(_sent_ids(fake)) == Counter(IDS)  # none lost, none twice


def test_cli_statuses_file_maps_custom_values_and_a_bad_one_is_named(store_url, fake, tmp_path):
    engine = open_store(store_url)
    score_leads(engine, IDS[:3], "2025-03-01")
    engine.dispose()
    fake.add_contact(IDS[0], datetime(2025, 3, 5, tzinfo=UTC), hs_lead_status="NO_MONEY")
    env = {"LEADSCORE_HOME": str(tmp_path), "LEADSCORE_DB_URL": store_url,
           "LEADSCORE_HUBSPOT_HOST": fake.url, "LEADSCORE_HUBSPOT_TOKEN": "good-token"}  # fmt: skip
    bad = tmp_path / "bad.yaml"
    bad.write_text("hs_lead_status:\n  NO_MONEY: rejected\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["sync", "hubspot", "--statuses", str(bad)], env=env)
    assert refused.exit_code == 2 and "hs_lead_status.NO_MONEY" in refused.output
    good = tmp_path / "map.yaml"
    good.write_text("hs_lead_status:\n  NO_MONEY: rejected:no_budget\n")
    ok = runner.invoke(app, ["sync", "hubspot", "--no-push", "--statuses", str(good)], env=env)
    assert ok.exit_code == 0, ok.output
    engine = open_store(store_url)
    stored = leads_dispositions(engine)
    engine.dispose()
    assert list(stored["reason_code"]) == ["no_budget"]
