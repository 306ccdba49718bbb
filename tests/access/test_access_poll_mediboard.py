"""`canary access poll` on Mediboard's access log and user log, per version, in MariaDB.

Canaries are planted by the Mediboard seeder into the fixture hospital
(tests/support/mediboard_fixture.py); the application's own rows are then
written as Mediboard writes them: ``CLogAccessMedicalData::logForObject``
(a record, a stay, a consultation opened: one row per user, object and hour)
and ``CStoredObject::store``'s history (``user_action`` on OX with
``activer_user_action``, ``user_log`` before). Each canary read is one hit,
ordinary patients none, a burst one critical alert, the history entries the
seeder wrote itself none, and a row is never read twice.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from support.app_seeder_helpers import dispose, insert_rows, load_sql_file, spec
from support.mediboard_fixture import CLASSES, FIXTURES, create_site
from support.sql_seeder_helpers import make_identity
from canary.cli.main import cli
from canary.model import SourceSpec
from canary.registry import Registry
from canary.tokens import tokens_of
from seeders.mediboard.seeder import MediboardSeeder

SERVER = ZoneInfo("UTC")  # the test server's time zone: Mediboard dates its rows by its server's clock
CLINIC_DAY = date(2025, 6, 12)  # the day the footprint consultation is written (the server clock, pinned)
SNOOP, CURIOUS, EDITOR = 31, 32, 33  # Mediboard user ids (users.user_id)


def workspace(tmp_path: Path, url: str) -> str:
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
audit_timezone = "UTC"

[alerts.syslog]
path = "{tmp_path / "alerts.jsonl"}"
format = "json"
""", encoding="utf-8")
    return registry_url


def plant(registry_url: str, url: str, count: int, footprint: bool = False):
    """``count`` canaries in source dpi; returns (their patient ids, the placements, planted_at)."""
    with Registry.open(registry_url, create=True) as registry:
        registry.add_source(SourceSpec(name="dpi", seeder="mediboard", url=url, establishment="CH de Quimper"))
        batch = registry.new_batch("dpi", None, "alice", count)
        placements = []
        with MediboardSeeder(spec("dpi", "mediboard"), url) as seeder:
            for n in range(count):
                identity = make_identity(700 + n)
                record = registry.add_planned(batch, identity, tokens_of(identity))
                placement = seeder.plant(identity)
                if footprint and n == 0:
                    time.sleep(1.1)  # the consultation comes after the registration
                    placement = seeder.add_footprint(identity, placement)
                registry.mark_planted(record.id, placement)
                placements.append(placement)
        planted_at = registry.get_canary(1).planted_at
    pids = [p.rows[0]["key"]["patient_id"] for p in placements]
    return pids, placements, planted_at


def poll(workdir: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["access", "poll", *args],
                              env={"CANARY_CONFIG": str(workdir / "canary.toml"), **(env or {})},
                              catch_exceptions=False)


def alerts(workdir: Path) -> list[dict]:
    path = workdir / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def local(moment: datetime) -> datetime:
    return moment.astimezone(SERVER).replace(tzinfo=None)


