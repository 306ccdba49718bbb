"""A canary's clinical footprint on OX 4.x: a consultation with vital signs by a practitioner of the site.

After registration, the canary is seen in the consultation range open now of
the site's busiest practitioner, as Mediboard's "consultation immédiate"
writes it, with the vital signs the site usually records; the rows join the
canary's placement: verify checks them, retire removes them (tables
byte-for-byte as before), locate finds them again.

The seeder dates what it writes by the database server's clock; here that
clock runs from a chosen moment (CLINIC_DAY at 10:00, the day the site's
ranges are open), so the tests do not depend on the wall clock (they used to
fail across midnight, when "today's" range of the fixture was yesterday's).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

import pytest

from support.app_databases import module_database, opened_on
from support.app_seeder_helpers import execute, query, snapshot, spec
from canary.errors import SourceError
from canary.model import Placement, VerifyState
from support.mediboard_fixture import CLASSES, DR_KLEIN, DR_ROUX, PRACTITIONER_DESK, checksums, create_site
from seeders.mediboard.seeder import MediboardSeeder
from support.sql_seeder_helpers import make_identity

CLINIC_DAY = date(2025, 6, 12)
OPENING = datetime.combine(CLINIC_DAY, datetime.min.time()) + timedelta(hours=10)


@pytest.fixture(autouse=True)
def server_clock(monkeypatch):
    """The database server's clock, as the seeder reads it, runs from OPENING (second by second)."""
    started = time.monotonic()

    def now(_seeder) -> datetime:
        return OPENING + timedelta(seconds=int(time.monotonic() - started))

    monkeypatch.setattr(MediboardSeeder, "_now", now)
    return lambda: now(None)


@pytest.fixture(scope="module")
def clinic_site():
    yield from module_database("CANARY_TEST_MARIADB_URL", "MariaDB",
                               lambda url: create_site(url, count=80, version="4.94", today=CLINIC_DAY))


@pytest.fixture
def seeder(clinic_site):
    yield from opened_on(clinic_site, lambda url: MediboardSeeder(spec("dpi", "mediboard"), url), snapshot)


def _planted(seeder, i: int, **changes):
    ident = make_identity(i, **changes)
    placement = seeder.plant(ident)
    time.sleep(1.1)  # the consultation comes after the registration
    return ident, placement


def _new(placement: Placement, before: Placement, table: str) -> list[dict]:
    return [r for r in placement.rows[len(before.rows):] if r["table"] == table]


def test_a_consultation_with_vital_signs_after_registration(clinic_site, seeder):
    sums = checksums(clinic_site)
    ident, planted = _planted(seeder, 25)
    placement = seeder.add_footprint(ident, planted)
    assert placement.rows[:len(planted.rows)] == planted.rows
    pid = planted.rows[0]["key"]["patient_id"]
    consult = query(clinic_site, "SELECT c.*, p.chir_id, p.date FROM consultation c JOIN plageconsult p "
                                 "USING (plageconsult_id) WHERE c.patient_id = :p", p=pid)
    assert len(consult) == 1
    c = consult[0]
    registered = query(clinic_site, "SELECT creation_date FROM patients WHERE patient_id = :p", p=pid)[0]
    # do_consult_now.php: the busiest practitioner's range open now, heure to the minute, patient arrived.
    assert c["chir_id"] == DR_ROUX and c["date"] == c["creation_date"].date()
    assert c["creation_date"] > registered["creation_date"]
    assert (datetime.min + c["heure"]).time() == c["creation_date"].replace(second=0).time()
    assert c["arrivee"] == c["creation_date"].replace(second=0)
    assert (c["chrono"], c["annule"], c["duree"], c["owner_id"]) == ("32", "0", 1, DR_ROUX)
    assert c["motif"] == "Consultation de suivi"  # what the site's consultations say
    measures = query(clinic_site, "SELECT * FROM constantes_medicales WHERE patient_id = :p", p=pid)
    assert len(measures) == 1
    m = measures[0]
    assert (m["context_class"], m["context_id"], m["user_id"]) == ("CConsultation", c["consultation_id"], DR_ROUX)
    assert m["datetime"] == m["creation_date"] == c["creation_date"]
    # The measures the site takes (temperature only for a third of its patients), blood pressure in cmHg.
    assert m["temperature"] is None and m["spo2"] is None
    systole, diastole = (int(x) for x in m["ta"].split("|"))
    assert 9 <= systole <= 18 and 5 <= diastole <= 11 and systole > diastole
    assert 40 <= m["poids"] <= 140 and 145 <= m["taille"] <= 200 and 50 <= m["pouls"] <= 110
    actions = [r["values"] for r in _new(placement, planted, "user_action")]
    assert [(a["object_class_id"], a["user_id"], a["ip_address"]) for a in actions] == [
        (CLASSES["CConsultation"], DR_ROUX, PRACTITIONER_DESK[DR_ROUX].hex()),
        (CLASSES["CConstantesMedicales"], DR_ROUX, PRACTITIONER_DESK[DR_ROUX].hex())]
    assert seeder.verify(ident, placement).state is VerifyState.OK
    seeder.retire(placement)
    assert checksums(clinic_site) == sums


