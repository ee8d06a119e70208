"""What an alert says: a Slack Block Kit message, or the generic webhook's JSON body.

A Slack message carries the score, grade, top reasons, the next best action and a link
to the lead on the worklist (``<public_url>/#lead=<id>``), so a rep can act from the
channel. A digest lists several alerts in one message, one line each, so a flood of new
MQLs is one message per destination per digest period.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from store.alerts import OutboxRow

DIGEST_LINES = 20
"""Alerts a digest lists one by one; the rest are counted (Slack allows 50 blocks)."""
_KIND_TITLES = {
    "mql": "New MQL",
    "mqa": "New MQA",
    "jump": "Score jump",
    "monitor": "Model monitor alert",
}


def lead_link(public_url: str | None, lead_id: str | None) -> str | None:
    """The lead on the worklist (None without a public URL or a lead)."""
    if not public_url or not lead_id:
        return None
    return f"{public_url.rstrip('/')}/#lead={quote(lead_id, safe='')}"


def account_link(public_url: str | None, account_id: str | None) -> str | None:
    """The account on the account list (None without a public URL or an account)."""
    if not public_url or not account_id:
        return None
    return f"{public_url.rstrip('/')}/account-view#account={quote(account_id, safe='')}"


def alert_link(row: OutboxRow, public_url: str | None) -> str | None:
    """Where a rep acts on the alert: the account for an MQA, else the lead."""
    if row.kind == "mqa":
        return account_link(public_url, row.payload.get("account_id"))
    return lead_link(public_url, row.lead_id)


def _escape(text: Any) -> str:
    """Text safe inside Slack mrkdwn (``&``, ``<`` and ``>`` are control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(row: OutboxRow) -> str:
    """One line about the alert: what happened to which lead (or model)."""
    p = row.payload
    if row.kind == "monitor":
        checks = p.get("checks", [])
        names = ", ".join(f"{c['check']}/{c['subject']}" for c in checks[:5])
        more = f" and {len(checks) - 5} more" if len(checks) > 5 else ""
        return (
            f"{_KIND_TITLES['monitor']}: {p.get('model_name')} v{p.get('model_version')}, "
            f"{len(checks)} check(s) at alert ({names}{more})"
        )
    where = f", {p['region']}" if p.get("region") else ""
    if row.kind == "mqa":
        people = f", {p['engaged']} of {p['leads']} people engaged" if p.get("leads") else ""
        return (
            f"{_KIND_TITLES['mqa']}: account {p.get('account_id')}, score {p.get('score')}, "
            f"grade {p.get('grade')}{where}{people}"
        )
    if row.kind == "jump":
        return (
            f"{_KIND_TITLES['jump']}: lead {row.lead_id} {p.get('previous_score')} → "
            f"{p.get('score')} (+{p.get('change')}), grade {p.get('grade')}{where}"
        )
    return (
        f"{_KIND_TITLES['mql']}: lead {row.lead_id}, score {p.get('score')}, "
        f"grade {p.get('grade')}{where}"
    )


def _fields(p: dict[str, Any]) -> list[dict[str, str]]:
    shown = [
        ("Score", p.get("score")),
        ("Grade", p.get("grade")),
        ("Probability", None if p.get("probability") is None else f"{p['probability']:.0%}"),
        ("Region", p.get("region")),
        ("Source", p.get("lead_source")),
        ("Owner", p.get("owner")),
        (
            "People engaged",
            None if p.get("leads") is None else f"{p.get('engaged')} of {p['leads']}",
        ),
    ]
    return [
        {"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"}
        for name, value in shown
        if value is not None
    ]


def slack_message(row: OutboxRow, public_url: str | None) -> dict[str, Any]:
    """One alert as a Slack message: ``text`` (the notification) and ``blocks``."""
    text = headline(row)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}
    ]
    p = row.payload
    if row.kind == "monitor":
        lines = [
            f"• *{_escape(c['check'])}* {_escape(c['subject'])}: {_escape(c['metric'])} = "
            f"{_number(c.get('value'))} (reference {_number(c.get('reference'))})"
            for c in p.get("checks", [])[:DIGEST_LINES]
        ]
        blocks.append(_section("\n".join(lines) or "no details"))
        return {"text": text, "blocks": blocks}
    blocks.append({"type": "section", "fields": _fields(p)[:10]})
    if p.get("reasons"):
        why = "\n".join(f"• {_escape(r)}" for r in p["reasons"])
        blocks.append(_section(f"*Why*\n{why}"))
    if p.get("next_best_action"):
        blocks.append(_section(f"*Next best action*\n{_escape(p['next_best_action'])}"))
    if p.get("missing_personas"):
        missing = ", ".join(_escape(str(m).replace("_", " ")) for m in p["missing_personas"])
        contact = p.get("next_contact")
        then = f"; reach {_escape(contact)} next" if contact else ""
        blocks.append(_section(f"*Buying group*\nMissing: {missing}{then}"))
    link = alert_link(row, public_url)
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {
                            "type": "plain_text",
                            "text": "Open the account"
                            if row.kind == "mqa"
                            else "Open in the worklist",
                        },
                        "url": link,
                    }
                ],
            }
        )
    return {"text": text, "blocks": blocks}


def slack_digest(rows: list[OutboxRow], public_url: str | None) -> dict[str, Any]:
    """Several alerts as one Slack message: a line each, the rest counted."""
    if len(rows) == 1:
        return slack_message(rows[0], public_url)
    counts = {kind: sum(r.kind == kind for r in rows) for kind in _KIND_TITLES}
    summary = ", ".join(
        f"{n} {_KIND_TITLES[k].lower()}{'s' if n > 1 else ''}" for k, n in counts.items() if n
    )
    text = f"{len(rows)} lead alerts: {summary}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}
    ]
    lines = []
    for row in rows[:DIGEST_LINES]:
        line = _escape(headline(row))
        link = alert_link(row, public_url)
        if link:
            line += f" <{link}|open>"
        action = row.payload.get("next_best_action")
        if action:
            line += f"\n    _next:_ {_escape(action)}"
        lines.append(f"• {line}")
    for start in range(0, len(lines), 10):  # a section's text is at most 3,000 characters
        blocks.append(_section("\n".join(lines[start : start + 10])[:3000]))
    if len(rows) > DIGEST_LINES:
        more = len(rows) - DIGEST_LINES
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]}
        )
    return {"text": text, "blocks": blocks}


def webhook_body(row: OutboxRow, public_url: str | None) -> dict[str, Any]:
    """One alert as the generic webhook's JSON: the event, its facts and the link."""
    return {
        "id": row.idempotency_key,
        "type": row.kind,
        "occurred_at": row.occurred_at.isoformat(),
        "lead_id": row.lead_id,
        "account_id": row.payload.get("account_id"),
        "region": row.region,
        "url": alert_link(row, public_url),
        "summary": headline(row),
        "data": row.payload,
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
