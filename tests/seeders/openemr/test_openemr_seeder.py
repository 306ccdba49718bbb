"""The OpenEMR seeder against OpenEMR's own tables in MariaDB.

A French site with 300 patients (tests/openemr_fixture.py) receives 50
canaries: they follow the site's habits, every real row stays byte for byte
as it was, verify finds them, retire leaves every table exactly as before.
The last test loads OpenEMR's real schema (sql/database.sql) and runs the
application's own patient queries over the canaries.
"""

from __future__ import annotations

from collections import Counter
import os
from pathlib import Path

import bcrypt
import pytest

from support.app_seeder_helpers import create_statements, dispose, execute, load_sql, query, rows_except, snapshot, spec
from canary.errors import CanaryAltered, ConfigError, SourceError
from canary.model import Placement, VerifyState
from canary.phones import formats
from support.openemr_fixture import ID_GAP, TABLES, create_site
from seeders.openemr.seeder import OpenEmrSeeder
from seeders.openemr.values import uuid_text
from support.sql_seeder_helpers import make_identity
from support.needs import missing

# .ci/run exports CANARY_REAL_SCHEMAS; otherwise look beside the checkout.
REAL_SCHEMA = Path(os.environ.get("CANARY_REAL_SCHEMAS")
                   or Path(__file__).resolve().parents[4] / "shared" / "schemas") / "openemr-database.sql"
WRITTEN = ("uuid_registry", "patient_data", "employer_data", "history_data", "lists", "lists_touch",
           "patient_access_onsite")


@pytest.fixture(scope="module")
def site():
    """One site for the module (building it is the slow part); each test leaves it as it found it."""
    from conftest import _fresh_database, _server_url

    databases = _fresh_database(_server_url("CANARY_TEST_MARIADB_URL", "MariaDB"), "MariaDB")
    url = next(databases)
    create_site(url)
    yield url
    dispose(url)
    databases.close()  # drops the database


@pytest.fixture
def empty_db(mariadb_url):
    yield mariadb_url
    dispose(mariadb_url)


@pytest.fixture
def seeder(site):
    before = snapshot(site)
    s = OpenEmrSeeder(spec("emr", "openemr"), site)
    s.open()
    yield s
    s.close()
    assert snapshot(site) == before, "the test left rows behind or changed real ones"


def _identities(count: int, start: int = 0):
    return [make_identity(i) for i in range(start, start + count)]


def _all_rows(placements):
    return [row for p in placements for row in p.rows]


