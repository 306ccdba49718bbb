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
and read by expat with defusedxml's guards and any DTD forbidden (no entity
expansion, no external entity): a billion-laughs or XXE message is an error,
not a hit.
"""

from __future__ import annotations

from typing import Mapping
from xml.parsers import expat

from canary.access.event import (
    MAX_MESSAGE_BYTES, MAX_PATIENTS, AccessEvent, Action, AuditMessageError, PatientRef, clean_text, utc_moment,
)

_ACTIONS = {"C": Action.CREATE, "R": Action.READ, "U": Action.UPDATE, "D": Action.DELETE}
# DICOM/IHE event ids that say more than the action code (DICOM PS3.16 CID 400 "Audit Event ID").
_EVENT_ACTIONS = {"110106": Action.EXPORT, "110112": Action.QUERY, "110107": Action.CREATE}


def parse(data: bytes) -> AccessEvent:
    """One ``AuditMessage`` (bytes of XML) as an AccessEvent; AuditMessageError if unreadable."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise AuditMessageError(f"oversized: {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
    collector = _Collector()
    try:
        collector.feed(data)
    except AuditMessageError:
        raise
    except ValueError as err:  # defusedxml's refusals are ValueErrors: its module is needed only here
        from defusedxml import DefusedXmlException

        if isinstance(err, DefusedXmlException):
            raise AuditMessageError(f"refused XML: {type(err).__name__}") from None
        raise AuditMessageError(f"malformed XML: {str(err)[:120]}") from None
    except expat.ExpatError as err:
        raise AuditMessageError(f"malformed XML: {str(err)[:120]}") from None
    return _event(collector)


class _Collector:
    """Reads an audit message in one expat pass, keeping only the attributes ``_event`` needs.

    No element tree is built (the receivers' hot path: it takes about a third of the
    CPU time defusedxml's ElementTree, with its pure-Python tree builder, took). The protections are defusedxml's
    own (``defusedxml/ElementTree.py``, ``DefusedXMLParser.__init__``): the same expat
    handlers raise its DTDForbidden, EntitiesForbidden and ExternalReferenceForbidden
    before anything is expanded, and any DTD at all is refused (``forbid_dtd``), so no
    entity can even be declared; an undeclared ``&x;`` is an expat error.
    """

    def __init__(self) -> None:
        self.root: str | None = None
        self.identification: dict[str, str] | None = None
        self.event_id: dict[str, str] | None = None
        self.event_types: list[dict[str, str]] = []
        self.participants: list[dict[str, str]] = []
        self.source: dict[str, str] | None = None
        self.objects: list[tuple[dict[str, str], dict[str, str] | None]] = []
        self.dicom = False
        self._depth = 0
        self._top: str | None = None  # the root's child being read: "identification", "object" or None

    def feed(self, data: bytes) -> None:
        parser = expat.ParserCreate(namespace_separator="}")  # "uri}Name", as ElementTree reads it
        parser.StartDoctypeDeclHandler = _forbid_doctype
        parser.EntityDeclHandler = _forbid_entity
        parser.UnparsedEntityDeclHandler = _forbid_unparsed_entity
        parser.ExternalEntityRefHandler = _forbid_external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.Parse(data, True)

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        depth, self._depth = self._depth, self._depth + 1
        if not self.dicom and "csd-code" in attributes:
            self.dicom = True
        name = tag.rsplit("}", 1)[-1]
        if depth == 0:
            if name != "AuditMessage":
                raise AuditMessageError(f"not an audit message: root element {name[:40]!r}")
            self.root = name
        elif depth == 1:
            self._top = None
            if name == "EventIdentification":
                if self.identification is None:
                    self.identification = attributes
                    self._top = "identification"
            elif name == "ActiveParticipant":
                self.participants.append(attributes)
            elif name == "AuditSourceIdentification":
                if self.source is None:
                    self.source = attributes
            elif name == "ParticipantObjectIdentification":
                self.objects.append((attributes, None))
                self._top = "object"
        elif depth == 2 and self._top is not None:
            if self._top == "identification":
                if name == "EventID" and self.event_id is None:
                    self.event_id = attributes
                elif name == "EventTypeCode":
                    self.event_types.append(attributes)
            elif name == "ParticipantObjectIDTypeCode" and self.objects[-1][1] is None:
                self.objects[-1] = (self.objects[-1][0], attributes)

    def _end(self, _tag: str) -> None:
        self._depth -= 1
        if self._depth == 1:
            self._top = None


# defusedxml's guards (DefusedXMLParser's handlers), as functions: nothing is built per message, and
# its exception classes are imported only when one is raised.
def _forbid_doctype(name, sysid, pubid, has_internal_subset):
    from defusedxml.common import DTDForbidden

    raise DTDForbidden(name, sysid, pubid)


def _forbid_entity(name, is_parameter_entity, value, base, sysid, pubid, notation_name):
    from defusedxml.common import EntitiesForbidden

    raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)


def _forbid_unparsed_entity(name, base, sysid, pubid, notation_name):
    from defusedxml.common import EntitiesForbidden

    raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)


def _forbid_external(context, base, sysid, pubid):
    from defusedxml.common import ExternalReferenceForbidden

    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def _code(element: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """(code, text) of a coded element, DICOM or RFC 3881 attribute names."""
    if element is None:
        return None, None
    code = element.get("csd-code") or element.get("code")
    text = element.get("originalText") or element.get("displayName")
    return code, text


def _event(found: _Collector) -> AccessEvent:
    identification = found.identification
    if identification is None:
        raise AuditMessageError("no EventIdentification")
    event_id = found.event_id
    code, text = _code(event_id)
    system = event_id.get("codeSystemName") if event_id is not None else None
    action = _action(identification.get("EventActionCode"), code, text, [_code(t) for t in found.event_types])
    requestor = _requestor(found.participants)
    source = found.source
    patients = tuple(_patients(found.objects))
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
        patients=patients, format="dicom" if found.dicom else "rfc3881",
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


def _requestor(participants: list[dict[str, str]]) -> dict[str, str] | None:
    """The participant who asked (UserIsRequestor true), else the first one that names a user."""
    for participant in participants:
        if (participant.get("UserIsRequestor") or "").strip().lower() in ("true", "1"):
            return participant
    return next((p for p in participants if p.get("UserID")), None)


def _patients(objects: list[tuple[dict[str, str], dict[str, str] | None]]):
    kept = 0
    for obj, id_type_code in objects:
        if kept >= MAX_PATIENTS:
            return
        type_code, role = obj.get("ParticipantObjectTypeCode"), obj.get("ParticipantObjectTypeCodeRole")
        id_type, _ = _code(id_type_code)
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
