"""The OpenEMR seeder against OpenEMR's own tables in MariaDB.

A French site with 300 patients (tests/openemr_fixture.py) receives 50
canaries: they follow the site's habits, every real row stays byte for byte
as it was, verify finds them, retire leaves every table exactly as before.
The last test loads OpenEMR's real schema (sql/database.sql) and runs the
application's own patient queries over the canaries.
"""

from __future__ import annotations

import base64
from collections import Counter
import os
from pathlib import Path

import bcrypt
import pytest

from support.app_seeder_helpers import create_statements, dispose, execute, load_sql, query, rows_except, snapshot, spec
from canary.errors import CanaryAltered, ConfigError, SourceError
from canary.model import Placement, VerifyState
from canary.phones import formats
from support.openemr_fixture import ID_GAP, INSTALLED_VERSION, PRIVATE, SCHEMA as FIXTURE_SCHEMA, TABLES, create_site
from seeders.openemr.seeder import OpenEmrSeeder
from seeders.openemr.values import uuid_text
from support.sql_seeder_helpers import make_identity
from support.needs import missing

# .ci/run exports CANARY_REAL_SCHEMAS; otherwise look beside the checkout.
REAL_SCHEMA = Path(os.environ.get("CANARY_REAL_SCHEMAS")
                   or Path(__file__).resolve().parents[4] / "shared" / "schemas") / "openemr-database.sql"
WRITTEN = ("uuid_registry", "patient_data", "employer_data", "history_data", "insurance_data", "lists", "lists_touch",
           "patient_access_onsite", "log", "log_comment_encrypt")


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

    # Every real row is still there, byte for byte, and nothing else changed but the encounter
    # numbers taken from sequences (GenID("sequences")), one per canary seen that day.
    kept = [t for t in TABLES if t != "sequences"]
    assert rows_except(site, kept, _all_rows(placements)) == {t: before[t] for t in kept}
    encounters = [r for r in _all_rows(placements) if r["table"] == "form_encounter"]
    assert query(site, "SELECT id FROM sequences")[0]["id"] == before["sequences"][0][0] + len(encounters)
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
        # A home line as often as the recent patients of the same age have one (a third here).
        assert row["phone_home"] in {"", formats(ident.phone2)["spaced"] if ident.phone2 else ""}
        assert row["country_code"] == "FR" and row["language"] == "french" and row["hipaa_allowsms"] == "NO"
        # Drawn from a recent patient of the site (90 % have Dr Moreau, 10 % no provider), not its mode.
        assert row["providerID"] in (2, None) and row["created_by"] == row["updated_by"] == 3
        assert row["title"] == ("Mr." if ident.sex.value == "M" else "Mrs.")
        assert row["occupation"] == "" and row["pricelevel"] == "standard" and row["email"] == ident.email
        assert registry[row["uuid"]]["table_name"] == "patient_data" and registry[row["uuid"]]["table_id"] == "id"
        assert uuid_text(row["uuid"])[14] == "4"  # version 4 bits, timestamp first
        assert row["uuid"] > max(u for u, r in registry.items() if r["created"].year < 2025)
        assert employers[row["pid"]] == histories[row["pid"]] == 1

    assert sum(p["providerID"] == 2 for p in patients) >= 35
    # Ids run ahead of pids on this site: the portal account name carries the real id.
    portal = query(site, "SELECT a.*, p.id AS patient_id, p.fname, p.lname, p.email, p.regdate, "
                         "p.allow_patient_portal FROM patient_access_onsite a "
                         "JOIN patient_data p ON p.pid = a.pid WHERE a.pid > 300 ORDER BY a.pid")
    # Planted in a burst, the canaries get no day's footprint (no room before now without breaking
    # the regdate order of pids), but credentials are never given in the second of the registration.
    by_pid = {p["pid"]: i for i, p in zip(identities, patients)}
    for account in portal:
        ident = by_pid[account["pid"]]
        assert account["date_created"] > account["regdate"] and account["allow_patient_portal"] == "YES"
        assert account["patient_id"] == account["pid"] + ID_GAP
        assert account["portal_username"] == f"{account['fname']}{account['lname']}{account['patient_id']}"
        assert account["portal_login_username"] == ident.email
        assert account["portal_pwd"].startswith("$2y$05$")  # the cost this site uses
        assert bcrypt.checkpw(ident.portal_password.encode(), b"$2b$" + account["portal_pwd"][4:].encode())

    # Squeezed against the clock, a burst has no moment for the allergies but the registration's second,
    # where no real patient has them: they are left for the first later visit (test below). Those
    # entered now (a canary with room before the clock) come minutes after the registration.
    issues = query(site, "SELECT * FROM lists WHERE pid > 300 AND type = 'allergy' ORDER BY id")
    regdates = {p["pid"]: p["regdate"] for p in patients}
    allergic = [p["pid"] for i, p in zip(identities, patients) if i.allergies]
    assert allergic and len({i["pid"] for i in issues}) < len(allergic)
    # As many canaries have allergies entered as the site's recent patients (the identities have more).
    share = seeder.host.allergic_share
    assert share is not None and 0 < share < 1
    assert all(i["date"] > regdates[i["pid"]] for i in issues)
    # The first later visit brings them, entered by its clinician, uuid registered, lists_touch once.
    import random
    from datetime import timedelta

    from seeders.openemr.rows import writes_allergies

    waiting = next(n for n, (i, p) in enumerate(zip(identities, patients))
                   if writes_allergies(i, seeder.host) and p["pid"] not in {r["pid"] for r in issues})
    seeder._rnd = random.Random(4)
    when = query(site, "SELECT NOW() AS n")[0]["n"] + timedelta(days=40)
    grown = seeder.add_event(identities[waiting], placements[waiting], when)
    entered = query(site, "SELECT * FROM lists WHERE pid = :p AND type = 'allergy' ORDER BY id",
                    p=patients[waiting]["pid"])
    visit = next(r for r in grown.rows[len(placements[waiting].rows):] if r["table"] == "form_encounter")
    seen = query(site, "SELECT date, provider_id FROM form_encounter WHERE id = :i", i=visit["key"]["id"])[0]
    clinician = query(site, "SELECT username FROM users WHERE id = :i", i=seen["provider_id"])[0]["username"]
    assert [i["title"] for i in entered] == list(identities[waiting].allergies)
    registered = {r["uuid"]: r["table_name"] for r in query(site, "SELECT uuid, table_name FROM uuid_registry")}
    assert all(i["user"] == clinician and i["date"] >= seen["date"] and registered[i["uuid"]] == "lists"
               for i in entered)
    assert len(query(site, "SELECT * FROM lists_touch WHERE pid = :p", p=patients[waiting]["pid"])) == 1
    assert seeder.verify(identities[waiting], grown).state is VerifyState.OK
    placements[waiting] = grown

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
    seeder.retire(pb)  # last planted first: their encounter numbers go back to sequences
    with pytest.raises(CanaryAltered):  # edited since planting: kept for a person to check (#13.5)
        seeder.retire(pa)
    # Checked by hand and put back as planted: now it goes.
    execute(site, "UPDATE patient_data SET phone_cell = :v WHERE pid = :p", v=pa.rows[1]["values"]["phone_cell"],
            p=pid_a)
    seeder.retire(pa)


