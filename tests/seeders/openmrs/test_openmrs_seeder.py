"""The OpenMRS seeder on MariaDB: fixture schema with 300 real patients, idgen, and the real dump.

Every test checks the real rows byte for byte: planted canaries add rows and
retire removes exactly them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from support.app_databases import (OPENMRS_DUMP, left_as_prepared, load_mysqldump, require_dump, snapshot_tables,
                                    snapshotted_database)
from canary.errors import CanaryAltered, ConfigError, MappingError, SourceError
from canary.model import Placement, VerifyState
from support.openmrs_support import (
    EMAIL_TYPE, HOSPITAL, IDGEN, LUHN_TYPE, NIR_TYPE, PHONE_TYPE, REAL_OFFSET, create_schema, populate_real,
    real_identifier, real_nir, source,
)
from seeders.openmrs.checkdigits import CORE_LUHN_NAME, MOD30_CHARACTERS, validator_for
from seeders.sql.idnumbers import next_in_series
from seeders.openmrs.seeder import OpenMrsSeeder
from support.sql_seeder_helpers import execute, make_identity

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

# The patient list as OpenMRS core builds it (PatientServiceImpl.getAllPatients
# with the preferred name and identifier the list shows).
PATIENT_LIST = """
SELECT p.patient_id, pi.identifier, pit.name AS id_type, pn.given_name, pn.family_name, per.gender, per.birthdate
FROM patient p
JOIN person per ON per.person_id = p.patient_id AND per.voided = 0
JOIN person_name pn ON pn.person_id = p.patient_id AND pn.voided = 0 AND pn.preferred = 1
JOIN patient_identifier pi ON pi.patient_id = p.patient_id AND pi.voided = 0 AND pi.preferred = 1
JOIN patient_identifier_type pit ON pit.patient_identifier_type_id = pi.identifier_type AND pit.retired = 0
JOIN location l ON l.location_id = pi.location_id
WHERE p.voided = 0
ORDER BY p.patient_id
"""


def snapshot(url: str) -> dict[str, list[tuple]]:
    return snapshot_tables(url)


def _prepare(url: str) -> None:
    create_schema(url)
    populate_real(url)


# -- check digits and numbering, against OpenMRS's own test vectors ---------------------

def test_core_luhn_matches_openmrs_test_vectors():
    luhn = validator_for(CORE_LUHN_NAME)
    bases = ["a", "123456", "ab32kcdak3", "chaseisreallycoolyay", "1", "moose", "MOOSE", "MooSE", "adD3Eddf429daD999"]
    assert [luhn.valid_identifier(b) for b in bases] == [f"{b}-{d}" for b, d in zip(bases, "369787771")]
    assert luhn.undecorated("123456-G") == luhn.undecorated("123456-6") == "123456"  # letter or digit
    assert luhn.undecorated("123456-5") is None and luhn.undecorated("-6") is None
    with pytest.raises(ValueError):
        luhn.valid_identifier("ABC DEF")


def test_verhoeff_and_idgen_luhn_mod_n_match_their_java_originals():
    verhoeff = validator_for("org.openmrs.patient.impl.VerhoeffIdentifierValidator")
    bases = ["12345678", "87654321", "11111111", "64537218", "00000000"]
    assert [verhoeff.valid_identifier(b)[-1] for b in bases] == list("GEBAB")
    assert verhoeff.undecorated("12345678-6") is None  # numeric check characters are refused
    mod10 = validator_for("org.openmrs.module.idgen.validator.LuhnMod10IdentifierValidator")
    assert mod10.valid_identifier("7992739871") == "79927398713"  # the classic Luhn example
    mod30 = validator_for("org.openmrs.module.idgen.validator.LuhnMod30IdentifierValidator")
    assert mod30.valid_identifier("100HN") == "100HNY" and mod30.undecorated("100HNY") == "100HN"
    assert mod30.undecorated("100HNA") is None
    assert validator_for("org.example.CustomValidator") is None


def test_next_in_series_follows_the_newest_prefix_and_width():
    assert next_in_series([]) == "10000"
    assert next_in_series(["12", "MRN0099", "MRN0100"]) == "MRN0101"
    assert next_in_series(["MRN0099", "MRN0100", "12"]) == "13"
    assert next_in_series(["100HN", "100HY"], MOD30_CHARACTERS) == "100J0"
    assert next_in_series(["5", "6"], taken=lambda base: base == "7") == "8"


def test_another_engine_is_refused_in_one_line(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    with pytest.raises(MappingError, match=r"^source 'omrs': this seeder writes OpenMRS on MariaDB/MySQL, not sqlite$"):
        OpenMrsSeeder(source(), f"sqlite:///{path}").open()


# -- against MariaDB ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def omrs_db():
    """One database for the module: the fixture schema and its 300 real patients, with their snapshot."""
    yield from snapshotted_database("CANARY_TEST_MARIADB_URL", "MariaDB", _prepare, snapshot)


@pytest.fixture
def omrs_url(omrs_db):
    yield from left_as_prepared(omrs_db, snapshot)


def _open(url: str, **options: str) -> OpenMrsSeeder:
    seeder = OpenMrsSeeder(source(**options), url)
    seeder.open()
    return seeder


@pytest.fixture
def seeder(omrs_url):
    s = _open(omrs_url, nir_identifier_type="INS-NIR")
    yield s
    s.close()


def _query(url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    engine.dispose()
    return rows


def _by_table(placement: Placement, alias_table: str, index: int = 0) -> dict:
    return [r for r in placement.rows if r["table"] == alias_table][index]


def test_plant_50_verify_retire_as_openmrs_writes_them(omrs_url, seeder):
    before = snapshot(omrs_url)
    identities = [make_identity(i) for i in range(50)]
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)
    started = datetime.now().replace(microsecond=0)
    placements = [seeder.plant(i) for i in identities]

    stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
    assert {seeder.verify(i, p).state for i, p in zip(identities, stored)} == {VerifyState.OK}
    listed = _query(omrs_url, PATIENT_LIST)
    assert len(listed) == 300 + 50  # the application's own list shows them as ordinary patients
    canary_ids = {p.rows[0]["key"]["person_id"] for p in placements}
    assert {r["patient_id"] for r in listed} >= canary_ids

    # One patient, table by table, in the application's order and conventions.
    ident, rows = identities[1], placements[1].rows
    assert [r["table"] for r in rows] == ["person", "patient", "person_name", "person_address",
                                          "person_attribute", "patient_identifier", "patient_identifier"]
    person, patient, name, address, phone, identifier, nir = (r["values"] for r in rows)
    pid = rows[0]["key"]["person_id"]
    assert pid > 301 and patient["patient_id"] == name["person_id"] == identifier["patient_id"] == pid
    assert person["gender"] == "F" and person["birthdate"] == ident.birth_date.isoformat()
    assert (person["birthdate_estimated"], person["dead"], person["voided"], person["creator"]) == (0, 0, 0, 1)
    assert started <= datetime.fromisoformat(person["date_created"]) <= datetime.now()
    assert all(UUID4.fullmatch(r["values"]["uuid"]) for r in rows if "uuid" in r["values"])
    assert patient["allergy_status"] == "Unknown"
    # Habits of this hospital: family names in capitals, phones dotted, identifiers at Saint-Louis.
    assert name["family_name"] == ident.last_name.upper() and name["given_name"] == ident.first_name
    assert name["family_name2"] == ident.birth_name.upper() != name["family_name"]  # married name used
    assert name["preferred"] == 1 and name["middle_name"] is None  # the hospital leaves it NULL
    assert address["address1"] == ident.address.line1 and address["country"] == "France"
    assert address["postal_code"] == ident.address.postcode and address["city_village"] == ident.address.city
    assert phone["person_attribute_type_id"] == PHONE_TYPE and phone["value"] == "06.10.00.00.01"
    assert identifier["identifier_type"] == LUHN_TYPE and identifier["location_id"] == HOSPITAL
    assert identifier["preferred"] == 1 and nir["preferred"] == 0
    assert nir["identifier_type"] == NIR_TYPE and nir["identifier"] == ident.nir
    # Identifiers continue the hospital's series, each with its Luhn check digit.
    numbers = [_by_table(p, "patient_identifier")["values"]["identifier"] for p in placements]
    assert numbers[:2] == [real_identifier(301), real_identifier(302)]
    assert all(validator_for(CORE_LUHN_NAME).undecorated(n) for n in numbers)

    for placement in stored:
        seeder.retire(placement)
    assert snapshot(omrs_url) == before


def test_deleted_row_is_missing_and_edited_row_is_altered(omrs_url, seeder):
    identities = [make_identity(i) for i in range(3)]
    placements = [seeder.plant(i) for i in identities]
    address_id = _by_table(placements[0], "person_address")["key"]["person_address_id"]
    execute(omrs_url, "DELETE FROM person_address WHERE person_address_id = :id", id=address_id)
    attribute_id = _by_table(placements[1], "person_attribute")["key"]["person_attribute_id"]
    execute(omrs_url, "UPDATE person_attribute SET value = '06.99.99.99.99' WHERE person_attribute_id = :id",
            id=attribute_id)

    missing = seeder.verify(identities[0], placements[0])
    assert missing.state is VerifyState.MISSING
    assert missing.details[0].startswith("person_address row person_address_id=")
    altered = seeder.verify(identities[1], placements[1])
    assert altered.state is VerifyState.ALTERED and altered.details == ("person_attribute.value changed",)
    assert seeder.verify(identities[2], placements[2]).state is VerifyState.OK
    for placement in (placements[0], placements[2]):
        seeder.retire(placement)
    with pytest.raises(CanaryAltered):  # edited since planting: kept for a person to check (#13.5)
        seeder.retire(placements[1])
    # Checked by hand and put back as planted: now it goes.
    execute(omrs_url, "UPDATE person_attribute SET value = :v WHERE person_attribute_id = :id",
            v=_by_table(placements[1], "person_attribute")["values"]["value"], id=attribute_id)
    seeder.retire(placements[1])
    assert seeder.verify(identities[0], placements[0]).state is VerifyState.MISSING


def test_collides_with_existing_nir_and_name_and_birth_date(omrs_url, seeder):
    real = make_identity(REAL_OFFSET + 14)
    assert seeder.collides(make_identity(5, nir=real_nir(14)))  # NIR recorded as an INS-NIR identifier
    same_person = make_identity(6, last_name=real.last_name, first_names=real.first_names,
                                birth_date=real.birth_date)
    assert seeder.collides(same_person)  # stored as "DUPONT": compared without case
    assert not seeder.collides(make_identity(6, birth_date=real.birth_date + timedelta(days=1)))


def test_failure_in_the_last_row_leaves_nothing(omrs_url, seeder, monkeypatch):
    before = snapshot(omrs_url)
    builder = seeder.builder
    original = builder.rows

    def broken(identity, identifier, now):
        rows = original(identity, identifier, now)
        rows[-1].values["location_id"] = 999  # no such location: the last insert fails
        return rows

    monkeypatch.setattr(builder, "rows", broken)
    with pytest.raises(SourceError, match="source 'omrs': insert into patient_identifier failed"):
        seeder.plant(make_identity(1))
    assert snapshot(omrs_url) == before
    monkeypatch.setattr(builder, "rows", original)
    placement = seeder.plant(make_identity(1))  # the identifier it had taken is used again
    assert _by_table(placement, "patient_identifier")["values"]["identifier"] == real_identifier(301)
    seeder.retire(placement)


def test_locate_finds_an_unrecorded_canary_and_only_its_rows(omrs_url, seeder):
    before = snapshot(omrs_url)
    identities = [make_identity(i) for i in range(3)]
    placements = [seeder.plant(i) for i in identities]
    found = seeder.locate(identities[1])
    assert found is not None
    assert [r["key"] for r in found.rows] == [r["key"] for r in placements[1].rows]
    assert seeder.verify(identities[1], found).state is VerifyState.OK
    assert seeder.locate(make_identity(40)) is None
    assert seeder.locate(make_identity(REAL_OFFSET + 3)) is None  # a real patient is never claimed
    for placement in (placements[0], found, placements[2]):
        seeder.retire(placement)
    assert snapshot(omrs_url) == before


def test_options_resolve_by_name_or_id_and_errors_are_one_line(omrs_url):
    s = _open(omrs_url, identifier_type=str(LUHN_TYPE), location="Unknown Location",
              phone_attribute_type="none", email_attribute_type="Email")
    try:
        placement = s.plant(make_identity(2))
        assert [r["table"] for r in placement.rows].count("person_attribute") == 1
        email = _by_table(placement, "person_attribute")["values"]
        assert email["person_attribute_type_id"] == EMAIL_TYPE and email["value"] == make_identity(2).email
        assert _by_table(placement, "patient_identifier")["values"]["location_id"] == 1
        assert s.locate(make_identity(2)).rows[0]["key"] == placement.rows[0]["key"]
        s.retire(placement)
    finally:
        s.close()
    cases = [({"identifier_type": "Carte Vitale"}, "no patient identifier type 'Carte Vitale' (found: "),
             ({"location": "Nowhere"}, "no location 'Nowhere'"),
             ({"phone_attribute_type": "Phone"}, "--set phone_attribute_type=NAME"),
             ({"creator": "77"}, "no user with user_id 77")]
    for options, message in cases:
        with pytest.raises(SourceError, match=re.escape(message)) as err:
            _open(omrs_url, **options)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="creator must be a users.user_id"):
        OpenMrsSeeder.validate_options({"creator": "admin"})
    with pytest.raises(ConfigError, match="has no option 'identifier'"):
        OpenMrsSeeder.validate_options({"identifier": "x"})


IDGEN_TABLES = ("idgen_auto_generation_option", "idgen_log_entry", "idgen_reserved_identifier", "idgen_seq_id_gen",
                "idgen_identifier_source")


def test_idgen_numbers_canaries_like_the_reference_application(omrs_url):
    load_mysqldump(omrs_url, IDGEN)  # removed again below: the module's database is shared
    try:
        before = snapshot(omrs_url)
        s = _open(omrs_url)  # default identifier type: now "OpenMRS ID", numbered by idgen
        try:
            identities = [make_identity(i) for i in range(3)]
            assert s.plan(identities[0])[0].values["identifier"] == "10010W"  # plan takes nothing
            placements = [s.plant(i) for i in identities]
            numbers = [_by_table(p, "patient_identifier")["values"]["identifier"] for p in placements]
            assert numbers == ["10010W", "10012R", "10013N"]  # 10011U is reserved: skipped as idgen does
            log = placements[0].rows[0]
            assert log["table"] == "idgen_log_entry"
            assert log["values"]["comment"] == "RegistrationCoreService" and log["values"]["identifier"] == "10010W"
            validator = validator_for("org.openmrs.module.idgen.validator.LuhnMod30IdentifierValidator")
            assert all(validator.undecorated(n) and set(n) <= set(MOD30_CHARACTERS) for n in numbers)
            assert [s.verify(i, p).state for i, p in zip(identities, placements)] == [VerifyState.OK] * 3
            for placement in placements:
                s.retire(placement)
        finally:
            s.close()
        after = snapshot(omrs_url)
        counter = after.pop("idgen_seq_id_gen")
        assert counter[0][1] == 810034  # like a sequence, the counter does not go back
        before.pop("idgen_seq_id_gen")
        assert after == before
    finally:
        for table in IDGEN_TABLES:
            execute(omrs_url, f"DROP TABLE IF EXISTS {table}")
        execute(omrs_url, "DELETE FROM patient_identifier_type WHERE name = 'OpenMRS ID'")


def test_real_openmrs_schema_plant_verify_retire(mariadb_url):
    require_dump(OPENMRS_DUMP)
    # First, a database that is not OpenMRS is refused before anything is written.
    execute(mariadb_url, "CREATE TABLE person (person_id INT PRIMARY KEY, nom VARCHAR(40))")
    with pytest.raises(MappingError, match=r"^source 'omrs': person.gender no such column in the table \(this "
                                           r"database does not look like a supported OpenMRS version\)$"):
        _open(mariadb_url)
    execute(mariadb_url, "DROP TABLE person")
    load_mysqldump(mariadb_url, OPENMRS_DUMP)
    # A Reference Application install defines this attribute type; the bare core dump does not.
    execute(mariadb_url, "INSERT INTO person_attribute_type (name, description, format, searchable, creator, "
            "date_created, retired, sort_weight, uuid) VALUES ('Telephone Number', 'The telephone number for the "
            "person', 'java.lang.String', 0, 1, '2007-05-04 00:00:00', 0, 7, '14d4f066-15f5-102d-96e4-000c29c2a5d7')")
    before = snapshot(mariadb_url)
    s = _open(mariadb_url)
    try:
        identities = [make_identity(i) for i in range(50)]
        s.check_fits(identities)
        assert not any(s.collides(i) for i in identities)
        placements = [s.plant(i) for i in identities]
        assert {s.verify(i, p).state for i, p in zip(identities, placements)} == {VerifyState.OK}
        listed = _query(mariadb_url, PATIENT_LIST)
        assert len(listed) == 50 and {r["id_type"] for r in listed} == {"OpenMRS Identification Number"}
        assert [r["identifier"] for r in listed[:2]] == ["10000-8", "10001-6"]  # core Luhn, an empty series
        assert s.locate(identities[7]).rows[0]["key"] == placements[7].rows[0]["key"]
        for placement in placements:
            s.retire(placement)
    finally:
        s.close()
    assert snapshot(mariadb_url) == before


def test_creator_auto_is_who_registers_the_newest_patients(omrs_url):
    """Canaries all created by admin where a clerk registers patients would stand out."""
    engine = sa.create_engine(omrs_url)
    try:
        with engine.begin() as conn:
            clerk = conn.execute(sa.text("SELECT MAX(user_id) + 1 FROM users")).scalar()
            conn.execute(sa.text("INSERT INTO users (user_id, system_id, username, creator, date_created, "
                                 "person_id, retired, uuid) SELECT :u, 'clerk-t', 'clerk-t', 1, NOW(), "
                                 "person_id, 0, UUID() FROM users WHERE user_id = 1"), {"u": clerk})
            newest = [r[0] for r in conn.execute(sa.text(
                "SELECT patient_id FROM patient ORDER BY patient_id DESC LIMIT 150"))]
            before = dict(conn.execute(sa.text("SELECT patient_id, creator FROM patient WHERE patient_id IN :ids")
                                       .bindparams(sa.bindparam("ids", expanding=True)), {"ids": newest}).all())
            conn.execute(sa.text("UPDATE patient SET creator = :u WHERE patient_id IN :ids")
                         .bindparams(sa.bindparam("ids", expanding=True)), {"u": clerk, "ids": newest})
        try:
            seeder = _open(omrs_url)
            try:
                assert seeder.setup.creator == clerk
            finally:
                seeder.close()
            explicit = _open(omrs_url, creator="1")
            try:
                assert explicit.setup.creator == 1
            finally:
                explicit.close()
        finally:
            with engine.begin() as conn:
                for patient_id, creator in before.items():
                    conn.execute(sa.text("UPDATE patient SET creator = :c WHERE patient_id = :p"),
                                 {"c": creator, "p": patient_id})
                conn.execute(sa.text("DELETE FROM users WHERE user_id = :u"), {"u": clerk})
    finally:
        engine.dispose()
