"""Audit messages as hospital systems send them, and as attackers would: read right, or refused cleanly."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from canary.access import fhiraudit, syslog, xmlaudit
from canary.access.event import MAX_MESSAGE_BYTES, Action, AuditMessageError, PatientRef

INS = "1.2.250.1.213.1.4.8"

# IHE ATNA "Patient Record" read by a user of the DPI, DICOM PS3.15 A.5 attribute names.
DICOM_READ = f"""<?xml version="1.0" encoding="UTF-8"?>
<AuditMessage>
  <EventIdentification EventActionCode="R" EventDateTime="2024-03-05T14:21:07.123+01:00" EventOutcomeIndicator="0">
    <EventID csd-code="110110" codeSystemName="DCM" originalText="Patient Record"/>
  </EventIdentification>
  <ActiveParticipant UserID="jmartin" UserName="Jeanne Martin" UserIsRequestor="true"
      NetworkAccessPointID="10.20.30.40" NetworkAccessPointTypeCode="2">
    <RoleIDCode csd-code="110153" codeSystemName="DCM" originalText="Source Role ID"/>
  </ActiveParticipant>
  <ActiveParticipant UserID="DPI-PROD" UserIsRequestor="false" NetworkAccessPointID="dpi01.chu.local"
      NetworkAccessPointTypeCode="1"/>
  <AuditSourceIdentification AuditSourceID="DPI-PROD"/>
  <ParticipantObjectIdentification ParticipantObjectID="4411^^^CHU&amp;1.2.250.1.999.1&amp;ISO"
      ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">
    <ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>
  </ParticipantObjectIdentification>
  <ParticipantObjectIdentification ParticipantObjectID="284057511512345^^^&amp;{INS}&amp;ISO"
      ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">
    <ParticipantObjectIDTypeCode csd-code="2" codeSystemName="RFC-3881" originalText="Patient Number"/>
  </ParticipantObjectIdentification>
  <ParticipantObjectIdentification ParticipantObjectID="1.2.840.99.1" ParticipantObjectTypeCode="2"
      ParticipantObjectTypeCodeRole="3">
    <ParticipantObjectIDTypeCode csd-code="110180" codeSystemName="DCM" originalText="Study Instance UID"/>
  </ParticipantObjectIdentification>
</AuditMessage>
""".encode()

# The same kind of event written as RFC 3881 (2004): code/displayName instead of csd-code/originalText.
RFC3881_EXPORT = b"""<AuditMessage>
  <EventIdentification EventActionCode="E" EventDateTime="2024-03-05T13:00:00Z" EventOutcomeIndicator="0">
    <EventID code="110106" codeSystemName="DCM" displayName="Export"/>
  </EventIdentification>
  <ActiveParticipant UserID="ext-prestataire" UserIsRequestor="true" NetworkAccessPointID="poste-42"
      NetworkAccessPointTypeCode="1"/>
  <AuditSourceIdentification AuditSourceID="LIS-RENNES"/>
  <ParticipantObjectIdentification ParticipantObjectID="77" ParticipantObjectTypeCode="1"
      ParticipantObjectTypeCodeRole="1"/>
  <ParticipantObjectIdentification ParticipantObjectID="78" ParticipantObjectTypeCode="1"
      ParticipantObjectTypeCodeRole="1"/>
