"""OpenELIS version detection from the schema, and the local FHIR store's report.

An unrecognised schema is refused in one line naming what is missing, and
nothing is written (checksums of every table before and after).
"""

from __future__ import annotations

import pytest

from canary.errors import MappingError
from canary.model import VerifyState
from seeders.openelis.seeder import OpenElisSeeder
from support.app_databases import OPENELIS_DUMP, load_pgdump, require_dump
from support.openelis_site import create_current_schema, execute_all, record_changelog, table_checksums
from support.openelis_support import source
from support.sql_seeder_helpers import make_identity


def _open(url: str) -> OpenElisSeeder:
    seeder = OpenElisSeeder(source(), url)
    seeder.open()
    return seeder


def _refused(url: str) -> str:
    before = table_checksums(url)
    with pytest.raises(MappingError) as err:
        _open(url)
    assert table_checksums(url) == before
    assert "\n" not in str(err.value) and "nothing was written" in str(err.value)
    return str(err.value)


def test_base_dump_and_every_changelog_release_line_are_recognised(postgres_url):
    load_pgdump(postgres_url, require_dump(OPENELIS_DUMP))
    seeder = _open(postgres_url)
    try:
        version = seeder.setup.version
        assert (version.release, version.has_contact, version.has_fhir_uuid) == ("base", False, False)
    finally:
        seeder.close()
    # The same structures and a changelog that stops at 2.0-2.2: contact yes, fhir_uuid not required.
    execute_all(postgres_url, ["CREATE TABLE clinlims.patient_contact (id numeric(10,0) PRIMARY KEY, "
                               "patient_id numeric(10,0), person_id numeric(60,0), lastupdated date)",
                               "CREATE SEQUENCE clinlims.patient_contact_seq"])
    record_changelog(postgres_url, ("2.0", "2.1", "2.2"))
    seeder = _open(postgres_url)
    try:
        assert (seeder.setup.version.release, seeder.setup.version.has_contact) == ("2.2", True)
        placement = seeder.plant(make_identity(1))
        assert [r["table"] for r in placement.rows][4:7] == ["person", "history", "patient_contact"]
        seeder.retire(placement)
    finally:
        seeder.close()


def test_changelog_release_without_its_structures_is_refused(postgres_url):
    load_pgdump(postgres_url, require_dump(OPENELIS_DUMP))
    record_changelog(postgres_url, ("2.0", "2.3", "2.8"))
    message = _refused(postgres_url)
    assert message.startswith("source 'elis': databasechangelog says release 2.8.x.x but table "
                              "clinlims.patient_contact and column clinlims.patient.fhir_uuid and table "
                              "clinlims.accession_number_info is missing")


def test_unknown_newer_release_and_orphan_structures_are_refused(postgres_url):
    create_current_schema(postgres_url, releases=("2.8", "3.1", "3.4"))
    assert "databasechangelog names release 3.4.x.x, which this seeder does not know" in _refused(postgres_url)
    execute_all(postgres_url, ["DROP TABLE clinlims.databasechangelog"])
    assert "no databasechangelog to tell its release" in _refused(postgres_url)


def test_verify_reports_a_canary_missing_from_the_local_fhir_store(postgres_url):
    create_current_schema(postgres_url)
    # HAPI FHIR JPA keeps its tables in the same clinlims database in the docker deployment.
    execute_all(postgres_url, ["CREATE TABLE clinlims.hfj_resource (res_id bigint PRIMARY KEY, "
                               "res_type varchar(40) NOT NULL, fhir_id varchar(64))"])
    seeder = _open(postgres_url)
    try:
        identity = make_identity(2)
        placement = seeder.plant(identity)
        fhir_uuid = [r for r in placement.rows if r["table"] == "patient"][0]["values"]["fhir_uuid"]
        result = seeder.verify(identity, placement)
        assert result.state is VerifyState.OK
        assert result.details == (f"fhir store: Patient/{fhir_uuid} is not in OpenELIS's local FHIR store "
                                  "(hfj_resource), where the application would have PUT it; see "
                                  "docs/seeders/openelis.md",)
        execute_all(postgres_url, [f"INSERT INTO clinlims.hfj_resource VALUES (1, 'Patient', '{fhir_uuid}')"])
        assert seeder.verify(identity, placement).details == ()
        execute_all(postgres_url, ["DELETE FROM clinlims.hfj_resource"])
        seeder.retire(placement)
    finally:
        seeder.close()
