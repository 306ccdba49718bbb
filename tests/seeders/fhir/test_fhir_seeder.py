"""The FHIR seeder against a local FHIR server that checks FR Core on every Patient it receives.

The server (tests/fhir_server.py) holds 30 real patients written the way a
French hospital's FHIR facade writes them; every test checks they are left
exactly as they were.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import date

import pytest

from canary.errors import ConfigError, MappingError, SourceError
from canary.model import Placement, VerifyState
from support.fhir_hosts import PI_SYSTEM, PRACTITIONERS, identity, real_patient, spec
from support.fhir_server import FhirTestServer, ServerSettings
from seeders.fhir import patient as fp
from seeders.fhir.seeder import FhirSeeder

TOKEN = "tok-3f9a7c1e5b"
def _start(settings: ServerSettings, real: int = 30) -> FhirTestServer:
    server = FhirTestServer(settings).start()
    for n in range(real):
        patient = real_patient(n)
        if not patient["generalPractitioner"]:
            del patient["generalPractitioner"]
        server.store.add(patient)
    return server


@pytest.fixture
def server():
    srv = _start(ServerSettings(bearer=TOKEN))
    yield srv
    srv.stop()


@pytest.fixture
def seeder(server, monkeypatch):
    monkeypatch.setenv("FHIR_TOKEN", TOKEN)
    s = FhirSeeder(spec(token_env="FHIR_TOKEN"), server.base_url)
    s.open()
    yield s
    s.close()


def test_plant_50_accepted_by_the_server_verify_and_retire_only_ours(server, seeder):
    real_before = copy.deepcopy(server.store.patients)
    identities = [identity(i) for i in range(50)]
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)

    placements = [seeder.plant(i) for i in identities]  # each one passed the server's FR Core checks

    assert len(server.store.patients) == 80
    assert {k: v for k, v in server.store.patients.items() if k in real_before} == real_before
    stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
    assert {seeder.verify(i, p).state for i, p in zip(identities, stored)} == {VerifyState.OK}
    assert all(p.extra["resource"] == "Patient" and p.extra["base"] == server.base_url for p in stored)

    for placement in stored:
        seeder.retire(placement)
    assert server.store.patients == real_before


def test_patient_follows_fr_core_and_the_hosts_conventions(server, seeder):
    ident = identity(1)  # married: usual name differs from the birth name
    placement = seeder.plant(ident)
    patient = server.store.patients[placement.extra["id"]]
    ins, pi = patient["identifier"]
    assert ins == {"use": "official", "type": {"coding": [{"system": fp.FR_CORE_V2_0203, "code": "INS-NIR"}]},
                   "system": "urn:oid:1.2.250.1.213.1.4.8", "value": ident.nir}
    assert pi["system"] == PI_SYSTEM and pi["type"]["coding"][0]["code"] == "PI"
    assert re.fullmatch(r"\d{8}", pi["value"]) and 40_010_000 <= int(pi["value"]) <= 40_010_000 + 29 * 37
    assert pi["value"] not in {p["identifier"][1]["value"] for k, p in server.store.patients.items()
                               if k != placement.extra["id"]}
    official, usual = patient["name"]
    assert official["family"] == fp.styled(ident.birth_name, True, True) and official["given"][0].isupper()
    assert usual == {"use": "usual", "family": ident.last_name, "given": [ident.first_name]}
    assert patient["telecom"][0] == {"system": "phone", "value": "06 10 00 00 01", "use": "mobile"}
    assert patient["telecom"][-1] == {"system": "email", "value": ident.email, "use": "home"}
    assert patient["gender"] == "female" and patient["birthDate"] == ident.birth_date.isoformat()
    place = patient["extension"][1]["valueAddress"]
    assert place["extension"][0]["valueCoding"]["code"] == ident.birthplace.insee_code
    # Copied from the neighbours: profile, identity reliability (dated today), organisation, a GP.
    assert patient["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"]
    assert patient["extension"][0]["extension"][-1] == {"url": "validationDate", "valueDate": date.today().isoformat()}
    assert patient["managingOrganization"] == {"reference": "Organization/chu-rennes"}
    assert patient["generalPractitioner"][0] in PRACTITIONERS
    assert "tag" not in patient["meta"] and "security" not in patient["meta"] and "text" not in patient


def test_a_retry_after_a_lost_answer_never_duplicates(server, seeder):
    server.settings.lose_create_answers = 1  # stored, then answered 503
    ident = identity(2)
    placement = seeder.plant(ident)
    mine = [p for p in server.store.patients.values() if p["identifier"][0]["value"] == ident.nir]
    assert [p["id"] for p in mine] == [placement.extra["id"]]
    assert [m for m, path in server.settings.requests if m == "POST"] == ["POST", "POST"]
    # A second plant of the same canary (a crash before the registry noted the first) finds it again.
    again = seeder.plant(ident)
    assert again.extra["id"] == placement.extra["id"] and len(server.store.patients) == 31
    assert seeder.verify(ident, again).state is VerifyState.OK


def test_without_conditional_create_a_lost_answer_is_not_retried_but_located(monkeypatch):
    server = _start(ServerSettings(conditional_create=False, lose_create_answers=1), real=0)
    try:
        with FhirSeeder(spec(), server.base_url) as s:
            ident = identity(16)
            with pytest.raises(SourceError, match=r"failed \(HTTP 503\): upstream timeout$"):
                s.plant(ident)
            assert len(server.store.patients) == 1  # one POST only: a retry could have made two
            located = s.locate(ident)  # what `canary verify` uses to reconcile the registry
            assert located.extra["id"] == next(iter(server.store.patients))
            s.retire(located)
        assert server.store.patients == {}
    finally:
        server.stop()


def test_authentication_is_enforced_and_errors_never_show_the_token(server, monkeypatch):
    with pytest.raises(SourceError) as err:
        FhirSeeder(spec(), server.base_url).open()
    assert "refused the credentials (HTTP 401)" in str(err.value)
    monkeypatch.setenv("FHIR_TOKEN", "wrong-" + TOKEN)
    with pytest.raises(SourceError) as err:
        FhirSeeder(spec(token_env="FHIR_TOKEN"), server.base_url).open()
    assert TOKEN not in str(err.value) and "\n" not in str(err.value)
    # A server error that echoes the request's credentials: still one line, token hidden.
    monkeypatch.setenv("FHIR_TOKEN", TOKEN)
    with FhirSeeder(spec(token_env="FHIR_TOKEN"), server.base_url) as s:
        placement = s.plant(identity(15))
        server.settings.leaky_reads = True
        with pytest.raises(SourceError) as err:
            s.verify(identity(15), placement)
        server.settings.leaky_reads = False
        s.retire(placement)
    message = str(err.value)
    assert "failed (HTTP 500): backend error request had Authorization: Bearer ***" in message
    assert TOKEN not in message and "\n" not in message
    monkeypatch.delenv("FHIR_TOKEN")
    with pytest.raises(ConfigError, match="environment variable FHIR_TOKEN \\(token_env\\) is not set"):
        FhirSeeder(spec(token_env="FHIR_TOKEN"), server.base_url).open()

    basic = _start(ServerSettings(basic=("canary", "pw-Zq81")), real=0)
    try:
        monkeypatch.setenv("FHIR_PW", "pw-Zq81")
        with FhirSeeder(spec(username="canary", password_env="FHIR_PW", pi_system=PI_SYSTEM), basic.base_url) as s:
            s.retire(s.plant(identity(3)))
        monkeypatch.setenv("FHIR_PW", "bad-secret")
        with pytest.raises(SourceError) as err:
            FhirSeeder(spec(username="canary", password_env="FHIR_PW"), basic.base_url).open()
        assert "bad-secret" not in str(err.value)
    finally:
        basic.stop()


def test_verify_finds_a_deleted_and_a_modified_patient(server, seeder):
    identities = [identity(i) for i in (4, 5, 6)]
    placements = [seeder.plant(i) for i in identities]
    server.store.delete(placements[0].extra["id"])
    server.store.patients[placements[1].extra["id"]]["telecom"][0]["value"] = "06 99 99 99 99"
    server.store.patients[placements[2].extra["id"]]["meta"]["versionId"] = "7"  # not compared

    missing = seeder.verify(identities[0], placements[0])
    assert missing.state is VerifyState.MISSING and missing.details == (f"Patient/{placements[0].extra['id']} is gone",)
    altered = seeder.verify(identities[1], placements[1])
    assert altered.state is VerifyState.ALTERED and altered.details == ("Patient.telecom changed",)
    assert seeder.verify(identities[2], placements[2]).state is VerifyState.OK
    seeder.retire(placements[0])  # already gone: nothing to do


def test_retire_refuses_a_patient_that_is_no_longer_ours(server, seeder):
    placement = seeder.plant(identity(7))
    rid = placement.extra["id"]
    server.store.patients[rid] = {**real_patient(99), "id": rid, "meta": {"versionId": "2", "lastUpdated": "x"}}
    with pytest.raises(SourceError, match=f"Patient/{rid} .* no longer carries the canary's INS or e-mail"):
        seeder.retire(placement)
    assert rid in server.store.patients


def test_invalid_resources_are_refused_before_any_request(server, seeder):
    posts_before = len(server.settings.requests)
    bad_key = identity(8, nir=identity(8).nir[:13] + "00")
    with pytest.raises(MappingError, match="^source 'chu': the Patient of this identity is not valid FR Core: "
                                           "Patient.identifier INS-NIR value is not a valid 15-character NIR$"):
        seeder.check_fits([identity(9), bad_key])
    assert server.settings.requests[posts_before:] == []
    problems = fp.validate_patient({"resourceType": "Patient", "birthDate": "12/03/1980", "gender": "M",
                                    "meta": {"tag": [{"code": "canary"}]}})
    assert "Patient.meta carries a tag or security label" in problems
    assert "Patient.birthDate '12/03/1980' is not YYYY-MM-DD" in problems
    assert "Patient.gender 'M' is not male, female, other or unknown" in problems


def test_a_server_that_drops_data_gets_a_compensating_delete(server, seeder):
    server.settings.drop_on_store = ("telecom",)
    before = copy.deepcopy(server.store.patients)
    with pytest.raises(MappingError, match="did not keep Patient.telecom as sent; the Patient was deleted again"):
        seeder.plant(identity(10))
    assert server.store.patients == before


def test_collides_with_a_real_ins_and_a_real_name_and_birth_date(server, seeder):
    real = server.store.patients["5"]
    ins = real["identifier"][0]["value"]
    born = date.fromisoformat(real["birthDate"])
    family = real["name"][0]["family"]
    assert not seeder.collides(identity(11))
    assert seeder.collides(identity(11, nir=ins))
    assert seeder.collides(identity(11, birth_name=family.title(), last_name=family.title(),
                                    first_names=(real["name"][0]["given"][0].lower(),), birth_date=born))


def test_locate_finds_an_unrecorded_canary(server, seeder):
    ident = identity(12)
    placement = seeder.plant(ident)
    located = seeder.locate(ident)
    assert located.extra["id"] == placement.extra["id"]
    assert seeder.verify(ident, located).state is VerifyState.OK
    assert seeder.locate(identity(13)) is None


def test_new_server_gets_fr_core_defaults_and_a_gp_by_rpps(monkeypatch):
    empty = _start(ServerSettings(sortable=False), real=0)
    try:
        with FhirSeeder(spec(pi_system=PI_SYSTEM), empty.base_url) as s:
            ident = identity(14)
            patient = s.plan(ident)[0].values
            assert re.fullmatch(r"\d{8}", patient["identifier"][1]["value"])
            assert patient["telecom"][0]["value"] == "06 10 00 00 14"
            assert patient["generalPractitioner"] == [{
                "type": "Practitioner", "identifier": {"system": fp.IDNAT_PS_SYSTEM, "value": "8" + ident.gp.rpps},
                "display": f"Dr {ident.gp.first_name} {ident.gp.last_name}"}]
            assert "meta" not in patient
            # No example to follow: FR Core's own writing, a qualified identity (VALI, FR Core <= 2.2.0).
            assert patient["extension"][0] == {"url": fp.IDENTITY_RELIABILITY_URL, "extension": [
                {"url": "identityStatus", "valueCoding": {"system": fp.CS_V2_0445, "code": "VALI"}},
                {"url": "validationDate", "valueDate": date.today().isoformat()}]}
            assert [e["url"] for e in patient["extension"]] == [fp.IDENTITY_RELIABILITY_URL, fp.BIRTH_PLACE_URL]
        with FhirSeeder(spec(), empty.base_url) as s:  # no PI system known: none written
            assert len(s.plan(identity(14))[0].values["identifier"]) == 1
    finally:
        empty.stop()


def test_unreachable_server_and_bad_options_are_one_line_errors(monkeypatch):
    stopped = FhirTestServer().start()
    url = stopped.base_url.replace("http://", "http://canary:Pw-S3cret@")
    stopped.stop()
    with pytest.raises(SourceError) as err:
        FhirSeeder(spec(), url).open()
    message = str(err.value)
    assert message.startswith("source 'chu': cannot reach FHIR server http://canary:***@127.0.0.1:")
    assert "Pw-S3cret" not in message and "\n" not in message
    with pytest.raises(ConfigError, match="the URL must be the FHIR base URL"):
        FhirSeeder(spec(), "postgresql://db/x").open()
    for options, text in (({"pi_system": "ipp"}, "pi_system='ipp' is not valid"),
                          ({"token_env": "T", "username": "u"}, "not both"),
                          ({"password_env": "P"}, "password_env needs username"),
                          ({"general_practitioner": "Dr House"}, "general_practitioner='Dr House' is not valid")):
        with pytest.raises(ConfigError, match=text):
            FhirSeeder.validate_options(options)
