"""The ``fhir`` seeder: FR Core Patients on a FHIR R4 server (docs/seeders/fhir.md).

    host.py     How one FHIR server's patients are written, learned from its most recent ones
    http.py     A small FHIR R4 REST client for the seeder: read, search, conditional create, delete
    patient.py  A FHIR R4 Patient for a canary, as FR Core writes one, and the checks it must pass
    seeder.py   The FHIR seeder: one FR Core Patient per canary on a FHIR R4 server (REST, JSON)

Nothing is imported here: import the module you need.
"""
