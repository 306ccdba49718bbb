"""Wire formats of an Alert: JSON document, Slack, Teams, Mattermost, RFC 5424 syslog.

Pure functions of the Alert. Evidence is attacker-controlled: Slack text has
``& < >`` escaped (no ``<!channel>`` injection), Mattermost and Teams show
hits only inside code/preformatted blocks, syslog structured-data values are
escaped as RFC 5424 requires.
"""

from __future__ import annotations

import html
import json
from datetime import timezone
from typing import Any, Iterable, Mapping

from canary.alerts.message import Alert

SLACK_TEXT_LIMIT = 2900  # a section block takes 3000 characters
CHAT_HITS = 15  # hits shown in chat messages; the email and JSON carry them all
SD_ID = "canary@32473"  # 32473: the IANA enterprise number reserved for documentation
SYSLOG_SEVERITY = {"critical": 2, "high": 4, "info": 5}
_COLORS = {"critical": "B00020", "high": "D35400", "info": "555555"}


def json_document(alert: Alert) -> dict[str, Any]:
    """The full structured alert (webhook ``json`` format, syslog ``json`` format)."""
    data = dict(alert.data)
    data.pop("facts", None)
    return {"type": data.pop("type", "canary.alert"), "id": alert.id, "kind": alert.kind.value,
            "level": alert.level, "subject": alert.subject,
            "created_at": alert.created_at.astimezone(timezone.utc).isoformat(), **data}


def shrink(document: dict[str, Any], limit: int) -> bytes:
    """JSON bytes of at most ``limit`` bytes, dropping listed hits first (for UDP)."""
    encoded = _dumps(document)
    if len(encoded) <= limit:
        return encoded
    smaller = {k: v for k, v in document.items() if k not in ("hits", "incidents", "held")}
    smaller["truncated"] = True
    if isinstance(document.get("hits"), list):
        smaller["hits"] = document["hits"][-3:]
    encoded = _dumps(smaller)
    if len(encoded) <= limit:
        return encoded
    smaller.pop("hits", None)
    return _dumps(smaller)[:limit]


def hit_lines(alert: Alert, limit: int = CHAT_HITS) -> list[str]:
    """One line per hit (newest last): id, time, channel, classification, remote, evidence."""
    hits: list[Mapping[str, Any]] = list(alert.data.get("hits") or ())
    for incident in alert.data.get("incidents") or ():
        hits += incident.get("hits") or ()
    lines = []
    for hit in hits[-limit:]:
        evidence = "; ".join(f"{k}={v}" for k, v in (hit.get("evidence") or {}).items())
        lines.append(f"#{hit['id']} {hit['at'][:19]}Z {hit['channel']} {hit['classification']} "
                     f"{hit.get('remote') or '-'} {evidence[:300]}".rstrip())
    if len(hits) > limit:
        lines.insert(0, f"... {len(hits) - limit} earlier hit(s) in the email / canary hits")
    return lines


def _actions(alert: Alert) -> list[Mapping[str, Any]]:
    return list(alert.data.get("actions") or ())


def _facts(alert: Alert) -> list[tuple[str, str]]:
    return [(str(label), str(value)) for label, value in alert.data.get("facts") or ()]


# -- chat formats ---------------------------------------------------------------------


def slack(alert: Alert) -> dict[str, Any]:
    e = _slack_escape
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.subject[:150]}},
    ]
    facts = "\n".join(f"*{e(label)}* : {e(value)}" for label, value in _facts(alert))
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts[:SLACK_TEXT_LIMIT]}})
    if alert.data.get("meaning"):
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                    "text": e(alert.data["meaning"])[:SLACK_TEXT_LIMIT]}})
    actions = "\n".join(
        f"{n}. {e(a['text'])}" + (f" <{a['url']}|lien>" if a.get("url") else "")
        for n, a in enumerate(_actions(alert), 1)
    )
    if actions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": actions[:SLACK_TEXT_LIMIT]}})
    lines = hit_lines(alert)
    if lines:
        body = e("\n".join(lines).replace("```", "'''"))[:SLACK_TEXT_LIMIT - 8]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{body}```"}})
    return {"text": alert.subject, "blocks": blocks}


def mattermost(alert: Alert) -> dict[str, Any]:
    parts = [f"#### {_md_line(alert.subject)}"]
    parts += [f"**{_md_line(label)}** : {_md_line(value)}" for label, value in _facts(alert)]
    if alert.data.get("meaning"):
        parts += ["", _md_line(alert.data["meaning"])]
    for n, action in enumerate(_actions(alert), 1):
        parts.append(f"{n}. {_md_line(action['text'])}" + (f" {action['url']}" if action.get("url") else ""))
    lines = hit_lines(alert)
    if lines:
        parts += ["```", "\n".join(lines).replace("```", "'''"), "```"]
    return {"text": "\n".join(parts)[:16000], "username": "canary"}


