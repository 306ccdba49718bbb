"""`canary access poll` on OpenEMR's real `log` and `api_log` tables in MariaDB.

Canaries are planted by the OpenEMR seeder into OpenEMR's own tables; the
application's audit rows (its EventAuditLogger events, its API log) of
canaries and of ordinary patients are then polled: each canary read is one
hit, ordinary patients none, a burst one critical alert, a row is never read
twice, and canary's own work under its database account is not reported.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from support.app_seeder_helpers import create_statements, dispose, load_sql, spec
from support import openemr_fixture
from support.needs import missing
from support.sql_seeder_helpers import make_identity
from canary.cli.main import cli
from canary.model import SourceSpec
from canary.registry import Registry
from canary.tokens import tokens_of
from seeders.openemr.seeder import OpenEmrSeeder

REAL_SCHEMA = Path(os.environ.get("CANARY_REAL_SCHEMAS")
                   or Path(__file__).resolve().parents[3] / "shared" / "schemas") / "openemr-database.sql"
# The tables the openemr seeder writes and reads (its version check included), and the API log.
TABLES = (*openemr_fixture.TABLES, "api_log")
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def emr(mariadb_url, tmp_path):
    """OpenEMR's tables with 3 canaries planted (pids 1-3) and a workspace whose registry knows them."""
    if not REAL_SCHEMA.is_file():
        missing("schemas", f"OpenEMR's real schema is not at {REAL_SCHEMA} (set CANARY_REAL_SCHEMAS; CI does)")
    lists = ("'allergy_issue_list'", "'sex'", "'language'", "'country'", "'pricelevel'")
    load_sql(mariadb_url, create_statements(
        REAL_SCHEMA, TABLES, keep_insert=lambda table, sql: table in ("facility", "version", "layout_options") or (
            table == "list_options" and any(x in sql for x in lists))))
    load_sql(mariadb_url, openemr_fixture.INSTALLED_VERSION)
    load_sql(mariadb_url, "INSERT INTO users (id, username, fname, lname, authorized) "
                          "VALUES (1, 'admin', 'Administrator', 'Administrator', 1)")
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    (tmp_path / "canary.toml").write_text(f"""
[registry]
url = "{registry_url}"

[contacts]
email_domains = ["mail-canary.fr"]
dns_zone = "dns.example.fr"
portal_url = "https://portail.example.fr/p/"
phone_pool = ["+33612349999"]

[access]
burst_canaries = 3
burst_window = "1h"

[alerts.syslog]
path = "{tmp_path / "alerts.jsonl"}"
format = "json"
""", encoding="utf-8")
    with Registry.open(registry_url, create=True) as registry:
        registry.add_source(SourceSpec(name="emr", seeder="openemr", url=mariadb_url, establishment="Clinique du Parc"))
        batch = registry.new_batch("emr", None, "alice", 3)
        seeder = OpenEmrSeeder(spec("emr", "openemr"), mariadb_url)
        with seeder:
            for n in range(3):
                identity = make_identity(500 + n)
                record = registry.add_planned(batch, identity, tokens_of(identity))
                registry.mark_planted(record.id, seeder.plant(identity))
        planted_at = registry.get_canary(1).planted_at
    yield mariadb_url, tmp_path, planted_at
    dispose(mariadb_url)


def log_rows(url: str, rows) -> None:
    """OpenEMR log rows: (local time, user, event, category, pid)."""
    values = ", ".join(f"('{at:%Y-%m-%d %H:%M:%S}', '{event}', '{category}', '{user}', 'Default', "
                       f"'select * from patient_data where pid=?', {pid}, 1, 'open-emr')"
                       for at, user, event, category, pid in rows)
    load_sql(url, "INSERT INTO log (date, event, category, user, groupname, comments, patient_id, success, "
                  f"log_from) VALUES {values}")


def poll(workdir: Path, *args: str):
    result = CliRunner().invoke(cli, ["access", "poll", *args], env={"CANARY_CONFIG": str(workdir / "canary.toml")},
                                catch_exceptions=False)
    return result


