"""`canary doctor` counts the watched mailboxes no canary ever had."""

from __future__ import annotations

from canary.config import load_config
from canary.doctor.checks import OK, WARN, Context
from canary.doctor.run import run_checks
from canary.model import SourceSpec
from canary.planting.planter import plant
from canary.registry import Registry
from support.plant_helpers import POOL
from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

MAILBOXES = ["marie.lefort74@gmail.com Marie Lefort", "jean.moreau@orange.fr Jean Moreau",
             "a.roux@hotmail.fr Anne Roux", "louis.petit@free.fr Louis Petit", "julie.blanc@laposte.net Julie Blanc",
             "paul.girard@gmail.com Paul Girard"]


def write(tmp_path, lines):
    (tmp_path / "mailboxes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = tmp_path / "canary.toml"
    path.write_text(f"""
[registry]
url = "sqlite:///{tmp_path / 'registry.db'}"

[contacts]
email_domains = ["mel-famille.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool = [{", ".join(f'"{n}"' for n in POOL)}]
mailbox_pool_file = "mailboxes.txt"
max_per_phone_block = 0

[listener]
smtp_relay = "courrier@mel-famille.fr"
""", encoding="utf-8")
    return path


def mailbox_line(path):
    [line] = [c for c in run_checks(Context(config_path=path, environ={}), only=("audit",))
              if c.name == "audit.mailboxes"]
    return line


def test_doctor_says_how_many_mailboxes_are_left(tmp_path):
    path = write(tmp_path, MAILBOXES)
    target = f"sqlite:///{tmp_path / 'ehr.db'}"
    create_schema(target)
    populate_real(target, 20)
    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True) as registry:
        registry.add_source(SourceSpec(name="ehr", seeder="sql", url=target, mapping=str(MAPPING)))
        line = mailbox_line(path)
        assert (line.status, line.detail) == (OK, "6 of 6 watched mailboxes free")
        plant(registry, load_config(path), "ehr", 2, seed=3)
        line = mailbox_line(path)
        assert line.status is WARN and line.detail.startswith("4 of 6 watched mailboxes left: open more")
        plant(registry, load_config(path), "ehr", 4, seed=4)
        line = mailbox_line(path)
        assert line.status is WARN and "all 6 watched mailboxes are taken" in line.detail
