"""`canary doctor`: a healthy install reports ok everywhere; each broken piece is one fail line."""

from __future__ import annotations

import json
import os
import subprocess
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from freezegun import freeze_time

from support.alert_helpers import Capture, LoopbackController
from canary.doctor import checks as doctor
from canary.doctor import network as doctor_net
from canary.planting import upkeep
from canary.cli.main import cli
from canary.config import load_config
from canary.doctor.checks import FAIL, OK, WARN, Context
from canary.doctor import run as doctor_run
from canary.doctor.run import probes, run_checks
from canary.model import SourceSpec
from canary.planting.planter import plant
from canary.registry import Registry
from listener.service import ListenerService
from support.plant_helpers import POOL
from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

SMTP_USER = "alerts@soc.example"
SMTP_PASSWORD = "s3cret-smtp-pw"
SMTP_ENV = "CANARY_TEST_DOCTOR_SMTP"
TWILIO_ENV = "CANARY_TEST_DOCTOR_TWILIO"
TWILIO_TOKEN = "twilio-token-for-doctor"
ZONE = "mon-rdv-sante.fr"


def config_text(registry_url: str, smtp_port: int, listener: dict[str, str], *, extra: str = "") -> str:
    pool = ", ".join(f'"{n}"' for n in POOL[::25])
    binds = "\n".join(f'{key} = "{value}"' for key, value in listener.items())
    return f"""
[registry]
url = "{registry_url}"

[contacts]
email_domains = ["mel-famille.fr"]
dns_zone = "{ZONE}"
portal_url = "https://espace.{ZONE}/acces/"
phone_pool = [{pool}]

[listener]
smtp_evidence_dir = "evidence"
{binds}

[alerts.email]
host = "127.0.0.1"
port = {smtp_port}
username = "{SMTP_USER}"
password_env = "{SMTP_ENV}"
from = "canary@soc.example"
to = ["soc@soc.example"]
timeout = "5s"

[telephony.twilio]
auth_token_env = "{TWILIO_ENV}"
{extra}
"""


class Install:
    """A whole installation on loopback: config file, registry, a SQLite target, listener, mail server."""

    def __init__(self, folder: Path, smtp_port: int) -> None:
        self.folder = folder
        self.smtp_port = smtp_port
        self.registry_url = f"sqlite:///{folder / 'registry.db'}"
        self.target_path = folder / "ehr.db"
        self.config_path = folder / "canary.toml"
        self.environ = {SMTP_ENV: SMTP_PASSWORD, TWILIO_ENV: TWILIO_TOKEN, "PATH": os.environ.get("PATH", "")}
        self.listener: ListenerService | None = None
        self.write({})

    def write(self, listener: dict[str, str], extra: str = "") -> None:
        self.listener_binds = listener
        self.config_path.write_text(config_text(self.registry_url, self.smtp_port, listener, extra=extra),
                                    encoding="utf-8")
        self.config_path.chmod(0o640)  # as deployed: closed to other users

    def context(self, **changes) -> Context:
        return Context(config_path=self.config_path, environ=changes.pop("environ", self.environ), **changes)

    def check(self, **changes) -> list[doctor.Check]:
        only = changes.pop("only", ())
        skip = changes.pop("skip", ("admin",))
        return run_checks(self.context(**changes), skip=skip, only=only)


@pytest.fixture
def smtp_auth_server():
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    capture = Capture()
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0, authenticator=authenticator,
                                    auth_require_tls=False)
    controller.start()
    capture.port = controller.port
    try:
        yield capture
    finally:
        controller.stop()


@pytest.fixture
def install(tmp_path, smtp_auth_server):
    setup = Install(tmp_path, smtp_auth_server.port)
    create_schema(f"sqlite:///{setup.target_path}")
    populate_real(f"sqlite:///{setup.target_path}", 30)  # the mapping draws values from the site's patients
    config = load_config(setup.config_path, setup.environ)
    with Registry.open(setup.registry_url, create=True) as registry:
        registry.add_source(SourceSpec(name="ehr", seeder="sql", url=f"sqlite:///{setup.target_path}",
                                       mapping=str(MAPPING)))
        plant(registry, config, "ehr", 3, seed=7, environ=setup.environ)
        upkeep.verify(registry, environ=setup.environ)
    yield setup
    if setup.listener is not None:
        setup.listener.stop()


