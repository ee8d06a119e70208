"""One delivery pass: queue what happened since the last pass, then send what is due.

Destinations are names kept in the outbox: ``slack:<channel>`` (``chat.postMessage``),
``slack-hook:<region>`` (an incoming webhook) and ``webhook`` (the generic one). An alert
goes to the region's Slack channel and webhook (``*`` for the regions not named; a
monitor alert, which has no region, to ``*``, else to every channel) and to the generic
webhook. With a digest period, a Slack destination gets at most one message per period,
listing everything due; the generic webhook always gets one signed POST per alert.

A failure is recorded on the alert and retried later with exponential backoff (dead
after the last attempt); when the receiver is down (a transient failure) the rest of
that destination's alerts wait for the next pass untouched, so an outage costs them no
attempt. Nothing is lost: an alert leaves ``pending`` only when the receiver took it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.engine import Engine

from leadscore.errors import LeadscoreError
from leadscore.settings import Settings
from serving.alerts.messages import slack_digest, slack_message, webhook_body
from serving.alerts.transports import (
    DeliveryError,
    GenericWebhook,
    SlackChat,
    SlackWebhook,
    Transport,
)
from store.alerts import (
    Backoff,
    Derived,
    OutboxRow,
    claim,
    derive_alerts,
    due,
    last_sent,
    mark_failed,
    mark_sent,
    revive_dead,
    utc_now,
)

WEBHOOK = "webhook"
LEASE_SECONDS = 300.0
"""How long a pass holds the alerts it is sending before another pass may take them."""


class AlertsConfigError(LeadscoreError, ValueError):
    """No destination is configured, so alerts have nowhere to go."""


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go and how they are paced, from the settings.

    Attributes:
        slack_hooks: Region -> incoming webhook URL (``*``: the rest).
        slack_channels: Region -> channel for ``chat.postMessage`` (``*``: the rest).
        slack_token: The bot token for ``chat.postMessage``.
        slack_api_url: Slack's Web API base URL (None: Slack's).
        webhook_url: The generic webhook.
        webhook_secret: Its signing secret.
        jump: Score rise that raises an alert (None: off).
        digest_minutes: A Slack destination's digest period (0: a message per alert).
        backoff: Retry pacing and the attempts before a dead letter.
        timeout: Seconds a receiver may take.
        public_url: The worklist's public URL, for the lead links.
    """

    slack_hooks: dict[str, str] = field(default_factory=dict)
    slack_channels: dict[str, str] = field(default_factory=dict)
    slack_token: str | None = None
    slack_api_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    jump: int | None = None
    digest_minutes: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float = 10.0
    public_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> AlertConfig:
        """The settings' alert fields (``changes`` override, e.g. a test's backoff)."""
        values: dict[str, Any] = {
            "slack_hooks": dict(settings.slack_webhook_url or {}),
            "slack_channels": dict(settings.slack_channels or {}),
            "slack_token": settings.slack_token,
            "slack_api_url": settings.slack_api_url,
            "webhook_url": settings.webhook_url,
            "webhook_secret": settings.webhook_secret,
            "jump": settings.alert_jump,
            "digest_minutes": settings.alert_digest_minutes,
            "backoff": Backoff(max_attempts=settings.alert_max_attempts),
            "timeout": settings.alert_timeout,
            "public_url": settings.public_url,
        }
        return cls(**{**values, **changes})

    @property
    def configured(self) -> bool:
        """Whether any destination is set."""
        return bool(self.slack_hooks or self.slack_channels or self.webhook_url)

    def route(self, kind: str, region: str | None) -> list[str]:
        """The destinations of an alert of ``kind`` for ``region``."""
        out = [f"slack:{c}" for c in _pick(self.slack_channels, region)]
        out += [f"slack-hook:{r}" for r in _pick_keys(self.slack_hooks, region)]
        if self.webhook_url:
            out.append(WEBHOOK)
        return out

    def transport(self, destination: str) -> Transport | None:
        """The transport of ``destination`` (None: no longer configured)."""
        kind, _, target = destination.partition(":")
        if kind == "slack" and self.slack_token and target in self.slack_channels.values():
            return SlackChat(
                destination, self.slack_token, target, self.timeout, self.slack_api_url
            )
        if kind == "slack-hook" and target in self.slack_hooks:
            return SlackWebhook(destination, self.slack_hooks[target], self.timeout)
        if destination == WEBHOOK and self.webhook_url and self.webhook_secret:
            return GenericWebhook(destination, self.webhook_url, self.webhook_secret, self.timeout)
        return None


def _pick_keys(mapping: dict[str, str], region: str | None) -> list[str]:
    """The keys of ``mapping`` an alert for ``region`` goes to."""
    if region is not None and region in mapping:
        return [region]
    if "*" in mapping:
        return ["*"]
    return list(mapping) if region is None else []


def _pick(mapping: dict[str, str], region: str | None) -> list[str]:
    return sorted({mapping[k] for k in _pick_keys(mapping, region)})


