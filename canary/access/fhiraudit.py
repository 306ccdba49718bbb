"""FHIR R4 AuditEvent (RESTful ATNA, IHE BALP), alone or in a Bundle, read into AccessEvents.

* ``action`` C, R, U, D, E; ``subtype`` codes say more: ``read``/``vread``
  (a read), ``search``/``search-type``/``search-system`` (a query), the
  bulk-data ``export`` (an export);
* ``agent``: the one with ``requestor: true`` is the user (``who.identifier``,
  ``who.display``), ``network.address`` its address (type 2: IP) or host;
* ``entity``: a patient when ``what`` references ``Patient/<id>`` or its
  ``type`` is 1 (person) with ``role`` 1 (patient); ``what.identifier``
  (``system`` + ``value``) names it otherwise;
* ``source.observer``: the application that recorded it.

JSON is parsed with the standard library (no object hooks); messages above
MAX_MESSAGE_BYTES (an AuditEvent) or MAX_BUNDLE_BYTES (a Bundle) are refused
unread.
"""

from __future__ import annotations

import json
from typing import Any

from canary.access.event import (
    MAX_MESSAGE_BYTES, MAX_PATIENTS, AccessEvent, Action, AuditMessageError, PatientRef, clean_text, utc_moment,
)

MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MAX_BUNDLE_ENTRIES = 1000
_ACTIONS = {"C": Action.CREATE, "R": Action.READ, "U": Action.UPDATE, "D": Action.DELETE}
_SUBTYPES = {"read": Action.READ, "vread": Action.READ, "search": Action.QUERY, "search-type": Action.QUERY,
             "search-system": Action.QUERY, "history-instance": Action.READ, "export": Action.EXPORT,
             "110106": Action.EXPORT, "110112": Action.QUERY}


def parse(data: bytes) -> list[AccessEvent]:
    """The AuditEvents of a FHIR JSON body (one resource or a Bundle); AuditMessageError if unreadable."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise AuditMessageError(f"oversized: {len(data)} bytes (at most {MAX_BUNDLE_BYTES})")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise AuditMessageError(f"malformed JSON: {str(err)[:120]}") from None
    if not isinstance(document, dict):
        raise AuditMessageError("not a FHIR resource")
    kind = document.get("resourceType")
    if kind == "AuditEvent":
        if len(data) > MAX_MESSAGE_BYTES:
            raise AuditMessageError(f"oversized: {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
        return [event(document)]
    if kind == "Bundle":
        entries = document.get("entry") or []
        if not isinstance(entries, list) or len(entries) > MAX_BUNDLE_ENTRIES:
            raise AuditMessageError("a Bundle whose entry is not a list of at most 1000")
        resources = [e.get("resource") for e in entries if isinstance(e, dict)]
        events = [event(r) for r in resources if isinstance(r, dict) and r.get("resourceType") == "AuditEvent"]
        if not events:
            raise AuditMessageError("a Bundle without AuditEvent")
        return events
    raise AuditMessageError(f"not an AuditEvent: resourceType {str(kind)[:40]!r}")


def event(resource: dict[str, Any]) -> AccessEvent:
    requestor = _requestor(_list(resource.get("agent")))
    who = _dict(requestor.get("who")) if requestor else {}
    network = _dict(requestor.get("network")) if requestor else {}
    address = workstation = None
    if network.get("type") == "2":
        address = _text(network.get("address"))
    else:
        workstation = _text(network.get("address"))
    subtypes = [_text(_dict(s).get("code")) for s in _list(resource.get("subtype"))]
    type_code = _text(_dict(resource.get("type")).get("code"))
    observer = _dict(_dict(resource.get("source")).get("observer"))
    return AccessEvent(
        action=_action(_text(resource.get("action")), subtypes, type_code),
        at=utc_moment(_text(resource.get("recorded"))),
        user=clean_text(_text(_dict(who.get("identifier")).get("value")) or _text(who.get("reference"))),
        user_name=clean_text(_text(who.get("display"))),
        workstation=clean_text(workstation), address=clean_text(address),
        audit_source=clean_text(_text(observer.get("display")) or _text(observer.get("reference"))
                            or _text(_dict(observer.get("identifier")).get("value"))),
        event_code=clean_text(" ".join(c for c in (type_code, *subtypes) if c)),
        outcome=clean_text(_text(resource.get("outcome"))),
        patients=tuple(_patients(_list(resource.get("entity")))),
        format="fhir",
    )


def _action(action: str | None, subtypes: list[str | None], type_code: str | None) -> Action:
    for code in (*subtypes, type_code):
        if code in _SUBTYPES:
            return _SUBTYPES[code]
    return _ACTIONS.get((action or "").upper(), Action.OTHER)


def _requestor(agents: list) -> dict:
    dicts = [a for a in agents if isinstance(a, dict)]
    return next((a for a in dicts if a.get("requestor") is True), dicts[0] if dicts else {})


def _patients(entities: list):
    kept = 0
    for entity in entities:
        if kept >= MAX_PATIENTS or not isinstance(entity, dict):
            continue
        what = _dict(entity.get("what"))
        reference = _text(what.get("reference")) or ""
        type_code = _text(_dict(entity.get("type")).get("code"))
        role = _text(_dict(entity.get("role")).get("code"))
        identifier = _dict(what.get("identifier"))
        if reference.startswith("Patient/") or "/Patient/" in reference:
            ref = PatientRef(reference.rsplit("Patient/", 1)[1].split("/_history")[0][:128], None, reference=True)
        elif (type_code == "1" and role == "1") or role == "patient":
            value = _text(identifier.get("value"))
            if not value:
                continue
            ref = PatientRef(value[:128], (_text(identifier.get("system")) or None))
        else:
            continue
        if ref.value:
            kept += 1
            yield ref


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
