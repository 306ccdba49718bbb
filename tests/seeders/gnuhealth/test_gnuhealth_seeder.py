"""The GNU Health seeder on PostgreSQL, against the real tables of a GNU Health 4.4 node.

The database (the real 4.4.1 tables, tests/fixtures/gnuhealth/schema.sql)
holds 300 real patients written the way a French front desk writes them
(tests/support/gnuhealth_fixture.py). Every test that writes checks that the
real rows are untouched, and retire leaves every table as before. The real
5.0.6 and 4.4.1 schemas, and the rows GNU Health itself writes, are in
test_real_schemas.py and test_against_application.py.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from canary.errors import CanaryAltered, ConfigError, MappingError, SourceError
from canary.model import Placement, SourceSpec, VerifyState
from canary.identity.nir import spaced
from support.gnuhealth_fixture import (
    DOCTOR_IDS, FRANCE_ID, INSTITUTION, REAL_PATIENTS, RECEPTION_UID, canary_identity, create_schema, execute,
    populate,
)
from seeders.gnuhealth.seeder import GnuHealthSeeder
from seeders.common.transforms import strip_accents
from support.sql_seeder_helpers import snapshot

PATIENT_TABLES = ("party_party", "party_party_lang", "gnuhealth_person_name", "party_address",
                  "party_contact_mechanism", "party_contact_mechanism_language",
                  "gnuhealth_person_alternative_identification", "gnuhealth_patient")
# How GNU Health's patient list finds patients (gnuhealth.patient search view, rec_name).
PATIENT_LIST = """
    SELECT pt.id, p.lastname, p.name, p.ref, n.family, n.given
    FROM gnuhealth_patient pt
    JOIN party_party p ON p.id = pt.name
    JOIN gnuhealth_person_name n ON n.party = p.id AND n.use = 'official'
    WHERE p.is_person AND p.is_patient AND p.active
    ORDER BY p.lastname, p.name
"""


def spec(**options) -> SourceSpec:
    return SourceSpec(name="chv", seeder="gnuhealth", options=options)


@pytest.fixture(scope="module")
def gh_template():
    """One populated database per module; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    from conftest import _fresh_database, _server_url

    for url in _fresh_database(_server_url("CANARY_TEST_POSTGRES_URL", "PostgreSQL"), "PostgreSQL"):
        create_schema(url)
        populate(url)
        yield url


@pytest.fixture
def gh_url(gh_template):
    template = make_url(gh_template)
    name = "canary_t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(template.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {template.database}"))
    try:
        yield template.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def seeder(gh_url):
    s = GnuHealthSeeder(spec(), gh_url)
    s.open()
    yield s
    s.close()


def row_of(placement, table, **match):
    """The values of the placement's row of ``table`` whose values include ``match``."""
    return next(r["values"] for r in placement.rows
                if r["table"] == table and all(r["values"].get(k) == v for k, v in match.items()))


def key_of(placement, table, **match):
    return next(r["key"]["id"] for r in placement.rows
                if r["table"] == table and all(r["values"].get(k) == v for k, v in match.items()))


def _without(snap, placements):
    keys = {(row["table"], row["key"]["id"]) for p in placements for row in p.rows}
    return {t: [r for r in rows if (t, r[0]) not in keys] for t, rows in snap.items()}


def test_plant_50_listed_as_patients_verify_and_retire_restores_every_table(gh_url, seeder):
    before = snapshot(gh_url)
    identities = [canary_identity(i) for i in range(50)]
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)

    placements = [seeder.plant(i) for i in identities]

    during = snapshot(gh_url)
    assert _without(during, placements) == before  # no real row changed
    assert len(during["party_party"]) == len(before["party_party"]) + 50
    assert len(during["gnuhealth_patient"]) == REAL_PATIENTS + 50
    listed = execute(gh_url, PATIENT_LIST)
    planted_patients = {key_of(p, "gnuhealth_patient") for p in placements}
    assert planted_patients <= {row.id for row in listed}  # the system's own list shows them
    stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
    assert {seeder.verify(i, p).state for i, p in zip(identities, stored)} == {VerifyState.OK}

    for placement in stored:
        seeder.retire(placement)
    assert snapshot(gh_url) == before


