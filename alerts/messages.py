"""What an alert says on each kind of channel. Pure functions of the alert (no sending, no
database): the dispatcher sends what these return, byte for byte.

A message names the cue, the alert and the last error (they are in the alert's message), and
links to the execution in the admin (BASE_URL). It never holds a secret: no API key, no
webhook secret, no channel URL.
"""

import json

from django.conf import settings
from django.contrib.admin.utils import quote

from cueapi.timefmt import ts_iso

TITLES = {
    "consecutive_failures": "failing",
    "recovered": "recovered",
    "missed": "missed runs",
    "verification_failed": "verification failed",
    "outcome_timeout": "no outcome",
    "test": "test alert",
}
# Discord embed colours: red, green, amber.
COLOURS = {"critical": 0xD9534F, "warning": 0xD9534F, "info": 0x5CB85C}


def title(alert, cue_name: str | None) -> str:
    what = TITLES.get(alert.alert_type, alert.alert_type.replace("_", " "))
    repeat = (alert.metadata or {}).get("repeat")
    if repeat:
        what += f" (reminder {repeat})"
    return f"CueAPI: cue '{cue_name}' {what}" if cue_name else f"CueAPI: {what}"


def execution_link(alert) -> str | None:
    if not alert.execution_id:
        return None
    return f"{settings.BASE_URL}/admin/executions/execution/{alert.execution_id}/change/"


def cue_link(alert) -> str | None:
    if not alert.cue_id:
        return None
    return f"{settings.BASE_URL}/admin/cues/cue/{quote(alert.cue_id)}/change/"


def webhook_body(alert) -> str:
    """The alert webhook's JSON (unchanged since before channels: receivers rely on it)."""
    return json.dumps({
        "alert_id": str(alert.id), "alert_type": alert.alert_type, "cue_id": alert.cue_id,
        "created_at": ts_iso(alert.created_at),
        "execution_id": str(alert.execution_id) if alert.execution_id else None,
        "message": alert.message, "metadata": alert.metadata or {}, "severity": alert.severity,
    }, sort_keys=True, default=str)


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions): they must be escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert, cue_name: str | None) -> str:
    """Slack's incoming-webhook JSON: `text` (notifications, old clients) and one block."""
    heading = title(alert, cue_name)
    lines = [f"*{_slack_escape(heading)}*", _slack_escape(alert.message)]
    text = f"{_slack_escape(heading)}: {_slack_escape(alert.message)}"
    link = execution_link(alert) or cue_link(alert)
    if link:
        lines.append(f"<{link}|Open in the admin>")
        text += f"\n<{link}|Open in the admin>"
    # `text` (markup too) is what a notification or a client without blocks shows: all of it.
    return json.dumps({
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    })


def discord_body(alert, cue_name: str | None) -> str:
    """Discord's webhook JSON: a line of content and one embed."""
    heading = title(alert, cue_name)
    embed = {"title": heading[:256], "description": alert.message[:4000],
             "color": COLOURS.get(alert.severity, COLOURS["warning"])}
    link = execution_link(alert) or cue_link(alert)
    if link:
        embed["url"] = link
    return json.dumps({"content": heading[:2000], "embeds": [embed]})


def email(alert, cue_name: str | None) -> tuple[str, str]:
    """(subject, text) of an alert email."""
    lines = [alert.message, "", f"Alert: {alert.alert_type}", f"Cue: {alert.cue_id or '-'}",
             f"Execution: {alert.execution_id or '-'}", f"Time: {ts_iso(alert.created_at)}"]
    link = execution_link(alert) or cue_link(alert)
    if link:
        lines += ["", link]
    return title(alert, cue_name)[:255], "\n".join(lines) + "\n"
