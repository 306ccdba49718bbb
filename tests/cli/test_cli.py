"""The `canary` command end to end: config, sources, plant, verify, retire.

Runs the real click command in-process (CliRunner) against real registry and
target databases. Identities come from the real generator and reference data.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from canary.cli.main import cli
from support.sql_seeder_helpers import MAPPING, count_rows, create_schema, execute, populate_real, snapshot

# Numbers "we own" for the tests: valid French numbers outside the fiction and
# telemarketing ranges. Nothing ever dials them: tests stay on loopback.
POOL = [f"+3361234{n:04d}" for n in range(300)] + [f"+3322345{n:04d}" for n in range(50)] + \
       [f"+3314725{n:04d}" for n in range(50)]

CONFIG = """
[registry]
url = "sqlite:///registry.db"

[contacts]
email_domains = ["mel-famille.fr", "boite-perso.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
# 20 canaries from 2 domains and 5 number blocks: no per-domain/per-block cap here
# (the caps have their own tests, tests/identity/test_contact_caps.py)
max_per_email_domain = 0
max_per_phone_block = 0

[drip]
max_share = 0  # the test LIS registers nobody any more: drip pacing would refuse any --over
"""


def run(workdir, *args, env=None, input=None):
    runner = CliRunner()
    environ = {"CANARY_CONFIG": str(workdir / "canary.toml"), "CANARY_OPERATOR": "tester"}
    environ.update(env or {})
    return runner.invoke(cli, list(args), env=environ, input=input, catch_exceptions=False)


def one_error_line(result, code=2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("canary: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "canary.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    result = run(tmp_path, "init", str(tmp_path))
    assert result.exit_code == 0, result.output
    return tmp_path


@pytest.fixture
def lis_url(sqlite_url):
    create_schema(sqlite_url)
    populate_real(sqlite_url, 120)
    return sqlite_url


def add_lis(workdir, url, name="lis-rennes"):
    result = run(workdir, "source", "add", name, "--seeder", "sql", "--url-env", "LIS_URL",
                 "--mapping", str(MAPPING), "--establishment", "CHU de Rennes", "--catchment", "35,22",
                 "--alert-to", "rssi@chu.example", env={"LIS_URL": url})
    assert result.exit_code == 0, result.output
    return name


def test_init_writes_a_config_and_a_private_registry(tmp_path):
    result = run(tmp_path, "init", str(tmp_path / "etc"))
    assert result.exit_code == 0, result.output
    config = tmp_path / "etc" / "canary.toml"
    assert "[contacts]" in config.read_text()
    registry = tmp_path / "etc" / "canary-registry.db"
    assert stat.S_IMODE(os.stat(registry).st_mode) == 0o600
    config.write_text(config.read_text() + "\n# mine\n")
    assert run(tmp_path, "init", str(tmp_path / "etc")).exit_code == 0
    assert config.read_text().endswith("# mine\n")  # an existing file is kept


def test_generate_needs_no_config_and_is_reproducible(tmp_path, monkeypatch):
    env = {"CANARY_CONFIG": ""}
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(cli, ["generate", "--count", "3", "--seed", "7", "--json"], env=env)
    second = CliRunner().invoke(cli, ["generate", "--count", "3", "--seed", "7", "--json"], env=env)
    assert first.exit_code == 0, first.output
    people = json.loads(first.stdout)
    assert len(people) == 3 and first.stdout == second.stdout
    assert all(p["ins_oid"] == "1.2.250.1.213.1.4.8" and len(p["nir"]) == 15 for p in people)
    text = CliRunner().invoke(cli, ["generate", "--count", "2"], env=env)
    assert text.exit_code == 0 and len(text.stdout.splitlines()) == 2


def test_plant_list_show_verify_retire_round_trip(workdir, lis_url):
    before = snapshot(lis_url)
    add_lis(workdir, lis_url)
    env = {"LIS_URL": lis_url}

    dry = run(workdir, "plant", "lis-rennes", "--count", "3", "--dry-run", "--json", env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["count"] == 3 and snapshot(lis_url) == before

    planted = run(workdir, "plant", "lis-rennes", "--count", "20", "--batch", "b1", "--json", env=env)
    assert planted.exit_code == 0, planted.output
    result = json.loads(planted.stdout)
    assert result["batch"] == "b1" and len(result["canary_ids"]) == 20
    assert count_rows(lis_url, "patients") == 120 + 20

    listed = json.loads(run(workdir, "list", "--source", "lis-rennes", "--json").stdout)
    assert {c["status"] for c in listed} == {"planted"} and len(listed) == 20
    shown = json.loads(run(workdir, "show", str(result["canary_ids"][0]), "--json").stdout)
    assert shown["identity"]["address"]["departement"] in {"35", "22"}  # catchment honoured
    assert {t["kind"] for t in shown["tokens"]} >= {"email", "phone", "url_code", "dns_label", "nir"}
    assert shown["placement"]["rows"][0]["table"] == "patients"

    assert run(workdir, "verify", env=env).exit_code == 0
    victim = shown["nir"]
    execute(lis_url, "DELETE FROM contacts WHERE patient_id IN (SELECT id FROM patients WHERE nir = :nir)", nir=victim)
    failed = run(workdir, "verify", "lis-rennes", "--json", env=env)
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["problems"] == 1 and report["counts"]["ok"] == 19

    sources = json.loads(run(workdir, "source", "list", "--json").stdout)
    assert sources[0]["counts"]["missing"] == 1 and sources[0]["url_env"] == "LIS_URL"

    retired = run(workdir, "retire", "--batch", "b1", "--yes", "--json", env=env)
    assert retired.exit_code == 0, retired.output
    assert len(json.loads(retired.stdout)["retired"]) == 20
    assert snapshot(lis_url) == before  # every table back to its exact content


def test_plant_refuses_the_demo_contacts(tmp_path, lis_url):
    assert run(tmp_path, "init", str(tmp_path)).exit_code == 0  # the template holds the demo set
    add_lis(tmp_path, lis_url)
    line = one_error_line(run(tmp_path, "plant", "lis-rennes", "--count", "1", env={"LIS_URL": lis_url}))
    assert "demo" in line
    assert count_rows(lis_url, "patients") == 120


def test_a_url_with_a_password_is_refused(workdir):
    line = one_error_line(run(workdir, "source", "add", "x", "--seeder", "sql", "--mapping", str(MAPPING),
                              "--url", "postgresql://canary:s3cret@db/lis"))
    assert "s3cret" not in line and "--url-env" in line


@pytest.mark.parametrize("content,needle", [
    ("[contacts\n", "not valid TOML"),
    (CONFIG + "\n[registry2]\nx = 1\n", "unknown table [registry2]"),
    (CONFIG.replace("dns_zone", "dns_zonne"), "unknown setting contacts.dns_zonne"),
    (CONFIG.replace('phone_pool_file = "pool.txt"', 'phone_pool = ["+33 6 39 98 00 01"]'), "fiction range"),
])
def test_bad_config_is_one_line_and_exit_2(workdir, content, needle):
    (workdir / "canary.toml").write_text(content, encoding="utf-8")
    assert needle in one_error_line(run(workdir, "list"))


def test_unknown_source_and_unknown_seeder(workdir):
    assert "unknown source" in one_error_line(run(workdir, "plant", "nope", "--count", "1"))
    assert "unknown seeder" in one_error_line(run(workdir, "source", "add", "x", "--seeder", "nope", "--url", "sqlite:///x.db"))


def test_unreachable_database_writes_nothing(workdir):
    add_lis(workdir, "postgresql+psycopg://canary:hunter2@127.0.0.1:1/lis")
    line = one_error_line(run(workdir, "plant", "lis-rennes", "--count", "2",
                              env={"LIS_URL": "postgresql+psycopg://canary:hunter2@127.0.0.1:1/lis"}))
    assert "hunter2" not in line
    assert json.loads(run(workdir, "list", "--json").stdout) == []
    missing_env = one_error_line(run(workdir, "plant", "lis-rennes", "--count", "2", env={"LIS_URL": ""}))
    assert "LIS_URL" in missing_env


def test_a_mapping_that_does_not_fit_writes_nothing(workdir, lis_url, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(MAPPING.read_text().replace('ville = { field = "address.city"', 'villle = { field = "address.city"'))
    add_lis(workdir, lis_url, name="bad")
    run(workdir, "source", "remove", "bad")
    result = run(workdir, "source", "add", "bad", "--seeder", "sql", "--url-env", "LIS_URL", "--mapping", str(bad),
                 env={"LIS_URL": lis_url})
    assert result.exit_code == 0
    line = one_error_line(run(workdir, "plant", "bad", "--count", "5", env={"LIS_URL": lis_url}))
    assert "villle" in line
    assert count_rows(lis_url, "patients") == 120
    assert json.loads(run(workdir, "list", "--json").stdout) == []


def test_retire_without_yes_off_a_terminal_is_refused(workdir, lis_url):
    add_lis(workdir, lis_url)
    assert run(workdir, "plant", "lis-rennes", "--count", "2", env={"LIS_URL": lis_url}).exit_code == 0
    assert "--yes" in one_error_line(run(workdir, "retire", "--source", "lis-rennes", env={"LIS_URL": lis_url}))
    assert count_rows(lis_url, "patients") == 122


def test_plant_into_each_engine(workdir, any_db_url):
    create_schema(any_db_url)
    populate_real(any_db_url, 30)
    before = snapshot(any_db_url)
    add_lis(workdir, any_db_url)
    env = {"LIS_URL": any_db_url}
    assert run(workdir, "plant", "lis-rennes", "--count", "10", env=env).exit_code == 0
    assert run(workdir, "verify", env=env).exit_code == 0
    assert run(workdir, "retire", "--source", "lis-rennes", "--yes", env=env).exit_code == 0
    assert snapshot(any_db_url) == before


def test_plant_over_schedules_drips_and_plants_nothing_now(workdir, lis_url):
    add_lis(workdir, lis_url)
    env = {"LIS_URL": lis_url}
    scheduled = run(workdir, "plant", "lis-rennes", "--count", "3", "--over", "2w", "--json", env=env)
    assert scheduled.exit_code == 0, scheduled.output
    assert json.loads(scheduled.stdout)["scheduled"] == 3
    assert count_rows(lis_url, "patients") == 120
    slots = json.loads(run(workdir, "drip", "list", "--json").stdout)
    assert [s["status"] for s in slots] == ["pending"] * 3
    assert "--over" in one_error_line(run(workdir, "plant", "lis-rennes", "--count", "1", "--over", "2d",
                                          "--batch", "x", env=env))
