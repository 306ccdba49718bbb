"""Real-shaped IHE ATNA audit messages (DICOM PS3.15 A.5) for the access tests."""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import quoteattr

INS = "1.2.250.1.213.1.4.8"
EVENT_IDS = {"R": ("110110", "Patient Record"), "E": ("110106", "Export"), "Q": ("110112", "Query")}


def dicom_message(user: str, patients: list[str], *, at: datetime, action: str = "R",
                  source: str = "DPI-PROD", address: str = "10.20.30.40", authority: str | None = None) -> bytes:
    """One DICOM audit message: ``user`` at ``address`` did ``action`` (R read, E export, Q query)
    on ``patients`` (plain ids; CX with ``authority`` when given)."""
    code, text = EVENT_IDS[action]
    objects = "".join(
        f'<ParticipantObjectIdentification ParticipantObjectID={quoteattr(_cx(p, authority))} '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">'
        '<ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>'
        '</ParticipantObjectIdentification>' for p in patients)
    action_code = {"Q": "E"}.get(action, action)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><AuditMessage>'
        f'<EventIdentification EventActionCode="{action_code}" EventDateTime="{at.isoformat()}" '
        f'EventOutcomeIndicator="0"><EventID csd-code="{code}" codeSystemName="DCM" originalText="{text}"/>'
        '</EventIdentification>'
        f'<ActiveParticipant UserID={quoteattr(user)} UserIsRequestor="true" '
        f'NetworkAccessPointID={quoteattr(address)} NetworkAccessPointTypeCode="2"/>'
        f'<AuditSourceIdentification AuditSourceID={quoteattr(source)}/>'
        f'{objects}</AuditMessage>'
    ).encode()


def syslog_line(message: bytes, host: str = "dpi01") -> bytes:
    """The message as an RFC 5424 syslog message (ATNA ITI-20: facility authpriv, APP-NAME the app)."""
    return b"<85>1 2024-03-05T14:21:07.123Z " + host.encode() + b" DPI 1234 IHE+RFC-3881 - \xef\xbb\xbf" + message


def _cx(value: str, authority: str | None) -> str:
    return f"{value}^^^&{authority}&ISO" if authority else value
