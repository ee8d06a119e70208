"""Alerts end to end: the store queues them, local receivers that speak Slack's and the
generic webhook's shapes take them (or fail in every way a receiver can), nothing is
sent twice and nothing is lost.

The receivers run on loopback in a thread: ``/hook/<region>`` is a Slack incoming webhook
(answers ``ok``), ``/api/chat.postMessage`` is Slack's Web API (``{"ok": true, ...}``, or
``{"ok": false, "error": "channel_not_found"}`` for a channel it does not know) and
``/webhook`` is a generic receiver that checks the signature. A script of behaviours
makes the next requests fail: an HTTP status, a hang, a closed connection.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.settings import Settings
from serving.alerts.deliver import AlertConfig, AlertsConfigError, deliver, retry_dead
from serving.alerts.transports import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from store.alerts import Backoff, outbox
from store.engine import open_store
from store.runs import RunInfo, write_account_run, write_run
from store.schema import monitoring_results

SECRET = "s3cret-shared"
TOKEN = "xoxb-test-token"
T0 = datetime(2025, 3, 1, 9, 0)


class Receiver:
    """Slack (webhook and Web API) and a generic webhook, on a free loopback port."""

    def __init__(self, port: int = 0, channels: tuple[str, ...] = ("#sales-na", "#sales-emea")):
        self.requests: list[dict[str, Any]] = []
        self.script: list[Any] = []  # behaviours for the next requests; then "ok"
        self.channels = set(channels)
        self.stop_after: int | None = None
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._start(port)

    def _start(self, port: int) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    behaviour = receiver.script.pop(0) if receiver.script else "ok"
                if behaviour == "hang":
                    receiver.release.wait(10)
                    return
                if behaviour == "close":
                    self.close_connection = True
                    return
                if isinstance(behaviour, tuple):
                    status, text, headers = behaviour
                    self._answer(status, text, headers)
                    return
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    stopping = receiver.stop_after == len(receiver.requests)
                if stopping:  # the receiver goes down: this answer is its last
                    receiver.server.shutdown()
                    receiver.server.server_close()
                self._ok(body)

            def _ok(self, body: bytes) -> None:
                if self.path.startswith("/hook/"):
                    self._answer(200, "ok", {"Content-Type": "text/html"})
                elif self.path.startswith("/api/chat.postMessage"):
                    data = json.loads(body or b"{}")
                    if data.get("channel") not in receiver.channels:
                        answer = {"ok": False, "error": "channel_not_found"}
                    else:
                        answer = {"ok": True, "channel": "C0123", "ts": f"{time.time():.6f}"}
                    self._answer(200, json.dumps(answer), {"Content-Type": "application/json"})
                elif self.path == "/webhook":
                    good = verify(
                        SECRET,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                    self._answer(200 if good else 401, "{}", {"Content-Type": "application/json"})
                else:
                    self._answer(404, "not found", {})

            def _answer(self, status: int, text: str, headers: dict[str, str]) -> None:
                data = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def restart(self) -> None:
        """Come back up on the same port."""
        self.stop_after = None
        self._start(self.port)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(prefix)]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    if server.thread.is_alive():
        server.close()
    server.release.set()


@pytest.fixture
def engine(store_url: str):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 'leadscore.db'}")
    yield engine
    engine.dispose()


def _frame(rows: dict[str, tuple[int, bool, str]]) -> pd.DataFrame:
    """Scores of a run: lead -> (score, mql, region), each with a card."""
    ids = list(rows)
    return pd.DataFrame(
        {
            "lead_id": ids,
            "probability": [rows[i][0] / 100 for i in ids],
            "score": [rows[i][0] for i in ids],
            "grade": ["A1" if rows[i][1] else "C3" for i in ids],
            "mql": [rows[i][1] for i in ids],
            "threshold": 0.5,
            "region": [rows[i][2] for i in ids],
            "lead_source": "webinar",
            "reasons": [
                {
                    "positive": [
                        {"signal": "pricing", "sentence": "Visited the pricing page 4 times"},
                        {"signal": "title", "sentence": "VP of Sales"},
                    ],
                    "negative": [],
                }
                for _ in ids
            ],
            "next_best_actions": [
                [{"action": "demo", "sentence": "Offer a demo this week", "score": 90}] for _ in ids
            ],
        }
    )


def _run(engine, when: datetime, rows: dict[str, tuple[int, bool, str]], source: str = "batch"):
    info = RunInfo(source=source, as_of=pd.Timestamp(when), model_name="m", model_version="3",
                   threshold=0.5)  # fmt: skip
    return write_run(engine, info, _frame(rows))


def _config(receiver: Receiver, **changes: Any) -> AlertConfig:
    values: dict[str, Any] = {
        "webhook_url": f"{receiver.url}/webhook",
        "webhook_secret": SECRET,
        "backoff": Backoff(base_seconds=60, cap_seconds=3600, max_attempts=3),
        "timeout": 2.0,
        "public_url": "https://leads.example.test/app",
    }
    return AlertConfig(**{**values, **changes})


def _slack(receiver: Receiver, **changes: Any) -> AlertConfig:
    slack = {
        "slack_token": TOKEN,
        "slack_api_url": f"{receiver.url}/api/",
        "slack_channels": {"NA": "#sales-na", "EMEA": "#sales-emea"},
    }
    return _config(receiver, **{**slack, **changes})


def _statuses(engine) -> dict[str, int]:
    return outbox(engine)["status"].value_counts().to_dict()


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"lead_id":"L1"}'
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == f"sha256={expected}"
    now = 1_700_000_100
    assert verify(SECRET, "1700000000", body, f"sha256={expected}", now=now)
    assert not verify(SECRET, "1700000000", body + b" ", f"sha256={expected}", now=now)
    assert not verify("other", "1700000000", body, f"sha256={expected}", now=now)
    assert not verify(SECRET, "1700000000", body, f"sha256={expected}", now=now + 3600)
    assert not verify(SECRET, "yesterday", body, f"sha256={expected}", now=now)


def test_an_mql_episode_is_announced_once_to_its_region_and_the_webhook(engine, receiver) -> None:
    _run(engine, T0, {"L1": (88, True, "NA"), "L2": (91, True, "EMEA"), "L3": (20, False, "NA")})
    config = _slack(receiver)
    report = deliver(engine, config, now=T0)
    assert (report.queued.mql, report.sent, report.failed) == (4, 4, 0)  # 2 leads x 2
    posts = [json.loads(r["body"]) for r in receiver.at("/api/chat.postMessage")]
    assert {(p["channel"], p["text"].split(",")[0]) for p in posts} == {
        ("#sales-na", "New MQL: lead L1"),
        ("#sales-emea", "New MQL: lead L2"),
    }
    assert all(
        r["headers"]["Authorization"] == f"Bearer {TOKEN}"
        for r in receiver.at("/api/chat.postMessage")
    )
    na = next(p for p in posts if p["channel"] == "#sales-na")
    shown = json.dumps(na["blocks"])
    for fact in ("*Score*\\n88", "*Grade*\\nA1", "Visited the pricing page 4 times",
                 "Offer a demo this week", "https://leads.example.test/app/#lead=L1"):  # fmt: skip
        assert fact in shown
    hooks = receiver.at("/webhook")
    assert len(hooks) == 2
    for hook in hooks:
        body = json.loads(hook["body"])
        assert hook["headers"][IDEMPOTENCY_HEADER] == body["id"]
        assert body["id"].startswith(f"mql:{body['lead_id']}:2025-03-01T09:00:00@webhook")
        assert body["url"] == f"https://leads.example.test/app/#lead={body['lead_id']}"
        assert body["data"]["next_best_action"] == "Offer a demo this week"

    again = deliver(engine, config, now=T0 + timedelta(hours=1))
    assert (again.queued.total, again.sent) == (0, 0)  # the same episode: nothing more
    _run(engine, T0 + timedelta(days=1), {"L1": (90, True, "NA"), "L2": (92, True, "EMEA")})
    assert deliver(engine, config, now=T0 + timedelta(days=1)).sent == 0  # MQL still
    _run(engine, T0 + timedelta(days=2), {"L1": (30, False, "NA"), "L2": (92, True, "EMEA")})
    _run(engine, T0 + timedelta(days=3), {"L1": (85, True, "NA"), "L2": (92, True, "EMEA")})
    third = deliver(engine, config, now=T0 + timedelta(days=3))
    assert (third.queued.mql, third.sent) == (2, 2)  # L1's second episode: announced again
    assert _statuses(engine) == {"sent": 6}


def _accounts(engine, when: datetime, rows: dict[str, tuple[int, bool, str]]):
    """An account run: account -> (score, mqa, region), each with its buying group."""
    ids = list(rows)
    frame = pd.DataFrame(
        {
            "account_id": ids,
            "probability": [rows[i][0] / 100 for i in ids],
            "score": [rows[i][0] for i in ids],
            "grade": ["A2" if rows[i][1] else "C3" for i in ids],
            "mqa": [rows[i][1] for i in ids],
            "threshold": 0.6,
            "region": [rows[i][2] for i in ids],
            "leads": 5,
            "engaged": 3,
            "reasons": [
                {"positive": [{"signal": "people", "sentence": "3 people engaged in 14 days"}]}
                for _ in ids
            ],
            "buying_group": [
                {
                    "engaged": ["champion", "end_user"],
                    "missing": ["economic_buyer"],
                    "next_contacts": [{"lead_id": "L9", "persona": "economic_buyer"}],
                }
                for _ in ids
            ],
        }
    )
    info = RunInfo(source="batch", as_of=pd.Timestamp(when), model_name="acc", model_version="1",
                   threshold=0.6)  # fmt: skip
    return write_account_run(engine, info, frame)


def test_an_account_entering_mqa_is_announced_once_with_its_buying_group(engine, receiver) -> None:
    _accounts(engine, T0, {"A1": (82, True, "NA"), "A2": (30, False, "EMEA")})
    config = _slack(receiver)
    report = deliver(engine, config, now=T0)
    assert (report.queued.mqa, report.queued.mql, report.sent) == (2, 0, 2)  # Slack + webhook
    (post,) = [json.loads(r["body"]) for r in receiver.at("/api/chat.postMessage")]
    assert post["channel"] == "#sales-na"
    assert post["text"] == "New MQA: account A1, score 82, grade A2, NA, 3 of 5 people engaged"
    shown = json.dumps(post["blocks"])
    for fact in (
        "3 people engaged in 14 days",
        "Missing: economic buyer; reach L9 next",
        "https://leads.example.test/app/account-view#account=A1",
        "Open the account",
    ):
        assert fact in shown
    (hook,) = receiver.at("/webhook")
    body = json.loads(hook["body"])
    assert (body["type"], body["account_id"], body["lead_id"]) == ("mqa", "A1", None)
    assert body["url"] == "https://leads.example.test/app/account-view#account=A1"
    assert body["data"]["missing_personas"] == ["economic_buyer"]
    _accounts(engine, T0 + timedelta(days=7), {"A1": (85, True, "NA"), "A2": (31, False, "EMEA")})
    assert deliver(engine, config, now=T0 + timedelta(days=7)).queued.total == 0  # MQA still


def test_a_score_jump_and_a_monitor_alert_are_announced(engine, receiver) -> None:
    _run(engine, T0, {"L1": (30, False, "NA"), "L2": (40, False, "NA")})
    _run(engine, T0 + timedelta(days=7), {"L1": (55, False, "NA"), "L2": (45, False, "NA")})
    with engine.begin() as c:
        c.execute(
            sa.insert(monitoring_results),
            [
                {"check_run": "r1", "checked_at": T0, "model_name": "m", "model_version": "3",
                 "check_name": "performance", "subject": "model", "metric": "roc_auc",
                 "value": 0.61, "reference": 0.8, "status": "alert"},
                {"check_run": "r1", "checked_at": T0, "model_name": "m", "model_version": "3",
                 "check_name": "feature_drift", "subject": "visits", "metric": "psi",
                 "value": 0.05, "reference": None, "status": "ok"},
            ],
        )  # fmt: skip
    config = _slack(receiver, jump=20, webhook_url=None)
    report = deliver(engine, config, now=T0 + timedelta(days=7))
    assert (report.queued.jump, report.queued.monitor, report.queued.mql) == (1, 2, 0)
    texts = sorted(json.loads(r["body"])["text"] for r in receiver.requests)
    assert texts[0] == "Model monitor alert: m v3, 1 check(s) at alert (performance/model)"
    assert texts[2] == "Score jump: lead L1 30 → 55 (+25), grade C3, NA"
    assert deliver(engine, config, now=T0 + timedelta(days=8)).queued.total == 0


def test_a_failed_delivery_is_retried_with_backoff_until_it_goes_out(engine, receiver) -> None:
    _run(engine, T0, {"L1": (88, True, "NA")})
    receiver.script = [(500, "boom", {}), (503, "busy", {})]
    config = _config(receiver)
    first = deliver(engine, config, now=T0)
    assert (first.sent, first.failed, first.dead) == (0, 1, 0)
    assert first.errors == [f"webhook {receiver.url}/…: the receiver answered 500 (boom)"]
    assert deliver(engine, config, now=T0 + timedelta(seconds=59)).failed == 0  # not due
    second = deliver(engine, config, now=T0 + timedelta(seconds=60))
    assert (second.failed, second.dead) == (1, 0)
    assert deliver(engine, config, now=T0 + timedelta(seconds=60 + 119)).sent == 0  # 2x
    third = deliver(engine, config, now=T0 + timedelta(seconds=60 + 120))
    assert third.sent == 1
    row = outbox(engine).iloc[0]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)
    assert len(receiver.requests) == 1  # the failed tries were answered by the script


def test_dead_letters_after_the_last_attempt_then_alerts_retry_sends_them(
    engine, receiver, store_url, monkeypatch
) -> None:
    _run(engine, T0, {"L1": (88, True, "NA"), "L2": (90, True, "EMEA")})
    receiver.script = [(500, "down", {})] * 6
    config = _config(receiver, backoff=Backoff(base_seconds=1, cap_seconds=1, max_attempts=3))
    moments = [T0 + timedelta(seconds=s) for s in range(0, 60, 5)]
    reports = [deliver(engine, config, now=m) for m in moments[:3]]
    assert [(r.failed, r.dead, r.waiting) for r in reports] == [(1, 0, 1)] * 2 + [(1, 1, 1)]
    rows = outbox(engine)  # the receiver is down: L2 waited without spending attempts
    assert rows["attempts"].tolist() == [3, 0]
    reports = [deliver(engine, config, now=m) for m in moments[3:6]]
    assert [r.dead for r in reports] == [0, 0, 1]
    assert _statuses(engine) == {"dead": 2}
    assert (
        outbox(engine)["last_error"].tolist()
        == [f"webhook {receiver.url}/…: the receiver answered 500 (down)"] * 2
    )
    assert deliver(engine, config, now=T0 + timedelta(days=1)).failed == 0  # dead: left alone

    for name, value in {
        "LEADSCORE_DB_URL": store_url,
        "LEADSCORE_WEBHOOK_URL": f"{receiver.url}/webhook",
        "LEADSCORE_WEBHOOK_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["alerts", "retry", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (out["revived"], out["sent"]) == (2, 2)
    assert _statuses(engine) == {"sent": 2}
    result = CliRunner().invoke(app, ["alerts", "send", "--json"])
    assert json.loads(result.stdout.strip().splitlines()[-1])["sent"] == 0


def test_a_flood_of_mqls_is_one_digest_message_per_slack_destination(engine, receiver) -> None:
    flood = {f"L{i:02d}": (80 + i % 20, True, "NA" if i % 2 else "EMEA") for i in range(50)}
    _run(engine, T0, flood)
    config = _slack(
        receiver,
        slack_hooks={"*": f"{receiver.url}/hook/all"},
        digest_minutes=10,
        webhook_url=None,
    )
    report = deliver(engine, config, now=T0)
    assert (report.queued.mql, report.sent, report.messages) == (100, 100, 3)
    posts = {json.loads(r["body"])["channel"]: json.loads(r["body"]) for r in
             receiver.at("/api/chat.postMessage")}  # fmt: skip
    assert posts["#sales-na"]["text"] == "25 lead alerts: 25 new mqls"
    assert "and 5 more" in json.dumps(posts["#sales-na"]["blocks"])
    assert json.loads(receiver.at("/hook/all")[0]["body"])["text"] == "50 lead alerts: 50 new mqls"

    _run(engine, T0 + timedelta(minutes=1), {**flood, "N1": (95, True, "NA")})
    held = deliver(engine, config, now=T0 + timedelta(minutes=1))
    assert (held.queued.mql, held.sent, held.held) == (2, 0, 2)  # within the digest period
    later = deliver(engine, config, now=T0 + timedelta(minutes=10))
    assert (later.sent, later.messages) == (2, 2)
    assert len(receiver.requests) == 5


def test_the_receiver_stopped_mid_run_loses_nothing(engine, receiver) -> None:
    _run(engine, T0, {f"L{i}": (90, True, "NA") for i in range(10)})
    receiver.stop_after = 3
    config = _config(receiver)
    first = deliver(engine, config, now=T0)
    assert (first.sent, first.failed, first.waiting) == (3, 1, 6)
    assert "cannot connect: the receiver is down" in first.errors[0]
    assert _statuses(engine) == {"sent": 3, "pending": 7}

    receiver.restart()
    second = deliver(engine, config, now=T0 + timedelta(minutes=1))
    assert (second.sent, second.failed) == (7, 0)
    keys = [r["headers"][IDEMPOTENCY_HEADER] for r in receiver.requests]
    assert len(keys) == len(set(keys)) == 10  # each alert once, none lost


@pytest.mark.parametrize(
    ("behaviour", "message", "status"),
    [
        ((500, "Internal Server Error", {}), "the receiver answered 500 (Internal Server Error)",
         "pending"),
        ("hang", "no answer within 0.5s (timed out)", "pending"),
        ("close", "the receiver closed the connection without answering", "pending"),
        ((429, "slow down", {"Retry-After": "120"}), "rate limited (429, retry after 120s)",
         "pending"),
        ((400, "bad body", {}), "the receiver answered 400 (bad body)", "dead"),
    ],
)  # fmt: skip
def test_each_webhook_fault_is_a_clear_message(
    sqlite_engine, receiver, behaviour, message, status
) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA")})
    receiver.script = [behaviour]
    report = deliver(sqlite_engine, _config(receiver, timeout=0.5), now=T0)
    assert report.errors == [f"webhook {receiver.url}/…: {message}"]
    row = outbox(sqlite_engine).iloc[0]
    assert (row["status"], row["attempts"], row["last_error"]) == (status, 1, report.errors[0])
    if behaviour[0] == 429:
        assert row["next_attempt_at"] == T0 + timedelta(seconds=120)
    receiver.release.set()


@pytest.mark.parametrize(
    ("behaviour", "message", "status"),
    [
        (None, "Slack chat.postMessage to #nowhere: Slack answered channel_not_found", "dead"),
        ((429, '{"ok": false, "error": "ratelimited"}', {"Retry-After": "30"}),
         "Slack chat.postMessage to #nowhere: rate limited (429, retry after 30s)", "pending"),
        ((500, "<html>oops</html>", {}), "Slack chat.postMessage to #nowhere: Slack answered "
         "HTTP 500", "pending"),
        ("hang", "Slack chat.postMessage to #nowhere: no answer within 0.5s (timed out)",
         "pending"),
        ("close", "Slack chat.postMessage to #nowhere: the receiver closed the connection "
         "without answering", "pending"),
    ],
)  # fmt: skip
def test_each_slack_api_fault_is_a_clear_message(
    sqlite_engine, receiver, behaviour, message, status
) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA")})
    receiver.script = [] if behaviour is None else [behaviour]
    config = _slack(receiver, slack_channels={"*": "#nowhere"}, webhook_url=None, timeout=0.5)
    report = deliver(sqlite_engine, config, now=T0)
    assert len(report.errors) == 1 and report.errors[0].startswith(message)
    assert outbox(sqlite_engine).iloc[0]["status"] == status
    receiver.release.set()


@pytest.mark.parametrize(
    ("behaviour", "message", "status"),
    [
        ((404, "no_service", {}), "the receiver answered 404 (no_service)", "dead"),
        ((429, "rate_limited", {"Retry-After": "5"}), "rate limited (429, retry after 5s)",
         "pending"),
        ("close", "the receiver closed the connection without answering", "pending"),
    ],
)  # fmt: skip
def test_each_slack_webhook_fault_is_a_clear_message(
    sqlite_engine, receiver, behaviour, message, status
) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA")})
    receiver.script = [behaviour]
    config = _config(receiver, slack_hooks={"NA": f"{receiver.url}/hook/na"}, webhook_url=None)
    report = deliver(sqlite_engine, config, now=T0)
    assert report.errors == [f"Slack webhook slack-hook:NA ({receiver.url}/…): {message}"]
    assert outbox(sqlite_engine).iloc[0]["status"] == status
    assert deliver(sqlite_engine, config, now=T0 + timedelta(hours=2)).sent == (
        1 if status == "pending" else 0
    )


def test_a_bad_signature_secret_is_refused_by_the_receiver(sqlite_engine, receiver) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA")})
    report = deliver(sqlite_engine, _config(receiver, webhook_secret="wrong"), now=T0)
    assert report.errors == [f"webhook {receiver.url}/…: the receiver answered 401 ({{}})"]
    assert outbox(sqlite_engine).iloc[0]["status"] == "dead"


def test_no_destination_is_a_clear_error(sqlite_engine) -> None:
    with pytest.raises(AlertsConfigError, match="LEADSCORE_SLACK_WEBHOOK_URL"):
        deliver(sqlite_engine, AlertConfig())


def test_retry_dead_of_one_destination_only(sqlite_engine, receiver) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA")})
    config = _config(receiver, slack_hooks={"*": f"{receiver.url}/hook/all"})
    receiver.script = [(410, "channel_is_archived", {}), (400, "invalid", {})]
    assert deliver(sqlite_engine, config, now=T0).dead == 2
    revived, report = retry_dead(sqlite_engine, config, T0, destination="webhook")
    assert (revived, report.sent) == (1, 1)
    assert sorted(outbox(sqlite_engine)["status"]) == ["dead", "sent"]


def test_settings_feed_the_alert_config() -> None:
    settings = Settings.from_env(
        {
            "LEADSCORE_SLACK_WEBHOOK_URL": "NA=https://hooks.slack.test/a,*=https://hooks.slack.test/b",
            "LEADSCORE_SLACK_TOKEN": TOKEN,
            "LEADSCORE_SLACK_CHANNELS": "NA=#sales-na,EMEA=#sales-emea",
            "LEADSCORE_WEBHOOK_URL": "https://example.test/hook",
            "LEADSCORE_WEBHOOK_SECRET": SECRET,
            "LEADSCORE_ALERT_JUMP": "15",
            "LEADSCORE_ALERT_DIGEST_MINUTES": "5",
            "LEADSCORE_ALERT_MAX_ATTEMPTS": "4",
            "LEADSCORE_PUBLIC_URL": "https://leads.example.test",
        }
    )
    config = AlertConfig.from_settings(settings)
    assert config.route("mql", "NA") == ["slack:#sales-na", "slack-hook:NA", "webhook"]
    assert config.route("mql", "APAC") == ["slack-hook:*", "webhook"]
    assert config.route("monitor", None) == [
        "slack:#sales-emea",
        "slack:#sales-na",
        "slack-hook:*",
        "webhook",
    ]
    assert (config.jump, config.digest_minutes, config.backoff.max_attempts) == (15, 5.0, 4)


def test_a_run_that_commits_after_a_later_one_is_not_skipped(engine, receiver, store_url) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: runs commit in id order there")
    from store.schema import mql_events, scoring_runs

    slow = engine.connect()
    transaction = slow.begin()  # a long batch run: its id comes first, its commit last
    run_id = slow.execute(
        sa.insert(scoring_runs).returning(scoring_runs.c.id),
        {"source": "batch", "as_of": T0, "started_at": T0, "model_name": "m",
         "model_version": "3", "threshold": 0.5},
    ).scalar_one()  # fmt: skip
    slow.execute(
        sa.insert(mql_events),
        {"run_id": run_id, "lead_id": "SLOW", "event": "entered", "occurred_at": T0,
         "cause": "score", "threshold": 0.5, "region": "NA", "score": 90, "grade": "A1",
         "model_version": "3"},
    )  # fmt: skip
    _run(engine, T0, {"FAST": (90, True, "NA")}, source="online")
    config = _config(receiver)
    assert deliver(engine, config, now=T0).sent == 1
    transaction.commit()
    slow.close()
    late = deliver(engine, config, now=T0 + timedelta(minutes=1))
    assert (late.queued.mql, late.sent) == (1, 1)
    leads = sorted(json.loads(r["body"])["lead_id"] for r in receiver.requests)
    assert leads == ["FAST", "SLOW"]


def test_alerts_list_shows_the_outbox(sqlite_engine, receiver, tmp_path, monkeypatch) -> None:
    _run(sqlite_engine, T0, {"L1": (90, True, "NA"), "L2": (91, True, "NA")})
    receiver.script = [(400, "nope", {})]
    deliver(sqlite_engine, _config(receiver), now=T0)
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["alerts", "list", "--status", "dead", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (out["count"], out["by_status"]) == (1, {"dead": 1})
    assert out["alerts"][0]["last_error"].endswith("the receiver answered 400 (nope)")
    result = CliRunner().invoke(app, ["alerts", "list", "--status", "lost"])
    assert result.exit_code == 2
    assert "--status: give one of pending, sent, dead, got 'lost'" in result.output


def test_a_large_run_is_queued_whole_with_its_cards(engine) -> None:
    from store.alerts import derive_alerts

    _run(engine, T0, {f"L{i:04d}": (90, True, "NA") for i in range(1200)})
    _run(engine, T0 + timedelta(days=1), {"X": (90, True, "EMEA")}, source="online")
    derived = derive_alerts(engine, lambda kind, region: ["webhook"], jump=5, now=T0)
    assert (derived.mql, derived.jump) == (1201, 0)
    with engine.connect() as c:
        from store.schema import alert_outbox

        payloads = [p for (p,) in c.execute(sa.select(alert_outbox.c.payload))]
    assert all(p["next_best_action"] == "Offer a demo this week" for p in payloads)
    assert derive_alerts(engine, lambda kind, region: ["webhook"], now=T0).total == 0


def test_leadscore_score_sends_the_new_mqls_at_once(champion, receiver, tmp_path) -> None:
    """With a destination configured, a scoring run's new MQLs go out when it ends, and a
    second run on the same data announces nothing again."""
    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
        "LEADSCORE_WEBHOOK_URL": f"{receiver.url}/webhook",
        "LEADSCORE_WEBHOOK_SECRET": SECRET,
    }
    args = ["score", "--data", str(champion.data_dir), "--out", str(tmp_path / "s.csv")]
    first = CliRunner().invoke(app, [*args, "--actions", "0", "--json"], env=env)
    assert first.exit_code == 0, first.output
    entered = json.loads(first.stdout)["store"]["entered_mql"]
    hooks = receiver.at("/webhook")
    assert entered > 0 and len(hooks) == entered
    kinds = {json.loads(h["body"])["type"] for h in hooks}
    assert kinds == {"mql"}
    again = CliRunner().invoke(app, [*args, "--actions", "0"], env=env)
    assert again.exit_code == 0, again.output
    assert len(receiver.at("/webhook")) == entered  # the same episodes: nothing new to say