def test_rows_follow_the_hosts_conventions(gh_url, seeder):
    ident = canary_identity(1)  # a married woman: official birth name, usual married name
    assert ident.married_name_used and ident.phone2 is None
    placement = seeder.plant(ident)
    assert [r["table"] for r in placement.rows] == [
        "party_party", "party_party_lang", "gnuhealth_person_name", "party_address", "party_contact_mechanism",
        "party_contact_mechanism_language", "party_contact_mechanism", "party_contact_mechanism_language",
        "gnuhealth_person_alternative_identification", "gnuhealth_patient", "gnuhealth_person_name"]
    party = row_of(placement, "party_party")
    assert party["lastname"] == strip_accents(ident.birth_name).upper()
    assert party["name"] == ident.first_name
    assert re.fullmatch(r"[A-Z]{3}\d{3}[A-Z]{3}", party["ref"]) and party["federation_account"] == "FRA" + party["ref"]
    assert re.fullmatch(r"[0-9a-f-]{36}-" + INSTITUTION, party["code"])
    assert party["create_uid"] == RECEPTION_UID
    # Constant columns copied from the neighbours: booleans the client sends, country of residence.
    assert party["is_healthprof"] is False and party["residence"] == FRANCE_ID and party["citizenship"] == FRANCE_ID
    assert party["create_target"] is True and party["deceased"] is False
    assert row_of(placement, "gnuhealth_person_name", use="official")["family"] == party["lastname"]
    usual = row_of(placement, "gnuhealth_person_name", use="usual")
    assert usual["family"] == ident.last_name.upper()
    # The usual name is a later edit of the party: it stamps the party's write_date.
    assert usual["create_date"] == party["write_date"] > party["create_date"]
    assert party["write_uid"] == RECEPTION_UID
    assert party["activation_date"] == party["create_date"][:10]  # the day of the party form, not of the edit
    mobile = row_of(placement, "party_contact_mechanism", type="mobile")
    assert mobile["value"] == "+33 6 10 00 00 01" and mobile["value_compact"] == ident.phone  # phonenumbers site
    assert (mobile["write_date"], mobile["write_uid"]) == (mobile["create_date"], mobile["create_uid"])
    assert mobile["name"] == "" and mobile["emergency"] is False and mobile["active"] is True
    assert row_of(placement, "party_contact_mechanism", type="email")["value"] == ident.email
    alt = row_of(placement, "gnuhealth_person_alternative_identification")
    assert alt["code"] == ident.nir and alt["alternative_id_type"] == "country_id" and alt["comments"] == ""
    address = row_of(placement, "party_address")
    assert address["city"] == ident.address.city.upper() and address["country"] == FRANCE_ID
    assert address["subdivision"] is not None and address["is_school"] is False and address["relationship"] == ""
    assert row_of(placement, "party_party_lang")["company"] == 1
    patient = row_of(placement, "gnuhealth_patient")
    assert (patient["blood_type"] + patient["rh"]) == ident.blood_group
    assert patient["primary_care_doctor"] in DOCTOR_IDS
    # Created with the party (Party.create -> generate_target), filled in by a later edit.
    assert patient["create_date"] == party["create_date"] and patient["write_date"] == party["write_date"]
    assert patient["crit_allergic"] is False and patient["active"] is True
    stored = {r["table"]: r["values"]["create_date"] for r in placement.rows if r["table"] != "gnuhealth_person_name"}
    assert set(stored.values()) == {party["create_date"]}  # one save of the party form: one transaction stamp


def test_empty_database_gets_stock_gnuhealth_values(postgres_url):
    create_schema(postgres_url)
    populate(postgres_url, reference_only=True)
    with GnuHealthSeeder(spec(primary_care_doctor="none"), postgres_url) as s:
        assert s.version.name == "4.4"
        ident = canary_identity(4)
        placement = s.plant(ident)
        party = row_of(placement, "party_party")
        assert party["create_uid"] == 1 and party["lastname"] == ident.birth_name.upper()
        assert re.fullmatch(r"[0-9a-f-]{36}-" + INSTITUTION, party["code"])  # the admin user's company
        assert party["fed_country"] == "FRA" and party["federation_account"] == "FRA" + party["ref"]
        assert party["citizenship"] == party["residence"] == FRANCE_ID  # the federation country
        assert party["create_target"] is True and party["unidentified"] is False and party["est_dob"] is False
        assert "write_date" not in party
        assert row_of(placement, "gnuhealth_person_alternative_identification")["alternative_id_type"] == "country_id"
        patient = row_of(placement, "gnuhealth_patient")
        assert patient["create_date"] == party["create_date"] and "blood_type" not in patient
        assert "primary_care_doctor" not in patient and "write_date" not in patient
        phone = row_of(placement, "party_contact_mechanism", type="mobile")
        assert phone["value"] == phone["value_compact"] == "06 10 00 00 04"  # as typed: no phonenumbers
        stored = execute(postgres_url, "SELECT * FROM party_party WHERE id = :id",
                         id=key_of(placement, "party_party"))[0]._mapping
        booleans = [c for c in ("active", "create_target", "deceased", "est_dob", "is_healthprof",
                                "is_institution", "is_insurance_company", "is_pharmacy", "unidentified")]
        assert all(stored[c] is not None for c in booleans)
        assert s.verify(ident, placement).state is VerifyState.OK
        s.retire(placement)


