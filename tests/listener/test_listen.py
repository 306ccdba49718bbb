"""The listener service's parts and the commands around it: credentials, ports file,
JSON logs, start/stop, `canary hits`, `canary alerts [test]`, `canary zone`."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
import tomllib
from datetime import datetime, timedelta, timezone

import dns.message
import dns.query
import dns.rdatatype
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from support.alert_helpers import make_identity, smtp_server  # noqa: F401 (smtp_server: a fixture)
from canary.cli.main import cli
from canary.config import parse_config
from canary.errors import ConfigError, RegistryError
from canary.hits.hit import Channel, Observation
from canary.model import TokenKind
from canary.registry import Registry
from listener.credentials import CredentialChecker
from listener.logs import JsonFormatter, configure_json_logging, remove_json_logging
from listener.service import ListenerError, ListenerService, run, write_ports_file
from support.listener_helpers import EMAIL_DOMAIN, TWILIO_ENV, TWILIO_TOKEN, ZONE, config_text, plant_sources, write_config

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)
LOOPBACK = {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0", "admin": "127.0.0.1:0"}


# -- credentials ------------------------------------------------------------------------


@pytest.fixture
def planted_registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 4)})
    with Registry.open(url) as registry:
        yield registry


def test_credentials_are_loaded_ahead_and_checked_without_the_registry(planted_registry):
    class Counting:
        reads = 0

        def portal_passwords_since(self, after_id=0, limit=None):
            self.reads += 1
            return planted_registry.portal_passwords_since(after_id, limit)

    feed = Counting()
    checker = CredentialChecker(feed)
    assert checker.refresh() == 3 and len(checker) == 3
    assert checker.check("cmorel1", "Tilleul!2024") is True
    assert checker.check(" CMorel1 ", "Tilleul!2024") is True  # the login as the token index folds it
    assert checker.check("cmorel1", "tilleul!2024") is False
    assert checker.check("nobody", "Tilleul!2024") is None  # no canary's: compared with a dummy
    assert feed.reads == 1  # checks never read the registry
    assert checker.refresh() == 0 and feed.reads == 2
    assert "Tilleul" not in repr(checker) and all("Tilleul" not in repr(v) for v in vars(checker).values())


def test_credentials_of_canaries_planted_later_are_loaded_by_the_refresh(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 3)})
    with Registry.open(url) as registry:
        checker = CredentialChecker(registry)
        checker.start(interval=0.05)
        try:
            assert checker.check("cmorel3", "Tilleul!2024") is None
            plant_sources(url, {"lis-brest": range(3, 4)})
            deadline = time.monotonic() + 5
            while checker.check("cmorel3", "Tilleul!2024") is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert checker.check("cmorel3", "Tilleul!2024") is True and checker.alive
        finally:
            checker.stop()
        assert not checker.alive


def test_credential_refresh_errors_keep_what_is_loaded(planted_registry):
    class Flaky:
        calls = 0

        def portal_passwords_since(self, after_id=0, limit=None):
            self.calls += 1
            if self.calls > 1:
                raise RegistryError("registry down")
            return planted_registry.portal_passwords_since(after_id, limit)

    flaky = Flaky()
    checker = CredentialChecker(flaky)
    checker.start(interval=0.02)
    try:
        deadline = time.monotonic() + 5
        while flaky.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flaky.calls >= 3 and checker.alive
        assert checker.check("cmorel2", "Tilleul!2024") is True
    finally:
        checker.stop()


# -- ports file and logs -------------------------------------------------------------------


def test_ports_file_is_written_atomically(tmp_path):
    path = tmp_path / "ports.json"
    path.write_text("old")
    write_ports_file(path, {"dns": 53530, "http": 8081, "smtp": 2526})
    assert json.loads(path.read_text()) == {"dns": 53530, "http": 8081, "smtp": 2526}
    assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]  # no temporary file left


def test_json_log_lines_carry_extra_fields_and_tracebacks():
    stream = io.StringIO()
    handler = configure_json_logging(stream)
    try:
        logging.getLogger("canary.test").info("hit #%d", 7, extra={"event": "hit", "canary": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("canary.test").exception("failed")
    finally:
        remove_json_logging(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["msg"] == "hit #7" and first["event"] == "hit" and first["canary"] == 3
    assert first["level"] == "info" and first["logger"] == "canary.test" and first["ts"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": {"odd": object()}})), str)


# -- the service ----------------------------------------------------------------------------


def make_config(tmp_path, alert_port: int = 9, extra: str = ""):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    return parse_config(tomllib.loads(config_text(url, alert_port, extra=extra)), path=tmp_path / "canary.toml")


def _free(port: int, kind=socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        # As a server would: connections closed a moment ago (TIME_WAIT) don't hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            if kind == socket.SOCK_STREAM:
                sock.listen()
        except OSError:
            return False
    return True


def test_service_binds_port_0_and_stop_releases_everything(tmp_path):
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 3)})
    config = make_config(tmp_path)
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN})
        service.start()
        ports = service.ports()
        assert service.addresses["http"] == ("127.0.0.1", ports["http"])
        assert service.stats()["tokens"] == len(service.index) > 0
        with pytest.raises(RuntimeError):
            service.start()
        service.stop()
        service.stop()  # twice is fine
        assert not service.running
    assert _free(ports["http"]) and _free(ports["smtp"]) and _free(ports["dns"], socket.SOCK_DGRAM)


def test_bad_settings_fail_before_anything_binds(tmp_path):
    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    config = make_config(tmp_path)
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds={**LOOPBACK, "http": "nowhere"},
                                  environ={TWILIO_ENV: TWILIO_TOKEN})
        with pytest.raises(ConfigError, match="listener.http"):
            service.start()
        assert not service.running
        service = ListenerService(config, registry, binds=LOOPBACK, environ={})  # Twilio token unset
        with pytest.raises(ConfigError, match=TWILIO_ENV):
            service.start()
        service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN},
                                  outbox_lease=timedelta(seconds=10))
        with pytest.raises(ConfigError, match="outbox lease"):
            service.start()


def test_a_busy_port_is_one_error_and_stops_what_had_started(tmp_path):
    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    config = make_config(tmp_path)
    with socket.socket() as busy, Registry.open(config.registry_url) as registry:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = ListenerService(config, registry, binds={**LOOPBACK, "smtp": f"127.0.0.1:{port}"},
                                  environ={TWILIO_ENV: TWILIO_TOKEN})
        with pytest.raises(ListenerError, match=f"SMTP listener cannot bind 127.0.0.1:{port}.*in use"):
            service.start()
        assert not service.running
        assert service.http._thread is None and service.dns._thread is None  # stopped again


def test_run_publishes_ports_then_drains_and_removes_them(tmp_path):
    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    config = make_config(tmp_path)
    stop = threading.Event()
    ports_file = tmp_path / "ports.json"
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN})
        thread = threading.Thread(target=run, args=(service,), kwargs={"ports_file": ports_file, "stop": stop})
        thread.start()
        deadline = time.monotonic() + 10
        while not ports_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(ports_file.read_text()) == service.ports()
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not ports_file.exists() and not service.running


# -- commands ------------------------------------------------------------------------------


def invoke(workdir, *args, env=None):
    environ = {"CANARY_CONFIG": str(workdir / "canary.toml"), TWILIO_ENV: TWILIO_TOKEN, **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


@pytest.fixture
def hits_workdir(tmp_path, smtp_server):
    """A workspace with two sources and three hits recorded at known times."""
    from canary.alerts.service import build_alerting, build_hit_sink

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 3), "dpi-nantes": range(11, 13)})
    config = write_config(tmp_path, url, smtp_server.port)
    raw = tomllib.loads(config.read_text())
    with Registry.open(url) as registry:
        sink, _ = build_hit_sink(registry, raw, build_alerting(registry, raw, environ={}))
        for at, channel, kind, value in (
            (T0, Channel.HTTP, TokenKind.URL_CODE, make_identity(1).url_code),
            (T0 + timedelta(hours=2), Channel.SMTP, TokenKind.EMAIL, make_identity(11).email),
            (T0 + timedelta(hours=3), Channel.DNS, TokenKind.DNS_LABEL, make_identity(12).dns_label),
        ):
            with freeze_time(at):
                sink.record(Observation(channel, kind, value, "203.0.113.9", {"user_agent": "curl/8"}, at))
    return tmp_path


def test_hits_command_filters_and_prints_json(hits_workdir):
    result = invoke(hits_workdir, "hits")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "AT", "(UTC)"] and len(lines) == 4
    assert "lis-rennes" in lines[1] and "url_code" in lines[1] and "human" in lines[1]
    data = json.loads(invoke(hits_workdir, "hits", "--json", "--source", "dpi-nantes").stdout)
    assert [(h["channel"], h["source"]) for h in data] == [("smtp", "dpi-nantes"), ("dns", "dpi-nantes")]
    assert {"id", "at", "canary", "kind", "value", "remote", "classification", "evidence"} <= set(data[0])
    with freeze_time(T0 + timedelta(hours=4)):
        recent = json.loads(invoke(hits_workdir, "hits", "--json", "--since", "90m").stdout)
    assert [h["channel"] for h in recent] == ["dns"]
    since = json.loads(invoke(hits_workdir, "hits", "--json", "--since", "2025-03-14T11:00").stdout)
    assert [h["channel"] for h in since] == ["smtp", "dns"]
    bad = invoke(hits_workdir, "hits", "--since", "yesterday")
    assert bad.exit_code == 2 and bad.stderr.startswith("canary: error: --since 'yesterday'")
    assert invoke(hits_workdir, "hits", "--source", "nope").exit_code == 2


def test_alerts_command_shows_messages_incidents_and_sinks(hits_workdir):
    result = invoke(hits_workdir, "alerts")
    assert result.exit_code == 0
    assert "email: ok" in result.stdout and "3 waiting" in result.stdout
    assert "« lis-rennes »" in result.stdout and "email:pending" in result.stdout
    data = json.loads(invoke(hits_workdir, "alerts", "--json").stdout)
    assert set(data) == {"alerts", "incidents", "sinks"}
    assert [a["state"] for a in data["alerts"]] == ["pending"] * 3
    assert data["alerts"][0]["deliveries"][0]["sink"] == "email"
    assert [s["sink"] for s in data["sinks"]] == ["email"] and data["sinks"][0]["pending"] == 3
    assert len(data["incidents"]) == 3


def test_alerts_test_sends_through_every_sink(hits_workdir, smtp_server):
    result = invoke(hits_workdir, "alerts", "test")
    assert result.exit_code == 0 and result.stdout == "email: ok\n"
    assert "Test d'alerte" in str(smtp_server.messages[-1]["Subject"])


def test_alerts_test_exits_1_with_one_line_per_failing_sink(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connection refused
        url = f"sqlite:///{tmp_path / 'registry.db'}"
        Registry.open(url, create=True).close()
        write_config(tmp_path, url, port, extra=f'\n[alerts.syslog]\npath = "{tmp_path / "siem.jsonl"}"\n')
        result = invoke(tmp_path, "alerts", "test")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"email: FAILED: SMTP 127.0.0.1:{port}: ConnectionRefusedError")
    assert lines[1:] == ["syslog: ok"]


def test_alerts_test_without_sinks_is_a_usage_error(tmp_path):
    (tmp_path / "canary.toml").write_text(f"""