def teams(alert: Alert) -> dict[str, Any]:
    """An Office 365 connector MessageCard."""
    e = html.escape
    sections: list[dict[str, Any]] = [{
        "facts": [{"name": e(label), "value": e(value)} for label, value in _facts(alert)],
        "text": e(alert.data.get("meaning", "")),
    }]
    if _actions(alert):
        sections.append({"title": "Que faire (what to do)", "text": "<br>".join(
            f"{n}. {e(a['text'])}" for n, a in enumerate(_actions(alert), 1))})
    lines = hit_lines(alert)
    if lines:
        sections.append({"title": "Accès (hits)", "text": "<pre>" + e("\n".join(lines)) + "</pre>"})
    return {
        "@type": "MessageCard", "@context": "https://schema.org/extensions",
        "summary": alert.subject, "title": e(alert.subject),
        "themeColor": _COLORS.get(alert.level, "555555"), "sections": sections,
        "potentialAction": [
            {"@type": "OpenUri", "name": e(a["text"][:40]) + "…",
             "targets": [{"os": "default", "uri": a["url"]}]}
            for a in _actions(alert) if a.get("url")
        ],
    }


WEBHOOK_FORMATS = {"json": json_document, "slack": slack, "teams": teams, "mattermost": mattermost}


# -- syslog ------------------------------------------------------------------------------


def rfc5424(alert: Alert, *, facility: int, app_name: str, hostname: str, procid: int) -> bytes:
    """One RFC 5424 message: key fields as structured data, the subject as MSG."""
    pri = facility * 8 + (6 if alert.kind.value == "test" else SYSLOG_SEVERITY.get(alert.level, 5))
    stamp = alert.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = " ".join(f'{name}="{_sd_escape(value)}"' for name, value in _sd_params(alert))
    header = f"<{pri}>1 {stamp} {_ascii(hostname, 255)} {_ascii(app_name, 48)} {procid} " \
             f"{_ascii(alert.kind.value, 32)} [{SD_ID} {params}] "
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + alert.subject.encode("utf-8")


def _sd_params(alert: Alert) -> Iterable[tuple[str, Any]]:
    data = alert.data
    yield "alert", alert.id if alert.id is not None else "-"
    yield "level", alert.level
    source = data.get("source") or {}
    if source.get("name"):
        yield "source", source["name"]
    if source.get("establishment"):
        yield "establishment", source["establishment"]
    canary = data.get("canary") or {}
    if canary.get("id") is not None:
        yield "canary", canary["id"]
    incident = data.get("incident") or {}
    if incident:
        yield "incident", incident["id"]
        yield "hits", incident.get("hit_count", 0)
    trigger = data.get("trigger") or {}
    if trigger:
        yield "channel", trigger["channel"]
        yield "classification", trigger["classification"]
        yield "remote", trigger.get("remote") or "-"
    if data.get("deadline"):
        yield "cnil_deadline", data["deadline"]["cnil_art33"]
    if data.get("sink"):
        yield "sink", data["sink"]


def _sd_escape(value: Any) -> str:
    text = " ".join(str(value).split())[:256]
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _ascii(value: str, limit: int) -> str:
    text = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def _slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_line(value: str) -> str:
    """Operator text in Mattermost markdown, without mention or link tricks."""
    return " ".join(value.split()).replace("@", "@\u200b").replace("<", "&lt;")


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")