@dataclass
class DeliveryReport:
    """What one pass did.

    Attributes:
        queued: Alerts derived and queued, per kind.
        sent: Alerts delivered.
        messages: Messages sent (a digest carries several alerts).
        failed: Alerts whose attempt failed (retried later or dead).
        dead: Alerts that became dead letters in this pass.
        held: Alerts waiting for their destination's digest period.
        waiting: Alerts left for the next pass because their receiver was down.
        errors: One line per failure, naming the destination and what the receiver did.
    """

    queued: Derived = field(default_factory=Derived)
    sent: int = 0
    messages: int = 0
    failed: int = 0
    dead: int = 0
    held: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts and errors."""
        return {
            "queued": {
                "mql": self.queued.mql,
                "jump": self.queued.jump,
                "monitor": self.queued.monitor,
                "mqa": self.queued.mqa,
            },
            "sent": self.sent,
            "messages": self.messages,
            "failed": self.failed,
            "dead": self.dead,
            "held": self.held,
            "waiting": self.waiting,
            "errors": self.errors,
        }


TransportFactory = Callable[[str], Transport | None]


def deliver(
    engine: Engine,
    config: AlertConfig,
    now: datetime | None = None,
    derive: bool = True,
) -> DeliveryReport:
    """Queue new alerts (unless ``derive`` is off) and send every due one.

    Args:
        engine: An open, migrated store.
        config: Destinations and pacing.
        now: The pass's moment (default: now); tests move it to skip the backoff.
        derive: Whether to queue the alerts of new store rows first.

    Raises:
        AlertsConfigError: when no destination is configured.
    """
    if not config.configured:
        raise AlertsConfigError(
            "no alert destination: set LEADSCORE_SLACK_WEBHOOK_URL, LEADSCORE_SLACK_CHANNELS "
            "(with LEADSCORE_SLACK_TOKEN) or LEADSCORE_WEBHOOK_URL (with LEADSCORE_WEBHOOK_SECRET)"
        )
    now = now or utc_now()
    report = DeliveryReport()
    if derive:
        report.queued = derive_alerts(engine, config.route, config.jump, now)
    rows = due(engine, now)
    for destination, group in groupby(rows, key=lambda r: r.destination):
        _deliver_to(engine, config, destination, list(group), now, report)
    return report


def retry_dead(
    engine: Engine, config: AlertConfig, now: datetime | None = None, destination: str | None = None
) -> tuple[int, DeliveryReport]:
    """Put dead letters back in the queue and send them (``leadscore alerts retry``).

    Returns:
        Alerts revived, and the pass that sent them (and anything else due).
    """
    now = now or utc_now()
    revived = revive_dead(engine, now, destination)
    return revived, deliver(engine, config, now, derive=False)


@contextmanager
def _opened(transport: Transport | None) -> Iterator[Transport | None]:
    try:
        yield transport
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            close()


def _deliver_to(
    engine: Engine,
    config: AlertConfig,
    destination: str,
    rows: list[OutboxRow],
    now: datetime,
    report: DeliveryReport,
) -> None:
    with _opened(config.transport(destination)) as transport:
        if transport is None:
            taken = claim(engine, rows, now, LEASE_SECONDS)
            error = f"{destination}: no longer configured (its setting was removed)"
            report.dead += mark_failed(engine, taken, now, error, config.backoff, permanent=True)
            report.failed += len(taken)
            report.errors.append(error)
            return
        slack = destination.startswith("slack")
        if slack and config.digest_minutes > 0:
            period = timedelta(minutes=config.digest_minutes)
            last = last_sent(engine, destination)
            if last is not None and now - last < period:
                report.held += len(rows)
                return
            batches = [rows]
        else:
            batches = [[row] for row in rows]
        for index, batch in enumerate(batches):
            taken = claim(engine, batch, now, LEASE_SECONDS)
            if not taken:
                continue
            try:
                transport.send(_message(config, destination, taken), _key(taken))
            except DeliveryError as exc:
                report.failed += len(taken)
                report.errors.append(str(exc))
                report.dead += mark_failed(
                    engine,
                    taken,
                    now,
                    str(exc),
                    config.backoff,
                    exc.retry_after,
                    permanent=not exc.transient,
                )
                if exc.transient:  # receiver down or busy: the rest wait for the next pass
                    rest = [row for later in batches[index + 1 :] for row in later]
                    report.waiting += len(rest)
                    return
                continue
            mark_sent(engine, [row.id for row in taken], now)
            report.sent += len(taken)
            report.messages += 1


def _message(config: AlertConfig, destination: str, rows: list[OutboxRow]) -> dict[str, Any]:
    if destination == WEBHOOK:
        return webhook_body(rows[0], config.public_url)
    if len(rows) == 1:
        return slack_message(rows[0], config.public_url)
    return slack_digest(rows, config.public_url)


def _key(rows: list[OutboxRow]) -> str:
    """The idempotency key of a message: its alert's, or a digest's first and count."""
    if len(rows) == 1:
        return rows[0].idempotency_key
    return f"digest:{rows[0].idempotency_key}+{len(rows) - 1}"