[registry]
url = "sqlite:///registry.db"
[contacts]
email_domains = ["{EMAIL_DOMAIN}"]
dns_zone = "{ZONE}"
portal_url = "https://portail.example.fr/p/"
phone_pool = ["+33612349999"]
""")
    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    result = invoke(tmp_path, "alerts", "test")
    assert result.exit_code == 2 and result.stderr.startswith("canary: error: no alert sink configured")


def test_zone_prints_what_the_dns_listener_serves(tmp_path):
    from canary.cli.zone import registrar_records
    from listener.dns import DnsConfig, DnsServer

    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    write_config(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}", 9)
    result = invoke(tmp_path, "zone")
    assert result.exit_code == 0
    text = result.stdout
    for pattern in (f"{ZONE}. +3600 +IN +NS +ns1.{ZONE}.", f"ns1.{ZONE}. +3600 +IN +A +127.0.0.1 +; glue",
                    f"{EMAIL_DOMAIN}. +3600 +IN +MX +10 mx.{EMAIL_DOMAIN}.",
                    f"mx.{EMAIL_DOMAIN}. +3600 +IN +A +127.0.0.1",
                    f'{EMAIL_DOMAIN}. +3600 +IN +TXT +"v=spf1 mx -all"',
                    f'_dmarc.{EMAIL_DOMAIN}. +3600 +IN +TXT +"v=DMARC1; p=reject; rua=mailto:dmarc@{EMAIL_DOMAIN}"'):
        assert re.search(pattern, text), pattern
    assert all(line.startswith(";") or line == "" or " IN " in line for line in text.splitlines())

    # Every record printed is what the DNS listener answers, to the byte.
    config = make_config(tmp_path)
    sections = registrar_records(config)
    assert sum(len(section.lines) for section in sections) >= 6  # the records checked in the text above

    class NoSink:
        def known(self, kind, value):
            return False

        def observe(self, observation):
            raise AssertionError("no hit expected")

    server = DnsServer(DnsConfig.from_table({"dns": "127.0.0.1:0"}), NoSink(), dns_zone=ZONE,
                       email_domains=(EMAIL_DOMAIN,))
    with server:
        port = server.addresses[0][1]
        for line in (line for section in sections for line in section.lines):
            reply = dns.query.udp(dns.message.make_query(line.name, line.rtype), "127.0.0.1", port=port, timeout=3)
            served = {item.to_text() for rrset in reply.answer for item in rrset}
            assert line.data in served, (line, served)


def test_zone_follows_the_listener_settings(tmp_path):
    from canary.cli.zone import registrar_records, render_zone_file

    from dataclasses import replace

    config = make_config(tmp_path)
    raw = {**config.raw, "listener": {"public_ip": "203.0.113.5", "public_ipv6": "2001:db8::5",
                                      "dns_nameservers": [f"ns1.{ZONE}=203.0.113.5", "ns.provider.example"],
                                      "dns_caa": ["letsencrypt.org"], "dns_mail_host": "mx.provider.example"}}
    text = render_zone_file(registrar_records(replace(config, raw=raw)))
    records = [" ".join(line.split()) for line in text.splitlines() if not line.startswith(";")]
    assert f"{ZONE}. 3600 IN NS ns1.{ZONE}." in records and f"{ZONE}. 3600 IN NS ns.provider.example." in records
    assert f"ns1.{ZONE}. 3600 IN A 203.0.113.5 ; glue" in records
    assert f"ns1.{ZONE}. 3600 IN AAAA 2001:db8::5 ; glue" in records
    assert not any(r.startswith("ns.provider.example.") for r in records)  # no glue outside our zones
    assert f'{ZONE}. 3600 IN CAA 0 issue "letsencrypt.org"' in records
    assert f"{EMAIL_DOMAIN}. 3600 IN MX 10 mx.provider.example." in records
    assert not any(r.startswith("mx.provider.example.") for r in records)


def test_a_busy_dns_port_is_named_once(tmp_path):
    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    config = make_config(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy, Registry.open(config.registry_url) as registry:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        service = ListenerService(config, registry, binds={**LOOPBACK, "dns": f"127.0.0.1:{port}"},
                                  environ={TWILIO_ENV: TWILIO_TOKEN})
        with pytest.raises(ListenerError) as caught:
            service.start()
    assert str(caught.value) == (f"the DNS listener cannot bind 127.0.0.1:{port}: Address already in use "
                                 "(address in use: is another listener running?)")


def test_an_immediate_alert_does_not_wait_for_the_outbox_poll(tmp_path, smtp_server):
    """With the outbox polling once an hour, a hit's alert still leaves at once: the sink wakes the worker."""
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 3)})
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    text = config_text(url, smtp_server.port).replace('poll_interval = "0.2s"', 'poll_interval = "1h"')
    assert 'poll_interval = "1h"' in text
    config = parse_config(tomllib.loads(text), path=tmp_path / "canary.toml")
    with Registry.open(url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN})
        service.start()
        try:
            time.sleep(0.3)  # the worker's first round is over: it now waits for its hour
            query = dns.message.make_query(f"{make_identity(1).dns_label}.{ZONE}", dns.rdatatype.A)
            dns.query.udp(query, "127.0.0.1", port=service.ports()["dns"], timeout=5)
            deadline = time.monotonic() + 10
            while not smtp_server.messages and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            service.stop()
    assert len(smtp_server.messages) == 1
    assert "lis-rennes" in str(smtp_server.messages[0]["Subject"]) + smtp_server.messages[0].get_body().get_content()