@pytest.fixture
def running(install):
    """The install with `canary listen` running in-process on free ports, written into its config."""
    config = load_config(install.config_path, install.environ)
    registry = Registry.open(install.registry_url)
    service = ListenerService(config, registry, environ=install.environ,
                              binds={"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0",
                                         "admin": "127.0.0.1:0"})
    service.start()
    install.listener = service
    ports = service.ports()
    install.write({name: f"127.0.0.1:{port}" for name, port in ports.items()})
    yield install
    service.stop()
    registry.close()


def by_name(results) -> dict[str, doctor.Check]:
    return {c.name: c for c in results}


def fails(results) -> list[str]:
    return [c.line() for c in results if c.status == FAIL]


# -- a healthy install -------------------------------------------------------------------------


def test_healthy_install_is_all_ok(running, smtp_auth_server):
    # (the scanner's line depends on what this machine could build: test_scanner_speed_ups_are_checked)
    results = running.check(skip=("admin", "scanner"))
    assert [c.line() for c in results if c.status != OK] == []
    names = [c.name for c in results]
    assert names == ["config", "registry", "sources.ehr", "verify.ehr", "dns", "http", "webhooks", "smtp",
                     "alerts.email", "audit", "files", "limits"]
    checks = by_name(results)
    assert "CANARY_TEST_DOCTOR_SMTP" in checks["config"].detail
    assert "authoritative for mon-rdv-sante.fr" in checks["dns"].detail
    assert "refuses unsigned twilio webhooks (403)" in checks["webhooks"].detail
    assert f"logs in as {SMTP_USER}" in checks["alerts.email"].detail
    assert "3 planted canaries" in checks["verify.ehr"].detail
    assert all("\n" not in c.detail and SMTP_PASSWORD not in c.detail for c in results)
    assert smtp_auth_server.messages == []  # logged in, nothing sent


def test_doctor_writes_nothing_and_records_no_hit(running):
    engine = sa.create_engine(f"sqlite:///{running.target_path}")
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM patients")).scalar()
    with Registry.open(running.registry_url) as registry:
        hits_before = len(registry.list_hits())
    running.check()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM patients")).scalar() == before
    engine.dispose()
    with Registry.open(running.registry_url) as registry:
        assert len(registry.list_hits()) == hits_before


def test_cli_healthy_exit_0_then_json(running):
    runner = CliRunner()
    # (the scanner's line depends on what this machine could build: test_scanner_speed_ups_are_checked)
    result = runner.invoke(cli, ["--config", str(running.config_path), "doctor", "--skip", "admin",
                                 "--skip", "scanner"], env=running.environ)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "doctor: 12 ok, 0 warn, 0 fail"
    assert all(line.startswith("ok   ") for line in lines[:-1])
    result = runner.invoke(cli, ["--config", str(running.config_path), "doctor", "--only", "dns",
                                 "--only", "registry", "--json"], env=running.environ)
    document = json.loads(result.output)
    assert result.exit_code == 0
    assert document["ok"] is True and document["counts"] == {"ok": 2, "warn": 0, "fail": 0}
    assert [c["name"] for c in document["checks"]] == ["registry", "dns"]


# -- broken installs, one fail line each ---------------------------------------------------------


def test_wrong_smtp_password(running):
    environ = {**running.environ, SMTP_ENV: "not-the-password"}
    results = running.check(environ=environ, only=("alerts",))
    line = by_name(results)["alerts.email"]
    assert line.status == FAIL
    assert line.detail.startswith(f"127.0.0.1:{running.smtp_port} refused the login for {SMTP_USER}: 535")
    assert "not-the-password" not in line.detail


def test_wrong_smtp_password_through_the_cli(running):
    environ = {**running.environ, SMTP_ENV: "not-the-password"}
    result = CliRunner().invoke(cli, ["--config", str(running.config_path), "doctor", "--skip", "admin"],
                                env=environ)
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("fail")]
    assert len(failed) == 1 and failed[0].startswith("fail alerts.email: ")
    assert "Traceback" not in result.output


def test_unreachable_sqlite_source(running):
    running.target_path.unlink()
    results = running.check()
    assert fails(results) == [f"fail sources.ehr: cannot connect to sqlite:///{running.target_path}: "
                              f"no such file {running.target_path}"]


