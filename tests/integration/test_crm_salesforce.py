"""``leadscore sync salesforce`` against a fake org on loopback, with simple-salesforce.

Every test runs on SQLite and PostgreSQL (``store_url``); no traffic leaves the machine.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_support import CLOSE, HANG, FakeSalesforce, score_leads
from typer.testing import CliRunner

from leadscore.cli import app
from serving.crm.salesforce import FIELDS, Salesforce, sync
from serving.crm.sync import CrmAuthError, CrmError, CrmSchemaError, read_checkpoint
from store.engine import open_store
from store.feedback import leads_dispositions
from store.schema import lead_states

LEADS = 450
IDS = [f"00Q{i:012d}" for i in range(LEADS)]


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    score_leads(engine, IDS, "2025-03-01")
    yield engine
    engine.dispose()


@pytest.fixture
def fake():
    fake = FakeSalesforce().start()
    when = datetime(2025, 3, 2, tzinfo=UTC)
    for lid in IDS:
        fake.add_lead(lid, when)
    yield fake
    fake.stop()


def _org(fake, waits=None, token: str = "good-token") -> Salesforce:
    sleep = waits.append if waits is not None else (lambda s: None)
    return Salesforce(instance_url=fake.url, session_id=token, sleep=sleep)


def read_states_owner(engine, lead_id: str) -> str | None:
    with engine.connect() as c:
        query = sa.select(lead_states.c.owner).where(lead_states.c.lead_id == lead_id)
        return c.execute(query).scalar()


def _sent_ids(fake) -> list[str]:
    return [r["id"] for body in fake.updates for r in body["records"]]


def test_creates_fields_then_updates_leads_in_collections_of_200(engine, fake) -> None:
    result = sync(engine, _org(fake), do_pull=False)
    assert sorted(result.created) == sorted(f.name for f in FIELDS.values())
    assert {f["FullName"] for f in fake.created_fields} == {
        f"Lead.{f.name}" for f in FIELDS.values()
    }
    assert [len(b["records"]) for b in fake.updates] == [200, 200, 50]
    assert all(b["allOrNone"] is False for b in fake.updates)
    lead = fake.leads[IDS[0]]
    assert lead["Leadscore_Score__c"] == 70 and lead["Leadscore_MQL__c"] is True
    assert lead["Leadscore_Probability__c"] == 0.7 and lead["Leadscore_Grade__c"] == "A1"
    assert lead["Leadscore_Next_Action__c"] == "Call within a day"
    fake.updates.clear()
    again = sync(engine, _org(fake), do_pull=False)
    assert again.push.changed == 0 and fake.updates == [] and again.created == []


def test_a_field_with_another_type_is_a_clear_error(engine, fake) -> None:
    fake.fields["Leadscore_Score__c"] = "string"
    with pytest.raises(CrmSchemaError, match="'Leadscore_Score__c' exists with type 'string'"):
        sync(engine, _org(fake), do_pull=False)
    assert fake.updates == []


def test_429_retry_after_and_revoked_session_resume(engine, fake) -> None:
    fake.faults.append(("/services/data/v59.0/composite/sobjects", 429, {"Retry-After": "3"}))
    fake.revoke_after = 1
    waits: list[float] = []
    with pytest.raises(CrmAuthError, match="200 of 450 changed records were sent"):
        sync(engine, _org(fake, waits), do_pull=False)
    assert waits == [3.0]
    assert read_checkpoint(engine, "salesforce")["push_status"] == "stopped"
    fake.token, fake.revoke_after = "fresh", None
    result = sync(engine, _org(fake, token="fresh"), do_pull=False)
    assert result.push.sent == 250
    assert Counter(_sent_ids(fake)) == Counter(IDS)


def test_deleted_lead_is_reported(engine, fake) -> None:
    del fake.leads[IDS[3]]
    result = sync(engine, _org(fake), do_pull=False)
    assert result.push.sent == LEADS - 1
    assert "ENTITY_IS_DELETED" in result.push.refused[IDS[3]]


def test_pulled_status_and_conversions_land_once(engine, fake) -> None:
    when = datetime(2025, 3, 5, tzinfo=UTC)
    fake.add_lead(IDS[1], when, Status="Working - Contacted", OwnerId="005X",
                  Owner={"attributes": {"type": "User"}, "Name": "Ann Rep"})  # fmt: skip
    fake.add_lead(IDS[2], when, Status="Unqualified")
    fake.add_lead(IDS[3], when, Status="Closed - Converted", IsConverted=True,
                  ConvertedDate="2025-03-04", ConvertedOpportunityId="006A")  # fmt: skip
    fake.opportunities["006A"] = {"IsClosed": True, "IsWon": True, "CloseDate": "2025-03-20"}
    fake.add_lead("00Qunknown00000", when, Status="Qualified")
    fake.page_size = 100  # the pull follows nextRecordsUrl
    first = sync(engine, _org(fake), do_push=False)
    assert first.pull.records == LEADS + 1
    assert first.pull.unknown_leads == 1 and first.pull.owners == 1
    assert read_states_owner(engine, IDS[1]) == "Ann Rep"
    stored = leads_dispositions(engine).fillna("")
    got = {(r.lead_id, r.stage, r.reason_code or None) for r in stored.itertuples()}
    assert got == {
        (IDS[1], "accepted", None), (IDS[2], "rejected", "bad_fit"),
        (IDS[3], "sql", None), (IDS[3], "opportunity", None), (IDS[3], "won", None),
    }  # fmt: skip
    sync(engine, _org(fake))  # push, which modifies every lead
    again = sync(engine, _org(fake), do_push=False)
    assert again.pull.recorded == 0 and len(leads_dispositions(engine)) == 5


def test_cli_sync_salesforce_dry_run_and_refused_session(store_url, fake, tmp_path) -> None:
    engine = open_store(store_url)
    score_leads(engine, IDS[:2], "2025-03-01")
    engine.dispose()
    env = {"LEADSCORE_HOME": str(tmp_path), "LEADSCORE_DB_URL": store_url,
           "LEADSCORE_SALESFORCE_INSTANCE_URL": fake.url}  # fmt: skip
    runner = CliRunner()
    dry = runner.invoke(app, ["sync", "salesforce", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "2 records would change" in dry.output and fake.requests == []
    bad = runner.invoke(app, ["sync", "salesforce", "--session-id", "nope"], env=env)
    assert bad.exit_code == 2 and "error: salesforce" in bad.output
    assert "session was refused" in bad.output
    ok = runner.invoke(app, ["sync", "salesforce", "--session-id", "good-token", "--json"],
                       env=env)  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert '"sent": 2' in ok.output


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "failed (500"), (CLOSE, "cannot reach"), (HANG, "cannot reach")],
    ids=["500", "closed", "hung"],
)
def test_a_failing_org_stops_clearly_and_the_next_run_sends_the_rest(
    engine, fake, status, words
) -> None:
    fake.hang_seconds = 2.0
    fake.faults.append(("/services/data/v59.0/composite/sobjects", status, {}))
    fake.faults_after = 1  # the second collection fails
    org = Salesforce(instance_url=fake.url, session_id="good-token", sleep=lambda s: None,
                     timeout=0.5)  # fmt: skip
    with pytest.raises(CrmError) as stopped:
        sync(engine, org, do_pull=False)
    message = str(stopped.value)
    assert words in message and "200 of 450" in message and "sends the rest" in message
    result = sync(engine, _org(fake), do_pull=False)
    assert result.push.sent == 250
    assert Counter(_sent_ids(fake)) == Counter(IDS)
