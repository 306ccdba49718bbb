"""OpenMRS's own patient search and the canaries: the search index, the REST re-index, verify.

Against a fake OpenMRS REST server (tests/support/openmrs_rest.py) that
searches an index, as OpenMRS >= 2.1 does, over the test MariaDB: a canary
written in SQL is found only after the seeder asked OpenMRS to index its rows.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from canary.errors import ConfigError
from canary.model import Placement, VerifyState
from canary.planting import planter, upkeep
from seeders.openmrs.seeder import DEFAULT_PASSWORD_ENV, OpenMrsSeeder
from support.app_databases import left_as_prepared, snapshot_tables, snapshotted_database
from support.openmrs_rest import FakeOpenMrs, FakeSettings
from support.openmrs_support import create_schema, populate_real, real_identifier, source
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import make_identity

PASSWORD = "S3cret-Omrs!"


def _prepare(url: str) -> None:
    create_schema(url)
    populate_real(url, count=60)


@pytest.fixture(scope="module")
def omrs_db():
    yield from snapshotted_database("CANARY_TEST_MARIADB_URL", "MariaDB", _prepare, snapshot_tables)


@pytest.fixture
def omrs_url(omrs_db):
    yield from left_as_prepared(omrs_db, snapshot_tables)


@pytest.fixture
def fake(omrs_url):
    with FakeOpenMrs(omrs_url, FakeSettings(password=PASSWORD)) as server:
        yield server


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv(DEFAULT_PASSWORD_ENV, PASSWORD)


def _open(url: str, **options: str) -> OpenMrsSeeder:
    seeder = OpenMrsSeeder(source(nir_identifier_type="INS-NIR", **options), url)
    seeder.open()
    return seeder


def _rest(fake: FakeOpenMrs) -> dict[str, str]:
    return {"rest_url": fake.url, "rest_user": "admin"}


def _search(fake: FakeOpenMrs, query: str) -> set[str]:
    response = requests.get(f"{fake.url}/ws/rest/v1/patient", params={"q": query, "v": "default"},
                            auth=("admin", PASSWORD), timeout=10)
    assert response.status_code == 200
    return {r["uuid"] for r in response.json()["results"]}


def _values(placement: Placement, table: str) -> list[dict]:
    return [r["values"] for r in placement.rows if r["table"] == table]


def test_the_fake_tokenizes_names_as_openmrs_lucene_analyzers_do():
    from support.openmrs_rest import analyzed

    assert analyzed("DA SILVA") == ["da", "silva"] and analyzed("Hélène  Lefèvre-Brûlé") == ["helene", "lefevre-brule"]


def test_the_fake_finds_only_indexed_patients_and_refuses_what_openmrs_refuses(omrs_url, fake):
    # A real patient inserted in SQL (populate_real) is not found until the index is rebuilt.
    assert _search(fake, real_identifier(5)) == set()
    auth = ("admin", PASSWORD)
    api = f"{fake.url}/ws/rest/v1/searchindexupdate"
    assert requests.post(api, json={}, auth=("admin", "wrong"), timeout=10).status_code == 401
    assert requests.post(api, json={"resource": "patient", "uuid": "x"}, auth=auth, timeout=10).status_code == 500
    assert requests.post(api, json={}, auth=auth, timeout=10).status_code == 204  # full rebuild
    assert len(_search(fake, real_identifier(5))) == 1


def test_without_rest_plant_says_in_one_line_the_canaries_are_not_searchable(omrs_url, fake):
    seeder = _open(omrs_url)
    try:
        placements = [seeder.plant(make_identity(i)) for i in range(2)]
        notices = seeder.notices()
        assert len(notices) == 1 and "\n" not in notices[0]
        assert notices[0].startswith("source 'omrs': 2 canaries will not be returned by OpenMRS 2.6 "
                                     "patient search until its search index is rebuilt")
        assert "Administration > Maintenance > Search Index" in notices[0] and "search.indexVersion" in notices[0]
        identifier = _values(placements[0], "patient_identifier")[0]["identifier"]
        assert _search(fake, identifier) == set()  # the rows are there, the search does not see them
        assert fake.settings.calls == [("GET", "patient", {"q": identifier, "v": "default"})]
    finally:
        for placement in placements:
            seeder.retire(placement)
        seeder.close()


def test_rest_indexes_exactly_the_canary_rows_and_the_search_then_returns_it(omrs_url, fake, password):
    seeder = _open(omrs_url, **_rest(fake))
    placements = []
    try:
        identities = [make_identity(i) for i in range(3)]
        placements = [seeder.plant(i) for i in identities]
        assert seeder.notices() == []
        sent = [body for method, path, body in fake.settings.calls if path == "searchindexupdate"]
        expected = []
        for placement in placements:
            expected += [{"resource": "person", "subResource": "name", "uuid": v["uuid"]}
                         for v in _values(placement, "person_name")]
            expected += [{"resource": "patient", "subResource": "identifier", "uuid": v["uuid"]}
                         for v in _values(placement, "patient_identifier")]  # the identifier and the NIR
        assert sent == expected  # one call per indexed row; the phone attribute type is not searchable
        # Only the canaries were indexed: a real patient is still not found, the canaries are.
        assert _search(fake, real_identifier(5)) == set()
        for identity, placement in zip(identities, placements):
            person = _values(placement, "person")[0]
            name = _values(placement, "person_name")[0]
            assert _search(fake, _values(placement, "patient_identifier")[0]["identifier"]) == {person["uuid"]}
            assert person["uuid"] in _search(fake, f"{name['given_name']} {name['family_name']}")
            result = seeder.verify(identity, placement)
            assert (result.state, result.searchable) == (VerifyState.OK, True)
    finally:
        for placement in placements:
            seeder.retire(placement)
        seeder.close()


def test_wrong_password_keeps_the_canary_planted_and_says_so_in_one_line(omrs_url, fake, monkeypatch):
    monkeypatch.setenv("OMRS_REST_PW", "not-the-password")
    seeder = _open(omrs_url, rest_password_env="OMRS_REST_PW", **_rest(fake))
    try:
        placement = seeder.plant(make_identity(4))
        assert seeder.verify(make_identity(4), placement).state is VerifyState.OK  # the rows are in
        (notice,) = seeder.notices()
        assert notice.startswith("1 of 1 canaries planted but not searchable in OpenMRS (source 'omrs': "
                                 f"OpenMRS REST {fake.url} refused the credentials (HTTP 401)")
        assert "`canary verify` reports them as unsearchable" in notice
        assert "not-the-password" not in notice and "\n" not in notice
    finally:
        seeder.retire(placement)
        seeder.close()


def test_doctor_checks_the_rest_credentials_without_reading_patients(omrs_url, fake, monkeypatch):
    monkeypatch.setenv("OMRS_REST_PW", "not-the-password")
    for variable, expected in ((DEFAULT_PASSWORD_ENV, []), ("OMRS_REST_PW", [
            f"source 'omrs': OpenMRS REST {fake.url} did not accept the credentials: check rest_user and the "
            "password variable (rest_password_env)"])):
        monkeypatch.setenv(DEFAULT_PASSWORD_ENV, PASSWORD)
        seeder = _open(omrs_url, rest_password_env=variable, **_rest(fake))
        try:
            assert [p for p in seeder.check_access() if "OpenMRS REST" in p] == expected
        finally:
            seeder.close()
    assert {path for _method, path, _body in fake.settings.calls} == {"session"}


def test_verify_reports_a_canary_the_search_does_not_return(omrs_url, fake, password, tmp_path):
    registry, config = new_registry(tmp_path)
    add_source(registry, "omrs", "openmrs", url=omrs_url, options=_rest(fake) | {"nir_identifier_type": "INS-NIR"})
    result = planter.plant(registry, config, "omrs", 2, seed=3)
    assert result.notices == []
    report = upkeep.verify(registry, "omrs")
    assert report.counts() == {"ok": 2}
    # The index loses one canary (an index rebuilt from an older backup, say): verify notices.
    first = registry.get_canary(result.canary_ids[0])
    name_uuid = _values(first.placement, "person_name")[0]["uuid"]
    identifier_uuids = [v["uuid"] for v in _values(first.placement, "patient_identifier")]
    fake.index.documents["name"].pop(name_uuid)
    for uuid in identifier_uuids:
        fake.index.documents["identifier"].pop(uuid)
    report = upkeep.verify(registry, "omrs")
    assert report.counts() == {"ok": 1, "unsearchable": 1} and report.problems == []
    (finding,) = [f for f in report.findings if f.state == "unsearchable"]
    assert finding.canary_id == first.id
    identifier = _values(first.placement, "patient_identifier")[0]["identifier"]
    assert finding.details == (f"not returned by OpenMRS patient search for its identifier {identifier!r}",)
    assert registry.get_canary(first.id).status.value == "planted"  # the rows are intact: not missing
    upkeep.retire(registry, registry.list_canaries(source="omrs"))


def test_rest_options_are_checked_in_one_line(omrs_url, monkeypatch):
    with pytest.raises(ConfigError, match="rest_url and rest_user go together"):
        OpenMrsSeeder.validate_options({"rest_url": "https://omrs.example/openmrs"})
    with pytest.raises(ConfigError, match="rest_url must be an http"):
        OpenMrsSeeder.validate_options({"rest_url": "omrs.example", "rest_user": "admin"})
    with pytest.raises(ConfigError, match="rest_url must not carry credentials"):
        OpenMrsSeeder.validate_options({"rest_url": "https://admin:pw@omrs.example/openmrs", "rest_user": "admin"})
    with pytest.raises(ConfigError, match="rest_password_env must name an environment variable"):
        OpenMrsSeeder.validate_options({"rest_password_env": "my password"})
    monkeypatch.delenv(DEFAULT_PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=rf"^source 'omrs': environment variable {DEFAULT_PASSWORD_ENV} "
                                          r"\(rest_password_env\) is not set"):
        _open(omrs_url, rest_url="https://omrs.example/openmrs", rest_user="admin")


def test_unreachable_rest_during_verify_still_verifies_the_rows(omrs_url, password):
    seeder = _open(omrs_url)
    placement = seeder.plant(make_identity(6))
    seeder.close()
    with FakeOpenMrs(omrs_url) as gone:
        url = gone.url  # a port nobody listens on once the server stopped
    seeder = _open(omrs_url, rest_url=url, rest_user="admin")
    try:
        result = seeder.verify(make_identity(6), placement)
        assert result.state is VerifyState.OK and result.searchable is None
        assert result.details[0].startswith(f"search not checked: source 'omrs': OpenMRS REST {url} unreachable")
    finally:
        seeder.retire(placement)
        seeder.close()


def test_the_cli_prints_the_notice_and_reports_unsearchable_canaries(omrs_url, fake, tmp_path):
    from click.testing import CliRunner

    from canary.cli.main import cli
    from support.plant_helpers import POOL

    (tmp_path / "canary.toml").write_text(
        '[registry]\nurl = "sqlite:///registry.db"\n\n[contacts]\n'
        'email_domains = ["mel-famille.fr", "boite-perso.fr"]\ndns_zone = "mon-rdv-sante.fr"\n'
        'portal_url = "https://espace.mon-rdv-sante.fr/acces/"\nphone_pool_file = "pool.txt"\n', encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    env = {"CANARY_CONFIG": str(tmp_path / "canary.toml"), "CANARY_OPERATOR": "tester", "OMRS_URL": omrs_url,
           DEFAULT_PASSWORD_ENV: PASSWORD}

    def run(*args: str):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    assert run("init", str(tmp_path)).exit_code == 0
    for name, options in (("omrs-sql", []), ("omrs", ["--set", f"rest_url={fake.url}", "--set", "rest_user=admin"])):
        added = run("source", "add", name, "--seeder", "openmrs", "--url-env", "OMRS_URL",
                    "--set", "nir_identifier_type=INS-NIR", *options)
        assert added.exit_code == 0, added.output
    plain = run("plant", "omrs-sql", "--count", "1")
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("planted 1 canaries into omrs-sql") and len(lines) == 2
    assert lines[1].startswith("source 'omrs-sql': 1 canary will not be returned by OpenMRS 2.6 patient search")
    indexed = run("plant", "omrs", "--count", "1", "--json")
    assert indexed.exit_code == 0 and json.loads(indexed.stdout)["notices"] == []
    verified = run("verify", "--json")
    assert verified.exit_code == 0, verified.output
    states = {f["source"]: f["state"] for f in json.loads(verified.stdout)["findings"]}
    assert states == {"omrs-sql": "ok", "omrs": "ok"}  # omrs-sql has no REST: its search is not checked
    fake.index.documents = {"name": {}, "identifier": {}, "attribute": {}}  # the index lost everything
    shown = run("verify", "omrs")
    assert shown.exit_code == 0, shown.output
    assert re.fullmatch(r"#\d+ omrs: unsearchable \(not returned by OpenMRS patient search for its identifier "
                        r"'\d+-\d'\)\nverify: 1 unsearchable\n", shown.stdout), shown.stdout
    assert run("retire", "--source", "omrs", "--yes").exit_code == 0
    assert run("retire", "--source", "omrs-sql", "--yes").exit_code == 0