def test_read_only_sqlite_source(running):
    # Root writes a 0444 file; an immutable one (chattr +i) it cannot (CI runs as root).
    as_root = os.geteuid() == 0
    if as_root:
        made = subprocess.run(["chattr", "+i", str(running.target_path)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {made.stderr.strip()}")
    else:
        running.target_path.chmod(0o444)
    try:
        line = by_name(running.check(only=("sources",)))["sources.ehr"]
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(running.target_path)], check=True)
        else:
            running.target_path.chmod(0o644)
    assert line.status == FAIL and "is not readable and writable by this user" in line.detail


def test_unreachable_mariadb_source(install):
    from conftest import _server_url

    url = _server_url("CANARY_TEST_MARIADB_URL", "MariaDB")
    with Registry.open(install.registry_url) as registry:
        registry.add_source(SourceSpec(name="lis", seeder="sql", url_env="DOCTOR_BAD_MARIADB",
                                       mapping=str(MAPPING)))
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        bad = sa.engine.make_url(url).set(host="127.0.0.1", port=port, password="hunter22")
        environ = {**install.environ, "DOCTOR_BAD_MARIADB": bad.render_as_string(hide_password=False)}
        line = by_name(install.check(environ=environ, only=("sources",)))["sources.lis"]
    assert line.status == FAIL
    assert "cannot connect to" in line.detail and str(port) in line.detail
    assert "hunter22" not in line.detail


def test_hl7v2_source_reachable_then_stopped(install):
    from support.mllp_server import MllpServer
    from seeders.hl7v2.seeder import Hl7v2Seeder

    options = Hl7v2Seeder.validate_options({
        "sending_application": "GAM", "sending_facility": "CHU_RENNES", "receiving_application": "DPI",
        "receiving_facility": "CHU_RENNES", "pi_authority": "CHU_RENNES&1.2.250.1.211.10.200.2&ISO"})
    with MllpServer() as server:
        url = server.url
        with Registry.open(install.registry_url) as registry:
            registry.add_source(SourceSpec(name="dpi", seeder="hl7v2", url=url, options=options))
        line = by_name(install.check(only=("sources",)))["sources.dpi"]
        assert line.line() == f"ok   sources.dpi: hl7v2 seeder opens {url}; " \
                              "the account may plant, verify and retire"
    line = by_name(install.check(only=("sources",)))["sources.dpi"]
    port = url.rpartition(":")[2]
    assert line.line() == f"fail sources.dpi: cannot connect to 127.0.0.1:{port} (Connection refused)"


def test_stopped_listener(running):
    running.listener.stop()
    results = running.check()
    checks = by_name(results)
    dns_port = running.listener_binds["dns"].rpartition(":")[2]
    assert checks["dns"].line() == (f"fail dns: no answer from 127.0.0.1:{dns_port} within 2 s: "
                                    "is canary listen running?")
    for name in ("http", "webhooks", "smtp"):
        assert checks[name].status == FAIL and "is canary listen running?" in checks[name].detail
    assert {c.name for c in results if c.status == FAIL} == {"dns", "http", "webhooks", "smtp"}


def test_listener_option_asks_another_node(running):
    results = running.check(listener_host="127.0.0.2", only=("dns",), timeout=0.5)
    assert by_name(results)["dns"].detail.startswith("no answer from 127.0.0.2:")


def test_stale_verify(install):
    with freeze_time(datetime.now(timezone.utc) - timedelta(days=3)):
        with Registry.open(install.registry_url) as registry:
            upkeep.verify(registry, environ=install.environ)
    line = by_name(install.check(only=("verify",)))["verify.ehr"]
    assert line.status == FAIL
    assert line.detail.startswith("last verified 3 d 0 h ago (more than 2 d 0 h)")
    assert line.detail.endswith("run canary verify; is the canary-verify.timer enabled?")


def test_verify_max_age_setting(install):
    install.write({}, extra="[doctor]\nverify_max_age = \"1s\"\n")
    with freeze_time(datetime.now(timezone.utc) + timedelta(minutes=5)):
        line = by_name(install.check(only=("verify",)))["verify.ehr"]
    assert line.status == FAIL and "more than 1 s" in line.detail