def test_collisions_with_real_patients_are_detected(site, seeder):
    real = query(site, "SELECT * FROM patient_data WHERE pid = 42")[0]
    same_nir = make_identity(5, nir=real["ss"])
    assert seeder.collides(same_nir)
    same_person = make_identity(6, last_name=real["lname"].title(), birth_name=real["lname"].title(),
                                first_names=(real["fname"],), birth_date=real["DOB"])
    assert seeder.collides(same_person)
    assert not seeder.collides(make_identity(7))


def test_a_failure_mid_plant_leaves_nothing(site, seeder):
    # A stray lists_touch row already holds the next pid: the allergy's touch breaks the primary key,
    # after patient_data, its log rows, insurance and the rest went in, and after an encounter number
    # was taken from sequences: it is given back.
    execute(site, "INSERT INTO lists_touch (pid, type, date) VALUES (301, 'allergy', NOW())")
    stray = snapshot(site)
    with pytest.raises(SourceError) as err:
        seeder.plant(make_identity(3, allergies=("iode",)))
    assert "lists_touch" in str(err.value) and "root@" not in str(err.value)
    assert snapshot(site) == stray
    execute(site, "DELETE FROM lists_touch WHERE pid = 301")


def test_a_pid_taken_meanwhile_is_tried_again_with_the_next(site, seeder, monkeypatch):
    fresh = seeder._numbers
    stale = iter([fresh().__class__(pid=300, next_id=0, now=fresh().now)])  # as if read before pid 300 went in
    monkeypatch.setattr(seeder, "_numbers", lambda: next(stale, None) or fresh())
    placement = seeder.plant(make_identity(9))
    assert next(r["key"]["pid"] for r in placement.rows if r["table"] == "patient_data") == 301
    seeder.retire(placement)


