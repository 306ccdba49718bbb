"""`canary retire` keeps a planted row that someone rewrote into another identity, says so, exits 1,
and still retires the canaries left as planted."""

from __future__ import annotations

import json

from click.testing import CliRunner

from canary.cli.main import cli
from support.sql_seeder_helpers import MAPPING, count_rows, create_schema, execute, populate_real

POOL = [f"+3361234{n:04d}" for n in range(50)]
CONFIG = """
[registry]
url = "sqlite:///registry.db"

[contacts]
email_domains = ["mel-famille.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
max_per_phone_block = 0
"""


def run(workdir, *args, env=None):
    environ = {"CANARY_CONFIG": str(workdir / "canary.toml"), "CANARY_OPERATOR": "tester", **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


def test_retire_keeps_a_row_rewritten_with_someone_elses_identity(tmp_path, sqlite_url):
    create_schema(sqlite_url)
    populate_real(sqlite_url, 20)
    (tmp_path / "canary.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    env = {"LIS_URL": sqlite_url}
    assert run(tmp_path, "init", str(tmp_path)).exit_code == 0
    added = run(tmp_path, "source", "add", "lis", "--seeder", "sql", "--url-env", "LIS_URL", "--mapping",
                str(MAPPING), "--establishment", "CHU", "--alert-to", "rssi@chu.example", env=env)
    assert added.exit_code == 0, added.output
    planted = run(tmp_path, "plant", "lis", "--count", "3", "--json", env=env)
    assert planted.exit_code == 0, planted.output
    ids = json.loads(planted.stdout)["canary_ids"]
    victim = json.loads(run(tmp_path, "show", str(ids[1]), "--json").stdout)
    # The record now holds another person: names, birth date and NIR rewritten, the key kept.
    execute(sqlite_url, "UPDATE patients SET nom = 'LEGRAND', prenom = 'Hugo', date_naissance = '1971-02-03', "
            "nir = '171025912345678' WHERE nir = :nir", nir=victim["nir"])

    retired = run(tmp_path, "retire", *map(str, ids), "--yes", "--json", env=env)
    assert retired.exit_code == 1, retired.output
    report = json.loads(retired.stdout)
    assert sorted(report["retired"]) == sorted([ids[0], ids[2]])
    assert [entry["id"] for entry in report["altered"]] == [ids[1]]
    assert "altered since planting" in report["altered"][0]["reason"]
    assert "LEGRAND" not in retired.output and "Traceback" not in retired.output
    assert count_rows(sqlite_url, "patients") == 21  # the 20 real ones and the rewritten row
    status = {c["id"]: c["status"] for c in json.loads(run(tmp_path, "list", "--json").stdout)}
    assert status[ids[1]] != "retired" and status[ids[0]] == status[ids[2]] == "retired"

    text = run(tmp_path, "retire", str(ids[1]), "--yes", env=env)
    assert text.exit_code == 1 and f"canary #{ids[1]} kept:" in text.stderr
