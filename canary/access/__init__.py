"""Reads of patient records in the hospital's own audit trails (IHE ATNA, FHIR AuditEvent).

    event.py       AccessEvent, Action, PatientRef: one access, whatever the trail
    xmlaudit.py    DICOM PS3.15 A.5 and RFC 3881 audit messages (defusedxml, no DTD)
    fhiraudit.py   FHIR R4 AuditEvent and Bundles of them
    syslog.py      ATNA over syslog: stream framing, the RFC 5424 payload, any form to events
    match.py       which canaries an event names (AccessIndex), single or bulk access (BurstPolicy)

Nothing is imported here: import the module you need.
"""