</AuditMessage>"""


def fhir_audit(action="R", subtype="read", patient="Patient/123", **extra) -> dict:
    event = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype}],
        "action": action, "recorded": "2024-03-05T14:21:07+01:00", "outcome": "0",
        "agent": [{"who": {"identifier": {"value": "jmartin"}, "display": "Jeanne Martin"}, "requestor": True,
                   "network": {"address": "10.20.30.40", "type": "2"}}],
        "source": {"observer": {"display": "DPI-PROD"}},
        "entity": [{"what": {"reference": patient}}],
    }
    event.update(extra)
    return event


def test_a_dicom_patient_record_read_names_the_user_the_address_and_the_patients():
    event = xmlaudit.parse(DICOM_READ)
    assert event.action is Action.READ and event.format == "dicom"
    assert event.at == datetime(2024, 3, 5, 13, 21, 7, 123000, tzinfo=timezone.utc)
    assert (event.user, event.user_name, event.address, event.workstation) == \
        ("jmartin", "Jeanne Martin", "10.20.30.40", None)
    assert event.audit_source == "DPI-PROD" and event.outcome == "0"
    assert event.event_code == "DCM 110110 (Patient Record)"
    assert event.patients == (PatientRef("4411", "1.2.250.1.999.1"), PatientRef("284057511512345", INS))


def test_an_rfc3881_export_is_an_export_of_every_patient_it_names():
    event = xmlaudit.parse(RFC3881_EXPORT)
    assert event.action is Action.EXPORT and event.action.bulk and event.format == "rfc3881"
    assert (event.user, event.workstation, event.address) == ("ext-prestataire", "poste-42", None)
    assert [p.value for p in event.patients] == ["77", "78"]


@pytest.mark.parametrize("subtype,action", [("read", Action.READ), ("vread", Action.READ),
                                            ("search-type", Action.QUERY), ("export", Action.EXPORT)])
def test_a_fhir_audit_event_gives_its_action_user_and_patient(subtype, action):
    (event,) = fhiraudit.parse(json.dumps(fhir_audit(subtype=subtype)).encode())
    assert event.action is action and event.format == "fhir"
    assert (event.user, event.user_name, event.address, event.audit_source) == \
        ("jmartin", "Jeanne Martin", "10.20.30.40", "DPI-PROD")
    assert event.patients == (PatientRef("123", None, reference=True),)


def test_a_fhir_bundle_gives_each_audit_event_and_patients_by_identifier():
    by_identifier = fhir_audit(patient=None)
    by_identifier["entity"] = [{"what": {"identifier": {"system": f"urn:oid:{INS}", "value": "284057511512345"}},
                                "type": {"code": "1"}, "role": {"code": "1"}},
                               {"what": {"reference": "Practitioner/9"}}]
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": fhir_audit()}, {"resource": by_identifier}, {"resource": {"resourceType": "X"}}]}
    first, second = fhiraudit.parse(json.dumps(bundle).encode())
    assert first.patients == (PatientRef("123", None, reference=True),)
    assert second.patients == (PatientRef("284057511512345", f"urn:oid:{INS}"),)


def test_syslog_frames_octet_counted_and_newline_ended_and_a_partial_one_kept():
    first = b"<110>1 2024-03-05T13:21:07Z dpi01 DPI - IHE+RFC-3881 - " + DICOM_READ
    second = b"<110>1 2024-03-05T13:21:08Z dpi01 DPI - IHE+RFC-3881 - " + RFC3881_EXPORT.replace(b"\n", b" ")
    stream = b"%d " % len(first) + first + second + b"\n" + b"%d <110>1 partial" % 500
    frames, rest = syslog.frames(stream)
    assert frames == [first, second] and rest.startswith(b"500 ")
    assert [e.action for f in frames for e in syslog.read(syslog.payload(f))] == [Action.READ, Action.EXPORT]


def test_the_rfc5424_payload_skips_structured_data_with_escaped_brackets_and_a_bom():
    message = (b'<110>1 2024-03-05T13:21:07Z dpi01 DPI 42 IHE+RFC-3881 [origin ip="10.0.0.1" x="a\\]b"]'
               b'[meta sequenceId="7"] \xef\xbb\xbf' + DICOM_READ)
    assert syslog.payload(message) == DICOM_READ


def test_an_rfc3164_line_gives_its_audit_message():
    message = b"<110>Mar  5 14:21:07 dpi01 atna: " + RFC3881_EXPORT.replace(b"\n", b" ")
    (event,) = syslog.read(syslog.payload(message))
    assert event.action is Action.EXPORT


# -- hostile and broken input: an error with a reason, never a hit, never a crash ---------------

BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<AuditMessage><EventIdentification EventActionCode="R"/>&lol3;</AuditMessage>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<AuditMessage><EventIdentification EventActionCode="R"/><ParticipantObjectIdentification
 ParticipantObjectID="&x;" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1"/></AuditMessage>"""


