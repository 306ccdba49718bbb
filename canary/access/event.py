"""An access to patient records, as a hospital audit trail reports it.

Every format (DICOM PS3.15 A.5 audit messages, RFC 3881, FHIR AuditEvent,
an application's log table) is read into the same ``AccessEvent``: who
(user, workstation, address), did what (``Action``), when, to which patients
(``PatientRef``: an identifier and the authority that issued it). Matching an
event to canaries and deciding what it means is done on these, whatever the
trail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone

MAX_MESSAGE_BYTES = 64 * 1024  # an audit message larger than this is refused unread
MAX_PATIENTS = 1000  # patients kept from one message (a query can name many)


class Action(str, enum.Enum):
    READ = "read"
    QUERY = "query"  # a search whose results named these patients
    EXPORT = "export"
    PRINT = "print"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    OTHER = "other"

    @property
    def bulk(self) -> bool:
        """An action that carries records out in numbers: one canary in it is already a theft sign."""
        return self in (Action.QUERY, Action.EXPORT, Action.PRINT)


@dataclass(frozen=True, slots=True)
class PatientRef:
    """One patient an audit message names."""

    value: str  # the identifier as written, trimmed: "123", "2840575115123 45", a uuid
    authority: str | None = None  # assigning authority: an OID ("1.2.250.1.213.1.4.8"), a FHIR system URL
    reference: bool = False  # a FHIR reference ("Patient/123"): ``value`` is the resource id


@dataclass(frozen=True, slots=True)
class AccessEvent:
    action: Action
    at: datetime | None  # when the application says it happened (UTC), None if it did not say
    user: str | None  # the requesting user's id (login), as the trail names it
    user_name: str | None  # a display name, when given
    workstation: str | None  # host name or network access point of the requestor
    address: str | None  # IP address of the requestor, when the trail gives one
    audit_source: str | None  # which application sent it (AuditSourceID, FHIR source.observer)
    event_code: str | None  # "DCM 110110", "rest read"...: kept as evidence
    outcome: str | None  # "0" success, "4"/"8"/"12" failures (DICOM/FHIR codes)
    patients: tuple[PatientRef, ...]
    format: str  # "dicom", "rfc3881", "fhir", or the application table it came from


class AuditMessageError(ValueError):
    """An audit message that cannot be read: counted, logged by kind, never a hit."""


def utc_moment(text: str | None) -> datetime | None:
    """An ISO 8601 time as UTC (naive: taken as UTC); None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def clean_text(text: str | None, limit: int = 256) -> str | None:
    """Attacker-controlled text: control characters dropped, length capped."""
    if text is None:
        return None
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:limit] or None
