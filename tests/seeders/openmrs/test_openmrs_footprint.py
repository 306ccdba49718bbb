"""A canary's first visit with vitals, as the site records them (#12), on the real OpenMRS 2.6 schema."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from canary.model import VerifyState
from seeders.openmrs.footprint import VITALS
from seeders.openmrs.seeder import OpenMrsSeeder
from support.app_databases import OPENMRS_DUMP, load_mysqldump, require_dump, snapshot_tables
from support.openmrs_site import NURSE, RECORDED, VISIT_TYPE, VITALS_TYPE, build_site
from support.openmrs_support import source
from support.sql_seeder_helpers import execute, make_identity

FOOTPRINT = ("visit", "encounter", "encounter_provider", "obs")


@pytest.fixture
def site(mariadb_url):
    load_mysqldump(mariadb_url, require_dump(OPENMRS_DUMP))
    concepts = build_site(mariadb_url)
    return mariadb_url, concepts


def _open(url: str, **options: str) -> OpenMrsSeeder:
    seeder = OpenMrsSeeder(source(**options), url)
    seeder.open()
    seeder._rnd = random.Random(5)  # who gets a footprint, reproducibly
    return seeder


def test_canaries_get_the_sites_vitals_footprint_at_its_rate_and_retire_removes_it(site):
    url, concepts = site
    before = snapshot_tables(url)
    seeder = _open(url)
    try:
        habit = seeder.vitals
        assert (habit.encounter_type, habit.visit_type, habit.provider, habit.encounter_role) == (
            VITALS_TYPE, VISIT_TYPE, NURSE, 1)
        assert habit.rate == pytest.approx(30 / 40) and habit.location == 1
        assert habit.concepts == {code: concepts[code] for code in RECORDED}  # only what the site records
        identities = [make_identity(i) for i in range(20)]
        placements = [seeder.plant(i) for i in identities]
        with_footprint = [p for p in placements if any(r["table"] == "visit" for r in p.rows)]
        assert 8 <= len(with_footprint) <= 19  # about the site's 75 %, not every canary

        rows = with_footprint[0].rows
        tables = [r["table"] for r in rows]
        assert tables[-9:] == ["visit", "encounter", "encounter_provider", *["obs"] * 6]  # after the registration
        person = next(r for r in rows if r["table"] == "person")
        visit, encounter, provider, *obs = rows[-9:]
        pid = person["key"]["person_id"]
        assert visit["values"]["patient_id"] == encounter["values"]["patient_id"] == pid
        assert encounter["values"]["visit_id"] == visit["key"]["visit_id"]
        assert visit["values"]["date_started"] == encounter["values"]["encounter_datetime"] == \
            person["values"]["date_created"]  # checked in at registration, vitals taken then
        assert provider["values"]["provider_id"] == NURSE
        assert provider["values"]["encounter_id"] == encounter["key"]["encounter_id"]
        by_concept = {o["values"]["concept_id"]: o["values"] for o in obs}
        assert set(by_concept) == {concepts[code] for code in RECORDED}
        for code in RECORDED:
            value = by_concept[concepts[code]]
            assert value["status"] == "FINAL" and value["person_id"] == pid
            _what, (low, high), _decimals = VITALS[code]
            assert low * 0.5 <= value["value_numeric"] <= high  # women and children read lower
        stamps = [datetime.fromisoformat(r["values"]["date_created"]) for r in rows]
        assert stamps == sorted(stamps)  # one flush after the other, ids and times in the same order

        assert {seeder.verify(i, p).state for i, p in zip(identities, placements)} == {VerifyState.OK}
        obs_id = obs[0]["key"]["obs_id"]
        execute(url, "UPDATE obs SET value_numeric = value_numeric + 1 WHERE obs_id = :id", id=obs_id)
        canary = identities[placements.index(with_footprint[0])]
        altered = seeder.verify(canary, with_footprint[0])
        assert altered.state is VerifyState.ALTERED and altered.details == ("obs.value_numeric changed",)
        found = seeder.locate(canary)  # an unrecorded canary is found with its footprint
        assert [r["key"] for r in found.rows] == [r["key"] for r in with_footprint[0].rows]
        # put back as planted: retire deletes only rows still as written (#13.5)
        execute(url, "UPDATE obs SET value_numeric = :v WHERE obs_id = :id", v=obs[0]["values"]["value_numeric"],
                id=obs_id)
        for placement in placements:
            seeder.retire(placement)
    finally:
        seeder.close()
    assert snapshot_tables(url) == before


def test_no_footprint_when_asked_or_when_the_site_records_no_vitals(site):
    url, _concepts = site
    seeder = _open(url, footprint="none")
    try:
        assert seeder.vitals is None
        placement = seeder.plant(make_identity(1))
        assert not {r["table"] for r in placement.rows} & set(FOOTPRINT)
        seeder.retire(placement)
    finally:
        seeder.close()
    execute(url, "UPDATE obs SET voided = 1")  # the site stopped recording vitals
    seeder = _open(url)
    try:
        assert seeder.vitals is None
    finally:
        seeder.close()
