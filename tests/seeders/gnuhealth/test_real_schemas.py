"""`canary plant`, `verify` and `retire` on the real GNU Health 5.0.6 and 4.4.1 schemas.

The databases are the real dumps (a fresh site: countries imported, no
patient yet), loaded as they are. Retire must leave every table exactly as
it was before planting.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from canary.cli.main import cli
from support.app_databases import snapshot_tables
from support.gnuhealth_real import load, rows

POOL = [f"+33607{n:06d}" for n in range(100, 160)] + [f"+33299{n:06d}" for n in range(100, 130)]
CONFIG = """
[registry]
url = "sqlite:///registry.db"

[contacts]
email_domains = ["mel-famille.fr", "boite-perso.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
"""


def canary(workdir, *args, url: str):
    environ = {"CANARY_CONFIG": str(workdir / "canary.toml"), "CANARY_OPERATOR": "tester", "GH_URL": url}
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


@pytest.mark.parametrize("version, link", [("5.0", "party"), ("4.4", "name")])
def test_plant_verify_retire_on_the_real_schema(postgres_url, tmp_path, version, link):
    load(postgres_url, version, tmp_path)
    (tmp_path / "canary.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    assert canary(tmp_path, "init", str(tmp_path), url=postgres_url).exit_code == 0
    added = canary(tmp_path, "source", "add", "chv", "--seeder", "gnuhealth", "--url-env", "GH_URL",
                   "--establishment", "CH de Vitré", "--catchment", "35,22", url=postgres_url)
    assert added.exit_code == 0, added.output
    before = snapshot_tables(postgres_url)

    planted = canary(tmp_path, "plant", "chv", "--count", "5", "--batch", "b1", "--json", url=postgres_url)
    assert planted.exit_code == 0, planted.output
    assert len(json.loads(planted.stdout)["canary_ids"]) == 5
    # GNU Health's patient list (gnuhealth.patient, active, joined to its party) shows them.
    listed = rows(postgres_url, f"SELECT p.ref, p.federation_account, p.create_date AS party_created, "
                                f"pt.create_date AS patient_created FROM gnuhealth_patient pt "
                                f"JOIN party_party p ON p.id = pt.{link} "
                                f"WHERE pt.active AND p.active AND p.is_person AND p.is_patient")
    assert len(listed) == 5
    # A fresh site: no federation country configured, so the account starts with XXX (Party.create).
    assert all(r["federation_account"] == "XXX" + r["ref"] for r in listed)
    assert all(r["patient_created"] == r["party_created"] for r in listed)

    verified = canary(tmp_path, "verify", "chv", "--json", url=postgres_url)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["counts"]["ok"] == 5

    retired = canary(tmp_path, "retire", "--batch", "b1", "--yes", "--json", url=postgres_url)
    assert retired.exit_code == 0, retired.output
    assert len(json.loads(retired.stdout)["retired"]) == 5
    assert snapshot_tables(postgres_url) == before  # every table, every row, as before