def alerts(workdir: Path) -> list[dict]:
    path = workdir / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_canary_reads_in_the_openemr_log_are_hits_ordinary_patients_none_a_burst_critical(emr):
    url, workdir, planted_at = emr
    local = (planted_at + timedelta(hours=1)).astimezone(PARIS).replace(tzinfo=None)
    log_rows(url, [
        (local, "cmoreau", "patient-record-select", "Patient Demographics", 9001),  # ordinary patients
        (local, "cmoreau", "login", "Security", "NULL"),
        (local + timedelta(minutes=1), "cmoreau", "patient-record-select", "Patient Demographics", 2),
        (local + timedelta(minutes=2), "cmoreau", "patient-record-select", "Patient Demographics", 9002),
    ])
    result = poll(workdir, "emr", "--json")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    [log_table] = [t for t in report["tables"] if t["table"] == "log"]
    assert log_table["rows"] == 3 and len(log_table["hits"]) == 1 and log_table["bulk"] == 0
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        [hit] = registry.list_hits(channel="access")
        assert hit.canary_id == 2 and hit.classification.value == "unjustified-access"
        assert hit.evidence["account"] == "cmoreau" and hit.evidence["identifier"] == "2"
        assert hit.at == (planted_at + timedelta(hours=1, minutes=1)).replace(microsecond=0)

    # Polled again: nothing new, nothing twice.
    again = json.loads(poll(workdir, "emr", "--json").stdout)
    assert all(t["hits"] == [] and t["rows"] == 0 for t in again[0]["tables"])

    # A stolen account pages through patients and opens the three canaries within minutes.
    burst = local + timedelta(minutes=30)
    rows = [(burst + timedelta(seconds=10 * i), "accueil", "patient-record-select", "Patient Demographics",
             9100 + i) for i in range(20)]
    rows += [(burst + timedelta(seconds=300 + i), "accueil", "patient-record-select", "Patient Demographics", pid)
             for i, pid in enumerate((1, 2, 3))]
    log_rows(url, rows)
    text = poll(workdir, "emr")
    assert text.exit_code == 0 and "emr log: 23 rows read" in text.stdout and "3 canary access hit(s), 1 bulk" in \
        text.stdout
    critical = [a for a in alerts(workdir) if a["level"] == "critical"]
    assert len(critical) == 1
    assert "compte « accueil »" in critical[0]["subject"] and "Accès en masse" in critical[0]["subject"]
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        assert [h.canary_id for h in registry.list_hits(channel="access")] == [2, 1, 2, 3]


def test_api_log_calls_and_exports_are_read_too(emr):
    url, workdir, planted_at = emr
    local = (planted_at + timedelta(hours=2)).astimezone(PARIS).replace(tzinfo=None)
    load_sql(url, "INSERT INTO api_log (log_id, user_id, patient_id, ip_address, method, request, request_url, "
                  "created_time) VALUES "
                  f"(1, 1, 3, '192.0.2.44', 'GET', '/fhir/Patient/3/$export', '/fhir/Patient/3/$export', "
                  f"'{local:%Y-%m-%d %H:%M:%S}'), "
                  f"(2, 1, 77, '192.0.2.44', 'GET', '/api/patient/77', '/api/patient/77', '{local:%Y-%m-%d %H:%M:%S}')")
    [report] = json.loads(poll(workdir, "--json").stdout)
    [api] = [t for t in report["tables"] if t["table"] == "api_log"]
    assert api["rows"] == 2 and len(api["hits"]) == 1 and api["bulk"] == 1  # an export: bulk at once
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        [hit] = registry.list_hits(channel="access")
        assert hit.remote == "192.0.2.44" and hit.evidence["action"] == "export"


def test_canary_s_own_rows_are_not_reported_but_its_account_at_another_time_is(emr):
    url, workdir, planted_at = emr
    account = "root"  # the account of the source's URL (plant, verify and retire use it)
    at_planting = planted_at.astimezone(PARIS).replace(tzinfo=None)
    later = at_planting + timedelta(hours=5)
    log_rows(url, [(at_planting, account, "patient-record-insert", "Patient Demographics", 1),
                   (later, account, "patient-record-select", "Patient Demographics", 1)])
    [report] = json.loads(poll(workdir, "--json").stdout)
    [log_table] = [t for t in report["tables"] if t["table"] == "log"]
    assert log_table["own"] == 1 and len(log_table["hits"]) == 1


def test_bad_requests_are_one_line(emr, tmp_path):
    url, workdir, _ = emr
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        registry.add_source(SourceSpec(name="lab", seeder="sql", url="sqlite:///nowhere.db"))
    result = poll(workdir, "lab")
    assert result.exit_code == 2 and "has no audit table to poll" in result.stderr
    assert poll(workdir, "nope").exit_code == 2


