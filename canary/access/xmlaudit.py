"""DICOM PS3.15 A.5 audit messages and their ancestor, RFC 3881, read into AccessEvents.

Both are an ``AuditMessage`` with the same parts, which IHE ATNA (ITI-20)
carries over syslog:

* ``EventIdentification``: ``EventActionCode`` (C, R, U, D, E),
  ``EventDateTime``, ``EventOutcomeIndicator``, and an ``EventID`` code
  (DICOM writes ``csd-code``/``originalText``, RFC 3881 ``code``/``displayName``):
  DCM 110110 Patient Record, 110106 Export, 110112 Query...;
* ``ActiveParticipant``: ``UserID``, ``UserName``, ``UserIsRequestor``,
  ``NetworkAccessPointID`` (type 1 machine name, 2 IP address);
* ``AuditSourceIdentification``: ``AuditSourceID``, the sending application;
* ``ParticipantObjectIdentification``: a patient when its
  ``ParticipantObjectTypeCode`` is 1 (person) and ``...TypeCodeRole`` 1
  (patient), or its ``ParticipantObjectIDTypeCode`` is 2 (patient number);
  ``ParticipantObjectID`` is an HL7 CX (``123^^^&1.2.250.1.213.1.4.8&ISO``)
  or a plain identifier.

Messages are hostile input: refused above MAX_MESSAGE_BYTES before parsing,
and parsed by defusedxml with any DTD forbidden (no entity expansion, no
external entity): a billion-laughs or XXE message is an error, not a hit.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from canary.access.event import (
    MAX_MESSAGE_BYTES, MAX_PATIENTS, AccessEvent, Action, AuditMessageError, PatientRef, clean_text, utc_moment,
)

_ACTIONS = {"C": Action.CREATE, "R": Action.READ, "U": Action.UPDATE, "D": Action.DELETE}
# DICOM/IHE event ids that say more than the action code (DICOM PS3.16 CID 400 "Audit Event ID").
_EVENT_ACTIONS = {"110106": Action.EXPORT, "110112": Action.QUERY, "110107": Action.CREATE}


def parse(data: bytes) -> AccessEvent:
    """One ``AuditMessage`` (bytes of XML) as an AccessEvent; AuditMessageError if unreadable."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    if len(data) > MAX_MESSAGE_BYTES:
        raise AuditMessageError(f"oversized: {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise AuditMessageError(f"refused XML: {type(err).__name__}") from None
    except (ParseError, ValueError) as err:
        raise AuditMessageError(f"malformed XML: {str(err)[:120]}") from None
    if _local(root.tag) != "AuditMessage":
        raise AuditMessageError(f"not an audit message: root element {_local(root.tag)[:40]!r}")
    return _event(root)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _code(element: Element | None) -> tuple[str | None, str | None]:
    """(code, text) of a coded element, DICOM or RFC 3881 attribute names."""
    if element is None:
        return None, None
    code = element.get("csd-code") or element.get("code")
    text = element.get("originalText") or element.get("displayName")
    return code, text


def _event(root: Element) -> AccessEvent:
    identification = next(iter(_children(root, "EventIdentification")), None)
    if identification is None:
        raise AuditMessageError("no EventIdentification")
    dicom = any(child.get("csd-code") is not None for child in root.iter())
    event_id = next(iter(_children(identification, "EventID")), None)
    code, text = _code(event_id)
    system = event_id.get("codeSystemName") if event_id is not None else None
    action = _action(identification.get("EventActionCode"), code, text,
                     [_code(t) for t in _children(identification, "EventTypeCode")])
    requestor = _requestor(_children(root, "ActiveParticipant"))
    source = next(iter(_children(root, "AuditSourceIdentification")), None)
    patients = tuple(_patients(_children(root, "ParticipantObjectIdentification")))
    address = workstation = None
    if requestor is not None:
        point = requestor.get("NetworkAccessPointID")
        if requestor.get("NetworkAccessPointTypeCode") == "2":
            address = point
        else:
            workstation = point
    return AccessEvent(
        action=action,
        at=utc_moment(identification.get("EventDateTime")),
        user=clean_text(requestor.get("UserID")) if requestor is not None else None,
        user_name=clean_text(requestor.get("UserName")) if requestor is not None else None,
        workstation=clean_text(workstation), address=clean_text(address),
        audit_source=clean_text(source.get("AuditSourceID")) if source is not None else None,
        event_code=clean_text(" ".join(p for p in (system, code, text and f"({text})") if p)),
        outcome=clean_text(identification.get("EventOutcomeIndicator")),
        patients=patients, format="dicom" if dicom else "rfc3881",
    )


def _action(action_code: str | None, event_code: str | None, event_text: str | None,
            types: list[tuple[str | None, str | None]]) -> Action:
    if event_code in _EVENT_ACTIONS:
        return _EVENT_ACTIONS[event_code]
    words = " ".join(t or "" for t in (event_text, *(text for _c, text in types))).lower()
    if "print" in words:
        return Action.PRINT
    if "export" in words:
        return Action.EXPORT
    if "query" in words or "search" in words:
        return Action.QUERY
    return _ACTIONS.get((action_code or "").strip().upper(), Action.OTHER)


def _requestor(participants: list[Element]) -> Element | None:
    """The participant who asked (UserIsRequestor true), else the first one that names a user."""
    for participant in participants:
        if (participant.get("UserIsRequestor") or "").strip().lower() in ("true", "1"):
            return participant
    return next((p for p in participants if p.get("UserID")), None)


def _patients(objects: list[Element]):
    kept = 0
    for obj in objects:
        if kept >= MAX_PATIENTS:
            return
        type_code, role = obj.get("ParticipantObjectTypeCode"), obj.get("ParticipantObjectTypeCodeRole")
        id_type, _ = _code(next(iter(_children(obj, "ParticipantObjectIDTypeCode")), None))
        if not ((type_code == "1" and role == "1") or id_type == "2"):
            continue
        ref = cx_ref(obj.get("ParticipantObjectID") or "")
        if ref is not None:
            kept += 1
            yield ref


def cx_ref(text: str) -> PatientRef | None:
    """A PatientRef from an HL7 v2 CX (``123^^^HOSP&1.2.3&ISO``) or a plain identifier."""
    text = text.strip()
    if not text:
        return None
    if "^" not in text:
        return PatientRef(text[:128])
    parts = text.split("^")
    value = parts[0].strip()
    if not value:
        return None
    authority = None
    if len(parts) > 3 and parts[3]:
        namespace, _, rest = parts[3].partition("&")
        universal = rest.split("&")[0] if rest else ""
        authority = (universal or namespace).strip() or None
    return PatientRef(value[:128], authority[:128] if authority else None)