def hour(moment: datetime) -> datetime:
    """logForObject's default rounding (round_datetime 1h): down to the hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


def accesses(url: str, table: str, rows) -> None:
    """Rows of the access log: (user, local time, object class, object id)."""
    extra = {"context": None} if table == "log_access_medical_data" else {}
    insert_rows(url, table, [dict(user_id=user, datetime=at, object_class=kind, object_id=oid, group_id=1, **extra)
                             for user, at, kind, oid in rows])


@pytest.fixture
def ox(mariadb_url, tmp_path, monkeypatch):
    """OX 4.x (dPpatients 4.94, user_action on, admin 1.0.77's log_access_medical_data): 3 canaries,
    the first seen in a footprint consultation."""
    opening = datetime.combine(CLINIC_DAY, datetime.min.time()) + timedelta(hours=10)
    started = time.monotonic()
    monkeypatch.setattr(MediboardSeeder, "_now",
                        lambda _self: opening + timedelta(seconds=int(time.monotonic() - started)))
    create_site(mariadb_url, count=40, version="4.94", log_table="user_action", today=CLINIC_DAY)
    load_sql_file(mariadb_url, FIXTURES / "admin-log-access.sql")
    registry_url = workspace(tmp_path, mariadb_url)
    pids, placements, planted_at = plant(registry_url, mariadb_url, 3, footprint=True)
    yield mariadb_url, tmp_path, pids, placements, planted_at
    dispose(mariadb_url)


def test_records_opened_in_mediboard_are_hits_ordinary_patients_none_a_burst_critical(ox):
    url, workdir, pids, placements, planted_at = ox
    consultation = next(r for r in placements[0].rows if r["table"] == "consultation")["key"]["consultation_id"]
    at = local(planted_at + timedelta(minutes=20))
    accesses(url, "log_access_medical_data", [
        (CURIOUS, hour(at), "CPatient", 5),  # an ordinary patient
        (CURIOUS, hour(at), "CPatient", pids[1]),  # a canary's record, dated the hour it was opened in
        (CURIOUS, hour(at), "CSejour", 4),  # a stay of nobody we know
        (CURIOUS, hour(at), "CConsultation", 7),  # a real patient's consultation
    ])
    [report] = json.loads(poll(workdir, "dpi", "--json").stdout)
    tables = {t["table"]: t for t in report["tables"]}
    assert set(tables) == {"log_access_medical_data", "user_log", "user_action"}  # what this version has
    access = tables["log_access_medical_data"]
    assert access["rows"] == 4 and len(access["hits"]) == 1 and access["bulk"] == 0
    # The seeder's own history entries (the canaries' creation, the footprint) are not reported.
    assert tables["user_action"]["hits"] == []
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        [hit] = registry.list_hits(channel="access")
        assert hit.canary_id == 2 and hit.classification.value == "unjustified-access"
        assert hit.evidence["account"] == str(CURIOUS) and hit.evidence["action"] == "read"
        assert hit.evidence["identifier"] == str(pids[1])
        assert "log_access_medical_data: CPatient" in hit.evidence["event_code"]

    # Polled again: nothing new, nothing twice.
    again = json.loads(poll(workdir, "dpi", "--json").stdout)
    assert all(t["hits"] == [] and t["rows"] == 0 for t in again[0]["tables"])

    # A stolen account opens the three canaries (one through its consultation) and ordinary patients.
    later = hour(at + timedelta(hours=1))
    accesses(url, "log_access_medical_data", [(SNOOP, later, "CPatient", n) for n in range(10, 20)] + [
        (SNOOP, later, "CConsultation", consultation), (SNOOP, later, "CPatient", pids[1]),
        (SNOOP, later, "CPatient", pids[2])])
    text = poll(workdir, "dpi")
    assert text.exit_code == 0, text.output
    assert "dpi log_access_medical_data: 13 rows read" in text.stdout and "3 canary access hit(s), 1 bulk" in \
        text.stdout
    critical = [a for a in alerts(workdir) if a["level"] == "critical"]
    assert len(critical) == 1 and f"compte « {SNOOP} »" in critical[0]["subject"]
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        hits = registry.list_hits(channel="access")
        assert [h.canary_id for h in hits] == [2, 1, 2, 3]
        assert hits[1].evidence["identifier"] == str(pids[0])  # the consultation named its patient


def test_a_change_to_a_canary_in_user_action_is_reported_the_seeders_own_never(ox):
    url, workdir, pids, _placements, planted_at = ox
    at = local(planted_at + timedelta(minutes=40))
    desk = socket.inet_aton("10.12.9.77")
    insert_rows(url, "user_action", [
        dict(user_id=EDITOR, object_id=pids[2], object_class_id=CLASSES["CPatient"], type="store", date=at,
             ip_address=desk),
        dict(user_id=EDITOR, object_id=6, object_class_id=CLASSES["CPatient"], type="store", date=at,
             ip_address=desk),
        dict(user_id=EDITOR, object_id=pids[2], object_class_id=CLASSES["CIdSante400"], type="store", date=at,
             ip_address=desk),  # not a class about a patient: not read
    ])
    [report] = json.loads(poll(workdir, "dpi", "--json").stdout)
    [actions] = [t for t in report["tables"] if t["table"] == "user_action"]
    assert actions["rows"] == 2 and len(actions["hits"]) == 1
    with Registry.open(f"sqlite:///{workdir / 'registry.db'}") as registry:
        [hit] = registry.list_hits(channel="access")
        assert hit.canary_id == 3 and hit.remote == "10.12.9.77"
        assert hit.evidence["action"] == "update" and hit.evidence["account"] == str(EDITOR)


def test_an_older_mediboard_user_log_and_log_access_medical_object(mariadb_url, tmp_path):
    """dPpatients 2.37 (the 2015 line): history in user_log, the access log before admin 1.0.77."""
    create_site(mariadb_url, count=30, version="2.37")
    load_sql_file(mariadb_url, FIXTURES / "admin-log-access-old.sql")
    try:
        registry_url = workspace(tmp_path, mariadb_url)
        pids, _placements, planted_at = plant(registry_url, mariadb_url, 2)
        at = local(planted_at + timedelta(minutes=5))
        accesses(mariadb_url, "log_access_medical_object", [(CURIOUS, hour(at), "CPatient", pids[0]),
                                                            (CURIOUS, hour(at), "CPatient", 3)])
        insert_rows(mariadb_url, "user_log", [
            dict(user_id=EDITOR, object_id=pids[1], object_class="CPatient", type="merge", date=at, fields=None,
                 ip_address=socket.inet_aton("10.12.3.9"), extra=None)])
        [report] = json.loads(poll(tmp_path, "dpi", "--json").stdout)
        tables = {t["table"]: t for t in report["tables"]}
        assert set(tables) == {"log_access_medical_object", "user_log"}
        old_log = tables["log_access_medical_object"]
        assert len(old_log["hits"]) == 1 and old_log["rows"] == 2
        assert len(tables["user_log"]["hits"]) == 1
        assert tables["user_log"]["own"] >= 2  # the seeder's creation entries (patient, IPP...)
        with Registry.open(registry_url) as registry:
            hits = registry.list_hits(channel="access")
            assert sorted(h.canary_id for h in hits) == [1, 2]
            merge = next(h for h in hits if h.canary_id == 2)
            assert merge.evidence["action"] == "update" and merge.remote == "10.12.3.9"
    finally:
        dispose(mariadb_url)


def test_a_mediboard_without_any_audit_table_is_one_line(mariadb_url, tmp_path):
    from support.app_seeder_helpers import load_sql

    create_site(mariadb_url, count=5, version="2.37")
    try:
        registry_url = workspace(tmp_path, mariadb_url)
        plant(registry_url, mariadb_url, 1)
        load_sql(mariadb_url, "DROP TABLE user_log")
        result = poll(tmp_path, "dpi")
        assert result.exit_code == 2 and "none of its audit tables was found" in result.stderr
        assert "Traceback" not in result.output
    finally:
        dispose(mariadb_url)


def test_the_poll_reads_with_a_read_only_account_and_the_seeders_account_is_still_known(ox):
    import uuid

    import sqlalchemy as sa

    from support.app_seeder_helpers import execute

    url, workdir, pids, _placements, planted_at = ox
    database = sa.engine.make_url(url).database
    reader = f"audit_{uuid.uuid4().hex[:8]}"
    execute(url, f"CREATE USER '{reader}'@'%' IDENTIFIED BY 'lecture-seule-0'")
    try:
        for table in ("log_access_medical_data", "user_action", "user_log", "object_class"):
            execute(url, f"GRANT SELECT ON `{database}`.`{table}` TO '{reader}'@'%'")
        audit_url = sa.engine.make_url(url).set(username=reader, password="lecture-seule-0")
        with (workdir / "canary.toml").open("a", encoding="utf-8") as toml:
            toml.write('\n[access.audit_url_env]\n"dpi" = "DPI_AUDIT_URL"\n')
        at = local(planted_at + timedelta(minutes=10))
        accesses(url, "log_access_medical_data", [(CURIOUS, hour(at), "CPatient", pids[0])])
        env = {"DPI_AUDIT_URL": audit_url.render_as_string(hide_password=False)}
        result = poll(workdir, "dpi", "--json", env=env)
        assert result.exit_code == 0, result.output
        [report] = json.loads(result.stdout)
        assert sum(len(t["hits"]) for t in report["tables"]) == 1
        engine = sa.create_engine(audit_url)
        try:
            with pytest.raises(sa.exc.DBAPIError, match="denied"), engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM log_access_medical_data"))  # it may only read
        finally:
            engine.dispose()
        # Its variable missing: one line, nothing read.
        missing = poll(workdir, "dpi")
        assert missing.exit_code == 2 and "DPI_AUDIT_URL (access.audit_url_env) is not set" in missing.stderr
    finally:
        execute(url, f"DROP USER '{reader}'@'%'")
