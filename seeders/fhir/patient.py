"""A FHIR R4 Patient for a canary, as FR Core writes one, and the checks it must pass.

FR Core (https://hl7.fr/ig/fhir/core, profiles fr-core-patient and
fr-core-patient-ins) fixes how a French patient is carried:

* the INS matricule: ``identifier`` with system ``urn:oid:1.2.250.1.213.1.4.8``,
  type ``INS-NIR`` from the FR Core v2-0203 code system, use ``official``;
* the hospital's patient number (IPP): type ``PI`` from HL7 v2-0203, the
  hospital's own system;
* the birth name and the first birth first name as the ``official`` name
  (fr-core-patient-ins: ``given`` 1..1), every birth first name in its
  ``fr-core-patient-birth-list-given-name`` extension (1..1); the used name
  as the ``usual`` name; telecom, home address, ``birthDate``, ``gender``;
* the ``fr-core-identity-reliability`` extension saying the identity is
  qualified, the only status allowed to carry the INS: ``VALI`` of
  fr-core-cs-v2-0445 up to FR Core 2.2.0 (identityReliability 1..* in 2.1.0),
  ``QUAL`` of fr-core-cs-identity-status in the builds after FR Core PR #306;
* the birth place as the ``patient-birthPlace`` extension, an Address whose
  ``fr-core-address-insee-code`` extension holds the INSEE code (COG) of the
  commune, or 99xxx for a country.

How the host writes the rest (case, phone format, IPP shape, extensions its
patients all carry) comes from ``fhirhost.FhirConventions``. Nothing marks a
canary: no tag, no security label, no comment.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from canary.identity import nir as nirs
from canary.model import INS_NIR_OID, Identity, Sex
from canary.phones import formats, kind
from seeders.common.transforms import strip_accents

INS_SYSTEM = f"urn:oid:{INS_NIR_OID}"
FR_CORE_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
HL7_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
# INSEE Code officiel géographique, as published in the NOS terminologies.
INSEE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
# RPPS-based national identifier of a health professional (IdNat_PS = "8" + RPPS).
IDNAT_PS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FR_CORE = "https://hl7.fr/ig/fhir/core"
IDENTITY_RELIABILITY_URL = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
BIRTH_LIST_GIVEN_NAME_URL = f"{FR_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
# The qualified-identity code of each identityStatus code system (docs/seeders/fhir.md, versions):
# FR Core <= 2.2.0 binds identityStatus to HL7 table 0445 as France uses it (VALI = qualified,
# invariant fr-core-1); the builds after PR #306 use the RNIV statuses, where only QUAL carries the INS.
CS_V2_0445 = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0445"
CS_IDENTITY_STATUS = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
QUALIFIED_STATUS = {"VALI": CS_V2_0445, "QUAL": CS_IDENTITY_STATUS}

# Elements verify compares: everything the seeder writes except meta.
COMPARED = ("extension", "identifier", "active", "name", "telecom", "gender", "birthDate", "address",
            "generalPractitioner", "managingOrganization")

_GENDERS = {"male", "female", "other", "unknown"}
_NAME_USES = {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}
_TELECOM_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}
_TELECOM_USES = {"home", "work", "temp", "old", "mobile"}
_IDENTIFIER_USES = {"usual", "official", "temp", "secondary", "old"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URI = re.compile(r"^(urn:(oid|uuid):[\w.:-]+|https?://\S+)$")
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_POSTCODE = re.compile(r"^\d{5}$")


def ins_identifier(nir: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The INS-NIR identifier, shaped like the host's own when it has some."""
    shape = template or {"use": "official", "type": {"coding": [{"system": FR_CORE_V2_0203, "code": "INS-NIR"}]}}
    return {**shape, "system": INS_SYSTEM, "value": nir}


def ins_search(nir: str) -> str:
    """The token search (and If-None-Exist) value for this NIR."""
    return f"{INS_SYSTEM}|{nir}"


