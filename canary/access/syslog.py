"""Audit messages as IHE ATNA sends them over syslog (ITI-20), and the framing of a syslog stream.

* ``frames(buffer)``: a TCP/TLS syslog stream is a run of messages, each
  either octet-counted (RFC 6587 3.4.1 / RFC 5425: ``LEN SP MSG``) or ended by
  a newline (non-transparent framing); returns the complete frames and what
  is left for the next read. A frame longer than the message cap is an error
  (the connection is to be closed: its framing cannot be trusted).
* ``payload(message)``: the MSG part of an RFC 5424 message (the audit XML
  or JSON), header and structured data skipped, a BOM dropped; an RFC 3164
  line or a bare payload is taken from its first ``<AuditMessage``/``<?xml``/``{``.
* ``read(payload)``: the AccessEvents of one audit payload, whatever its form.
"""

from __future__ import annotations

import re

from canary.access import fhiraudit, xmlaudit
from canary.access.event import MAX_MESSAGE_BYTES, AccessEvent, AuditMessageError

_HEADER = re.compile(rb"^<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ ")  # PRI VERSION TIMESTAMP HOST APP PROCID MSGID
_START = re.compile(rb"<\?xml|<(?:\w+:)?AuditMessage|\{")
MAX_FRAME = MAX_MESSAGE_BYTES + 2048  # the audit message and a syslog header


def frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """(complete frames, the rest) of a syslog stream buffer; AuditMessageError on a broken frame."""
    found: list[bytes] = []
    at = 0
    while at < len(buffer):
        head = buffer[at:at + 8]
        if head[:1].isdigit():  # octet counting: "123 <165>1 ..."
            space = buffer.find(b" ", at, at + 8)
            if space < 0:
                if len(buffer) - at >= 8:
                    raise AuditMessageError("broken octet count")
                break
            digits = buffer[at:space]
            if not digits.isdigit():
                raise AuditMessageError("broken octet count")
            length = int(digits)
            if length > MAX_FRAME:
                raise AuditMessageError(f"oversized frame: {length} bytes")
            end = space + 1 + length
            if end > len(buffer):
                break
            found.append(buffer[space + 1:end])
            at = end
        else:  # newline framing
            end = buffer.find(b"\n", at)
            if end < 0:
                if len(buffer) - at > MAX_FRAME:
                    raise AuditMessageError("oversized frame: no line end")
                break
            frame = buffer[at:end].rstrip(b"\r")
            if frame:
                found.append(frame)
            at = end + 1
    return found, buffer[at:]


def payload(message: bytes) -> bytes:
    """The audit payload of one syslog message."""
    header = _HEADER.match(message)
    if header is not None:
        rest = message[header.end():]
        rest = _skip_structured_data(rest)
        rest = rest[1:] if rest[:1] == b" " else rest
        return rest[3:] if rest[:3] == b"\xef\xbb\xbf" else rest
    start = _START.search(message)
    if start is None:
        raise AuditMessageError("no audit payload in the syslog message")
    return message[start.start():]


def _skip_structured_data(rest: bytes) -> bytes:
    if rest[:1] == b"-":
        return rest[1:]
    at = 0
    while rest[at:at + 1] == b"[":  # SD-ELEMENTs: "]" inside a value is escaped as "\]"
        at += 1
        while at < len(rest):
            if rest[at:at + 1] == b"\\":
                at += 2
                continue
            if rest[at:at + 1] == b"]":
                at += 1
                break
            at += 1
        else:
            raise AuditMessageError("unterminated structured data")
    return rest[at:]


def read(data: bytes) -> list[AccessEvent]:
    """The AccessEvents of one audit payload: DICOM/RFC 3881 XML or FHIR JSON."""
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):  # JSON: fhiraudit refuses what is not a FHIR resource
        return fhiraudit.parse(stripped)
    if stripped[:1] == b"<":
        return [xmlaudit.parse(stripped)]
    raise AuditMessageError("neither an XML audit message nor a FHIR AuditEvent")