def test_never_verified(install):
    with Registry.open(install.registry_url) as registry:
        registry.add_source(SourceSpec(name="other", seeder="sql", url=f"sqlite:///{install.target_path}",
                                       mapping=str(MAPPING)))
        plant(registry, load_config(install.config_path, install.environ), "other", 1, seed=8,
              environ=install.environ)
    checks = by_name(install.check(only=("verify",)))
    assert checks["verify.ehr"].status == OK
    assert checks["verify.other"].line() == ("fail verify.other: 1 planted canaries never verified: "
                                             "run canary verify; is the canary-verify.timer enabled?")


def test_missing_secret_env(install):
    environ = {k: v for k, v in install.environ.items() if k != SMTP_ENV}
    results = install.check(environ=environ, only=("config", "alerts"))
    checks = by_name(results)
    assert checks["config"].line() == (f"fail config: {SMTP_ENV} is not set in the environment "
                                       "(alerts.email.password_env reads it)")
    assert checks["alerts.email"].status == WARN  # reported once, by config


def test_missing_source_env(install):
    with Registry.open(install.registry_url) as registry:
        registry.add_source(SourceSpec(name="lis", seeder="sql", url_env="DOCTOR_LIS_URL", mapping=str(MAPPING)))
    checks = by_name(install.check(only=("config", "sources")))
    assert checks["config"].line() == ("fail config: DOCTOR_LIS_URL is not set in the environment "
                                       "(source 'lis' (its URL) reads it)")
    assert checks["sources.lis"].line() == "warn sources.lis: not checked: DOCTOR_LIS_URL is not set (see config)"
    assert checks["sources.ehr"].status == OK


def test_outdated_registry(install):
    from alembic import command

    from canary.registry.migrate import alembic_config

    engine = sa.create_engine(install.registry_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "-1")
    engine.dispose()
    results = install.check(only=("registry", "sources", "verify"))
    assert fails(results) == [f"fail registry: registry at {install.registry_url} is at an older schema: "
                              "run `canary upgrade`"]
    assert by_name(results)["verify"].line() == \
        "warn verify: not checked: the registry cannot be opened (see registry)"


