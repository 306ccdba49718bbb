"""The SQL seeders' read-only site questions, on SQLite, MariaDB and PostgreSQL.

seeders/sql/siteread.py: patients with related-row counts (tables of the
mapping plus those found through foreign keys), admissions since a moment,
postcodes of recent patients. Nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from canary.planting.planter import open_seeder
from seeders.sql.siteread import PatientLayout, layout_with_links
from support.lis_site import build_site
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import MAPPING, snapshot

NOW = datetime(2025, 6, 11, 11, 0)


@pytest.fixture
def seeder(any_db_url, tmp_path):
    build_site(any_db_url, 200, now=NOW, seed=5, years=2)
    registry, _ = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=any_db_url, mapping=str(MAPPING))
    opened = open_seeder(registry.get_source("lis"))
    yield opened, any_db_url
    opened.close()
    registry.close()


def test_the_site_is_read_without_a_write(seeder):
    opened, url = seeder
    before = snapshot(url)
    patients = list(opened.patients_for_audit())
    assert len(patients) == 200 and snapshot(url) == before
    newest, oldest = patients[0], patients[-1]
    assert newest.created >= oldest.created  # most recent first
    assert {"contacts", "portail"} <= set(newest.related)
    assert sum(p.related.get("contacts", 0) for p in patients) > 200
    assert all(p.ref[0] == "patients" and p.ref[1][0][0] == "id" for p in patients)
    limited = list(opened.patients_for_audit(limit=10))
    assert [p.ref for p in limited] == [p.ref for p in patients[:10]]


def test_foreign_keys_bring_in_the_tables_the_mapping_does_not_name(seeder):
    opened, _url = seeder
    layout = layout_with_links(opened.target, PatientLayout("patients", ("id",), related=(("contacts", "patient_id"),)))
    assert sorted(layout.related) == [("analyses", "patient_id"), ("contacts", "patient_id"),
                                      ("portail", "patient_id")]
    assert layout.related[0] == ("contacts", "patient_id")  # the seeder's own come first


def test_admissions_and_postcodes(seeder):
    opened, _url = seeder
    month = opened.admissions_since(NOW - timedelta(days=30))
    everything = opened.admissions_since(NOW - timedelta(days=3650))
    assert len(everything) == 200 and 0 < len(month) < 200
    assert month == sorted(month) and all(t >= NOW - timedelta(days=30) for t in month)
    postcodes = opened.site_postcodes(limit=50)
    assert sum(postcodes.values()) == 50 and all(len(p) == 5 and p.isdigit() for p in postcodes)