def test_verify_notices_a_deleted_or_altered_footprint_row(clinic_site, seeder):
    a, pa = _planted(seeder, 3)
    b, pb = _planted(seeder, 4)
    pa, pb = seeder.add_footprint(a, pa), seeder.add_footprint(b, pb)
    measures = [r for r in pa.rows if r["table"] == "constantes_medicales"]
    execute(clinic_site, "DELETE FROM constantes_medicales WHERE constantes_medicales_id = :i",
            i=measures[0]["key"]["constantes_medicales_id"])
    assert seeder.verify(a, pa).state is VerifyState.MISSING
    consult = next(r for r in pb.rows if r["table"] == "consultation")
    execute(clinic_site, "UPDATE consultation SET chrono = '64' WHERE consultation_id = :i",
            i=consult["key"]["consultation_id"])
    altered = seeder.verify(b, pb)
    assert altered.state is VerifyState.ALTERED and "consultation.chrono changed" in altered.details
    # put back as planted: retire deletes only rows still as written (#13.5)
    execute(clinic_site, "UPDATE consultation SET chrono = :c WHERE consultation_id = :i",
            c=consult["values"]["chrono"], i=consult["key"]["consultation_id"])
    seeder.retire(pa)
    seeder.retire(pb)


def test_locate_finds_the_footprint_too(seeder):
    ident, planted = _planted(seeder, 14)
    placement = seeder.add_footprint(ident, planted)
    found = seeder.locate(ident)
    assert [(r["table"], r["key"]) for r in found.rows] == [(r["table"], r["key"]) for r in placement.rows]
    seeder.retire(Placement.from_dict(found.to_dict()))


def test_the_practitioner_option_and_no_open_range(clinic_site):
    with MediboardSeeder(spec("dpi", "mediboard", footprint_practitioner=str(DR_KLEIN)), clinic_site) as seeder:
        ident, planted = _planted(seeder, 8)
        placement = seeder.add_footprint(ident, planted)
        consult = next(r for r in placement.rows if r["table"] == "consultation")["values"]
        assert consult["owner_id"] == DR_KLEIN
        seeder.retire(placement)
    before = snapshot(clinic_site)
    with MediboardSeeder(spec("dpi", "mediboard", footprint_practitioner="99"), clinic_site) as seeder:
        ident, planted = _planted(seeder, 9)
        with pytest.raises(SourceError, match=r"no consultation range \(plageconsult\) of practitioner 99 is open"):
            seeder.add_footprint(ident, planted)
        seeder.retire(planted)
    assert snapshot(clinic_site) == before


def test_no_consultation_before_the_registration(seeder, server_clock):
    ident, planted = _planted(seeder, 10)
    later = (server_clock() + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    future = Placement(rows=tuple({**r, "values": {**r["values"], "creation_date": later}}
                                  if r["table"] == "patients" else r for r in planted.rows))
    with pytest.raises(SourceError, match="its consultation must come later"):
        seeder.add_footprint(ident, future)
    seeder.retire(planted)


def test_a_footprint_failing_half_way_leaves_nothing(clinic_site, seeder):
    first, done = _planted(seeder, 17)
    seeder.retire(seeder.add_footprint(first, done))  # the seeder has checked the tables once
    ident, planted = _planted(seeder, 16)
    # A column added behind the seeder's back breaks the vital signs, after the consultation
    # and its history went in (MyISAM keeps them).
    execute(clinic_site, "ALTER TABLE constantes_medicales ADD COLUMN required_now INT NOT NULL")
    try:
        with pytest.raises(SourceError, match="constantes_medicales"):
            seeder.add_footprint(ident, planted)
    finally:
        execute(clinic_site, "ALTER TABLE constantes_medicales DROP COLUMN required_now")
    pid = planted.rows[0]["key"]["patient_id"]
    assert query(clinic_site, "SELECT * FROM consultation WHERE patient_id = :p", p=pid) == []
    assert seeder.verify(ident, planted).state is VerifyState.OK
    seeder.retire(planted)


def test_blood_pressure_in_the_sites_unit(clinic_site):
    tenfold = ("UPDATE constantes_medicales SET ta = CONCAT(SUBSTRING_INDEX(ta, '|', 1) * 10, '|', "
               "SUBSTRING_INDEX(ta, '|', -1) * 10)")
    execute(clinic_site, tenfold)  # this site writes mmHg: "120|70"
    try:
        with MediboardSeeder(spec("dpi", "mediboard"), clinic_site) as seeder:
            ident, planted = _planted(seeder, 12)
            placement = seeder.add_footprint(ident, planted)
            ta = next(r for r in placement.rows if r["table"] == "constantes_medicales")["values"]["ta"]
            systole, diastole = (int(x) for x in ta.split("|"))
            assert 90 <= systole <= 180 and 50 <= diastole <= 110
            seeder.retire(placement)
    finally:
        execute(clinic_site, "UPDATE constantes_medicales SET ta = CONCAT(SUBSTRING_INDEX(ta, '|', 1) DIV 10, '|', "
                             "SUBSTRING_INDEX(ta, '|', -1) DIV 10)")