def test_deleted_row_is_missing_and_edited_row_is_altered(gh_url, seeder):
    identities = [canary_identity(i) for i in (2, 3, 4)]
    placements = [seeder.plant(i) for i in identities]
    email_id = key_of(placements[0], "party_contact_mechanism", type="email")
    execute(gh_url, "DELETE FROM party_contact_mechanism WHERE id = :id", id=email_id)  # cascades to its language
    party_id = placements[1].rows[0]["key"]["id"]
    execute(gh_url, "UPDATE party_party SET lastname = 'DUPONT' WHERE id = :id", id=party_id)

    missing = seeder.verify(identities[0], placements[0])
    altered = seeder.verify(identities[1], placements[1])
    assert missing.state is VerifyState.MISSING
    assert f"party_contact_mechanism row id={email_id} is gone" in missing.details
    assert altered.state is VerifyState.ALTERED and altered.details == ("party_party.lastname changed",)
    assert seeder.verify(identities[2], placements[2]).state is VerifyState.OK
    for placement in (placements[0], placements[2]):
        seeder.retire(placement)
    with pytest.raises(CanaryAltered):  # edited since planting: kept for a person to check (#13.5)
        seeder.retire(placements[1])
    # Checked by hand and put back as planted: now it goes.
    execute(gh_url, "UPDATE party_party SET lastname = :v WHERE id = :id",
            v=placements[1].rows[0]["values"]["lastname"], id=party_id)
    seeder.retire(placements[1])


def test_collides_with_a_real_nir_and_with_a_real_name_and_birth_date(gh_url, seeder):
    real = execute(gh_url, "SELECT p.lastname, p.name, p.dob, a.code FROM party_party p JOIN "
                           "gnuhealth_person_alternative_identification a ON a.name = p.id WHERE p.id = 1017")[0]
    assert not seeder.collides(canary_identity(5))
    assert seeder.collides(canary_identity(5, nir=real.code))
    assert seeder.collides(canary_identity(5, birth_name=real.lastname.title(), last_name=real.lastname.title(),
                                           first_names=(real.name.upper(),), birth_date=real.dob))
    assert not seeder.collides(canary_identity(5, birth_name=real.lastname, last_name=real.lastname,
                                               first_names=(real.name,)))


def test_failure_in_the_last_table_leaves_nothing(gh_url, seeder):
    before = snapshot(gh_url)
    execute(gh_url, """
        CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER refuse BEFORE INSERT ON gnuhealth_patient FOR EACH ROW EXECUTE FUNCTION refuse();""")
    with pytest.raises(SourceError, match=r"^source 'chv': insert into gnuhealth_patient failed: .*disk full"):
        seeder.plant(canary_identity(6))
    assert snapshot(gh_url) == before


def test_retire_refuses_when_the_hospital_attached_an_appointment(gh_url, seeder):
    ident = canary_identity(7)
    placement = seeder.plant(ident)
    # The appointment's foreign key says ON DELETE SET NULL: a plain delete would blank the hospital's row.
    execute(gh_url, "INSERT INTO gnuhealth_appointment (name, patient, state) VALUES ('APP-X', :p, 'confirmed')",
            p=key_of(placement, "gnuhealth_patient"))
    with pytest.raises(SourceError, match=r"^source 'chv': retire refused: gnuhealth_appointment row id=\d+ refers "
                                          r"to gnuhealth_patient id=\d+ .*nothing was deleted$"):
        seeder.retire(placement)
    assert seeder.verify(ident, placement).state is VerifyState.OK  # nothing was deleted
    # A contact mechanism the hospital added to the canary's party (ON DELETE CASCADE) also stops it.
    execute(gh_url, "DELETE FROM gnuhealth_appointment WHERE name = 'APP-X'")
    execute(gh_url, "INSERT INTO party_contact_mechanism (party, type, value, active) "
                    "VALUES (:p, 'phone', '0299', true)",
            p=key_of(placement, "party_party"))
    with pytest.raises(SourceError, match=r"retire refused: party_contact_mechanism row id=\d+ refers to party_party"):
        seeder.retire(placement)


