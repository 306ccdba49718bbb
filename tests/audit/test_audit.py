"""`canary audit`: the attacker's-eye checks on pools and planted canaries.

Real planting into SQLite test LIS databases (tests/fixtures/lis_*), real
registry, real libphonenumber carrier data.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from canary.audit.report import Severity, audit_config, audit_pool, audit_source, report_to_dict
from canary.cli.main import CanaryGroup, Env
from canary.cli.audit import audit
from canary.planting.drip import run_due, schedule_drip
from canary.identity.generator import IdentityGenerator
from canary.model import Placement
from canary.planting.planter import plant
from canary.registry import Registry
from canary.tokens import tokens_of
from support.plant_helpers import POOL, add_source, new_registry
from support.sql_seeder_helpers import MAPPING, create_schema, execute, populate_real

PARIS = ZoneInfo("Europe/Paris")
TWILIO = [f"+3375759{n:04d}" for n in range(10)]  # libphonenumber: "Twilio Ireland Limited"
FICTION = [f"+33639980{n:03d}" for n in range(5)]  # ARCEP block reserved for fiction


def checks(findings, at_least=Severity.INFO):
    return {f.check for f in findings if f.severity >= at_least}


# -- pools ------------------------------------------------------------------------------


def test_a_bad_pool_is_flagged():
    findings = audit_pool(list(POOL[:20]) + TWILIO + FICTION)
    by_check = {f.check: f for f in findings}
    assert by_check["phone-virtual-carrier"].severity is Severity.ERROR
    assert "Twilio Ireland Limited" in by_check["phone-virtual-carrier"].message
    assert set(by_check["phone-virtual-carrier"].values) == set(TWILIO)
    assert by_check["phone-fiction"].severity is Severity.ERROR
    assert set(by_check["phone-fiction"].values) == set(FICTION)
    assert findings[0].severity is Severity.ERROR  # worst first


def test_a_good_pool_passes():
    assert checks(audit_pool(POOL), Severity.WARNING) == set()


@pytest.mark.parametrize("numbers,check,severity", [
    ([f"+3316{n}000000" for n in range(2, 4)], "phone-telemarketing", Severity.ERROR),
    ([f"+3375558{n:04d}" for n in range(3)], "phone-business-carrier", Severity.WARNING),  # Sewan
    ([f"+33656{n:06d}" for n in range(3)], "phone-machine-carrier", Severity.ERROR),  # e*Message
    ([f"+337809{n:05d}" for n in range(3)], "phone-virtual-carrier", Severity.ERROR),  # Onoff
    ([f"+33970{n:06d}" for n in range(8)] + list(POOL[:2]), "phone-voip-share", Severity.WARNING),
    ([f"+33607{n:06d}" for n in range(12)], "phone-one-block", Severity.WARNING),
    (["+33800123456"], "phone-not-personal", Severity.ERROR),
])
def test_pool_giveaways(numbers, check, severity):
    findings = {f.check: f for f in audit_pool(numbers)}
    assert findings[check].severity is severity


def test_config_audit_checks_pool_and_domains(tmp_path):
    registry, config = new_registry(tmp_path)
    registry.close()
    assert not audit_config(config).failed
    bad = dataclasses.replace(config, contacts=dataclasses.replace(
        config.contacts, email_domains=("honeypot-test.fr",), phone_pool=tuple(TWILIO)))
    assert {"email-test-domain", "phone-virtual-carrier"} <= checks(audit_config(bad).findings)


# -- planted canaries -------------------------------------------------------------------


def lis_target(tmp_path, name: str) -> str:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    create_schema(url)
    populate_real(url, 40)
    return url


def admit_real_patient(url: str, n: int) -> None:
    """What the laboratory application does between two drips: a patient, a contact and a first result."""
    execute(url, "INSERT INTO patients (ipp, nom, prenom, sexe, date_naissance, adresse1, code_postal, "
                 "ville, origine, cree_le) SELECT MAX(ipp) + 1, 'REEL', 'Paul', 'H', :born, '1 rue Haute', "
                 "'35000', 'RENNES', 'ADM', :now FROM patients",
            born=date(1960, 1, 1 + n), now=datetime(2025, 3, 26, 12, n))
    execute(url, "INSERT INTO contacts (patient_id, type, valeur, uuid) "
                 "SELECT MAX(id), 'EMAIL', :mail, :uuid FROM patients",
            mail=f"reel{n}@orange.fr", uuid=f"00000000-0000-4000-9000-{n:012d}")
    execute(url, "INSERT INTO analyses (patient_id, code, resultat, prelevement) "
                 "SELECT MAX(id), 'NFS', '4.2', :day FROM patients", day=date(2025, 3, 26))


@pytest.fixture
def registry_and_config(tmp_path):
    registry, config = new_registry(tmp_path)
    yield registry, config
    registry.close()


def test_a_burst_is_clustered_and_a_drip_is_not(tmp_path, registry_and_config):
    registry, config = registry_and_config
    add_source(registry, "burst", "sql", url=lis_target(tmp_path, "burst"), mapping=str(MAPPING))
    drip_url = lis_target(tmp_path, "drip")
    add_source(registry, "drip", "sql", url=drip_url, mapping=str(MAPPING))
    with freeze_time(datetime(2025, 3, 26, 10, 30, tzinfo=PARIS)):
        plant(registry, config, "burst", 5)
        due = schedule_drip(registry, "drip", 4, timedelta(days=3), datetime.now(timezone.utc),
                            random.Random(11), operator="tester")
    unpaced = dataclasses.replace(config, raw={"drip": {"max_share": 0}})  # one admission per canary here
    for n, moment in enumerate(due):
        admit_real_patient(drip_url, n)
        with freeze_time(moment):
            assert len(run_due(registry, unpaced, moment).planted) == 1

    burst = audit_source(registry, config, "burst")
    assert {"ids-consecutive", "timestamps-burst"} <= checks(burst.findings)
    consecutive = next(f for f in burst.findings if f.check == "ids-consecutive")
    assert len(consecutive.canaries) == 5 and "--over" in consecutive.fix
    assert burst.failed

    drip = audit_source(registry, config, "drip")
    assert checks(drip.findings) & {"ids-consecutive", "timestamps-burst", "timestamps-off-hours"} == set()


def test_columns_filled_unlike_the_neighbouring_rows(tmp_path, registry_and_config):
    registry, config = registry_and_config
    # The test mapping without fill = "site": it fills every column it maps.
    filling = tmp_path / "filling.toml"
    filling.write_text(MAPPING.read_text(encoding="utf-8").replace(', fill = "site"', ""), encoding="utf-8")
    add_source(registry, "lis", "sql", url=lis_target(tmp_path, "lis"), mapping=str(filling))
    add_source(registry, "site", "sql", url=lis_target(tmp_path, "site"), mapping=str(MAPPING))
    with freeze_time(datetime(2025, 3, 26, 10, 30, tzinfo=PARIS)):
        plant(registry, config, "lis", 3)
        plant(registry, config, "site", 3)
    report = audit_source(registry, config, "lis")
    extra = {f.values[0] for f in report.findings if f.check == "fill-extra"}
    # The application leaves these empty at admission; the mapping fills them.
    assert {"patients.modifie_le", "patients.lieu_naissance"} <= extra
    assert report.skipped == []
    assert audit_source(registry, config, "lis", compare_target=False).skipped[0].startswith("fill pattern")
    # fill = "site" leaves them empty as the site does (here: always).
    fitted = audit_source(registry, config, "site")
    assert not {"patients.modifie_le", "patients.lieu_naissance"} & {
        f.values[0] for f in fitted.findings if f.check == "fill-extra"}


def _record(registry, batch, identity):
    record = registry.add_planned(batch, identity, tokens_of(identity))
    registry.mark_planted(record.id, Placement())
    return record.id


def test_hand_made_bad_identities_are_caught(tmp_path, registry_and_config):
    registry, config = registry_and_config
    add_source(registry, "ehr", "sql", url=f"sqlite:///{tmp_path / 'gone.db'}", mapping=str(MAPPING))
    batch = registry.new_batch("ehr", None, "tester", 5)
    good = list(IdentityGenerator(config.contacts, seed=99).generate_many(5))
    older = dataclasses.replace(good[0], birth_date=good[0].birth_date.replace(year=good[0].birth_date.year - 1))
    flipped = dataclasses.replace(good[1], sex=type(good[1].sex)("F" if good[1].sex.value == "M" else "M"))
    bad_key = dataclasses.replace(good[2], nir=good[2].nir[:13] + f"{(int(good[2].nir[13:]) + 1) % 98:02d}")
    moved = dataclasses.replace(good[3], address=dataclasses.replace(good[3].address, postcode="99999"))
    trap = dataclasses.replace(good[4], email="jean.dupont@canary-test.fr")
    ids = [_record(registry, batch, i) for i in (older, flipped, bad_key, moved, trap)]
    report = audit_source(registry, config, "ehr")
    by_check = {f.check: f for f in report.findings}
    assert by_check["nir-inconsistent"].canaries == (ids[0], ids[1])
    assert any("birth date" in v for v in by_check["nir-inconsistent"].values)
    assert any("sex" in v for v in by_check["nir-inconsistent"].values)
    assert by_check["nir-invalid"].canaries == (ids[2],)
    assert by_check["postcode-commune"].canaries == (ids[3],)
    assert by_check["email-test-domain"].canaries == (ids[4],)
    assert report.skipped and "target not reachable" in report.skipped[0]


def test_generated_canaries_pass_the_identity_checks(tmp_path, registry_and_config):
    registry, config = registry_and_config
    add_source(registry, "ehr", "sql", url=f"sqlite:///{tmp_path / 'gone.db'}", mapping=str(MAPPING))
    batch = registry.new_batch("ehr", None, "tester", 30)
    for identity in IdentityGenerator(config.contacts, seed=7).generate_many(30):
        _record(registry, batch, identity)
    report = audit_source(registry, config, "ehr", compare_target=False)
    assert checks(report.findings) & {"nir-invalid", "nir-inconsistent", "postcode-commune",
                                      "email-test-domain", "email-one-domain"} == set()


# -- the command ------------------------------------------------------------------------

CONFIG = """
[registry]
url = "sqlite:///registry.db"

