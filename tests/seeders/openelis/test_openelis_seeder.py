"""The OpenELIS seeder on PostgreSQL: fixture schema with 300 real patients, and the real dump.

Every test checks the real rows of schema clinlims byte for byte: planted
canaries add rows, retire removes exactly them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime

import pytest
import sqlalchemy as sa

from support.app_databases import (OPENELIS_DUMP, left_as_prepared, load_pgdump, require_dump, snapshot_tables,
                                    snapshotted_database)
from canary.errors import CanaryAltered, ConfigError, MappingError, SourceError
from canary.model import Placement, VerifyState
from support.openelis_support import (
    COMMUNE, NATIONAL_TYPE, REAL_OFFSET, REF_IDENTITY, REF_PATIENT, REF_PERSON, ST_TYPE, VILLAGE, create_schema,
    populate_real, source, st_number,
)
from seeders.sql.neighbours import Neighbours, phone_style
from seeders.openelis.clock import millis
from seeders.openelis.seeder import OpenElisSeeder
from seeders.common.transforms import strip_accents
from support.sql_seeder_helpers import execute, make_identity

# The application's patient search (SearchResultsDAOImp), every patient listed.
PATIENT_SEARCH = """
SELECT p.id, pr.first_name, pr.last_name, p.gender, p.entered_birth_date, p.national_id, p.external_id,
       pi.identity_data AS st, piSN.identity_data AS subject, piGUID.identity_data AS guid