def test_plant_50_as_the_site_does_verify_and_retire_to_the_byte(site, seeder):
    before = snapshot(site)
    identities = _identities(50)
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)
    placements = [seeder.plant(i) for i in identities]

    # Every real row is still there, byte for byte, and nothing else changed.
    assert rows_except(site, TABLES, _all_rows(placements)) == {t: before[t] for t in TABLES}
    assert [seeder.verify(i, p).state for i, p in zip(identities, placements)] == [VerifyState.OK] * 50

    patients = query(site, "SELECT * FROM patient_data WHERE pid > 300 ORDER BY pid")
    registry = {r["uuid"]: r for r in query(site, "SELECT * FROM uuid_registry")}
    employers = Counter(r["pid"] for r in query(site, "SELECT pid FROM employer_data WHERE pid > 300"))
    histories = Counter(r["pid"] for r in query(site, "SELECT pid FROM history_data WHERE pid > 300"))
    assert [p["pid"] for p in patients] == list(range(301, 351))
    for ident, row in zip(identities, patients):
        assert row["pubpid"] == str(row["pid"])
        assert row["lname"] == ident.last_name.upper()  # the site writes surnames in upper case
        assert row["fname"] == ident.first_name
        assert row["birth_lname"] == ident.birth_name.upper()
        assert row["sex"] == ("Male" if ident.sex.value == "M" else "Female")
        assert row["DOB"] == ident.birth_date and row["ss"] == ident.nir
        assert row["phone_cell"] == formats(ident.phone)["spaced"]  # the site's phone style
        assert row["phone_home"] == (formats(ident.phone2)["spaced"] if ident.phone2 else "")
        assert row["country_code"] == "FR" and row["language"] == "french" and row["hipaa_allowsms"] == "NO"
        assert row["providerID"] == 2 and row["created_by"] == row["updated_by"] == 3
        assert row["title"] == ("Mr." if ident.sex.value == "M" else "Mrs.")
        assert row["occupation"] == "" and row["pricelevel"] == "standard" and row["email"] == ident.email
        assert registry[row["uuid"]]["table_name"] == "patient_data" and registry[row["uuid"]]["table_id"] == "id"
        assert uuid_text(row["uuid"])[14] == "4"  # version 4 bits, timestamp first
        assert row["uuid"] > max(u for u, r in registry.items() if r["created"].year < 2025)
        assert employers[row["pid"]] == histories[row["pid"]] == 1

    # Ids run ahead of pids on this site: the portal account name carries the real id.
    portal = query(site, "SELECT a.*, p.id AS patient_id, p.fname, p.lname, p.email FROM patient_access_onsite a "
                         "JOIN patient_data p ON p.pid = a.pid WHERE a.pid > 300 ORDER BY a.pid")
    assert len(portal) == 50
    for ident, account in zip(identities, portal):
        assert account["patient_id"] == account["pid"] + ID_GAP
        assert account["portal_username"] == f"{account['fname']}{account['lname']}{account['patient_id']}"
        assert account["portal_login_username"] == ident.email
        assert account["portal_pwd"].startswith("$2y$05$")  # the cost this site uses
        assert bcrypt.checkpw(ident.portal_password.encode(), b"$2b$" + account["portal_pwd"][4:].encode())

    issues = query(site, "SELECT * FROM lists WHERE pid > 300 ORDER BY id")
    touched = Counter(r["pid"] for r in query(site, "SELECT pid FROM lists_touch WHERE pid > 300"))
    allergic = [(i, p) for i, p in zip(identities, patients) if i.allergies]
    assert allergic
    for ident, row in allergic:
        mine = [i for i in issues if i["pid"] == row["pid"]]
        assert [i["title"] for i in mine] == list(ident.allergies)
        # Filled as this site's issue form fills them (verification, user), uuid registered.
        assert all(i["type"] == "allergy" and i["activity"] == 1 and i["verification"] == "confirmed"
                   and i["user"] == "accueil" and registry[i["uuid"]]["table_name"] == "lists" for i in mine)
        assert touched[row["pid"]] == 1

    for placement in reversed(placements):
        seeder.retire(placement)
    assert snapshot(site) == before


def test_verify_reports_missing_and_altered_rows(site, seeder):
    a, b = make_identity(1), make_identity(2)
    pa, pb = seeder.plant(a), seeder.plant(b)
    pid_a = pa.rows[1]["key"]["pid"]
    execute(site, "UPDATE patient_data SET phone_cell = '06 00 00 00 00' WHERE pid = :p", p=pid_a)
    altered = seeder.verify(a, pa)
    assert altered.state is VerifyState.ALTERED and "patient_data.phone_cell changed" in altered.details
    execute(site, "DELETE FROM history_data WHERE pid = :p", p=pb.rows[1]["key"]["pid"])
    assert seeder.verify(b, pb).state is VerifyState.MISSING
    with pytest.raises(CanaryAltered):  # edited since planting: kept for a person to check (#13.5)
        seeder.retire(pa)
    # Checked by hand and put back as planted: now it goes.
    execute(site, "UPDATE patient_data SET phone_cell = :v WHERE pid = :p", v=pa.rows[1]["values"]["phone_cell"],
            p=pid_a)
    seeder.retire(pa)
    seeder.retire(pb)


def test_collisions_with_real_patients_are_detected(site, seeder):
    real = query(site, "SELECT * FROM patient_data WHERE pid = 42")[0]
    same_nir = make_identity(5, nir=real["ss"])
    assert seeder.collides(same_nir)
    same_person = make_identity(6, last_name=real["lname"].title(), birth_name=real["lname"].title(),
                                first_names=(real["fname"],), birth_date=real["DOB"])
    assert seeder.collides(same_person)
    assert not seeder.collides(make_identity(7))