def test_locate_finds_a_canary_whose_placement_was_lost(site, seeder):
    import random

    before = snapshot(site)
    ident = make_identity(14, allergies=("pénicilline", "iode"))
    # With its whole day: encounter, vitals, issues, follow-up, credentials and their log rows.
    full = OpenEmrSeeder(spec("emr", "openemr", create_portal_account="yes", day_visit="planting"), site)
    full.open()
    wanted = {"form_encounter", "form_vitals", "patient_access_onsite", "openemr_postcalendar_events"}
    seed = next(n for n in range(200) if setattr(full, "_rnd", random.Random(n)) is None
                and wanted <= {p.table for p in full.plan(ident)})
    full._rnd = random.Random(seed)  # a day with every kind of event (drawn at the site's rates)
    planted = full.plant(ident)
    full.close()
    assert wanted <= {r["table"] for r in planted.rows}
    # 7 for the registration, the chart opened for the visit, the credentials.
    assert sum(r["table"] == "log" for r in planted.rows) == 9
    found = seeder.locate(ident)
    assert found is not None
    assert [(r["table"], r["key"]) for r in found.rows] == [(r["table"], r["key"]) for r in planted.rows]
    assert seeder.verify(ident, found).state is VerifyState.OK
    assert seeder.locate(make_identity(15)) is None
    seeder.retire(Placement.from_dict(found.to_dict()))
    assert snapshot(site) == before


def test_locate_never_takes_a_real_namesake_born_the_same_day(site, seeder):
    """A record found by locate is retired (or adopted by verify) as ours: a real patient with the canary's
    names and birth date but another address, no NIR and no e-mail, is not it."""
    from dataclasses import replace

    ident = make_identity(16)
    pid = query(site, "SELECT MAX(pid) AS pid FROM patient_data")[0]["pid"] + 1
    execute(site, "INSERT INTO patient_data (id, pid, fname, lname, DOB, street, postal_code, ss, email) "
                  "VALUES (:pid, :pid, :fname, :lname, :dob, '3 rue Haute', '69003', '', '')",
            pid=pid, fname=ident.first_name, lname=ident.last_name, dob=ident.birth_date)
    try:
        assert seeder.locate(ident) is None
    finally:
        execute(site, "DELETE FROM patient_data WHERE pid = :pid", pid=pid)
    # A canary written without NIR and e-mail (as the patient it follows) is still found, by all of them.
    other = make_identity(17)
    planted = seeder.plant(other)
    row = next(r for r in planted.rows if r["table"] == "patient_data")
    kept = query(site, "SELECT ss, email FROM patient_data WHERE pid = :pid", pid=row["key"]["pid"])[0]
    execute(site, "UPDATE patient_data SET ss = '', email = '' WHERE pid = :pid", pid=row["key"]["pid"])
    try:
        found = seeder.locate(other)
        assert found is not None and [r["key"] for r in found.rows if r["table"] == "patient_data"] == [row["key"]]
        assert seeder.locate(replace(other, address=replace(other.address, line1="3 rue Haute"))) is None
    finally:
        execute(site, "UPDATE patient_data SET ss = :ss, email = :email WHERE pid = :pid", pid=row["key"]["pid"],
                **kept)
        seeder.retire(planted)


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
                               facility_id="3", provider_id="none", footprint="no"), site)
    with quiet:
        rows = quiet.plan(make_identity(14))
    assert {p.table for p in rows} == {"uuid_registry", "patient_data", "employer_data", "history_data",
                                       "insurance_data", "log", "log_comment_encrypt"}
    patient = next(p for p in rows if p.table == "patient_data")
    assert patient.values["care_team_facility"] == "3" and patient.values["providerID"] is None
    with pytest.raises(ConfigError, match="future_appointment_status='z': not a status of this site's apptstat"):
        OpenEmrSeeder(spec("emr", "openemr", future_appointment_status="z"), site).open()
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
        REAL_SCHEMA, WRITTEN + ("users", "list_options", "facility", "version", "globals", "layout_options"),
        keep_insert=lambda table, sql: table in ("facility", "version") or (
            table == "list_options" and any(x in sql for x in lists)) or (
            table == "layout_options" and "VALUES ('DEM'" in sql)))
    load_sql(mariadb_url, INSTALLED_VERSION)
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
        # The new-patient form's side effects, on OpenEMR's own tables and stock DEM layout (#11):
        # three blank insurance levels, '' in the posted text fields, the audit log rows with their checksums.
        assert query(mariadb_url, "SELECT type, COUNT(*) AS n FROM insurance_data GROUP BY type ORDER BY type") == [
            {"type": "primary", "n": 50}, {"type": "secondary", "n": 50}, {"type": "tertiary", "n": 50}]
        blank = query(mariadb_url, "SELECT birth_mname, suffix, drivers_license, email_direct, mothersname "
                                   "FROM patient_data WHERE pid = 1")[0]
        assert set(blank.values()) == {""}
        _assert_log_checksums(mariadb_url, expected_rows=50 * 7 + 2)  # + the two patient-access rows
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


