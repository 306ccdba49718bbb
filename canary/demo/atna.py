"""The demo EHR's audit trail: IHE ATNA audit messages (DICOM PS3.15 A.5) sent over TCP syslog.

``snoop`` plays a stolen account paging through patient records: one
"Patient Record" read (DCM 110110) per patient, as the EHR's audit module
would write it, each in an RFC 5424 message octet-counted on one TCP
connection (RFC 6587), as an ATNA secure node sends to its audit repository.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import quoteattr

Address = tuple[str, int]
AUDIT_SOURCE = "DPI-DEMO"


def audit_message(user: str, patient_number: str, at: datetime, workstation: str) -> bytes:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><AuditMessage>'
        f'<EventIdentification EventActionCode="R" EventDateTime="{at.isoformat()}" EventOutcomeIndicator="0">'
        '<EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/></EventIdentification>'
        f'<ActiveParticipant UserID={quoteattr(user)} UserIsRequestor="true" '
        f'NetworkAccessPointID={quoteattr(workstation)} NetworkAccessPointTypeCode="2"/>'
        f'<AuditSourceIdentification AuditSourceID="{AUDIT_SOURCE}"/>'
        f'<ParticipantObjectIdentification ParticipantObjectID={quoteattr(patient_number)} '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">'
        '<ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>'
        '</ParticipantObjectIdentification></AuditMessage>'
    )
    header = f"<85>1 {at.strftime('%Y-%m-%dT%H:%M:%S')}Z dpi-demo DPI - IHE+RFC-3881 - ".encode()
    return header + b"\xef\xbb\xbf" + xml.encode()


def snoop(user: str, patient_numbers: list[str], server: Address, workstation: str = "10.0.3.17",
          timeout: float = 5.0) -> str:
    """One audit message per record opened, a few seconds apart, on one TCP syslog connection."""
    start = datetime.now(timezone.utc).replace(microsecond=0)
    with socket.create_connection(server, timeout=timeout) as tcp:
        for n, number in enumerate(patient_numbers):
            message = audit_message(user, number, start + timedelta(seconds=4 * n), workstation)
            tcp.sendall(str(len(message)).encode() + b" " + message)
    return f"{len(patient_numbers)} audit messages sent"
