"""Every Patient the fhir seeder sends is FHIR R4 (fhir.resources) and FR Core Patient INS.

Identities come from the real generator (several first names, births abroad,
married names). The test server enforces the same profile (support/fhir_server.py
answers 422 otherwise), and each stored Patient is validated again here, for every
FR Core version the seeder claims (docs/seeders/fhir.md, "Versions").
"""

from __future__ import annotations

import copy

import pytest
import requests

from canary.errors import ConfigError
from canary.identity.generator import IdentityGenerator
from seeders.fhir import host as fhirhost
from seeders.fhir import patient as fp
from seeders.fhir.seeder import FhirSeeder
from support.fhir_server import FhirTestServer, ServerSettings, validate_fr_core
from support.fhir_validation import CS_IDENTITY_STATUS, CS_V2_0445, validate_patient_ins
from support.fhir_hosts import real_patient, spec
from support.plant_helpers import production_config

QUAL = {"url": "identityStatus", "valueCoding": {"system": CS_IDENTITY_STATUS, "code": "QUAL"}}
PROV = {"url": "identityStatus", "valueCoding": {"system": CS_V2_0445, "code": "PROV"}}
MODE = {"url": "validationMode", "valueCoding": {
    "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-validation-mode", "code": "CN"}}


@pytest.fixture(scope="module")
def identities():
    generator = IdentityGenerator(production_config("sqlite://").contacts, seed=2024, reserve_phones=False)
    return list(generator.generate_many(40))


def host_with(status: dict, n: int = 12) -> list[dict]:
    """Host Patients whose identityReliability carries ``status`` and a validationMode."""
    patients = []
    for i in range(n):
        patient = real_patient(i)
        patient["extension"][0] = {"url": fp.IDENTITY_RELIABILITY_URL, "extension": [status, MODE]}
        patients.append(patient)
    return patients


def plant_all(server: FhirTestServer, identities, **options) -> list[dict]:
    with FhirSeeder(spec(**options), server.base_url) as seeder:
        placements = [seeder.plant(i) for i in identities]
    return [server.store.patients[p.extra["id"]] for p in placements]


@pytest.mark.parametrize("host,fr_core,versions", [
    ("empty", "2.1.0", ("2.1.0", "2.2.0")),
    ("vali", "2.2.0", ("2.1.0", "2.2.0")),
    ("qual", "post-306", ("post-306",)),
])
def test_every_patient_sent_is_r4_and_fr_core_patient_ins(identities, host, fr_core, versions):
    assert {len(i.first_names) for i in identities} >= {1, 2, 3}
    assert any(i.birthplace.abroad for i in identities) and any(i.married_name_used for i in identities)
    server = FhirTestServer(ServerSettings(fr_core=fr_core)).start()
    try:
        examples = {"empty": [], "vali": [real_patient(i) for i in range(12)], "qual": host_with(QUAL)}[host]
        for patient in examples:
            server.store.add(patient)
        stored = plant_all(server, identities)  # each one passed the server's own R4 + FR Core checks
    finally:
        server.stop()
    for patient in stored:
        for version in versions:
            assert validate_patient_ins(patient, version) == [], (version, patient["name"])


def test_official_name_holds_the_first_birth_first_name_and_the_list_in_its_extension(identities):
    ident = next(i for i in identities if len(i.first_names) == 3)
    patient = fp.build_patient(ident, fhirhost.FhirConventions(), pi=None, general_practitioner=None)
    official = patient["name"][0]
    firsts = [fp.styled(g, True, True) for g in ident.first_names]
    assert official["use"] == "official" and official["given"] == firsts[:1]
    assert official["extension"] == [{"url": fp.BIRTH_LIST_GIVEN_NAME_URL, "valueString": " ".join(firsts)}]
    assert patient["name"][1]["given"] == [ident.first_name]  # the usual name keeps the used first name