def _assert_log_checksums(url: str, expected_rows: int, only_after: int | None = None) -> None:
    """Every log row has its log_comment_encrypt row, checksum = sha3-512 of its 13 values concatenated
    (EventAuditLogger::recordLogItem), recomputed here from what is stored."""
    import hashlib

    rows = query(url, "SELECT l.*, e.checksum AS stored, e.encrypt, e.version, e.checksum_api FROM log l "
                      "JOIN log_comment_encrypt e ON e.log_id = l.id WHERE l.id > :a ORDER BY l.id", a=only_after or 0)
    if only_after is None:
        assert len(rows) == expected_rows == len(query(url, "SELECT id FROM log"))
    else:
        assert rows and len(rows) == len(query(url, "SELECT id FROM log WHERE id > :a", a=only_after))
    for row in rows:
        text = "".join("" if row[c] is None else (row[c].strftime("%Y-%m-%d %H:%M:%S") if c == "date" else str(row[c]))
                       for c in ("date", "event", "category", "user", "groupname", "comments", "user_notes",
                                 "patient_id", "success", "crt_user", "log_from", "menu_item_id", "ccda_doc_id"))
        assert row["stored"] == hashlib.sha3_512(text.encode()).hexdigest()
        assert (row["encrypt"], row["version"], row["checksum_api"], row["log_from"]) == ("No", 4, "", "open-emr")


