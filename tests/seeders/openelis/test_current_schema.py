"""The OpenELIS seeder on the current schema (init dump + Liquibase delta), on a laboratory that has lived.

The site (tests/support/openelis_site.py) was written independently of the
canary generator, as OpenELIS writes: React-form patients with contact and
GUID, validated requests with SITEYEARNUM accession numbers. Every test leaves
the site's tables as it found them (md5 checksums of every clinlims table).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from canary.model import Placement, VerifyState
from seeders.openelis.seeder import OpenElisSeeder
from support.app_databases import left_as_prepared, snapshotted_database
from support.openelis_site import BIOLOGIST, CLERK, TECHNICIAN, create_current_schema, populate_lab, table_checksums
from support.sql_seeder_helpers import execute, make_identity

# What an attacker holding a copy of clinlims runs: every patient with a validated result in the last 12 months.
RESULT_EXPORT = """
SELECT DISTINCT p.id, pr.last_name, pr.first_name, p.national_id
FROM clinlims.patient p JOIN clinlims.person pr ON pr.id = p.person_id
JOIN clinlims.sample_human sh ON sh.patient_id = p.id JOIN clinlims.sample s ON s.id = sh.samp_id
JOIN clinlims.sample_item si ON si.samp_id = s.id JOIN clinlims.analysis a ON a.sampitem_id = si.id
JOIN clinlims.result r ON r.analysis_id = a.id
JOIN clinlims.status_of_sample st ON st.id = a.status_id AND st.name = 'Finalized'
WHERE a.released_date >= now() - interval '12 months' AND r.value <> ''
"""
# Hibernate writes lastupdated from System.currentTimeMillis(): a row with sub-millisecond digits is not the app's.
NOT_MILLISECONDS = """
SELECT '{table}' AS tab, id FROM clinlims.{table} WHERE extract(microseconds FROM {column})::bigint % 1000 <> 0
"""
MS_COLUMNS = [("person", "lastupdated"), ("patient", "lastupdated"), ("patient_identity", "lastupdated"),
              ("history", "timestamp"), ("sample", "lastupdated"), ("sample_item", "lastupdated"),
              ("analysis", "lastupdated"), ("result", "lastupdated"), ("sample_human", "lastupdated")]


def _prepare(url: str) -> None:
    create_current_schema(url)
    populate_lab(url)


@pytest.fixture(scope="module")
def lab_db():
    yield from snapshotted_database("CANARY_TEST_POSTGRES_URL", "PostgreSQL", _prepare, table_checksums)


@pytest.fixture
def lab_url(lab_db):
    yield from left_as_prepared(lab_db, table_checksums)


def _open(url: str, **options: str) -> OpenElisSeeder:
    seeder = OpenElisSeeder(_source(**options), url)
    seeder.open()
    return seeder


def _source(**options: str):
    from support.openelis_support import source
    return source(**options)


def _query(url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def _rows(placement: Placement, table: str) -> list[dict]:
    return [r["values"] for r in placement.rows if r["table"] == table]


def test_plant_verify_retire_as_the_react_form_and_the_lab_write_them(lab_url):
    seeder = _open(lab_url)
    try:
        assert seeder.setup.version.release == "3.1"
        assert seeder.check_access() == []  # rights on every table written, footprint included, and its sequences
        identities = [make_identity(i) for i in range(12)]
        planned = [row.table for row in seeder.plan(identities[0])]  # the dry run writes nothing (checksums)
        assert planned[:3] == ["clinlims.person", "clinlims.history", "clinlims.patient"]
        assert {"clinlims.sample", "clinlims.analysis", "clinlims.result"} <= set(planned)
        placements = [seeder.plant(i) for i in identities]
        stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
        assert {seeder.verify(i, p).state for i, p in zip(identities, stored)} == {VerifyState.OK}

        rows = placements[0].rows
        tables = [r["table"] for r in rows]
        assert tables[:9] == ["person", "history", "patient", "history", "person", "history", "patient_contact",
                              "patient_identity", "person_address"]
        person, patient, contact = (r["values"] for r in rows if r["table"] in ("person", "patient"))
        link = _rows(placements[0], "patient_contact")[0]
        guid = _rows(placements[0], "patient_identity")
        # persistContact: a blank contact person ('' as the React form sends), linked by patient_contact.
        assert {k: contact[k] for k in ("first_name", "last_name", "primary_phone", "email")} == dict.fromkeys(
            ("first_name", "last_name", "primary_phone", "email"), "")
        assert (link["patient_id"], link["person_id"]) == (patient["id"], contact["id"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", link["lastupdated"])  # a DATE column
        # fhir_uuid and the GUID identity carry the same value; never a NATIONAL identity.
        assert [g["identity_type_id"] for g in guid] == [14] and guid[0]["identity_data"] == patient["fhir_uuid"]
        assert patient["national_id"] == identities[0].nir
        # Columns no form writes stay NULL (this site's patients have none); the form's blanks are ''.
        assert [person[c] for c in ("zip_code", "country", "multiple_unit", "email", "middle_name")] == [None] * 5
        assert person["street_address"] in (identities[0].address.line1, "")  # as often as the site types it
        # One lastupdated reading per row, increasing in flush order, at millisecond precision.
        stamps = [datetime.fromisoformat(v["lastupdated"]) for v in (person, patient, contact)]
        assert stamps == sorted(stamps) and len(set(stamps)) == 3
        ids = {r["id"] for p in placements for r in _rows(p, "person")}
        found = [row for table, column in MS_COLUMNS for row in _query(
            lab_url, NOT_MILLISECONDS.format(table=table, column=column))]
        assert found == [] and len(ids) == 24
        for placement in stored:
            seeder.retire(placement)
    finally:
        seeder.close()


def test_footprint_is_a_validated_request_of_the_site(lab_url):
    seeder = _open(lab_url)
    try:
        now = datetime.now()
        placement = seeder.plant(make_identity(3))
        sample, = _rows(placement, "sample")
        items, analyses, results = (_rows(placement, t) for t in ("sample_item", "analysis", "result"))
        human, = _rows(placement, "sample_human")
        patient, = _rows(placement, "patient")
        year = now.year % 100
        newest = _query(lab_url, "SELECT max(accession_number) AS n FROM clinlims.sample WHERE id <> :id",
                        id=sample["id"])[0]["n"]
        assert re.fullmatch(rf"12345{year:02d}\d{{13}}", sample["accession_number"])
        assert sample["accession_number"] == f"{newest[:7]}{int(newest[7:]) + 1:013d}"  # next of the site's counter
        assert human["patient_id"] == patient["id"] and human["provider_id"] is None
        assert sample["status_id"] == 3 and {a["status_id"] for a in analyses} == {6}  # Testing finished / Finalized
        assert {i["status_id"] for i in items} == {20} and len(results) == len(analyses) >= 1
        assert {a["test_id"] for a in analyses} <= {177, 178, 179, 180, 181, 159, 7, 8, 9}  # the site's panels
        for result in results:
            assert result["result_type"] == "N" and re.fullmatch(r"\d+(\.\d+)?", result["value"])
        # Dated after registration at the site's pace, the last save at the planting moment.
        registered = datetime.fromisoformat(patient["lastupdated"])
        received = datetime.fromisoformat(sample["received_date"])
        validated = datetime.fromisoformat(sample["lastupdated"])
        assert registered < received + timedelta(minutes=30) and received < validated <= datetime.now()
        assert timedelta(hours=1) < validated - registered < timedelta(hours=12)
        # Audit rows as the site's own: the sample, its item and analyses inserted by the clerk who enters the
        # site's orders, the results by its technician, each stamped with its insert's reading.
        audits = {(h["reference_table"], h["activity"], h["sys_user_id"]) for h in _rows(placement, "history")}
        assert audits == {(16, "I", CLERK), (15, "I", CLERK), (1, "I", CLERK), (23, "I", CLERK), (4, "I", CLERK),
                          (21, "I", TECHNICIAN), (4, "U", TECHNICIAN), (1, "U", TECHNICIAN), (4, "U", BIOLOGIST),
                          (1, "U", BIOLOGIST)}
        stamps = [datetime.fromisoformat(h["timestamp"]) for h in _rows(placement, "history")]
        assert stamps == sorted(stamps) and stamps[-1] == validated  # the sample's validation is the last save
        # Each analysis: inserted, re-saved by the technician's result entry, then validated by the biologist,
        # its U rows' changes as the site's own (the previous status ids).
        updates = [(h["sys_user_id"], bytes.fromhex(h["changes"])) for h in _rows(placement, "history")
                   if h["reference_table"] == 4 and h["activity"] == "U" and h["reference_id"] == analyses[0]["id"]]
        assert updates == [(TECHNICIAN, b"\n\n<statusId>4</statusId>\n"), (BIOLOGIST, b"\n\n<statusId>15</statusId>\n")]
        seeder.retire(placement)
    finally:
        seeder.close()


def test_result_export_contains_every_canary_planted_a_month_before(lab_url):
    seeder = _open(lab_url)
    placements = []
    try:
        for n in range(6):
            moment = datetime.now() - timedelta(days=35 + 40 * n)
            seeder.now = lambda moment=moment: moment
            placements.append(seeder.plant(make_identity(40 + n)))
        exported = {row["id"] for row in _query(lab_url, RESULT_EXPORT)}
        canaries = {_rows(p, "patient")[0]["id"] for p in placements}
        assert canaries <= exported and len(exported) > len(canaries)
        # Not one of them dated in the future, all within the last 12 months.
        assert not _query(lab_url, "SELECT id FROM clinlims.analysis WHERE lastupdated > now()")
    finally:
        for placement in placements:
            seeder.retire(placement)
        seeder.close()


def test_verify_notices_a_deleted_or_altered_footprint_row(lab_url):
    seeder = _open(lab_url)
    try:
        identities = [make_identity(60 + i) for i in range(3)]
        placements = [seeder.plant(i) for i in identities]
        result = [r for r in placements[0].rows if r["table"] == "result"][0]
        sample = [r for r in placements[1].rows if r["table"] == "sample"][0]
        history = [r for r in placements[2].rows if r["table"] == "history"][-1]
        execute(lab_url, "UPDATE clinlims.result SET value = '99' WHERE id = :id", id=result["key"]["id"])
        execute(lab_url, "UPDATE clinlims.sample SET accession_number = 'X1' WHERE id = :id", id=sample["key"]["id"])
        before = _query(lab_url, "SELECT * FROM clinlims.history WHERE id = :id", id=history["key"]["id"])[0]
        execute(lab_url, "DELETE FROM clinlims.history WHERE id = :id", id=history["key"]["id"])
        altered = seeder.verify(identities[0], placements[0])
        assert altered.state is VerifyState.ALTERED and altered.details == ("result.value changed",)
        assert seeder.verify(identities[1], placements[1]).details == ("sample.accession_number changed",)
        missing = seeder.verify(identities[2], placements[2])
        assert missing.state is VerifyState.MISSING and missing.details[0].startswith("history row id=")
        # put back as planted: retire deletes only rows still as written (#13.5)
        execute(lab_url, "UPDATE clinlims.sample SET accession_number = :n WHERE id = :id",
                n=sample["values"]["accession_number"], id=sample["key"]["id"])
        execute(lab_url, "UPDATE clinlims.result SET value = :v WHERE id = :id", v=result["values"]["value"],
                id=result["key"]["id"])
        engine = sa.create_engine(lab_url)
        with engine.begin() as conn:
            conn.execute(sa.table("history", *(sa.column(c) for c in before), schema="clinlims").insert(), [before])
        engine.dispose()
        for placement in placements:
            seeder.retire(placement)
    finally:
        seeder.close()


def test_locate_finds_the_patient_and_its_footprint(lab_url):
    seeder = _open(lab_url)
    try:
        identity = make_identity(70)
        placement = seeder.plant(identity)
        found = seeder.locate(identity)
        assert found is not None
        assert sorted((r["table"], r["key"]["id"]) for r in found.rows if "id" in r["key"]) == sorted(
            (r["table"], r["key"]["id"]) for r in placement.rows if "id" in r["key"])
        assert seeder.verify(identity, found).state is VerifyState.OK
        seeder.retire(found)
    finally:
        seeder.close()


def test_fresh_current_install_plants_with_the_stock_catalogue(postgres_url):
    create_current_schema(postgres_url)
    before = table_checksums(postgres_url)
    seeder = _open(postgres_url)
    try:
        identities = [make_identity(i) for i in range(5)]
        placements = [seeder.plant(i) for i in identities]
        assert {seeder.verify(i, p).state for i, p in zip(identities, placements)} == {VerifyState.OK}
        first = _rows(placements[0], "sample")[0]["accession_number"]
        assert re.fullmatch(rf"12345{datetime.now().year % 100:02d}0{{12}}1", first)  # the counter's first number
        assert all(_rows(p, "result") for p in placements)
        for placement in placements:
            seeder.retire(placement)
    finally:
        seeder.close()
    assert table_checksums(postgres_url) == before


def test_later_requests_are_verified_and_retired_with_the_canary(lab_url):
    """drip's add_event: a new validated request of the same patient, checked by verify, removed by retire."""
    seeder = _open(lab_url)
    try:
        identity = make_identity(80)
        seeder.now = lambda: datetime.now() - timedelta(days=200)
        placement = seeder.plant(identity)
        seeder.now = datetime.now
        seeder.footprint.site.return_rates = [0.0]  # a patient who never comes back: no new row
        assert seeder.add_event(identity, placement, datetime.now(timezone.utc) - timedelta(days=100)) == placement
        seeder.footprint.site.return_rates = [1.0]  # one who comes back every time
        grown = seeder.add_event(identity, placement, datetime.now(timezone.utc) - timedelta(days=100))
        grown = seeder.add_event(identity, grown, datetime.now(timezone.utc) - timedelta(hours=1))
        patient, = _rows(placement, "patient")
        humans = _rows(grown, "sample_human")
        samples = _rows(grown, "sample")
        assert len(humans) == len(samples) == 3 and {h["patient_id"] for h in humans} == {patient["id"]}
        dates = [datetime.fromisoformat(s["lastupdated"]) for s in samples]
        assert dates == sorted(dates) and dates[-1] <= datetime.now()
        assert len({s["accession_number"] for s in samples}) == 3  # each from the site's numbering
        assert seeder.verify(identity, grown).state is VerifyState.OK
        later = _rows(grown, "result")[-1]
        execute(lab_url, "UPDATE clinlims.result SET value = '77' WHERE id = :id", id=later["id"])
        assert seeder.verify(identity, grown).details == ("result.value changed",)
        execute(lab_url, "UPDATE clinlims.result SET value = :v WHERE id = :id", v=later["value"], id=later["id"])
        history = [r for r in grown.rows if r["table"] == "history"][-1]
        before = _query(lab_url, "SELECT * FROM clinlims.history WHERE id = :id", id=history["key"]["id"])[0]
        execute(lab_url, "DELETE FROM clinlims.history WHERE id = :id", id=history["key"]["id"])
        assert seeder.verify(identity, grown).state is VerifyState.MISSING
        engine = sa.create_engine(lab_url)
        with engine.begin() as conn:
            conn.execute(sa.table("history", *(sa.column(c) for c in before), schema="clinlims").insert(), [before])
        engine.dispose()
        seeder.retire(grown)  # the fixture checks every table is as before
    finally:
        seeder.close()


def test_the_audit_reads_patients_with_their_person_requests_and_results(lab_url):
    seeder = _open(lab_url)
    try:
        placement = seeder.plant(make_identity(81))
        patient_id = _rows(placement, "patient")[0]["id"]
        patients = {p.ref: p for p in seeder.patients_for_audit()}
        ours = patients[("patient", (("id", patient_id),))]  # the key as the registry keeps it
        assert ours.values["person.last_name"] == _rows(placement, "person")[0]["last_name"]
        results = len(_rows(placement, "result"))
        assert ours.related["sample_human"] == 1 and ours.related["result (via sample_human)"] == results
        assert ours.created is not None and ours.related_first["result (via sample_human)"] > ours.created
        assert seeder.site_postcodes().most_common(1)[0][0] in {"35000", "35200", "35700"}  # Rennes, from the cities
        seeder.retire(placement)
    finally:
        seeder.close()