def test_a_failure_mid_plant_leaves_nothing(site, seeder):
    # A stray portal row already holds the next pid: the last insert of the
    # patient breaks the UNIQUE key, after patient_data and the rest went in.
    execute(site, "INSERT INTO patient_access_onsite (pid, portal_username) VALUES (301, 'x')")
    stray = snapshot(site)
    with pytest.raises(SourceError) as err:
        seeder.plant(make_identity(3))
    assert "patient_access_onsite" in str(err.value) and "root@" not in str(err.value)
    assert snapshot(site) == stray
    execute(site, "DELETE FROM patient_access_onsite WHERE pid = 301")


def test_a_pid_taken_meanwhile_is_tried_again_with_the_next(site, seeder, monkeypatch):
    fresh = seeder._numbers
    stale = iter([fresh().__class__(pid=300, next_id=0, now=fresh().now)])  # as if read before pid 300 went in
    monkeypatch.setattr(seeder, "_numbers", lambda: next(stale, None) or fresh())
    placement = seeder.plant(make_identity(9))
    assert next(r["key"]["pid"] for r in placement.rows if r["table"] == "patient_data") == 301
    seeder.retire(placement)


def test_locate_finds_a_canary_whose_placement_was_lost(site, seeder):
    before = snapshot(site)
    ident = make_identity(14, allergies=("pénicilline", "iode"))
    planted = seeder.plant(ident)
    found = seeder.locate(ident)
    assert found is not None
    assert [(r["table"], r["key"]) for r in found.rows] == [(r["table"], r["key"]) for r in planted.rows]
    assert seeder.verify(ident, found).state is VerifyState.OK
    assert seeder.locate(make_identity(15)) is None
    seeder.retire(Placement.from_dict(found.to_dict()))
    assert snapshot(site) == before


def test_plan_writes_nothing_and_options_are_checked(site, seeder):
    before = snapshot(site)
    planned = seeder.plan(make_identity(8))
    assert [p.table for p in planned][:2] == ["uuid_registry", "patient_data"]
    assert snapshot(site) == before
    with pytest.raises(ConfigError, match="portal_login"):
        OpenEmrSeeder.validate_options({"portal_login": "fax"})
    with pytest.raises(ConfigError, match="no option"):
        OpenEmrSeeder.validate_options({"facility_name": "x"})
    # What source add stores reads back the same when the seeder opens.
    typed = OpenEmrSeeder.validate_options({"provider_id": "auto", "ref_provider_id": "none", "user_id": "3"})
    assert typed == {"provider_id": None, "ref_provider_id": "none", "user_id": 3}
    assert OpenEmrSeeder.validate_options(typed) == typed
    quiet = OpenEmrSeeder(spec("emr", "openemr", create_portal_account="no", create_allergies="no",
                               facility_id="3", provider_id="none"), site)
    with quiet:
        rows = quiet.plan(make_identity(14))
    assert {p.table for p in rows} == {"uuid_registry", "patient_data", "employer_data", "history_data"}
    patient = next(p for p in rows if p.table == "patient_data")
    assert patient.values["care_team_facility"] == "3" and patient.values["providerID"] is None
    with pytest.raises(ConfigError, match="facility_id=9: no such facility"):
        OpenEmrSeeder(spec("emr", "openemr", facility_id="9"), site).open()


def test_not_an_openemr_database_is_one_clear_line(empty_db):
    load_sql(empty_db, "CREATE TABLE patients (id INT PRIMARY KEY)")
    with pytest.raises(SourceError, match="no table patient_data: is this an OpenEMR database"):
        OpenEmrSeeder(spec("emr", "openemr"), empty_db).open()