def test_registration_writes_insurance_blank_fields_and_the_audit_log(site, seeder):
    # The user who registers this site's patients was last on patient 300 (its last log row).
    execute(site, "INSERT INTO log (date, event, category, user, groupname, comments, patient_id) "
                  "VALUES ('2024-01-01 10:00:00', 'view', 'view', 'accueil', 'Default', '', 300)")
    seeded = query(site, "SELECT MAX(id) AS id FROM log")[0]["id"]
    ident = make_identity(21)
    placement = seeder.plant(ident)
    pid = next(r["key"]["pid"] for r in placement.rows if r["table"] == "patient_data")
    patient = query(site, "SELECT * FROM patient_data WHERE pid = :p", p=pid)[0]
    # The form posts every text field of the DEM layout; blank ones are '' (the site fills birth_lname).
    assert patient["birth_mname"] == patient["suffix"] == patient["email_direct"] == ""
    # Equal at creation; saved again later as often as the site's own records are (never after now).
    assert patient["regdate"] <= patient["date"] == patient["last_updated"]

    insurance = query(site, "SELECT * FROM insurance_data WHERE pid = :p ORDER BY id", p=pid)
    assert [r["type"] for r in insurance] == ["primary", "secondary", "tertiary"]
    for row in insurance:
        assert row["provider"] == row["policy_number"] == row["subscriber_lname"] == row["copay"] == ""
        assert row["date"] is None and row["subscriber_DOB"] is None and row["date_end"] is None
        assert (row["accept_assignment"], row["policy_type"], row["uuid"]) == ("TRUE", "", None)

    logs = query(site, "SELECT * FROM log WHERE id > :s ORDER BY id", s=seeded)
    # A portal account comes at the site's rate, later in the day, with its own patient-access row.
    portal = [r for r in logs if r["event"] == "patient-access"]
    has_account = query(site, "SELECT COUNT(*) AS n FROM patient_access_onsite WHERE pid = :p", p=pid)[0]["n"]
    assert len(portal) == has_account and all(r["patient_id"] == pid for r in portal)
    # (a visit the same day adds the 'view' of the chart the clinician opens, later than the registration)
    registration = [r for r in logs if r["event"] != "patient-access" and r["date"] == patient["regdate"]]
    assert [(r["event"], r["category"], r["patient_id"]) for r in registration] == [
        ("patient-record-insert", "Patient Demographics", 300),  # setpid runs after the insert
        ("view", "view", pid),
        ("patient-record-insert", "Patient Demographics", pid),  # employer_data
        ("patient-record-insert", "Social and Family History", pid),
        *[("patient-record-insert", "Patient Insurance", pid)] * 3,
    ]
    assert {(r["user"], r["groupname"], r["date"]) for r in registration} == \
        {("accueil", "Default", patient["regdate"])}
    comments = [base64.b64decode(r["comments"]) for r in registration]
    assert comments[0].startswith(b"INSERT INTO patient_data SET `title` = ? , `fname` = ? ")
    assert f"'{ident.first_name}',".encode() in comments[0] and comments[0].endswith(b",)")
    assert comments[1] == b""
    assert comments[2].startswith(f"INSERT INTO employer_data SET pid = '{pid}', date = NOW()".encode())
    assert comments[4].startswith(b"INSERT INTO `insurance_data` SET `type` = ?,\n        `provider` = ?")
    assert comments[4].endswith(f"'primary','','','','','','','','','','','','','','','','','','','','','','','','',"
                                f"'{pid}','','TRUE','','',)".encode())
    checks = query(site, "SELECT * FROM log_comment_encrypt ORDER BY id")
    assert [c["log_id"] for c in checks] == [r["id"] for r in logs]
    _assert_log_checksums(site, expected_rows=0, only_after=seeded)

    # verify notices a deleted insurance row and an altered log row; retire removes them all.
    execute(site, "UPDATE log SET comments = '' WHERE id = :i", i=logs[0]["id"])
    assert "log.comments changed" in seeder.verify(ident, placement).details
    # put back as planted: retire deletes only rows still as written (#13.5)
    execute(site, "UPDATE log SET comments = :c WHERE id = :i", c=logs[0]["comments"], i=logs[0]["id"])
    execute(site, "DELETE FROM insurance_data WHERE id = :i", i=insurance[2]["id"])
    assert seeder.verify(ident, placement).state is VerifyState.MISSING
    seeder.retire(placement)
    assert query(site, "SELECT COUNT(*) AS n FROM log_comment_encrypt")[0]["n"] == 0
    execute(site, "DELETE FROM log")


@pytest.mark.parametrize("settings, insurance, events", [
    ({"insurance_only_one": "1"}, ["primary"], 5),
    ({"simplified_demographics": "1"}, [], 4),
    ({"enable_auditlog": "0"}, ["primary", "secondary", "tertiary"], 1),  # only the ungated view of setpid
    ({"audit_events_patient-record": "0", "omit_employers": "1"}, ["primary", "secondary", "tertiary"], 1),
    ({"enable_auditlog_encryption": "1"}, ["primary", "secondary", "tertiary"], 0),
])
def test_the_site_globals_decide_insurance_and_log_rows(site, settings, insurance, events):
    for name, value in settings.items():
        execute(site, "INSERT INTO globals (gl_name, gl_index, gl_value) VALUES (:n, 0, :v)", n=name, v=value)
    try:
        # (no portal credentials: their own log row is drawn at the site's rate)
        with OpenEmrSeeder(spec("emr", "openemr", create_portal_account="no", footprint="no"), site) as seeder:
            planned = seeder.plan(make_identity(22))
        assert [p.values["type"] for p in planned if p.table == "insurance_data"] == insurance
        assert sum(p.table == "log" for p in planned) == events
        assert sum(p.table == "log_comment_encrypt" for p in planned) == events
    finally:
        execute(site, "DELETE FROM globals")


@pytest.mark.parametrize("version, message", [
    ("v_major = 9, v_minor = 0", r"OpenEMR 9\.0\.0 \(v_database 541\) is not supported by this seeder "
                                 r"\(supported: 7\.0, 8\.0"),
    ("v_major = 5, v_minor = 0, v_database = 250", "OpenEMR 5.0.0 .v_database 250. is not supported"),
    ("v_major = 0, v_minor = 0, v_database = 0", "version table says 0.0.0: the OpenEMR installer has not finished"),
])
def test_an_unsupported_version_is_refused_in_one_line(site, version, message):
    before = snapshot(site)
    execute(site, f"UPDATE version SET {version}")
    try:
        with pytest.raises(SourceError, match=message) as err:
            OpenEmrSeeder(spec("emr", "openemr"), site).open()
        assert "\n" not in str(err.value)
    finally:
        execute(site, INSTALLED_VERSION)
    assert snapshot(site) == before


