"""Host Patients for the fhir seeder tests: what a French hospital's FHIR facade holds.

Each is FR Core Patient INS as the 2.1.0/2.2.0 profiles want it (qualified identity
``VALI``, one official given, the birth list of first names), so the seeder has real
examples to blend in with.
"""

from __future__ import annotations

from canary.identity.nir import make_nir
from canary.model import SourceSpec
from seeders.fhir import patient as fp
from support.sql_seeder_helpers import make_identity

PI_SYSTEM = "urn:oid:1.2.250.1.71.4.2.7.9876"
PRACTITIONERS = ({"reference": "Practitioner/gp-1"}, {"reference": "Practitioner/gp-2"})
RELIABILITY = {"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
               "extension": [{"url": "identityStatus", "valueCoding": {
                   "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445", "code": "VALI"}},
                   {"url": "validationDate", "valueDate": "2024-02-01"},
                   {"url": "validationMode", "valueCoding": {
                       "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-validation-mode",
                       "code": "CN"}}]}


def identity(i: int, **changes):
    """make_identity(i) with a NIR whose key is right, as INSi would return."""
    ident = make_identity(i, **changes)
    return ident if "nir" in changes else make_identity(
        i, nir=make_nir(ident.sex, ident.birth_date, ident.birthplace, 800 + i % 150), **changes)


def real_patient(n: int) -> dict:
    ident = identity(300000 + n)
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"]},
        "extension": [RELIABILITY, fp.birth_place(ident)],
        "identifier": [fp.ins_identifier(ident.nir),
                       fp.pi_identifier(PI_SYSTEM, str(40_010_000 + n * 37))],
        "active": True,
        "name": [{"use": "official", "family": fp.styled(ident.birth_name, True, True),
                  "given": [fp.styled(ident.first_names[0], True, True)],
                  "extension": [{"url": fp.BIRTH_LIST_GIVEN_NAME_URL,
                                 "valueString": " ".join(fp.styled(g, True, True) for g in ident.first_names)}]},
                 {"use": "usual", "family": ident.last_name, "given": [ident.first_name]}],
        "telecom": [{"system": "phone", "value": f"06 {n % 90 + 10:02d} 45 67 {n % 100:02d}", "use": "mobile"},
                    {"system": "email", "value": f"patient{n}@laposte.net", "use": "home"}],
        "gender": "female" if n % 2 else "male",
        "birthDate": ident.birth_date.isoformat(),
        "address": [{"use": "home", "line": [ident.address.line1], "city": ident.address.city,
                     "postalCode": ident.address.postcode, "country": "France"}],
        "generalPractitioner": [PRACTITIONERS[n % 3 % 2]] if n % 4 else [],
        "managingOrganization": {"reference": "Organization/chu-rennes"},
    }


def spec(**options) -> SourceSpec:
    return SourceSpec(name="chu", seeder="fhir", options=options)