def test_real_openemr_schema_lists_canaries_as_ordinary_patients(empty_db):
    if not REAL_SCHEMA.is_file():
        missing("schemas", f"OpenEMR's real schema is not at {REAL_SCHEMA} (set CANARY_REAL_SCHEMAS; CI does)")
    mariadb_url = empty_db
    # OpenEMR's own CREATE TABLE statements for every table read or written (creating all
    # 281 tables takes longer than the test may), and the stock lists the seeder reads.
    lists = ("'allergy_issue_list'", "'sex'", "'language'", "'country'", "'pricelevel'")
    load_sql(mariadb_url, create_statements(
        REAL_SCHEMA, WRITTEN + ("users", "list_options", "facility"),
        keep_insert=lambda table, sql: table == "facility" or (table == "list_options"
                                                               and any(x in sql for x in lists))))
    load_sql(mariadb_url, "INSERT INTO users (id, username, fname, lname, authorized) "
                          "VALUES (1, 'admin', 'Administrator', 'Administrator', 1)")
    before = snapshot(mariadb_url)
    identities = _identities(50, start=300)
    # A new site has no portal accounts yet ("auto" gives none); two canaries get one anyway.
    seeder = OpenEmrSeeder(spec("emr", "openemr"), mariadb_url)
    portal = OpenEmrSeeder(spec("emr", "openemr", create_portal_account="yes"), mariadb_url)
    with seeder, portal:
        seeder.check_fits(identities)
        placements = [seeder.plant(i) for i in identities[:48]] + [portal.plant(i) for i in identities[48:]]
        assert all(seeder.verify(i, p).state is VerifyState.OK for i, p in zip(identities, placements))
        assert query(mariadb_url, "SELECT DISTINCT created_by, updated_by FROM patient_data") == [
            {"created_by": 1, "updated_by": 1}]

        # The patient finder (interface/main/finder/dynamic_finder_ajax.php) lists them...
        listed = query(mariadb_url, "SELECT pid, pubpid, fname, lname, mname, DOB, ss, phone_home FROM patient_data "
                                    "WHERE lname LIKE :q ORDER BY lname, fname", q="%")
        assert {r["pid"] for r in listed} == set(range(1, 51))
        # ...the demographics page finds each by pid (getPatientData), with its history and employer...
        for pid in (1, 25, 50):
            assert query(mariadb_url, "SELECT *, DATE_FORMAT(DOB,'%m/%d/%Y') AS DOB_TS FROM patient_data "
                                      "WHERE pid = :p ORDER BY date DESC LIMIT 0,1", p=pid)
            assert query(mariadb_url, "SELECT * FROM history_data WHERE pid = :p ORDER BY date DESC, id DESC "
                                      "LIMIT 0,1", p=pid)
            assert query(mariadb_url, "SELECT * FROM employer_data WHERE pid = :p ORDER BY date DESC LIMIT 0,1",
                         p=pid)
        # ...the FHIR/REST layer resolves every uuid through the registry...
        joined = query(mariadb_url, "SELECT p.pid FROM patient_data p JOIN uuid_registry r ON r.uuid = p.uuid "
                                    "AND r.table_name = 'patient_data'")
        assert len(joined) == 50
        # ...allergies show in the issues list, and portal logins find their patient.
        ident = next(i for i in identities if i.allergies)
        pid = identities.index(ident) + 1
        titles = query(mariadb_url, "SELECT title FROM lists WHERE pid = :p AND type = 'allergy' AND activity = 1 "
                                    "ORDER BY begdate, id", p=pid)
        assert [r["title"] for r in titles] == list(ident.allergies)
        login = query(mariadb_url, "SELECT pd.pid, pd.allow_patient_portal FROM patient_access_onsite pao "
                                   "JOIN patient_data pd ON pao.pid = pd.pid WHERE pao.portal_login_username = :u",
                      u=identities[49].email)
        assert login == [{"pid": 50, "allow_patient_portal": "YES"}]
        for placement in reversed(placements):
            seeder.retire(placement)
    assert snapshot(mariadb_url) == before


def test_openemr_uuids_are_timestamp_first_combs():
    from seeders.openemr.values import comb_uuid

    raw = comb_uuid(1_700_000_000.123456, bytes(range(10)))
    assert raw[:6] == (170_000_000_012_345).to_bytes(6, "big")  # microtime(): seconds + 5 fraction digits
    text = uuid_text(raw)
    assert text[14] == "4" and text[19] in "89ab"
    assert comb_uuid(1_700_000_001.0) > comb_uuid(1_700_000_000.0)


def test_site_numbering_is_continued():
    from seeders.sql.blend import next_code

    assert next_code(["000123", "000122"]) == "000124"
    assert next_code(["P2024-00017", "P2024-00016", "X9"]) == "P2024-00018"
    assert next_code(["10042", "9"]) == "10043"
    assert next_code(["", None]) is None