def test_a_schema_without_what_the_form_needs_names_it(empty_db):
    load_sql(empty_db, create_statements(REAL_SCHEMA if REAL_SCHEMA.is_file() else FIXTURE_SCHEMA,
                                         [t for t in WRITTEN if t != "log_comment_encrypt"]
                                         + ["version", "globals", "layout_options"]))
    with pytest.raises(SourceError, match="no table log_comment_encrypt: is this an OpenEMR database"):
        OpenEmrSeeder(spec("emr", "openemr"), empty_db).open()
    load_sql(empty_db, "DROP TABLE log; CREATE TABLE log (id INT PRIMARY KEY, date DATETIME)")
    load_sql(empty_db, create_statements(REAL_SCHEMA if REAL_SCHEMA.is_file() else FIXTURE_SCHEMA,
                                         ["log_comment_encrypt"]))
    with pytest.raises(SourceError, match="table log has no column event, category, user"):
        OpenEmrSeeder(spec("emr", "openemr"), empty_db).open()


FOOTPRINT_TABLES = ("form_encounter", "forms", "form_vitals", "lists", "openemr_postcalendar_events",
                    "patient_access_onsite", "uuid_registry", "sequences", "patient_data", "insurance_data", "log",
                    "log_comment_encrypt")


def _checksums(url: str) -> dict[str, int]:
    return {r["Table"].split(".")[-1]: r["Checksum"]
            for r in query(url, f"CHECKSUM TABLE {', '.join(FOOTPRINT_TABLES)} EXTENDED")}