[contacts]
email_domains = ["mel-famille.fr", "boite-perso.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
"""


@click.group(cls=CanaryGroup)
@click.option("--config", "config_path")
@click.pass_context
def root(ctx, config_path):
    ctx.obj = Env(config_path)
    ctx.call_on_close(ctx.obj.close)


root.add_command(audit)


def test_the_command_prints_findings_and_exits_1_on_warnings(tmp_path):
    (tmp_path / "canary.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL), encoding="utf-8")
    args = ["--config", str(tmp_path / "canary.toml")]
    env = Env(args[1])
    Registry.open(env.config.registry_url, create=True).close()
    add_source(env.registry, "lis", "sql", url=lis_target(tmp_path, "lis"), mapping=str(MAPPING))
    with freeze_time(datetime(2025, 3, 26, 10, 30, tzinfo=PARIS)):
        plant(env.registry, env.config, "lis", 4)
    env.close()
    run = CliRunner().invoke
    clean = run(root, args + ["audit"])
    assert clean.exit_code == 0 and "audit of configuration: no findings" in clean.output
    result = run(root, args + ["audit", "lis", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert set(data) == {"subject", "canaries", "failed", "counts", "findings", "skipped"}
    assert data["subject"] == "lis" and data["canaries"] == 4 and data["failed"] is True
    first = data["findings"][0]
    assert set(first) == {"check", "severity", "message", "fix", "canaries", "values"}
    text = run(root, args + ["audit", "lis"]).output
    assert "WARNING ids-consecutive" in text and "fix: plant with `canary plant SOURCE" in text
    missing = run(root, args + ["audit", "nope"])
    assert missing.exit_code == 2 and "unknown source 'nope'" in missing.output


def test_report_json_is_stable_for_an_empty_source(tmp_path, registry_and_config):
    registry, config = registry_and_config
    add_source(registry, "empty", "sql", url="sqlite:///x.db", mapping=str(MAPPING))
    data = report_to_dict(audit_source(registry, config, "empty"))
    assert data == {"subject": "empty", "canaries": 0, "failed": False,
                    "counts": {"error": 0, "warning": 0, "info": 0}, "findings": [],
                    "skipped": ["no live canaries: nothing to audit"]}