def test_locate_finds_an_unrecorded_plant(gh_url, seeder):
    identities = [canary_identity(i) for i in (8, 9)]
    placements = [seeder.plant(i) for i in identities]
    for identity, placement in zip(identities, placements):
        located = seeder.locate(identity)
        assert [r["key"] for r in located.rows] == [r["key"] for r in placement.rows]
        assert seeder.verify(identity, located).state is VerifyState.OK
    assert seeder.locate(canary_identity(10)) is None


def test_options_are_checked(gh_url):
    with pytest.raises(ConfigError, match="option country='France' is not valid"):
        GnuHealthSeeder.validate_options({"country": "France"})
    with pytest.raises(ConfigError, match="has no option 'ward'"):
        GnuHealthSeeder.validate_options({"ward": "A"})
    for options, message in (({"country": "DE"}, "country 'DE' is not in country_country"),
                             ({"create_uid": "42"}, "create_uid 42 is not a res_user id"),
                             ({"primary_care_doctor": "77"}, "primary_care_doctor 77 is not")):
        with pytest.raises(MappingError, match=f"^source 'chv': {message}"):
            GnuHealthSeeder(spec(**options), gh_url).open()
    # The site's federation country is removed: older patients say FRA, GNU Health now writes XXX accounts.
    execute(gh_url, "DELETE FROM gnuhealth_federation_country_config")
    with GnuHealthSeeder(spec(), gh_url) as s:
        party = row_of(s.plant(canary_identity(15)), "party_party")
        assert party["fed_country"] == "" and party["federation_account"] == "XXX" + party["ref"]
    with GnuHealthSeeder(spec(create_uid="1", primary_care_doctor="3", alternative_id_type="other",
                              fed_country="XXX"), gh_url) as s:
        placement = s.plant(canary_identity(11))
        assert row_of(placement, "party_party")["create_uid"] == 1
        assert row_of(placement, "party_party")["federation_account"].startswith("XXX")
        assert row_of(placement, "gnuhealth_patient")["primary_care_doctor"] == 3
        s.retire(placement)


def test_numbered_party_codes(gh_url):
    """Some sites number party codes with the Tryton party sequence instead of GNU Health's uuid."""
    execute(gh_url, """
        UPDATE party_party SET code = (id + 4000)::text;
        CREATE TABLE ir_sequence (id INTEGER PRIMARY KEY, prefix VARCHAR, suffix VARCHAR, padding INTEGER);
        INSERT INTO ir_sequence VALUES (3, 'P', NULL, 6);
        CREATE SEQUENCE ir_sequence_3 START 5400;
        CREATE TABLE party_configuration_party_sequence (id INTEGER PRIMARY KEY, party_sequence INTEGER);
        INSERT INTO party_configuration_party_sequence VALUES (1, 3);""")
    before = snapshot(gh_url)
    with GnuHealthSeeder(spec(), gh_url) as s:
        ident = canary_identity(12, address=canary_identity(12).address.__class__(
            line1="3 rue des Lilas", line2="Bâtiment B", postcode="35500", city="Vitré", insee_code="35360",
            departement="35"))
        placement = s.plant(ident)
        assert row_of(placement, "party_party")["code"] == "P005400"
        address = row_of(placement, "party_address")
        assert address["street"] == "3 rue des Lilas\nBâtiment B" and address["postal_code"] == "35500"
        assert s.verify(ident, placement).state is VerifyState.OK
        s.retire(placement)
    assert snapshot(gh_url) == before