def test_drip_planted_canaries_live_the_sites_registration_day(site, seeder, monkeypatch):
    """Planted one every 8 hours (as drip does), each canary gets the day this site's new patients get,
    at its rates, every event after its registration and none after now."""
    import random
    from dataclasses import replace
    from datetime import datetime, timedelta

    checksums = _checksums(site)
    fresh, later = seeder._numbers, iter(range(1, 100))
    monkeypatch.setattr(seeder, "_numbers", lambda: (lambda n, k: replace(n, clock=n.clock + timedelta(hours=8 * k)))(
        fresh(), next(later)))
    seeder._rnd = random.Random(13)
    identities = _identities(30, start=40)
    placements = [seeder.plant(i) for i in identities]
    patients = {r["pid"]: r for r in query(site, "SELECT pid, regdate, sex FROM patient_data WHERE pid > 300")}
    clock = max(r["regdate"] for r in patients.values()) + timedelta(days=1)
    # The day's visit comes after the planting moment: the drip run writes it once its time has come,
    # and the planter tells the user so (a plant never followed by drip runs would leave no visit).
    assert not query(site, "SELECT id FROM form_encounter WHERE pid > 300")
    owed = sum(1 for p in placements if "openemr_day_visit" in p.extra)
    assert 12 <= owed <= 28
    assert seeder.notices() == [f"{owed} canaries: the registration day's visit is written by `canary drip run` once "
                                "its moment has come (minutes to hours after planting); keep the drip timer running "
                                "(docs/drip.md), or give the source `--set day_visit=planting`"]
    placements = [seeder.add_due(i, p, clock) or p for i, p in zip(identities, placements)]
    assert [seeder.verify(i, p).state for i, p in zip(identities, placements)] == [VerifyState.OK] * 30
    encounters = query(site, "SELECT * FROM form_encounter WHERE pid > 300 ORDER BY id")
    forms = query(site, "SELECT * FROM forms WHERE pid > 300 ORDER BY id")
    vitals = query(site, "SELECT * FROM form_vitals WHERE pid > 300 ORDER BY id")
    issues = query(site, "SELECT * FROM lists WHERE pid > 300 AND type IN ('medical_problem', 'medication')")
    events = query(site, "SELECT * FROM openemr_postcalendar_events WHERE pc_pid > '300' AND LENGTH(pc_pid) = 3")
    portal = query(site, "SELECT * FROM patient_access_onsite WHERE pid > 300")
    # The site's rates (70 % seen that day, 80 % of them with vitals, 40 % booking, a third with portal
    # credentials), not all or nothing.
    assert 12 <= len(encounters) <= 28 and 0 < len(vitals) <= len(encounters)
    assert 3 <= len(events) <= 20 and 3 <= len(portal) <= 20 and issues
    taken = [e["encounter"] for e in encounters]
    assert len(set(taken)) == len(taken) and query(site, "SELECT id FROM sequences")[0]["id"] == max(taken)
    for enc in encounters:
        registered = patients[enc["pid"]]["regdate"]
        # As the UI date picker writes it, the day of the visit; by the site's clinician.
        assert enc["date"] == datetime.combine(registered.date(), datetime.min.time()) or enc["date"] > registered
        assert enc["provider_id"] == 2 and enc["facility_id"] == 3 and enc["class_code"] == "AMB"
        form = [f for f in forms if f["encounter"] == enc["encounter"] and f["formdir"] == "newpatient"]
        assert [(f["form_id"], f["user"], f["form_name"], f["authorized"]) for f in form] == [
            (enc["id"], "cmoreau", "New Patient Encounter", 1)]
    for row in vitals:
        registered = patients[row["pid"]]["regdate"]
        assert registered < row["date"] <= clock
        # Stored in lb, inches and °F whatever the display setting.
        assert 60 < row["weight"] < 400 and 50 < row["height"] < 85 and 95 < row["temperature"] < 104
        assert abs(float(row["BMI"]) - 703 * float(row["weight"]) / float(row["height"]) ** 2) < 0.1
        assert [f["form_id"] for f in forms if f["formdir"] == "vitals" and f["pid"] == row["pid"]] == [row["id"]]
    for row in issues:
        assert row["date"] > patients[row["pid"]]["regdate"] and row["user"] == "cmoreau"
    assert len({r["title"] for r in issues}) > 1  # drawn from the site's issues, not its most common one
    for row in events:
        registered = patients[int(row["pc_pid"])]["regdate"]
        assert registered < row["pc_time"] and row["pc_eventDate"] > registered.date()
        assert (row["pc_sendalertsms"], row["pc_sendalertemail"], row["pc_apptstatus"]) == ("NO", "NO", "x")
    for row in portal:
        assert row["date_created"] > patients[row["pid"]]["regdate"]
        # ...and saveCredentials' own log row, at that moment.
        assert query(site, "SELECT comments FROM log WHERE patient_id = :p AND event = 'patient-access' AND date = :d",
                     p=row["pid"], d=row["date_created"]) == [{"comments": "dXBkYXRlZCBjcmVkZW50aWFscw=="}]
    allergies = query(site, "SELECT pid, date FROM lists WHERE pid > 300 AND type = 'allergy'")
    assert allergies and all(r["date"] > patients[r["pid"]]["regdate"] for r in allergies)
    # Templates lend categories and codes, never what staff wrote about another patient.
    assert query(site, "SELECT COUNT(*) AS n FROM lists WHERE comments = :t", t=PRIVATE["issue"])[0]["n"] > 5
    planted_text = repr([encounters, vitals, issues, events])
    assert not any(text in planted_text for text in PRIVATE.values()) and "06 11 22 33 44" not in planted_text
    assert all(e["external_id"] is None and e["invoice_refno"] in ("", None) for e in encounters)

    # verify notices a deleted or altered footprint row.
    some = next(p for p in placements if any(r["table"] == "form_vitals" for r in p.rows))
    ident = identities[placements.index(some)]
    vitals_id = next(r["key"]["id"] for r in some.rows if r["table"] == "form_vitals")
    execute(site, "UPDATE form_vitals SET bps = '190' WHERE id = :i", i=vitals_id)
    assert seeder.verify(ident, some).details == ("form_vitals.bps changed",)
    # put back as planted: retire deletes only rows still as written (#13.5)
    execute(site, "UPDATE form_vitals SET bps = :v WHERE id = :i",
            v=next(r for r in some.rows if r["table"] == "form_vitals")["values"]["bps"], i=vitals_id)
    form_id = next(r["key"]["id"] for r in some.rows if r["table"] == "forms")
    execute(site, "DELETE FROM forms WHERE id = :i", i=form_id)
    assert seeder.verify(ident, some).state is VerifyState.MISSING

    for placement in reversed(placements):
        seeder.retire(placement)
    # Byte for byte as before: MariaDB's own table checksums agree (sequences included).
    assert _checksums(site) == checksums


