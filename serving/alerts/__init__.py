"""Alerts to Slack and webhooks: new MQLs, score jumps and model-monitor alerts.

The store derives and queues them (``store.alerts``: the outbox); this package builds
the messages (``messages``: Block Kit for Slack, JSON for the generic webhook), talks to
the receivers (``transports``: ``slack_sdk``'s incoming webhook and ``chat.postMessage``,
a signed webhook over httpx) and runs a delivery pass (``deliver``: what ``leadscore
alerts send`` and ``leadscore alerts retry`` do).
"""
