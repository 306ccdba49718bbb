"""The Mediboard seeder on each dPpatients generation it supports, and the versions it refuses.

The same hospital (tests/support/mediboard_fixture.py) at dPpatients 2.37,
3.35 and 4.94 (OX 4.x) receives canaries: every real row stays as it was,
verify finds them, and retire leaves every table byte-for-byte as before
(rows and MariaDB's CHECKSUM TABLE).
"""

from __future__ import annotations

import pytest

from support.app_seeder_helpers import dispose, execute, load_sql, load_sql_file, rows_except, snapshot, spec
from canary.errors import ConfigError, SourceError
from canary.model import VerifyState
from support.mediboard_fixture import SCHEMA, SCHEMA_OX4, TABLES_BY_VERSION, VERSIONS, checksums, create_site
from seeders.mediboard.seeder import MediboardSeeder
from support.sql_seeder_helpers import make_identity


@pytest.fixture(scope="module", params=VERSIONS)
def versioned_site(request):
    from conftest import _fresh_database, _server_url

    databases = _fresh_database(_server_url("CANARY_TEST_MARIADB_URL", "MariaDB"), "MariaDB")
    url = next(databases)
    create_site(url, count=120, version=request.param)
    yield request.param, url
    dispose(url)
    databases.close()


@pytest.fixture
def empty_db(mariadb_url):
    yield mariadb_url
    dispose(mariadb_url)


def test_plant_verify_retire_on_every_supported_version(versioned_site):
    version, url = versioned_site
    before, sums = snapshot(url), checksums(url)
    identities = [make_identity(i) for i in range(12)]
    with MediboardSeeder(spec("dpi", "mediboard"), url) as seeder:
        assert seeder.host.schema.text == version
        placements = [seeder.plant(i) for i in identities]
        planted = [row for p in placements for row in p.rows]
        tables = TABLES_BY_VERSION[version]
        assert {r["table"] for r in planted} <= set(tables) | {"medecin"}
        assert rows_except(url, tables, planted) == {t: before[t] for t in tables}
        assert [seeder.verify(i, p).state for i, p in zip(identities, placements)] == [VerifyState.OK] * 12
        # dPsante400 0.29: datetime_create NOT NULL without default, set with last_update on creation.
        ipps = [r for r in planted if r["table"] == "id_sante400"]
        assert len(ipps) == 12 and all(r["values"]["datetime_create"] == r["values"]["last_update"] for r in ipps)
        for placement in reversed(placements):
            seeder.retire(placement)
    assert snapshot(url) == before
    assert checksums(url) == sums


def test_version_is_read_from_modules(versioned_site):
    version, url = versioned_site
    with MediboardSeeder(spec("dpi", "mediboard"), url) as seeder:
        schema = seeder.host.schema
        assert schema.signatures is (version != "2.37")
        assert schema.creator is (version != "2.37")
        assert schema.prenoms is schema.sources is (version == "4.94")


@pytest.mark.parametrize("found", ["2.20", "5.01", "abc"])
def test_an_unsupported_version_is_refused_in_one_line(empty_db, found):
    load_sql_file(empty_db, SCHEMA)
    execute(empty_db, "UPDATE modules SET mod_version = :v WHERE mod_name = 'dPpatients'", v=found)
    before = snapshot(empty_db)
    with pytest.raises(SourceError) as err:
        MediboardSeeder(spec("dpi", "mediboard"), empty_db).open()
    message = str(err.value)
    assert f"dPpatients version {found} is not supported" in message and "\n" not in message
    assert "4.39-4.99" in message
    assert snapshot(empty_db) == before


def test_a_version_the_schema_contradicts_is_refused(empty_db):
    # modules says OX 4.94 but the patients table still has the 2.37 columns.
    load_sql_file(empty_db, SCHEMA)
    execute(empty_db, "UPDATE modules SET mod_version = '4.94' WHERE mod_name = 'dPpatients'")
    with pytest.raises(SourceError, match=r"dPpatients 4.94 should have patients.prenoms, prenom_usuel"):
        MediboardSeeder(spec("dpi", "mediboard"), empty_db).open()


def test_a_half_upgraded_ox4_schema_is_refused(empty_db):
    load_sql_file(empty_db, SCHEMA_OX4)
    execute(empty_db, "ALTER TABLE patients DROP COLUMN prenom_usuel")
    with pytest.raises(SourceError, match=r"should have patients.prenom_usuel"):
        MediboardSeeder(spec("dpi", "mediboard"), empty_db).open()


def test_no_modules_table_or_row_is_one_clear_line(empty_db):
    load_sql_file(empty_db, SCHEMA)
    execute(empty_db, "DELETE FROM modules WHERE mod_name = 'dPpatients'")
    with pytest.raises(SourceError, match="modules has no dPpatients row"):
        MediboardSeeder(spec("dpi", "mediboard"), empty_db).open()
    load_sql(empty_db, "DROP TABLE modules")
    with pytest.raises(SourceError, match="no table modules"):
        MediboardSeeder(spec("dpi", "mediboard"), empty_db).open()


def test_user_action_on_a_site_without_it_is_refused(empty_db):
    load_sql_file(empty_db, SCHEMA)  # dPpatients 2.37, system before 1.2.66: no user_action
    with pytest.raises(ConfigError, match="log_table=user_action but the database has no user_action"):
        MediboardSeeder(spec("dpi", "mediboard", log_table="user_action"), empty_db).open()