def test_access_check_asks_for_the_encounter_counter(site, seeder):
    """An account that may write patients but not take encounter numbers is told before planting."""
    from urllib.parse import urlsplit

    database = urlsplit(site).path.lstrip("/")
    execute(site, "CREATE USER IF NOT EXISTS 'canary_oe'@'%' IDENTIFIED BY 'pw'")
    try:
        for table in (*WRITTEN, "form_encounter", "forms", "form_vitals", "openemr_postcalendar_events"):
            execute(site, f"GRANT SELECT, INSERT, DELETE ON `{database}`.`{table}` TO 'canary_oe'@'%'")
        execute(site, f"GRANT SELECT ON `{database}`.* TO 'canary_oe'@'%'")
        limited = site.replace("root@", "canary_oe:pw@")
        with OpenEmrSeeder(spec("emr", "openemr"), limited) as planter:
            problems = planter.check_access()
        dispose(limited)
        assert len(problems) == 1 and "sequences" in problems[0] and "UPDATE" in problems[0]
        assert seeder.check_access() == []
    finally:
        execute(site, "DROP USER IF EXISTS 'canary_oe'@'%'")


def test_no_medication_is_written_where_newcrop_would_upload_it(site):
    with OpenEmrSeeder(spec("emr", "openemr"), site) as seeder:
        assert seeder.clinic.issues["medication"]  # the site enters medications on the first day
    execute(site, "INSERT INTO globals (gl_name, gl_index, gl_value) VALUES ('erx_enable', 0, '1')")
    try:
        with OpenEmrSeeder(spec("emr", "openemr"), site) as seeder:
            assert "medication" not in seeder.clinic.issues and seeder.clinic.issues["medical_problem"]
    finally:
        execute(site, "DELETE FROM globals")


def test_a_later_visit_is_added_by_drip_and_retired_with_the_rest(site, seeder):
    import random
    from datetime import datetime, timedelta

    before = _checksums(site)
    from dataclasses import replace

    from seeders.openemr.seeder import SAVE_KEY

    ident = make_identity(31)
    placement = seeder.plant(ident)
    seeder._rnd = random.Random(4)
    # Not saved again on its registration day: whether it will be is drawn at planting, at the site's rate;
    # here drawn for 3 days after, by user 2.
    placement = replace(placement, extra={**placement.extra, SAVE_KEY: [3 * 86400, 2]})
    when = query(site, "SELECT NOW() AS n")[0]["n"] + timedelta(days=40)
    grown = seeder.add_event(ident, placement, when)
    new = grown.rows[len(placement.rows):]
    assert [(r["table"], r["key"]) for r in grown.rows[:len(placement.rows)]] == \
        [(r["table"], r["key"]) for r in placement.rows]
    assert {"form_encounter", "forms"} <= {r["table"] for r in new}
    # The save is made once its moment has come (here at the later visit; else by the drip run's add_due).
    record = next(r for r in grown.rows if r["table"] == "patient_data")
    stored = query(site, "SELECT date, regdate, updated_by FROM patient_data WHERE pid = :p",
                   p=record["key"]["pid"])[0]
    assert grown.extra[SAVE_KEY] == -1  # its moment come before this visit: made
    assert stored["date"] == stored["regdate"] + timedelta(days=3) and stored["updated_by"] == 2
    assert record["values"]["date"] == stored["date"].isoformat(sep=" ")
    assert record["values"]["updated_by"] == stored["updated_by"]
    encounter = next(r for r in new if r["table"] == "form_encounter")
    row = query(site, "SELECT * FROM form_encounter WHERE id = :i", i=encounter["key"]["id"])[0]
    assert row["provider_id"] == 2 and row["date"] <= when and row["date"].date() >= (when - timedelta(days=1)).date()
    assert seeder.verify(ident, grown).state is VerifyState.OK
    # drip passes an aware UTC time: written as the database's local time.
    from datetime import timezone
    utc_now = datetime.now(timezone.utc)
    again = seeder.add_event(ident, grown, utc_now)
    db_now = query(site, "SELECT NOW() AS n")[0]["n"]
    logged = [r["key"]["id"] for r in again.rows[len(grown.rows):] if r["table"] == "log"]
    assert logged
    latest = query(site, f"SELECT MAX(date) AS d FROM log WHERE id IN ({', '.join(map(str, logged))})")[0]["d"]
    assert abs((db_now - latest).total_seconds()) < 2 * 3600
    seeder.retire(Placement(rows=again.rows[len(grown.rows):]))
    execute(site, "DELETE FROM forms WHERE id = :i", i=next(r for r in new if r["table"] == "forms")["key"]["id"])
    assert seeder.verify(ident, grown).state is VerifyState.MISSING
    seeder.retire(grown)
    assert _checksums(site) == before