FROM clinlims.patient p JOIN clinlims.person pr ON p.person_id = pr.id
LEFT JOIN clinlims.patient_identity pi ON pi.patient_id = p.id AND pi.identity_type_id = 2
LEFT JOIN clinlims.patient_identity piSN ON piSN.patient_id = p.id AND piSN.identity_type_id = 9
LEFT JOIN clinlims.patient_identity piGUID ON piGUID.patient_id = p.id AND piGUID.identity_type_id = 14
{where}
ORDER BY p.id
"""


# -- habits of the host's rows ------------------------------------------------------------

def test_neighbours_follow_the_majority_and_fall_back_to_the_default():
    rows = [{"nom": "LEFEVRE", "tel": "06.12.34.56.78", "mid": "", "cp": "75011"} for _ in range(25)]
    rows += [{"nom": "Martin", "tel": "0612345678", "mid": None, "cp": None}]
    habits = Neighbours(rows)
    assert habits.upper_case("nom") and habits.drops_accents("nom")
    assert habits.name_writing("nom", "Lefèvre") == "LEFEVRE"
    assert habits.phone_style("tel", "spaced") == "dotted"
    assert habits.empty_value("mid") == "" and not habits.fills("mid", default=True)
    assert habits.optional("mid", "Marie", default_fill=True) == ""
    assert habits.fills("cp", default=False) and habits.optional("cp", "69003", default_fill=False) == "69003"
    empty = Neighbours([])
    assert empty.fills("cp", default=True) and empty.empty_value("mid") is None
    assert empty.name_writing("nom", "Lefèvre") == "Lefèvre"  # no evidence: as the identity writes it
    assert Neighbours(rows[:5]).drops_accents("nom") is False  # too few names to tell
    assert [phone_style(t) for t in ("+33 6 12 34 56 78", "06-12-34-56-78", "612")] == ["international", "dashed", None]


def test_another_engine_is_refused_in_one_line(tmp_path):
    path = tmp_path / "lis.db"
    sqlite3.connect(path).close()
    with pytest.raises(MappingError, match=r"^source 'elis': OpenELIS runs on PostgreSQL, not sqlite$"):
        OpenElisSeeder(source(), f"sqlite:///{path}").open()


# -- against PostgreSQL ------------------------------------------------------------------

def snapshot(url: str) -> dict[str, list[tuple]]:
    return snapshot_tables(url, "clinlims")


def _prepare(url: str) -> None:
    create_schema(url)
    populate_real(url)


@pytest.fixture(scope="module")
def elis_db():
    """One database for the module: the fixture schema and its 300 real patients, with their snapshot."""
    yield from snapshotted_database("CANARY_TEST_POSTGRES_URL", "PostgreSQL", _prepare, snapshot)


@pytest.fixture
def elis_url(elis_db):
    yield from left_as_prepared(elis_db, snapshot)


def _open(url: str, **options: str) -> OpenElisSeeder:
    seeder = OpenElisSeeder(source(**options), url)
    seeder.open()
    return seeder


@pytest.fixture
def seeder(elis_url):
    s = _open(elis_url)
    yield s
    s.close()


def _query(url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    engine.dispose()
    return rows


def _row(placement: Placement, table: str, index: int = 0) -> dict:
    return [r for r in placement.rows if r["table"] == table][index]


def test_plant_50_verify_retire_as_openelis_writes_them(elis_url, seeder):
    before = snapshot(elis_url)
    identities = [make_identity(i) for i in range(50)]
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)
    started = datetime.now()
    placements = [seeder.plant(i) for i in identities]

    stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
    assert {seeder.verify(i, p).state for i, p in zip(identities, stored)} == {VerifyState.OK}
    listed = _query(elis_url, PATIENT_SEARCH.format(where=""))
    assert len(listed) == 350 and all(r["st"] for r in listed)  # every canary has its ST number, as real ones
    found = _query(elis_url, PATIENT_SEARCH.format(where="WHERE lower(p.national_id) LIKE :nir"),
                   nir=identities[3].nir.lower())
    assert [r["id"] for r in found] == [_row(placements[3], "patient")["values"]["id"]]

    ident, rows = identities[1], placements[1].rows
    assert [r["table"] for r in rows] == ["person", "history", "patient", "history", "patient_identity", "history",
                                          "person_address", "person_address"]
    person, h_person, patient, h_patient, st, h_st, commune, village = (r["values"] for r in rows)
    # Ids from the application's sequences, after the 300 real patients.
    assert person["id"] == patient["id"] == patient["person_id"] == st["id"] > 300
    assert millis(started) <= datetime.fromisoformat(person["lastupdated"]) <= datetime.now()
    # The laboratory's habits: capitals without accents, '' middle names, national phones, "FRANCE".
    assert person["last_name"] == strip_accents(ident.last_name).upper()
    assert person["first_name"] == strip_accents(ident.first_name).upper()
    assert person["middle_name"] == "" and person["country"] == "FRANCE"
    # No form writes the patient's own e-mail, and this site's patients have none: the phone is the contact point.
    assert person["primary_phone"] == "0610000001" and person["email"] is None
    assert person["multiple_unit"] is None and person["zip_code"] == ident.address.postcode
    assert patient["gender"] == "F" and patient["national_id"] == ident.nir
    assert patient["entered_birth_date"] == ident.birth_date.strftime("%d/%m/%Y")
    assert patient["birth_date"].startswith(ident.birth_date.isoformat())
    assert (st["identity_type_id"], st["identity_data"], st["patient_id"]) == (ST_TYPE, st_number(302), patient["id"])
    assert [h["reference_table"] for h in (h_person, h_patient, h_st)] == [REF_PERSON, REF_PATIENT, REF_IDENTITY]
    assert {h["activity"] for h in (h_person, h_patient, h_st)} == {"I"} and h_person["reference_id"] == person["id"]
    assert h_person["timestamp"] == person["lastupdated"] and h_person["changes"] is None
    assert (commune["address_part_id"], commune["type"], commune["value"]) == (COMMUNE, "T", None)
    assert (village["address_part_id"], village["value"]) == (VILLAGE, strip_accents(ident.address.city).upper())
    assert [_row(p, "patient_identity")["values"]["identity_data"] for p in placements[:3]] == [
        st_number(301), st_number(302), st_number(303)]

    for placement in stored:
        seeder.retire(placement)
    assert snapshot(elis_url) == before


def test_deleted_row_is_missing_and_edited_row_is_altered(elis_url, seeder):
    identities = [make_identity(i) for i in range(3)]
    placements = [seeder.plant(i) for i in identities]
    execute(elis_url, "DELETE FROM clinlims.person_address WHERE person_id = :id AND address_part_id = 2",
            id=placements[0].rows[0]["key"]["id"])
    execute(elis_url, "UPDATE clinlims.person SET primary_phone = '0699999999', lastupdated = now() WHERE id = :id",
            id=placements[1].rows[0]["key"]["id"])
    execute(elis_url, "UPDATE clinlims.patient SET lastupdated = now() WHERE id = :id",
            id=_row(placements[2], "patient")["key"]["id"])  # the application re-saving: not an alteration

    missing = seeder.verify(identities[0], placements[0])
    assert missing.state is VerifyState.MISSING and missing.details[0].startswith("person_address row person_id=")
    altered = seeder.verify(identities[1], placements[1])
    assert altered.state is VerifyState.ALTERED and altered.details == ("person.primary_phone changed",)
    assert seeder.verify(identities[2], placements[2]).state is VerifyState.OK
    for placement in (placements[0], placements[2]):
        seeder.retire(placement)
    with pytest.raises(CanaryAltered):  # edited since planting: kept for a person to check (#13.5)
        seeder.retire(placements[1])
    # Checked by hand and put back as planted: now it goes.
    execute(elis_url, "UPDATE clinlims.person SET primary_phone = :v WHERE id = :id",
            v=placements[1].rows[0]["values"]["primary_phone"], id=placements[1].rows[0]["key"]["id"])
    seeder.retire(placements[1])


def test_collides_with_existing_nir_and_name_and_birth_date(elis_url, seeder):
    real = make_identity(REAL_OFFSET + 9)
    assert seeder.collides(make_identity(4, nir=real.nir))
    # Stored as "LEFEVRE" / "THEO": found whatever the case and accents.
    assert seeder.collides(make_identity(4, last_name=real.last_name, first_names=real.first_names,
                                         birth_date=real.birth_date))
    assert not seeder.collides(make_identity(4, last_name=real.last_name, birth_date=real.birth_date))


def test_failure_in_the_last_row_leaves_nothing(elis_url, seeder, monkeypatch):
    before = snapshot(elis_url)
    original = seeder.builder.rows

    def broken(identity, identities, now):
        rows = original(identity, identities, now)
        rows[-1].values["address_part_id"] = 999  # no such address part: the last insert fails
        return rows

    monkeypatch.setattr(seeder.builder, "rows", broken)
    with pytest.raises(SourceError, match="source 'elis': insert into person_address failed"):
        seeder.plant(make_identity(1))
    assert snapshot(elis_url) == before
    monkeypatch.setattr(seeder.builder, "rows", original)
    placement = seeder.plant(make_identity(1))  # the ST number it had taken is used again
    assert _row(placement, "patient_identity")["values"]["identity_data"] == st_number(301)
    seeder.retire(placement)


def test_locate_finds_an_unrecorded_canary_and_only_its_rows(elis_url, seeder):
    before = snapshot(elis_url)
    identities = [make_identity(i) for i in range(3)]
    placements = [seeder.plant(i) for i in identities]
    found = seeder.locate(identities[2])
    assert found is not None
    assert [r["key"] for r in found.rows] == [r["key"] for r in placements[2].rows]
    assert seeder.verify(identities[2], found).state is VerifyState.OK
    assert seeder.locate(make_identity(30)) is None
    assert seeder.locate(make_identity(REAL_OFFSET + 5)) is None  # a real patient: its NIR matches, names do not
    for placement in (placements[0], placements[1], found):
        seeder.retire(placement)
    assert snapshot(elis_url) == before


def test_explicit_identity_types_history_and_option_errors(elis_url):
    s = _open(elis_url, identity_types="ST,GUID", history="PATIENT", sys_user_id="109")
    try:
        placement = s.plant(make_identity(3))
        tables = [(r["table"], r["values"].get("identity_type_id")) for r in placement.rows]
        assert tables == [("person", None), ("patient", None), ("history", None),
                          ("patient_identity", ST_TYPE), ("patient_identity", 14), ("person_address", None),
                          ("person_address", None)]
        assert NATIONAL_TYPE not in {t for _, t in tables}  # the national id lives in patient.national_id only
        assert re.fullmatch(r"[0-9a-f-]{36}", _row(placement, "patient_identity", 1)["values"]["identity_data"])
        assert _row(placement, "history")["values"]["sys_user_id"] == 109
        s.retire(placement)
    finally:
        s.close()
    cases = [({"identity_types": "MOTHER"}, "identity type 'MOTHER' cannot be written"),
             ({"identity_types": "NATIONAL"}, "identity type 'NATIONAL' cannot be written"),
             ({"sys_user_id": "4242"}, "no system_user with id 4242"),
             ({"history": "REFERRAL"}, "history 'REFERRAL' is not one of")]
    for options, message in cases:
        with pytest.raises(SourceError, match=re.escape(message)) as err:
            _open(elis_url, **options)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="sys_user_id must be a system_user id"):
        OpenElisSeeder.validate_options({"sys_user_id": "admin"})


def test_real_openelis_schema_plant_verify_retire(postgres_url):
    require_dump(OPENELIS_DUMP)
    load_pgdump(postgres_url, OPENELIS_DUMP)
    before = snapshot(postgres_url)
    s = _open(postgres_url)
    try:
        identities = [make_identity(i) for i in range(50)]
        s.check_fits(identities)
        assert not any(s.collides(i) for i in identities)
        placements = [s.plant(i) for i in identities]
        assert {s.verify(i, p).state for i, p in zip(identities, placements)} == {VerifyState.OK}
        # A fresh base install: the stock form's rows, with the audit trail of person and patient inserts
        # (no patient_contact nor fhir_uuid before Liquibase), then the laboratory footprint.
        tables = [r["table"] for r in placements[0].rows]
        assert tables[:6] == ["person", "history", "patient", "history", "person_address", "person_address"]
        assert tables[6:8] == ["sample", "history"] and "result" in tables and "sample_human" in tables
        assert s.setup.version.release == "base"
        listed = _query(postgres_url, PATIENT_SEARCH.format(where=""))
        assert len(listed) == 50
        assert {r["national_id"] for r in listed} == {i.nir for i in identities}
        assert s.locate(identities[9]).rows[0]["key"] == placements[9].rows[0]["key"]
        for placement in placements:
            s.retire(placement)
    finally:
        s.close()
    assert snapshot(postgres_url) == before


def test_sys_user_auto_is_who_the_newest_patient_creations_name(elis_url):
    """Canaries' audit rows all naming admin, next to rows naming the lab's clerk, would stand out."""
    engine = sa.create_engine(elis_url)
    try:
        with engine.begin() as conn:
            newest = [r[0] for r in conn.execute(sa.text(
                "SELECT id FROM clinlims.history WHERE reference_table = 15 AND activity = 'I' "
                "ORDER BY id DESC LIMIT 150"))]  # the newest patient creations
            assert newest, "the fixture has audit rows"
            before = dict(conn.execute(sa.text("SELECT id, sys_user_id FROM clinlims.history WHERE id = ANY(:ids)"),
                                       {"ids": newest}).all())
            conn.execute(sa.text("INSERT INTO clinlims.system_user (id, login_name, last_name, first_name, "
                                 "is_active, is_employee) VALUES (4242, 'clerk', 'Clerk', 'Test', 'Y', 'Y')"))
            conn.execute(sa.text("UPDATE clinlims.history SET sys_user_id = 4242 WHERE id = ANY(:ids)"),
                         {"ids": newest})
        try:
            seeder = _open(elis_url)
            try:
                assert seeder.setup.sys_user_id == 4242
            finally:
                seeder.close()
        finally:
            with engine.begin() as conn:
                for row_id, user in before.items():
                    conn.execute(sa.text("UPDATE clinlims.history SET sys_user_id = :u WHERE id = :i"),
                                 {"u": user, "i": row_id})
                conn.execute(sa.text("DELETE FROM clinlims.system_user WHERE id = 4242"))
    finally:
        engine.dispose()


def test_refresh_reads_the_habits_again_only_once_the_site_changed(elis_url, seeder):
    """A drip run keeps the seeder open: each planting still learns from the site as a fresh open() would."""
    read = []
    real_prepare = seeder._prepare
    seeder._prepare = lambda target: (read.append(1), real_prepare(target))[1]
    setup = seeder.setup
    seeder.refresh()
    assert read == [] and seeder.setup is setup  # nothing written since open(): the habits still hold
    placement = seeder.plant(make_identity(7))
    try:
        seeder.refresh()
        assert read == [1] and seeder.setup is not setup  # our own canary is now part of the site
        seeder.refresh()
        assert read == [1]
    finally:
        seeder.retire(placement)