def test_birth_place_carries_the_insee_code_even_for_a_birth_abroad(identities):
    for ident in (next(i for i in identities if i.birthplace.abroad),
                  next(i for i in identities if not i.birthplace.abroad)):
        patient = fp.build_patient(ident, fhirhost.FhirConventions(), pi=None, general_practitioner=None)
        [place] = [e for e in patient["extension"] if e["url"] == fp.BIRTH_PLACE_URL]
        assert place["valueAddress"]["extension"] == [{"url": fp.INSEE_CODE_URL, "valueCoding": {
            "system": fp.INSEE_SYSTEM, "code": ident.birthplace.insee_code}}]


def _status(patient: dict) -> tuple[str, str]:
    [reliability] = [e for e in patient["extension"] if e["url"] == fp.IDENTITY_RELIABILITY_URL]
    [status] = [s["valueCoding"] for s in reliability["extension"] if s["url"] == "identityStatus"]
    return status["system"], status["code"]


def test_identity_status_is_the_qualified_code_of_the_hosts_code_system(identities):
    qual = fhirhost.learn(host_with(QUAL), None)
    patient = fp.build_patient(identities[0], qual, pi=None, general_practitioner=None)
    assert _status(patient) == (CS_IDENTITY_STATUS, "QUAL")
    [reliability] = [e for e in patient["extension"] if e["url"] == fp.IDENTITY_RELIABILITY_URL]
    assert MODE in reliability["extension"]  # the host's other sub-extensions are followed
    # A host whose patients are mostly provisional: its status is never copied next to an INS.
    prov = fhirhost.learn(host_with(PROV), None)
    assert _status(fp.build_patient(identities[0], prov, pi=None, general_practitioner=None)) == (CS_V2_0445, "VALI")


def test_identity_status_option_wins_over_the_host():
    server = FhirTestServer(ServerSettings(fr_core="post-306")).start()
    try:
        for patient in [real_patient(i) for i in range(12)]:  # the host writes VALI
            server.store.add(patient)
        with FhirSeeder(spec(identity_status="QUAL"), server.base_url) as seeder:
            assert seeder.conv.identity_status == "QUAL"
        with pytest.raises(ConfigError, match="identity_status='RECUP' is not valid"):
            FhirSeeder.validate_options({"identity_status": "RECUP"})
    finally:
        server.stop()


def _broken(identities) -> dict[str, dict]:
    ident = next(i for i in identities if len(i.first_names) > 1)
    good = fp.build_patient(ident, fhirhost.FhirConventions(), pi=None, general_practitioner=None)
    all_given = copy.deepcopy(good)
    all_given["name"][0]["given"] = [fp.styled(g, True, True) for g in ident.first_names]
    no_list = copy.deepcopy(good)
    del no_list["name"][0]["extension"]
    no_reliability = copy.deepcopy(good)
    no_reliability["extension"] = no_reliability["extension"][1:]
    provisional = copy.deepcopy(good)
    provisional["extension"][0]["extension"][0] = PROV
    no_birth_place = copy.deepcopy(good)
    no_birth_place["extension"] = no_birth_place["extension"][:1]
    return {"good": good, "all first names in given": all_given, "no birth-list-given-name": no_list,
            "no identityReliability": no_reliability, "provisional with an INS": provisional,
            "no birthPlace": no_birth_place}


def test_the_seeder_and_the_test_server_both_refuse_what_fr_core_ins_forbids(identities):
    cases = _broken(identities)
    assert fp.validate_patient(cases["good"]) == [] and validate_fr_core(cases["good"], "2.1.0") == []
    server = FhirTestServer(ServerSettings(fr_core="2.1.0")).start()
    try:
        for what, patient in cases.items():
            if what == "good":
                continue
            assert fp.validate_patient(patient), what  # refused before any request...
            answer = requests.post(f"{server.base_url}/Patient", json=patient,
                                   headers={"Content-Type": "application/fhir+json"}, timeout=10)
            assert answer.status_code == 422, what  # ...and by the server if it were sent
            assert answer.json()["issue"][0]["diagnostics"].startswith("FRCORE"), what
        assert server.store.patients == {}
    finally:
        server.stop()
