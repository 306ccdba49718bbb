"""Alert: one composed message, as stored in the outbox and handed to every sink.

A sink gets everything from the Alert (subject, text and HTML bodies, the
structured ``data`` for JSON and syslog): it never reads the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from canary.hits.hit import Classification
from canary.registry.hitrecords import AlertKind

PAYLOAD_VERSION = 1

# Order of seriousness, used for escalation and wording. UNMATCHED never alerts.
SEVERITY: dict[Classification, int] = {
    Classification.BULK_ACCESS: 5,  # a stolen account or an exfiltration under way
    Classification.CREDENTIAL_USE: 4,
    Classification.HUMAN: 3,
    Classification.UNJUSTIFIED_ACCESS: 3,  # told at once, like a person acting on the record
    Classification.AUTOMATED: 2,
    Classification.RESOLVER_RECHECK: 1,
    Classification.INTERNAL: 0,
    Classification.UNMATCHED: -1,
}
IMMEDIATE = SEVERITY[Classification.AUTOMATED]  # from here a hit is told at once


def severity(classification: Classification | str) -> int:
    return SEVERITY[Classification(classification)]


def level(highest: int) -> str:
    """Alert level from the highest severity of its hits."""
    if highest >= SEVERITY[Classification.CREDENTIAL_USE]:
        return "critical"
    if highest >= SEVERITY[Classification.AUTOMATED]:
        return "high"
    return "info"


class DeliveryError(Exception):
    """A sink could not deliver an alert; the outbox retries later."""


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    level: str  # critical, high, info
    subject: str  # one line, no control characters
    text: str
    html: str
    created_at: datetime
    recipients: tuple[str, ...] = ()  # the source's own addresses (sinks add theirs)
    data: Mapping[str, Any] = field(default_factory=dict)  # structured, JSON-ready
    id: int | None = None  # the outbox row, once stored

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": PAYLOAD_VERSION,
            "kind": self.kind.value,
            "level": self.level,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "created_at": self.created_at.isoformat(),
            "recipients": list(self.recipients),
            "data": dict(self.data),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], alert_id: int | None = None) -> "Alert":
        return cls(
            kind=AlertKind(payload["kind"]),
            level=str(payload.get("level", "info")),
            subject=str(payload["subject"]),
            text=str(payload.get("text", "")),
            html=str(payload.get("html", "")),
            created_at=datetime.fromisoformat(payload["created_at"]),
            recipients=tuple(payload.get("recipients") or ()),
            data=dict(payload.get("data") or {}),
            id=alert_id,
        )
