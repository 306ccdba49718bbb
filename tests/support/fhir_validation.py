"""FHIR R4 and FR Core Patient INS validation for the tests, written apart from the seeder's own checks.

Three layers; each problem is one line starting with its layer:

``R4``      fhir.resources 6.4.0, the last release whose default model is FHIR R4 4.0.1 (6.5.0 moved
            to R4B, 7.x to R5, and no later release has an R4 sub-package). It checks element names,
            datatypes and primitive formats, but not required code bindings, ext-1 or Extension.url.
``R4+``     what fhir.resources leaves out and a Patient needs: the required bindings of R4 Patient,
            ele-1 (no empty element), ext-1 (a value or sub-extensions, not both), Extension.url.
``FRCORE``  FR Core Patient INS (``fr-core-patient-ins``), hand-coded from the profile sources:
            Interop-Sante/hl7.fhir.fr.core ``input/fsh/profiles/FRCorePatientINSProfile.fsh``,
            ``input/fsh/extensions/FRCorePatientIdentityReliabilityExtension.fsh`` and
            ``input/fsh/codesystems/FRCoreCodeSystemIdentityStatus.fsh`` (the notes behind
            docs/seeders/fhir.md list the commits read). Versions:

            ``2.1.0``   identityReliability 1..*; identityStatus from fr-core-cs-v2-0445 (VALI = qualified,
                        invariant fr-core-1); INS-NIR use fixed ``official``.
            ``2.2.0``   identityReliability 0..*; INS-NIR use official|old; fr-core-2 (one official identifier).
            ``post-306`` FR Core builds after PR #306: identityStatus required-bound to
                        fr-core-cs-identity-status (PROV|RECUP|VALI|QUAL), only QUAL carries the INS.

No terminology server: INSEE codes are checked for shape only.
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources import construct_fhir_element

FR = "https://hl7.fr/ig/fhir/core"
IDENTITY_RELIABILITY = f"{FR}/StructureDefinition/fr-core-identity-reliability"
BIRTH_LIST_GIVEN_NAME = f"{FR}/StructureDefinition/fr-core-patient-birth-list-given-name"
INSEE_CODE = f"{FR}/StructureDefinition/fr-core-address-insee-code"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
CS_V2_0203 = f"{FR}/CodeSystem/fr-core-cs-v2-0203"
CS_V2_0445 = f"{FR}/CodeSystem/fr-core-cs-v2-0445"
CS_IDENTITY_STATUS = f"{FR}/CodeSystem/fr-core-cs-identity-status"
INSEE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
HL7_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
VERSIONS = ("2.1.0", "2.2.0", "post-306")
INS_SYSTEMS = {"urn:oid:1.2.250.1.213.1.4.8": "INS-NIR", "urn:oid:1.2.250.1.213.1.4.9": "INS-NIA",
               "urn:oid:1.2.250.1.213.1.4.10": "INS-NIR-TEST", "urn:oid:1.2.250.1.213.1.4.11": "INS-NIR-DEMO"}
# fr-core-cs-v2-0445: HL7 table 0445 as IHE PAM France specialises it (no RECUP, no QUAL).
V2_0445 = {"VIDE", "PROV", "VALI", "DOUB", "DESA", "DPOT", "DOUA", "COLP", "COLV", "FILI", "CACH", "ANOM",
           "IDVER", "RECD", "IDRA", "USUR", "HOMD", "HOMA", "INVA", "FICT", "DOUT"}
IDENTITY_STATUS = {"PROV", "RECUP", "VALI", "QUAL"}
RELIABILITY_PARTS = {"methodCollection", "dateCollection", "identityStatus", "validationDate", "validationMode"}
R4_PATIENT_CODES = {
    "gender": {"male", "female", "other", "unknown"},
    "identifier.use": {"usual", "official", "temp", "secondary", "old"},
    "name.use": {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
    "telecom.system": {"phone", "fax", "email", "pager", "url", "sms", "other"},
    "telecom.use": {"home", "work", "temp", "old", "mobile"},
    "address.use": {"home", "work", "temp", "old", "billing"},
    "address.type": {"postal", "physical", "both"},
}
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")


def r4(resource: dict[str, Any]) -> list[str]:
    """What fhir.resources (FHIR R4 4.0.1) refuses in this resource."""
    try:
        construct_fhir_element(resource.get("resourceType"), dict(resource))
    except Exception as err:  # pydantic's ValidationError, or an unknown resourceType (LookupError)
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
        return [f"R4 {line}" for line in lines]
    return []


def r4_plus(resource: dict[str, Any]) -> list[str]:
    """ele-1, ext-1, Extension.url anywhere; required bindings of Patient."""
    problems: list[str] = []

    def walk(value: Any, path: str) -> None:
        if value in ("", [], {}) or value is None:
            problems.append(f"R4+ ele-1: {path} is empty")
        elif isinstance(value, dict):
            if path.endswith("extension"):
                has_value = any(k.startswith("value") for k in value)
                if not value.get("url"):
                    problems.append(f"R4+ Extension.url missing at {path}")
                if has_value == bool(value.get("extension")):
                    problems.append(f"R4+ ext-1 at {path} ({value.get('url')}): a value[x] or extensions, "
                                    "not both, not neither")
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, path)

    walk(resource, str(resource.get("resourceType")))
    if resource.get("resourceType") == "Patient":
        for name, allowed in R4_PATIENT_CODES.items():
            head, _, tail = name.partition(".")
            values = [resource.get(head)] if not tail else [e.get(tail) for e in resource.get(head) or ()]
            problems += [f"R4+ Patient.{name} {v!r} is not in its required value set"
                         for v in values if v is not None and v not in allowed]
    return problems


def _codes(concept: dict[str, Any] | None) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding") or ()}


def _exts(element: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in element.get("extension") or () if e.get("url") == url]


def _statuses(resource: dict[str, Any], version: str, problems: list[str]) -> list[str]:
    reliability = _exts(resource, IDENTITY_RELIABILITY)
    if version == "2.1.0" and not reliability:
        problems.append("FRCORE 2.1.0 extension:identityReliability 1..* (fr-core-patient-ins): missing")
    known = RELIABILITY_PARTS | ({"comment"} if version == "post-306" else set())
    statuses = []
    for ext in reliability:
        parts = ext.get("extension") or []
        problems += [f"FRCORE identityReliability sub-extension {p.get('url')!r} is not defined"
                     for p in parts if p.get("url") not in known]
        status = [p for p in parts if p.get("url") == "identityStatus"]
        if len(status) > 1:
            problems.append("FRCORE identityReliability.identityStatus 0..1: more than one")
        for part in status:
            coding = part.get("valueCoding") or {}
            system, code = coding.get("system"), coding.get("code")
            expected = CS_IDENTITY_STATUS if version == "post-306" else CS_V2_0445
            allowed = IDENTITY_STATUS if version == "post-306" else V2_0445
            if system != expected or code not in allowed:
                problems.append(f"FRCORE {version} identityStatus {system}#{code}: expected a code of {expected}")
            statuses.append(code)
    return statuses


def _birth_place(resource: dict[str, Any], problems: list[str]) -> None:
    places = _exts(resource, BIRTH_PLACE)
    if len(places) != 1:
        problems.append(f"FRCORE extension:birthPlace 1..1 (fr-core-patient-ins): found {len(places)}")
    for place in places:
        codes = _exts(place.get("valueAddress") or {}, INSEE_CODE)
        if len(codes) != 1:
            problems.append(f"FRCORE birthPlace.valueAddress.extension:inseeCode 1..1: found {len(codes)}")
        for code in codes:
            coding = code.get("valueCoding") or {}
            if coding.get("system") != INSEE_SYSTEM or not _INSEE.match(str(coding.get("code", ""))):
                problems.append(f"FRCORE inseeCode {coding.get('system')}#{coding.get('code')}: "
                                f"a 5-character COG code of {INSEE_SYSTEM}")


def _identifiers(resource: dict[str, Any], version: str, problems: list[str]) -> bool:
    identifiers = resource.get("identifier") or []
    if not identifiers:
        problems.append("FRCORE identifier 1..* (fr-core-patient-ins): missing")
    has_ins = False
    for ident in identifiers:
        slice_name = INS_SYSTEMS.get(ident.get("system"))
        if slice_name:
            has_ins = True
            if (CS_V2_0203, slice_name) not in _codes(ident.get("type")):
                problems.append(f"FRCORE identifier[{slice_name}].type must be {CS_V2_0203}#{slice_name}")
            uses = {"official"} if version == "2.1.0" else {"official", "old"}
            if ident.get("use") not in uses:
                problems.append(f"FRCORE {version} identifier[{slice_name}].use {ident.get('use')!r}: "
                                f"one of {sorted(uses)}")
            if len(str(ident.get("value", ""))) != 15:
                problems.append(f"FRCORE identifier[{slice_name}].value is not 15 characters")
        if (HL7_V2_0203, "PI") in _codes(ident.get("type")) and version != "2.1.0" and ident.get("use") == "official":
            problems.append("FRCORE identifier[PI].use: fr-core-vs-patient-identifier-use-pi excludes official")
    if version != "2.1.0" and sum(1 for i in identifiers if i.get("use") == "official") > 1:
        problems.append("FRCORE fr-core-2: more than one identifier with use official")
    return has_ins


def _official_name(resource: dict[str, Any], problems: list[str]) -> None:
    official = [n for n in resource.get("name") or () if n.get("use") == "official"]
    if len(official) != 1:
        problems.append(f"FRCORE name:officialName 1..1 (fr-core-patient-ins): found {len(official)}")
    for name in official:
        given = name.get("given") or []
        if not name.get("family"):
            problems.append("FRCORE name:officialName.family 1..1: missing")
        if len(given) != 1:
            problems.append(f"FRCORE name:officialName.given 1..1: found {len(given)} ({given}); the first "
                            "birth first name only, the list goes in birth-list-given-name")
        lists = _exts(name, BIRTH_LIST_GIVEN_NAME)
        if len(lists) != 1 or not isinstance(lists[0].get("valueString"), str):
            problems.append(f"FRCORE name:officialName.extension:birth-list-given-name 1..1 (valueString): "
                            f"found {len(lists)}")
        elif given and lists[0]["valueString"].split(" ")[0] != given[0]:
            problems.append("FRCORE birth-list-given-name does not start with officialName.given[0]")


def fr_core_ins(resource: dict[str, Any], version: str) -> list[str]:
    """Problems of a Patient against FR Core Patient INS ``version`` (one of VERSIONS)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown FR Core version {version!r}")
    problems: list[str] = []
    statuses = _statuses(resource, version, problems)
    _birth_place(resource, problems)
    has_ins = _identifiers(resource, version, problems)
    qualified = "QUAL" if version == "post-306" else "VALI"
    if qualified in statuses and not has_ins:
        problems.append(f"FRCORE fr-core-1: identityStatus {qualified} requires an INS identifier")
    if has_ins and qualified not in statuses:  # stricter than 2.2.0's 0..*: what the seeder claims
        problems.append(f"FRCORE an INS is carried by an identity whose status is {statuses or 'unstated'}, not "
                        f"{qualified} (only a qualified identity shares the INS: RNIV, PAM FR 6.6.1)")
    if resource.get("gender") not in ("male", "female", "unknown"):
        problems.append(f"FRCORE gender {resource.get('gender')!r}: 1..1, male|female|unknown")
    if not resource.get("birthDate"):
        problems.append("FRCORE birthDate 1..1: missing")
    _official_name(resource, problems)
    for point in resource.get("telecom") or ():
        if not point.get("system") or not point.get("value"):
            problems.append("FRCORE telecom.system and telecom.value are 1..1 (fr-core-contact-point)")
    return problems


def validate_patient_ins(resource: dict[str, Any], version: str) -> list[str]:
    return r4(resource) + r4_plus(resource) + fr_core_ins(resource, version)