def pi_identifier(system: str, value: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    shape = template or {"use": "usual", "type": {"coding": [{"system": HL7_V2_0203, "code": "PI"}]}}
    return {**shape, "system": system, "value": value}


def styled(text: str, upper: bool, plain: bool) -> str:
    if plain:
        text = strip_accents(text)
    return text.upper() if upper else text


def build_patient(identity: Identity, conv: Any, *, pi: dict[str, Any] | None,
                  general_practitioner: dict[str, Any] | None) -> dict[str, Any]:
    """The Patient resource for ``identity`` (``conv`` is a fhirhost.FhirConventions)."""
    given = [styled(g, conv.official_upper, conv.official_plain) for g in identity.first_names]
    official = {"use": "official",
                "extension": [{"url": BIRTH_LIST_GIVEN_NAME_URL, "valueString": " ".join(given)}],
                "family": styled(identity.birth_name, conv.official_upper, conv.official_plain),
                "given": given[:1]}
    usual = {"use": "usual", "family": styled(identity.last_name, conv.usual_upper, False),
             "given": [styled(identity.first_name, conv.usual_upper, False)]}
    patient: dict[str, Any] = {"resourceType": "Patient"}
    if conv.meta_profile:
        patient["meta"] = {"profile": list(conv.meta_profile)}
    patient["extension"] = [identity_reliability(conv), birth_place(identity)]
    patient["identifier"] = [ins_identifier(identity.nir, conv.ins_template)] + ([pi] if pi else [])
    if conv.active is not None:
        patient["active"] = conv.active
    patient["name"] = [official, usual]
    patient["telecom"] = telecom(identity, conv.phone_style)
    patient["gender"] = "male" if identity.sex is Sex.MALE else "female"
    patient["birthDate"] = identity.birth_date.isoformat()
    patient["address"] = [home_address(identity, conv.address_insee)]
    if general_practitioner:
        patient["generalPractitioner"] = [general_practitioner]
    if conv.managing_organization:
        patient["managingOrganization"] = dict(conv.managing_organization)
    return patient


def identity_reliability(conv: Any, today: date | None = None) -> dict[str, Any]:
    """The extension saying the identity is qualified, shaped like the host's when it has one.

    The host's own sub-extensions (validationMode, methodCollection...) are kept
    as most of its patients carry them; the status is always the qualified one
    of the code system the host uses (``conv.identity_status``), never copied,
    so a host whose patients are mostly provisional does not give a canary
    an INS with a provisional status.
    """
    status = {"url": "identityStatus", "valueCoding": {"system": QUALIFIED_STATUS[conv.identity_status],
                                                       "code": conv.identity_status}}
    parts = [status, *(dict(p) for p in conv.reliability_parts)]
    if conv.reliability_dated:
        parts.append({"url": "validationDate", "valueDate": (today or date.today()).isoformat()})
    return {"url": IDENTITY_RELIABILITY_URL, "extension": parts}


def birth_place(identity: Identity) -> dict[str, Any]:
    place = identity.birthplace
    code = {"url": INSEE_CODE_URL, "valueCoding": {"system": INSEE_SYSTEM, "code": place.insee_code}}
    address: dict[str, Any] = {"extension": [code]}
    if not place.abroad:
        address["city"] = place.name
    address["country"] = place.country
    return {"url": BIRTH_PLACE_URL, "valueAddress": address}


def telecom(identity: Identity, phone_style: str) -> list[dict[str, Any]]:
    points = []
    for e164 in (identity.phone, identity.phone2):
        if e164:
            use = "mobile" if kind(e164) == "mobile" else "home"
            points.append({"system": "phone", "value": formats(e164)[phone_style], "use": use})
    points.append({"system": "email", "value": identity.email, "use": "home"})
    return points


def home_address(identity: Identity, with_insee: bool) -> dict[str, Any]:
    address = identity.address
    home: dict[str, Any] = {}
    if with_insee:
        home["extension"] = [{"url": INSEE_CODE_URL,
                              "valueCoding": {"system": INSEE_SYSTEM, "code": address.insee_code}}]
    home.update({"use": "home", "line": [line for line in (address.line1, address.line2) if line],
                 "city": address.city, "postalCode": address.postcode, "country": address.country})
    return home


def gp_reference(identity: Identity) -> dict[str, Any]:
    """A logical reference to the identity's GP by national identifier (no Practitioner is created)."""
    gp = identity.gp
    return {"type": "Practitioner", "identifier": {"system": IDNAT_PS_SYSTEM, "value": "8" + gp.rpps},
            "display": f"{gp.civility} {gp.first_name} {gp.last_name}"}


def is_ours(resource: dict[str, Any], identity: Identity) -> bool:
    """True if the resource carries the identity's e-mail, one of our contact points."""
    return any(t.get("system") == "email" and str(t.get("value", "")).lower() == identity.email.lower()
               for t in resource.get("telecom") or ())


def changed_elements(sent: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The compared elements whose value is not the one sent (``Patient.telecom``...)."""
    return [f"Patient.{name}" for name in COMPARED if sent.get(name) != current.get(name)]


def validate_patient(resource: dict[str, Any], today: date | None = None) -> list[str]:
    """FR Core problems of a Patient, one short line each; empty when it is fine."""
    problems: list[str] = []
    if resource.get("resourceType") != "Patient":
        problems.append("resourceType is not Patient")
    problems += _empty_elements(resource, "Patient")
    meta = resource.get("meta") or {}
    if meta.get("security") or meta.get("tag"):
        problems.append("Patient.meta carries a tag or security label")
    problems += _identifier_problems(resource.get("identifier") or [])
    problems += _name_problems(resource.get("name") or [])
    for point in resource.get("telecom") or []:
        if point.get("system") not in _TELECOM_SYSTEMS or point.get("use", "home") not in _TELECOM_USES:
            problems.append(f"Patient.telecom {point.get('system')}/{point.get('use')} is not a FHIR code")
        elif point["system"] == "email" and "@" not in str(point.get("value", "")):
            problems.append("Patient.telecom email value is not an e-mail address")
    if resource.get("gender") not in _GENDERS:
        problems.append(f"Patient.gender {resource.get('gender')!r} is not male, female, other or unknown")
    problems += _birth_date_problems(resource.get("birthDate"), today or date.today())
    for address in resource.get("address") or []:
        if address.get("country") in (None, "France", "FRA", "FR") and not _POSTCODE.match(
                str(address.get("postalCode", ""))):
            problems.append(f"Patient.address.postalCode {address.get('postalCode')!r} is not 5 digits")
    problems += _reliability_problems(resource.get("extension") or [])
    problems += _birth_place_problems(resource.get("extension") or [])
    for reference in resource.get("generalPractitioner") or []:
        if not (reference.get("reference") or reference.get("identifier")):
            problems.append("Patient.generalPractitioner has neither reference nor identifier")
    return problems


def _empty_elements(value: Any, path: str) -> list[str]:
    """FHIR forbids empty strings, arrays and objects (ele-1)."""
    if value in ("", [], {}) or value is None:
        return [f"{path} is empty"]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _empty_elements(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for item in value for p in _empty_elements(item, path)]
    return []


def _codes(concept: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding") or ()}


def _identifier_problems(identifiers: list[dict[str, Any]]) -> list[str]:
    problems = []
    ins = [i for i in identifiers if i.get("system") == INS_SYSTEM]
    if len(ins) != 1:
        return [f"Patient.identifier holds {len(ins)} INS-NIR identifiers, not 1"]
    value = str(ins[0].get("value", ""))
    if not _valid_nir(value):
        problems.append("Patient.identifier INS-NIR value is not a valid 15-character NIR")
    if (FR_CORE_V2_0203, "INS-NIR") not in _codes(ins[0].get("type")):
        problems.append("Patient.identifier INS-NIR type is not fr-core-cs-v2-0203#INS-NIR")
    if ins[0].get("use") not in ("official", "old"):
        problems.append("Patient.identifier INS-NIR use is not official")
    for identifier in identifiers:
        if identifier.get("use", "usual") not in _IDENTIFIER_USES:
            problems.append(f"Patient.identifier use {identifier.get('use')!r} is not a FHIR code")
        if not _URI.match(str(identifier.get("system", ""))):
            problems.append(f"Patient.identifier system {identifier.get('system')!r} is not an absolute URI")
        if (HL7_V2_0203, "PI") in _codes(identifier.get("type")) and not identifier.get("value"):
            problems.append("Patient.identifier PI has no value")
    return problems


def _valid_nir(value: str) -> bool:
    from stdnum.fr import nir as stdnum_nir  # the key, checked by an outside implementation too

    return len(value) == 15 and nirs.is_valid(value) and stdnum_nir.is_valid(value)


def _name_problems(names: list[dict[str, Any]]) -> list[str]:
    problems = [f"Patient.name use {n.get('use')!r} is not a FHIR code" for n in names if n.get("use") not in _NAME_USES]
    official = [n for n in names if n.get("use") == "official"]
    if len(official) != 1:
        problems.append(f"Patient.name holds {len(official)} official names, not 1")
        return problems
    name = official[0]
    if not name.get("family") or len(name.get("given") or ()) != 1:
        problems.append("Patient.name official needs a family and exactly one given (fr-core-patient-ins: "
                        "the first birth first name)")
    lists = [e.get("valueString") for e in name.get("extension") or () if e.get("url") == BIRTH_LIST_GIVEN_NAME_URL]
    if len(lists) != 1 or not isinstance(lists[0], str):
        problems.append("Patient.name official needs one birth-list-given-name extension (valueString)")
    elif name.get("given") and lists[0].split(" ")[0] != name["given"][0]:
        problems.append("Patient.name official birth-list-given-name does not start with its given")
    return problems


def _reliability_problems(extensions: list[dict[str, Any]]) -> list[str]:
    """An INS is carried only by a qualified identity: the extension must say so."""
    reliability = [e for e in extensions if e.get("url") == IDENTITY_RELIABILITY_URL]
    if not reliability:
        return ["Patient.extension has no identityReliability (1..* in fr-core-patient-ins 2.1.0; the INS "
                "needs a qualified identity)"]
    statuses = [(s.get("valueCoding") or {}) for e in reliability for s in e.get("extension") or ()
                if s.get("url") == "identityStatus"]
    qualified = {(system, code) for code, system in QUALIFIED_STATUS.items()}
    if len(statuses) != 1 or (statuses[0].get("system"), statuses[0].get("code")) not in qualified:
        return ["Patient.extension identityReliability needs one qualified identityStatus "
                "(fr-core-cs-v2-0445#VALI or fr-core-cs-identity-status#QUAL)"]
    return []


def _birth_date_problems(value: Any, today: date) -> list[str]:
    if not isinstance(value, str) or not _DATE.match(value):
        return [f"Patient.birthDate {value!r} is not YYYY-MM-DD"]
    try:
        born = date.fromisoformat(value)
    except ValueError:
        return [f"Patient.birthDate {value!r} is not a date"]
    return [f"Patient.birthDate {value} is in the future"] if born > today else []


def _birth_place_problems(extensions: list[dict[str, Any]]) -> list[str]:
    places = [e for e in extensions if e.get("url") == BIRTH_PLACE_URL]
    if len(places) != 1:
        return [f"Patient.extension holds {len(places)} birthPlace, not 1 (fr-core-patient-ins)"]
    for place in places:
        codes = [e.get("valueCoding", {}).get("code") for e in place.get("valueAddress", {}).get("extension") or ()
                 if e.get("url") == INSEE_CODE_URL]
        if len(codes) != 1 or not _INSEE.match(str(codes[0])):
            return ["Patient.extension birthPlace has no valid INSEE code"]
    return []