def test_versions_are_told_apart_and_others_refused_in_one_line(gh_url):
    with GnuHealthSeeder(spec(), gh_url) as s:
        assert s.version.name == "4.4" and s.settings.version.link == "name"
    execute(gh_url, "ALTER TABLE gnuhealth_patient RENAME COLUMN name TO party;"
                    "ALTER TABLE gnuhealth_person_alternative_identification RENAME COLUMN name TO party")
    with GnuHealthSeeder(spec(), gh_url) as s:  # the 5.0 links (the real 5.0.6 schema: test_real_schemas.py)
        assert s.version.name == "5.0"
        placement = s.plant(canary_identity(14))
        assert {r["table"] for r in placement.rows if "party" in r["values"]} >= {"gnuhealth_patient"}
        s.retire(placement)
    cases = (  # (change, undo, reason)
        ("ALTER TABLE party_address RENAME COLUMN postal_code TO zip",
         "ALTER TABLE party_address RENAME COLUMN zip TO postal_code",
         "party_address has zip, not postal_code: GNU Health before 4.0"),
        ("UPDATE ir_module SET state = 'not activated' WHERE name = 'health'",
         "UPDATE ir_module SET state = 'activated'", "the GNU Health module 'health' is not activated"),
        ("ALTER TABLE gnuhealth_patient RENAME COLUMN party TO patient_party", "SELECT 1",
         r"gnuhealth_patient has neither party \(5.0\) nor name \(4.4\)"))
    for change, undo, reason in cases:
        execute(gh_url, change)
        with pytest.raises(MappingError, match=f"^source 'chv': unsupported GNU Health version: {reason}.*"
                                               "supported: GNU Health 4.4 and 5.0"):
            GnuHealthSeeder(spec(), gh_url).open()
        execute(gh_url, undo)


def test_not_a_gnuhealth_database_and_unreachable_server(postgres_url):
    execute(postgres_url, "CREATE TABLE party_party (id SERIAL PRIMARY KEY, name VARCHAR)")
    with pytest.raises(MappingError, match=r"^source 'chv': table party_party has no column code: is this a supported GNU Health"):
        GnuHealthSeeder(spec(), postgres_url).open()
    with pytest.raises(SourceError) as err:
        GnuHealthSeeder(spec(), "postgresql+psycopg://gh:S3cretPw!@127.0.0.1:1/health").open()
    assert "S3cretPw" not in str(err.value) and "\n" not in str(err.value)


def test_nir_spacing_follows_the_host(gh_url):
    execute(gh_url, "UPDATE gnuhealth_person_alternative_identification SET code = "
                    "substr(code,1,1)||' '||substr(code,2,2)||' '||substr(code,4,2)||' '||substr(code,6,2)||' '||"
                    "substr(code,8,3)||' '||substr(code,11,3)||' '||substr(code,14,2)")
    with GnuHealthSeeder(spec(), gh_url) as s:
        ident = canary_identity(13)
        placement = s.plant(ident)
        assert row_of(placement, "gnuhealth_person_alternative_identification")["code"] == spaced(ident.nir)
        assert s.collides(ident)  # its own NIR, spaced, is now in the database
        s.retire(placement)


def test_departement_subdivision_whichever_iso_code_the_site_imported():
    from seeders.gnuhealth.rows import subdivision_id

    new = {"FR-35": 1, "FR-75C": 2, "FR-974": 3}  # pycountry 26 (GNU Health 5.0 sites)
    old = {"FR-35": 1, "FR-75": 4, "FR-RE": 5, "FR-LRE": 6}  # pycountry 20.7 (GNU Health 4.4 sites)
    assert [subdivision_id(new, d) for d in ("35", "75", "974", "13")] == [1, 2, 3, None]
    assert [subdivision_id(old, d) for d in ("35", "75", "974")] == [1, 4, 5]


def test_party_code_ends_with_the_creators_company_as_gnu_health_writes_it_now(gh_url):
    # Party.create appends context['company.rec_name'], the company of the user who saves the form.
    execute(gh_url, "UPDATE party_party SET name = 'CH Vitré - Pôle Santé' WHERE id = 99")
    with GnuHealthSeeder(spec(), gh_url) as s:
        assert row_of(s.plant(canary_identity(16)), "party_party")["code"].endswith("-CH Vitré - Pôle Santé")
    execute(gh_url, "UPDATE res_user SET company = NULL")  # a site without company: the given name
    with GnuHealthSeeder(spec(), gh_url) as s:
        ident = canary_identity(17)
        party = row_of(s.plant(ident), "party_party")
        assert party["code"].endswith("-" + INSTITUTION)  # older patients' constant suffix
    execute(gh_url, "UPDATE party_party SET code = substr(code, 1, 36) || '-' || name WHERE is_patient")
    with GnuHealthSeeder(spec(), gh_url) as s:
        ident = canary_identity(18)
        assert row_of(s.plant(ident), "party_party")["code"].endswith("-" + ident.first_name)