@pytest.mark.parametrize("data,reason", [
    (BILLION_LAUGHS, "refused XML"),
    (EXTERNAL_ENTITY, "refused XML"),
    (DICOM_READ[:len(DICOM_READ) // 2], "malformed XML"),
    (b"<AuditMessage><EventIdentification", "malformed XML"),
    (b"<html><body>hello</body></html>", "not an audit message"),
    (b"<AuditMessage/>", "no EventIdentification"),
    (b"<AuditMessage>" + b"<x/>" * (MAX_MESSAGE_BYTES // 4) + b"</AuditMessage>", "oversized"),
    (b'{"resourceType": "AuditEvent", "agent": [', "malformed JSON"),
    (b"{" + b" " * fhiraudit.MAX_BUNDLE_BYTES + b"}", "oversized"),
    (b"[" * 20_000 + b"]" * 20_000, "malformed JSON"),
    (b'{"resourceType": "Patient"}', "not an AuditEvent"),
    (b'{"resourceType": "Bundle", "entry": "x"}', "a Bundle whose entry"),
    (b"\xff\xfe\x00garbage", "neither an XML audit message"),
])
def test_hostile_or_broken_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(AuditMessageError) as refused:
        syslog.read(data)
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize("stream", [b"99999999 <110>1 x", b"12x <110>1 x", b"1" * 9])
def test_a_broken_or_oversized_octet_count_is_an_error(stream):
    with pytest.raises(AuditMessageError):
        syslog.frames(stream)


def test_attacker_text_in_fields_is_cleaned_and_capped():
    evil = DICOM_READ.replace(b'UserID="jmartin"', b'UserID="jm\x1b]0;owned\x07' + b"x" * 1000 + b'"')
    evil = evil.replace(b"\x1b", b"&#27;").replace(b"\x07", b"&#7;")
    with pytest.raises(AuditMessageError):  # XML 1.0 forbids those characters, even as references
        xmlaudit.parse(evil)
    fhir = fhir_audit()
    fhir["agent"][0]["who"]["identifier"]["value"] = "jm\x1b]0;owned\x07" + "x" * 1000
    (event,) = fhiraudit.parse(json.dumps(fhir).encode())
    assert event.user.startswith("jm]0;ownedx") and len(event.user) == 256


@pytest.mark.parametrize("data,reason", [
    (b'<!DOCTYPE AuditMessage SYSTEM "http://evil.example/a.dtd"><AuditMessage/>', "refused XML: DTDForbidden"),
    (b'<!DOCTYPE AuditMessage><AuditMessage/>', "refused XML: DTDForbidden"),  # any DTD at all
    (b'<AuditMessage><EventIdentification EventActionCode="&x;"/></AuditMessage>', "malformed XML"),
    (b'<?xml version="1.0"?><AuditMessage>' + b"<a>" * 5000 + b"</a>" * 5000 + b"</AuditMessage>",
     "no EventIdentification"),  # deep nesting: streamed, no recursion
])
def test_the_streaming_reader_keeps_defusedxml_s_refusals(data, reason):
    with pytest.raises(AuditMessageError) as refused:
        xmlaudit.parse(data)
    assert str(refused.value).startswith(reason)


def test_namespaced_messages_and_nested_look_alikes_are_read_by_position():
    """Only the root's own children count: an EventIdentification or a patient deeper down is not the event's."""
    ns = DICOM_READ.replace(b"<AuditMessage>", b'<a:AuditMessage xmlns:a="urn:x">').replace(
        b"</AuditMessage>", b"</a:AuditMessage>")
    ns = ns.replace(b"<EventIdentification", b"<a:EventIdentification").replace(
        b"</EventIdentification>", b"</a:EventIdentification>")
    assert b"<a:AuditMessage" in ns and b"<a:EventIdentification" in ns
    assert xmlaudit.parse(ns).patients == xmlaudit.parse(DICOM_READ).patients != ()
    nested = (b'<AuditMessage><Extra><EventIdentification EventActionCode="D"/>'
              b'<ParticipantObjectIdentification ParticipantObjectID="666" ParticipantObjectTypeCode="1" '
              b'ParticipantObjectTypeCodeRole="1"/></Extra>'
              b'<EventIdentification EventActionCode="R"/></AuditMessage>')
    event = xmlaudit.parse(nested)
    assert event.action is Action.READ and event.patients == ()