def test_a_generic_sql_source_names_its_audit_table_in_its_mapping_file(tmp_path):
    """A sql source whose mapping file has [audit]: polled like OpenEMR, on SQLite."""
    import sqlalchemy as sa

    from canary.access.auditdb import audit_tables, parse_audit
    from canary.access.poll import run_poll
    from canary.errors import ConfigError
    from canary.model import Placement
    from support.alert_helpers import make_identity as canary_identity

    target = f"sqlite:///{tmp_path / 'lis.db'}"
    engine = sa.create_engine(target)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE journal (num INTEGER PRIMARY KEY, quand TEXT, qui TEXT, dossier TEXT, "
                          "quoi TEXT, poste TEXT)"))
    mapping = tmp_path / "lis.toml"
    mapping.write_text('[[table]]\nname = "patients"\n\n[audit]\ntable = "journal"\nid = "num"\ntime = "quand"\n'
                       'user = "qui"\npatient = "dossier"\naction = ["quoi"]\naddress = "poste"\n', encoding="utf-8")
    [table] = audit_tables("sql", "lis.toml", tmp_path)
    assert (table.name, table.patient, table.action, table.address) == ("journal", "dossier", ("quoi",), "poste")
    with pytest.raises(ConfigError, match="action must name"):
        parse_audit({"table": "j", "id": "n", "time": "t", "user": "u", "patient": "p", "action": "x; drop"}, "m")

    class Config:
        raw = {"access": {"audit_timezone": "UTC"}}
        base_dir = tmp_path

    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True) as registry:
        registry.add_source(SourceSpec(name="lis", seeder="sql", url=target, mapping="lis.toml"))
        batch = registry.new_batch("lis", None, "alice", 1)
        identity = canary_identity(7)
        record = registry.add_planned(batch, identity, tokens_of(identity))
        registry.mark_planted(record.id, Placement(rows=({"table": "patients", "key": {"id": 4411},
                                                          "values": {"ipp": "IPP-4411"}},)))
        soon = datetime.now(timezone.utc) + timedelta(minutes=30)
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO journal (quand, qui, dossier, quoi, poste) VALUES "
                              "(:t, 'dupont', 'IPP-4411', 'consultation', '10.1.2.3'), "
                              "(:t, 'dupont', 'IPP-9999', 'consultation', '10.1.2.3')"), {"t": soon.isoformat()})
        [result] = run_poll(registry, Config(), "lis", environ={})
        [table_poll] = result.tables
        assert table_poll.rows == 2 and len(table_poll.hits) == 1
        [hit] = registry.list_hits(channel="access")
        assert hit.remote == "10.1.2.3" and hit.evidence["action"] == "read" and hit.canary_id == record.id
    engine.dispose()


def test_audit_rows_a_seeder_wrote_itself_are_never_reported(emr):
    """Mediboard's seeder writes the history entries the application would: they are in the placement."""
    from canary.model import Placement

    url, workdir, planted_at = emr
    local = (planted_at + timedelta(hours=1)).astimezone(PARIS).replace(tzinfo=None)
    log_rows(url, [(local, "cmoreau", "patient-record-insert", "Patient Demographics", 2),
                   (local, "cmoreau", "patient-record-select", "Patient Demographics", 2)])
    registry_url = f"sqlite:///{workdir / 'registry.db'}"
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as c:
        first = c.execute(sa.text("SELECT MIN(id) FROM log WHERE user = 'cmoreau'")).scalar()  # ours, not the seeder's
    engine.dispose()
    with Registry.open(registry_url) as registry:  # as if the seeder had written that entry with the canary
        canary = registry.get_canary(2)
        rows = canary.placement.rows + ({"table": "log", "key": {"id": first}, "values": {}},)
        placement = Placement(rows=rows, extra=canary.placement.extra).to_dict()
    from canary.registry.schema import canaries

    registry_engine = sa.create_engine(registry_url)
    with registry_engine.begin() as c:
        c.execute(canaries.update().where(canaries.c.id == 2).values(placement=placement))
    registry_engine.dispose()
    [report] = json.loads(poll(workdir, "--json").stdout)
    [log_table] = [t for t in report["tables"] if t["table"] == "log"]
    assert log_table["rows"] == 2 and log_table["own"] == 1 and len(log_table["hits"]) == 1