def test_broken_config_is_one_fail_and_no_traceback(tmp_path):
    path = tmp_path / "canary.toml"
    path.write_text("[contacts\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(path), "doctor"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"fail config: {path}: not valid TOML")
    # every check needing the configuration says so; the scanner's needs none
    assert all(line.startswith("warn") for line in lines[1:-1] if not line.split()[1].startswith("scanner"))
    assert "Traceback" not in result.output


def test_subprocess_json_and_usage_errors(running):
    import subprocess

    from support.listener_helpers import CANARY_BIN

    env = {**running.environ, "CANARY_CONFIG": str(running.config_path)}
    done = subprocess.run([str(CANARY_BIN), "doctor", "--json", "--skip", "admin", "--skip", "audit"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is True and document["counts"]["fail"] == 0
    assert "audit" not in {c["name"] for c in document["checks"]}
    done = subprocess.run([str(CANARY_BIN), "doctor", "--skip", "nothing"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Invalid value for '--skip'" in done.stderr


def test_demo_contacts_fail(tmp_path):
    from canary.cli.setup import init_workspace

    path = init_workspace(tmp_path)
    line = by_name(run_checks(Context(config_path=path, environ={}), only=("config",)))["config"]
    assert line.status == FAIL and "demo contact points" in line.detail


def test_audit_failures_are_fail_lines(install):
    install.write({})
    text = install.config_path.read_text(encoding="utf-8").replace('"mel-famille.fr"', '"yopmail.com"')
    install.config_path.write_text(text, encoding="utf-8")
    results = install.check(only=("audit",))
    assert results and all(c.status == FAIL and c.name == "audit" for c in results)
    assert any("yopmail.com" in c.detail for c in results)


def test_scanner_speed_ups_are_checked(monkeypatch):
    """Hyperscan and the C helper (built at install): each missing one is a warn line, not a fail."""
    import sys

    from canary.scan import engines

    ctx = Context(config_path=None, environ={})
    lines = run_checks(ctx, only=("scanner",))
    if "hyperscan" in engines.available() and verify_compiled():
        assert [(c.status, c.name) for c in lines] == [(OK, "scanner")]
    import canary.scan

    monkeypatch.setitem(sys.modules, "canary.scan._probes", None)  # as if never built: the import fails
    monkeypatch.delattr(canary.scan, "_probes", raising=False)
    monkeypatch.setattr(engines, "available", lambda: ["pyahocorasick"])
    lines = run_checks(ctx, only=("scanner",))
    assert [c.status for c in lines] == [WARN, WARN]
    assert "pyahocorasick, about 10x slower" in lines[0].detail
    assert "C helper was not built" in lines[1].detail and "gcc" in lines[1].detail


def verify_compiled() -> bool:
    from canary.scan import verify

    return verify._compiled_probes() is not None


def test_webhook_signature_not_checked_is_caught(running):
    """A listener that accepts unsigned webhooks (here: a plain server) must fail, not pass."""
    from listener.telephony import hooks_path_for

    hooks = hooks_path_for(running.config_path.parent)  # this installation's random path
    server = _serve({f"{hooks}/twilio/sms": 200, "/acces/": 200})
    try:
        running.write({**running.listener_binds, "http": f"127.0.0.1:{server.server_port}"})
        line = by_name(running.check(only=("webhooks",)))["webhooks"]
    finally:
        server.shutdown()
        server.server_close()
    assert line.status == FAIL and "accepted an unsigned request" in line.detail


def test_a_listener_without_the_webhook_route_is_caught(running):
    """A listener whose own config has no Twilio token has no webhook route: the portal page answers."""
    from listener.telephony import hooks_path_for

    hooks = hooks_path_for(running.config_path.parent)  # this installation's random path
    server = _serve({f"{hooks}/twilio/sms": 200, "/acces/": 200}, pages=True)
    try:
        running.write({**running.listener_binds, "http": f"127.0.0.1:{server.server_port}"})
        line = by_name(running.check(only=("webhooks",)))["webhooks"]
    finally:
        server.shutdown()
        server.server_close()
    assert line.status == FAIL and "is not a webhook (the portal page answers)" in line.detail
    assert "no twilio secret" in line.detail


def test_dns_refusal_and_authority_are_checked(running, monkeypatch):
    monkeypatch.setattr(doctor_net, "OUTSIDE_NAME", f"www.{ZONE}")  # inside the zone: answered, not refused
    line = by_name(running.check(only=("dns",)))["dns"]
    assert line.status == FAIL and "not REFUSED" in line.detail


def test_admin_healthz(running, monkeypatch):
    port = running.listener.ports()["admin"]  # the listener's own dashboard address, written in the config
    line = by_name(running.check(only=("admin",), skip=()))["admin"]
    assert line.line() == f"ok   admin: 127.0.0.1:{port}/healthz answers 200, /readyz ready"
    running.listener.dns.stop()  # a front end down: alive but not ready
    line = by_name(running.check(only=("admin",), skip=()))["admin"]
    assert line.status == FAIL and "not ready" in line.detail and "dns" in line.detail
    running.listener.stop()
    line = by_name(running.check(only=("admin",), skip=()))["admin"]
    assert line.status == FAIL and f"127.0.0.1:{port}" in line.detail


def test_strict_and_quiet(install, monkeypatch):
    install.write({"dns": "127.0.0.1:0"})  # a port chosen at each start: nothing to ask, a warning
    base = ["--config", str(install.config_path), "doctor", "--only", "dns", "--only", "registry"]
    runner = CliRunner()
    result = runner.invoke(cli, base, env=install.environ)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "doctor: 1 ok, 1 warn, 0 fail"
    result = runner.invoke(cli, [*base, "--strict", "--quiet"], env=install.environ)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("warn dns: ")


def test_a_hanging_check_is_cut_at_its_deadline(monkeypatch):
    def hang(ctx):
        threading.Event().wait(5)
        yield doctor.Check("slow", OK, "never")

    def boom(ctx):
        raise KeyError("surprise")

    monkeypatch.setattr(doctor_run, "probes", lambda: (doctor.Probe("slow", hang, "hangs", deadline=0.2),
                                                   doctor.Probe("boom", boom, "raises")))
    results = run_checks(Context(config_path=None, environ={}))
    assert [c.line() for c in results] == ["fail slow: no result within 0.2 s", "fail boom: KeyError: 'surprise'"]


# -- the rights a SQL source's account needs (real servers) ------------------------------------------


def _limited_account(url: str, grants: list[str]) -> tuple[str, str]:
    """(user, URL as that user) after running ``grants`` (with {user} and {db} filled in) as the admin."""
    admin_url = sa.engine.make_url(url)
    user = "cdoc_" + os.urandom(4).hex()
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD 'pw-{user}'"))
        else:
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'"))
        for grant in grants:
            conn.execute(sa.text(grant.format(user=user, db=admin_url.database)))
    engine.dispose()
    return user, admin_url.set(username=user, password=f"pw-{user}").render_as_string(hide_password=False)


def _drop_account(url: str, user: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"DROP OWNED BY {user}"))
            conn.execute(sa.text(f"DROP ROLE {user}"))
        else:
            conn.execute(sa.text(f"DROP USER '{user}'@'%'"))
    engine.dispose()


def _source_check(install, url: str) -> list[doctor.Check]:
    with Registry.open(install.registry_url) as registry:
        registry.add_source(SourceSpec(name="lis", seeder="sql", url_env="DOCTOR_LIS_URL", mapping=str(MAPPING)))
    environ = {**install.environ, "DOCTOR_LIS_URL": url}
    return [c for c in install.check(environ=environ, only=("sources",)) if c.name == "sources.lis"]


def _assert_rights(lines: list[doctor.Check], missing: list[str], password: str) -> None:
    if not missing:
        assert [c.status for c in lines] == [OK], lines
        return
    assert all(c.status == FAIL and password not in c.detail for c in lines), lines
    assert [c.detail.partition(": ")[2] for c in lines] == missing


MAPPED = ("patients", "contacts", "analyses", "portail")  # the tables lis_mapping.toml writes


@pytest.mark.parametrize("grants,missing", [
    (["GRANT SELECT, INSERT ON {db}.* TO '{user}'@'%'"], [f"missing DELETE on {t}" for t in MAPPED]),
    (["GRANT SELECT, INSERT, DELETE ON {db}.* TO '{user}'@'%'"], []),
    (["GRANT SELECT, INSERT ON {db}.* TO '{user}'@'%'", "GRANT DELETE ON {db}.patients TO '{user}'@'%'"],
     [f"missing DELETE on {t}" for t in MAPPED[1:]]),
])
def test_mariadb_source_rights(install, mariadb_url, grants, missing):
    create_schema(mariadb_url)
    user, url = _limited_account(mariadb_url, grants)
    try:
        lines = _source_check(install, url)
    finally:
        _drop_account(mariadb_url, user)
    _assert_rights(lines, missing, f"pw-{user}")


@pytest.mark.parametrize("grants,missing", [
    (["GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {user}"],
     ["missing DELETE, USAGE on sequence public.patients_id_seq on patients",
      "missing DELETE, USAGE on sequence public.contacts_id_seq on contacts",
      "missing DELETE, USAGE on sequence public.analyses_id_seq on analyses",
      "missing DELETE on portail"]),  # its key is a token, not a serial
    (["GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA public TO {user}",
      "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user}"], []),
])
def test_postgres_source_rights(install, postgres_url, grants, missing):
    create_schema(postgres_url)
    user, url = _limited_account(postgres_url, grants)
    try:
        lines = _source_check(install, url)
    finally:
        _drop_account(postgres_url, user)
    _assert_rights(lines, missing, f"pw-{user}")


def _openemr(url):
    from support.openemr_fixture import create_site

    create_site(url, count=30)
    return SourceSpec(name="app", seeder="openemr")


def _mediboard(url):
    from support.mediboard_fixture import create_site

    create_site(url, count=30)
    return SourceSpec(name="app", seeder="mediboard")


def _openmrs(url):
    from support.openmrs_support import create_schema as omrs_schema, populate_real, source

    omrs_schema(url)
    populate_real(url, 30)
    return source(nir_identifier_type="INS-NIR")


def _openelis(url):
    from support.openelis_support import create_schema as elis_schema, populate_real, source

    elis_schema(url)
    populate_real(url, 30)
    return source()


def _gnuhealth(url):
    from support.gnuhealth_fixture import create_schema as gh_schema, populate

    gh_schema(url)
    populate(url, 30)
    return SourceSpec(name="app", seeder="gnuhealth")


@pytest.mark.parametrize("server,build", [
    ("mariadb", _openemr), ("mariadb", _mediboard), ("mariadb", _openmrs),
    ("postgres", _openelis), ("postgres", _gnuhealth),
], ids=["openemr", "mediboard", "openmrs", "openelis", "gnuhealth"])
def test_application_seeders_check_their_written_tables(request, server, build):
    """The database owner may do everything; an account that may only read lacks every write right."""
    from canary.planting.catalog import create_seeder

    url = request.getfixturevalue(f"{server}_url")
    spec = build(url)
    seeder = create_seeder(spec, url)
    seeder.open()
    try:
        assert seeder.check_access() == []
        schema = seeder.target.schema or "public"
    finally:
        seeder.close()
    if server == "mariadb":
        grants = ["GRANT SELECT ON {db}.* TO '{user}'@'%'"]
    else:
        grants = [f"GRANT USAGE ON SCHEMA {schema} TO {{user}}",
                  f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {{user}}",
                  f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {{user}}"]
    user, reader_url = _limited_account(url, grants)
    try:
        reader = create_seeder(spec, reader_url)
        reader.open()  # reading is all opening does
        try:
            problems = reader.check_access()
        finally:
            reader.close()
    finally:
        _drop_account(url, user)
    # (OpenEMR also takes encounter numbers by updating its sequences table.)
    assert problems and all(p.startswith(("missing INSERT, DELETE on ", "missing UPDATE on sequences"))
                            for p in problems), problems
    assert len(problems) >= 3


def test_groups_match_probes():
    assert tuple(p.group for p in probes()) == doctor.GROUPS


def test_grants_parsing():
    from seeders.sql.access import parse_grants, rights_on

    grants = parse_grants([
        "GRANT USAGE ON *.* TO `canary`@`%`",
        "GRANT SELECT, INSERT ON `lis\\_prod`.* TO `canary`@`%`",
        "GRANT DELETE, UPDATE (`nom`) ON `lis_prod`.`patient` TO `canary`@`%`",
        "GRANT ALL PRIVILEGES ON `other`.* TO `canary`@`%`",
    ])
    assert rights_on(grants, "lis_prod", "patient") == {"USAGE", "SELECT", "INSERT", "DELETE"}
    assert rights_on(grants, "lis_prod", "contact") == {"USAGE", "SELECT", "INSERT"}
    assert rights_on(grants, "lisxprod", "patient") == {"USAGE"}  # \_ is a plain underscore
    assert "ALL PRIVILEGES" in rights_on(grants, "other", "t")


# -- helpers ---------------------------------------------------------------------------------------


def _serve(statuses: dict[str, int], pages: bool = False) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            status = statuses.get(self.path, 404)
            body = b"<html></html>" if status == 200 else b""
            self.send_response(status)
            # A webhook answers TwiML; anything else is a page.
            webhook = self.path.endswith("/twilio/sms") and not pages
            self.send_header("Content-Type", "text/xml" if webhook else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_openelis_account_without_schema_usage_is_one_line(postgres_url):
    """Opening OpenELIS without USAGE on its schema: a SourceError naming the source, no driver traceback."""
    from canary.errors import SourceError
    from canary.planting.catalog import create_seeder

    spec = _openelis(postgres_url)
    user, reader_url = _limited_account(postgres_url, [])
    try:
        with pytest.raises(SourceError, match=r"^source '.*': reading the OpenELIS schema failed: ") as caught:
            create_seeder(spec, reader_url).open()
    finally:
        _drop_account(postgres_url, user)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_a_secret_file_open_to_every_user_fails_and_the_limit_is_checked(tmp_path):
    from canary.doctor.hardening import check_files, check_limits

    (tmp_path / "canary.toml").write_text(
        '[registry]\nurl = "sqlite:///registry.db"\n[contacts]\nemail_domains = ["x.fr"]\ndns_zone = "x.fr"\n'
        'portal_url = "https://p.x.fr/a/"\nphone_pool = ["+33612340001"]\n', encoding="utf-8")
    (tmp_path / "canary.toml").chmod(0o644)
    (tmp_path / "registry.db").write_bytes(b"")
    (tmp_path / "registry.db").chmod(0o600)
    ctx = Context(config_path=tmp_path / "canary.toml", environ={})
    [line] = list(check_files(ctx))
    assert line.status == FAIL and "canary.toml is open to every user (mode 0644)" in line.detail
    (tmp_path / "canary.toml").chmod(0o640)
    [line] = list(check_files(ctx))
    assert line.status == OK and "2 file(s)" in line.detail
    [limit] = list(check_limits(ctx))
    assert limit.name == "limits" and limit.status in (OK, FAIL) and "1134" in limit.detail
