"""The ``fhir`` seeder: FR Core Patients on a FHIR R4 server (docs/seeders/fhir.md).

    footprint.py  Create, check and delete a canary's laboratory footprint on a FHIR server
    host.py       How one FHIR server's patients are written, learned from its most recent ones
    http.py       A small FHIR R4 REST client for the seeder: read, search, conditional create, delete
    lab.py        A laboratory footprint for a FHIR canary: one request, its sample, results and report
    patient.py    A FHIR R4 Patient for a canary, as FR Core writes one, and the checks it must pass
    seeder.py     The FHIR seeder: one FR Core Patient per canary on a FHIR R4 server (REST, JSON)

Nothing is imported here: import the module you need.
"""
