"""The OpenMRS version read from the schema, and creation stamps from the database's clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from canary.errors import MappingError
from seeders.openmrs.seeder import OpenMrsSeeder
from support.app_databases import OPENMRS_DUMP, load_mysqldump, require_dump
from support.openmrs_support import create_schema, source
from support.sql_seeder_helpers import execute, make_identity

UPDATES = "org/openmrs/liquibase/updates/liquibase-update-to-latest-{}.xml"


def _open(url: str, **options: str) -> OpenMrsSeeder:
    seeder = OpenMrsSeeder(source(**options), url)
    seeder.open()
    return seeder


def _changelog(url: str, *files: str) -> None:
    execute(url, "DELETE FROM liquibasechangelog")
    for n, name in enumerate(files):
        execute(url, "INSERT INTO liquibasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, EXECTYPE) "
                     "VALUES (:id, 'x', :f, '2022-09-01 13:17:50', :n, 'EXECUTED')", id=f"c{n}", f=name, n=n)


def test_the_real_dump_is_openmrs_2_6(mariadb_url):
    load_mysqldump(mariadb_url, require_dump(OPENMRS_DUMP))
    seeder = _open(mariadb_url, phone_attribute_type="none")  # a bare core install has no phone type
    try:
        assert str(seeder.version) == "2.6" and seeder.version.searches_an_index
    finally:
        seeder.close()


def test_versions_from_the_changelog_files_and_unsupported_ones_refused(mariadb_url):
    create_schema(mariadb_url)
    cases = [
        ((UPDATES.format("2.1.x"), UPDATES.format("2.8.x")), "2.8", True),
        (("liquibase-update-to-latest.xml", "liquibase-update-to-2.1.xml", "liquibase-update-to-2.3.xml"),
         "2.3", True),
        (("liquibase-update-to-latest.xml",), "2.0", False),  # 2.0 searches the tables: no index to lag
    ]
    for files, version, indexed in cases:
        _changelog(mariadb_url, *files)
        seeder = _open(mariadb_url)
        try:
            assert (str(seeder.version), seeder.version.searches_an_index) == (version, indexed)
            if not indexed:
                placement = seeder.plant(make_identity(1))
                assert seeder.notices() == []  # nothing to rebuild on 2.0
                seeder.retire(placement)
        finally:
            seeder.close()
    _changelog(mariadb_url, UPDATES.format("2.9.x"))
    with pytest.raises(MappingError, match=r"^source 'omrs': OpenMRS 2\.9 is newer than the versions this seeder "
                                           r"supports \(2\.0 to 2\.8, see docs/seeders/openmrs\.md\)$"):
        _open(mariadb_url)
    _changelog(mariadb_url, "liquibase-update-to-latest.xml")
    execute(mariadb_url, "ALTER TABLE patient DROP COLUMN allergy_status")
    with pytest.raises(MappingError, match=r"^source 'omrs': OpenMRS 1\.9\.x or older is older than"):
        _open(mariadb_url)
    execute(mariadb_url, "DROP TABLE liquibasechangelog")
    with pytest.raises(MappingError, match=r"^source 'omrs': no table liquibasechangelog"):
        _open(mariadb_url)


def test_creation_stamps_come_from_the_database_clock_one_per_row(mariadb_url):
    """A database nine hours ahead of the seeder's machine: the stamps follow the database."""
    create_schema(mariadb_url)
    ahead = mariadb_url + "?init_command=SET+time_zone%3D%27%2B09%3A00%27"
    seeder = _open(ahead)
    try:
        local = datetime.now()
        placement = seeder.plant(make_identity(2))
        stamps = [datetime.fromisoformat(r["values"]["date_created"]) for r in placement.rows]
        assert all(stamp.microsecond == 0 for stamp in stamps)  # DATETIME keeps seconds
        assert stamps == sorted(stamps) and stamps[-1] - stamps[0] <= timedelta(seconds=1)
        utc_offset = datetime.now().astimezone().utcoffset()
        expected = local - utc_offset + timedelta(hours=9)
        assert abs(stamps[0] - expected) < timedelta(seconds=30)
        assert seeder.verify(make_identity(2), placement).state.value == "ok"  # recorded as stored
        seeder.retire(placement)
    finally:
        seeder.close()
