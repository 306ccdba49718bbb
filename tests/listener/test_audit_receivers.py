"""The listener's audit receivers: ATNA syslog over UDP, TCP and TLS, FHIR AuditEvent over HTTP.

Real sockets on port 0, the whole listener around them: each canary read is
one hit, ordinary patients none, a burst by one account one critical alert;
hostile, oversized, malformed and truncated messages are counted and never
stop a receiver nor make a hit.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import tomllib
from datetime import datetime, timedelta, timezone

import pytest
import requests

from support.access_helpers import dicom_message, syslog_line
from support.alert_helpers import make_identity, self_signed_cert
from support.listener_helpers import TWILIO_ENV, TWILIO_TOKEN, config_text, plant_sources
from canary.config import parse_config
from canary.registry import Registry
from listener.service import ListenerService

LOOPBACK = {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0", "admin": "127.0.0.1:0",
            "audit_syslog": "127.0.0.1:0"}
TOKEN_ENV = "CANARY_TEST_AUDIT_TOKEN"
TOKEN = "audit-token-0123456789abcdef"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                  b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]><AuditMessage>&c;</AuditMessage>')
XXE = b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><AuditMessage>&x;</AuditMessage>'


def make_config(tmp_path, listener_extra: str = ""):
    text = config_text(f"sqlite:///{tmp_path / 'registry.db'}", 9)
    text = text.replace("[listener]\n", f"[listener]\naudit_fhir_token_env = \"{TOKEN_ENV}\"\n{listener_extra}", 1)
    text += '\n[access]\nburst_canaries = 3\n\n[access.sources]\n"DPI-PROD" = "lis-rennes"\n'
    return parse_config(tomllib.loads(text), path=tmp_path / "canary.toml")


@pytest.fixture
def service(tmp_path):
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 6)})
    config = make_config(tmp_path)
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK,
                                  environ={TWILIO_ENV: TWILIO_TOKEN, TOKEN_ENV: TOKEN})
        service.start()
        try:
            yield service, registry
        finally:
            service.stop()


def access_hits(registry, count: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = registry.list_hits(channel="access")
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def message(user: str, patients: list[str], minutes: int = 0, **kw) -> bytes:
    return syslog_line(dicom_message(user, patients, at=NOW + timedelta(minutes=minutes), **kw))


def counts(service) -> dict:
    return {f"{r}:{k}": n for (r, k), n in service.audit.intake.counts.items()}


def test_udp_and_tcp_syslog_each_canary_read_one_hit_a_burst_one_critical_alert(service):
    service, registry = service
    port = service.ports()["audit_syslog"]
    assert service.addresses["audit_syslog"] == ("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # RFC 5426: one message per datagram
        udp.sendto(message("jmartin", ["1"]), ("127.0.0.1", port))
        udp.sendto(message("jmartin", ["9001", "9002"]), ("127.0.0.1", port))  # ordinary patients
    assert [h.canary_id for h in access_hits(registry, 1)] == [1]
    with socket.create_connection(("127.0.0.1", port)) as tcp:
        two = message("jmartin", ["9003", "2"], 1)
        tcp.sendall(str(len(two)).encode() + b" " + two)  # octet counting (RFC 6587 3.4.1)
        tcp.sendall(message("jmartin", ["3"], 2) + b"\n")  # newline framing
    hits = access_hits(registry, 3)
    assert [(h.canary_id, h.classification.value) for h in hits] == [
        (1, "unjustified-access"), (2, "unjustified-access"), (3, "bulk-access")]
    assert hits[2].evidence["account"] == "jmartin" and hits[2].remote == "10.20.30.40"
    levels = [a.subject for a in registry.list_alerts()]
    assert len([s for s in levels if s.startswith("[CANARY] Accès en masse")]) == 1
    assert counts(service)["syslog:accepted"] == 4
    metrics = requests.get(f"http://127.0.0.1:{service.ports()['admin']}/metrics", timeout=5)
    if metrics.status_code == 200:  # the admin app may ask for a login; the count is there when open
        assert 'canary_audit_messages_total{receiver="syslog",result="accepted"} 4.0' in metrics.text


def test_hostile_oversized_malformed_and_truncated_messages_are_counted_never_hits(service):
    service, registry = service
    port = service.ports()["audit_syslog"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for bad in (BILLION_LAUGHS, XXE, b"<AuditMessage><EventIdentification", b"\x00\xff garbage",
                    syslog_line(b'{"resourceType": "Patient"}')):
            udp.sendto(bad, ("127.0.0.1", port))
    with socket.create_connection(("127.0.0.1", port)) as tcp:  # over 64 KB: refused unread
        big = message("jmartin", ["1"] + [str(10_000 + i) for i in range(2000)])
        assert len(big) > 64 * 1024
        tcp.sendall(str(len(big)).encode() + b" " + big)
    with socket.create_connection(("127.0.0.1", port)) as tcp:  # a length that lies, then a hang-up
        tcp.sendall(b"500 " + message("jmartin", ["1"])[:100])
    with socket.create_connection(("127.0.0.1", port)) as tcp:
        tcp.sendall(b"99999999 <85>1 x")  # an absurd length: the connection is closed
        assert tcp.recv(10) == b""
    deadline = time.monotonic() + 10
    while sum(n for k, n in counts(service).items() if not k.endswith("accepted")) < 8 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    seen = counts(service)
    # billion laughs and XXE; unclosed XML, a lying length then a hang-up, a broken count;
    # bytes that are no audit message, a FHIR resource that is no AuditEvent; > 64 KB
    assert seen == {"syslog:hostile": 2, "syslog:malformed": 3, "syslog:invalid": 2, "syslog:oversized": 1}
    assert registry.list_hits(channel="access") == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # still serving
        udp.sendto(message("jmartin", ["4"]), ("127.0.0.1", port))
    assert [h.canary_id for h in access_hits(registry, 1)] == [4]


def fhir_event(patient: str, user: str = "dr.house", subtype: str = "read") -> dict:
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype}],
        "action": "R", "recorded": NOW.isoformat(), "outcome": "0",
        "agent": [{"who": {"identifier": {"value": user}}, "requestor": True,
                   "network": {"address": "10.9.8.7", "type": "2"}}],
        "source": {"observer": {"display": "DPI-PROD"}},
        "entity": [{"what": {"reference": patient}}],
    }


def test_fhir_audit_events_and_bundles_with_a_bearer_token(service):
    service, registry = service
    base = f"http://127.0.0.1:{service.ports()['http']}"
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    one = requests.post(f"{base}/audit/fhir/AuditEvent", data=json.dumps(fhir_event("Patient/1")), headers=auth,
                        timeout=5)
    plain = requests.post(f"{base}/audit/fhir/AuditEvent", data=json.dumps(fhir_event("Patient/9999")),
                          headers=auth, timeout=5)
    assert one.status_code == plain.status_code == 201 and one.content == plain.content  # tells nothing
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": fhir_event("Patient/2", subtype="search-type")}, {"resource": fhir_event("Patient/9998")}]}
    assert requests.post(f"{base}/audit/fhir", data=json.dumps(bundle), headers=auth, timeout=5).status_code == 201
    hits = access_hits(registry, 2)
    assert [(h.canary_id, h.classification.value) for h in hits] == [(1, "unjustified-access"), (2, "bulk-access")]
    assert hits[0].evidence["account"] == "dr.house" and hits[0].evidence["format"] == "fhir"

    wrong = requests.post(f"{base}/audit/fhir", data=json.dumps(fhir_event("Patient/3")),
                          headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    bad = requests.post(f"{base}/audit/fhir", data=b"{not json", headers=auth, timeout=5)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    huge = requests.post(f"{base}/audit/fhir", data=b" " * (5 * 1024 * 1024), headers=auth, timeout=10)
    assert huge.status_code == 413  # the HTTP server's body cap (listener.http_max_body) or the receiver's
    portal = requests.get(f"{base}/audit/other", timeout=5)
    assert portal.status_code == 200 and "text/html" in portal.headers["Content-Type"]  # the portal, as before
    assert len(registry.list_hits(channel="access")) == 2
    seen = counts(service)
    assert seen["fhir:accepted"] == 3 and seen["fhir:invalid"] == 1 and seen["fhir:malformed"] == 1


def test_tls_syslog_rfc5425(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 3)})
    config = make_config(tmp_path, f'audit_syslog_tls_cert = "{cert}"\naudit_syslog_tls_key = "{key}"\n')
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK,
                                  environ={TWILIO_ENV: TWILIO_TOKEN, TOKEN_ENV: TOKEN})
        with service:
            port = service.ports()["audit_syslog"]
            context = ssl.create_default_context(cafile=str(cert))
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    frame = message("jmartin", [make_identity(2).nir], authority="1.2.250.1.213.1.4.8",
                                    source="OTHER-APP")
                    tls.sendall(str(len(frame)).encode() + b" " + frame)
            assert [h.canary_id for h in access_hits(registry, 1)] == [2]
            with socket.create_connection(("127.0.0.1", port)) as plain:  # not TLS: refused, counted
                plain.sendall(message("jmartin", ["1"]) + b"\n")
                plain.settimeout(5)
                try:
                    plain.recv(100)  # a TLS alert, an end of file or a reset: refused all the same
                except ConnectionResetError:
                    pass
            deadline = time.monotonic() + 10
            while "syslog:invalid" not in counts(service) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert counts(service) == {"syslog:accepted": 1, "syslog:invalid": 1}
            assert len(registry.list_hits(channel="access")) == 1
        assert not service.running


def test_the_ports_file_names_the_audit_syslog_port_and_stop_frees_it(tmp_path):
    import threading

    from listener.service import run

    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 2)})
    config = make_config(tmp_path)
    ports_file, stop = tmp_path / "ports.json", threading.Event()
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK,
                                  environ={TWILIO_ENV: TWILIO_TOKEN, TOKEN_ENV: TOKEN})
        thread = threading.Thread(target=run, args=(service,), kwargs={"ports_file": ports_file, "stop": stop})
        thread.start()
        deadline = time.monotonic() + 20
        while not ports_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        port = json.loads(ports_file.read_text())["audit_syslog"]
        stop.set()
        thread.join(20)
        assert not thread.is_alive() and not ports_file.exists()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))  # both sides closed
        udp.bind(("127.0.0.1", port))


def test_bad_audit_settings_are_one_line_before_anything_binds(tmp_path):
    from canary.errors import ConfigError

    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    for extra, environ, message in (
            ('audit_syslog_tls_cert = "c.pem"\n', {TOKEN_ENV: TOKEN}, "go together"),
            ("", {TOKEN_ENV: "short"}, "at least 16 characters"),
    ):
        config = make_config(tmp_path, extra)
        with Registry.open(config.registry_url) as registry:
            service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN, **environ})
            with pytest.raises(ConfigError, match=message):
                service.start()
            assert not service.running


def test_access_hits_go_through_the_hit_journal_counted_in_and_out(tmp_path):
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 6)})
    config = make_config(tmp_path)
    with Registry.open(config.registry_url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK,
                                  environ={TWILIO_ENV: TWILIO_TOKEN, TOKEN_ENV: TOKEN})
        with service:
            before = service.journal.stats()["appended"]
            port = service.ports()["audit_syslog"]
            now = datetime.now(timezone.utc).replace(microsecond=0)
            with socket.create_connection(("127.0.0.1", port)) as tcp:
                for n, patient in enumerate(("1", "9001", "2")):
                    tcp.sendall(syslog_line(dicom_message("jmartin", [patient], at=now + timedelta(minutes=n)))
                                + b"\n")
            hits = access_hits(registry, 2)
            assert service.journal.wait_idle(10)
            stats = service.journal.stats()
        assert stats["appended"] - before == 2 and stats["pending"] == 0
        assert sorted(h.evidence["identifier"] for h in hits) == ["1", "2"]
        assert all(h.channel.value == "access" for h in hits)


def test_readyz_covers_the_configured_audit_receivers(service):
    service, _registry = service
    admin = f"http://127.0.0.1:{service.ports()['admin']}/readyz"
    ready = requests.get(admin, timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"]["audit_syslog"] == "ok" and ready.json()["checks"]["audit_fhir"] == "ok"

    service.audit.syslog.stop()  # the syslog receiver is gone: UDP and TCP no longer listen
    unready = requests.get(admin, timeout=5)
    assert unready.status_code == 503
    assert unready.json()["checks"]["audit_syslog"] == "not listening"
    assert unready.json()["checks"]["audit_fhir"] == "ok"

    service.audit.book.stop()  # no refresh of the canary identifiers: neither receiver sees new canaries
    checks = requests.get(admin, timeout=5).json()["checks"]
    assert checks["audit_syslog"] == checks["audit_fhir"] == "identifier index not refreshing"

    service.http.stop()  # the HTTP listener that serves /audit/fhir
    service.audit.book.start(60)
    checks = service.readiness()
    assert checks["audit_fhir"] == "not listening (HTTP listener down)" and checks["http"] == "not running"


def test_readyz_has_no_audit_checks_when_no_receiver_is_configured(tmp_path):
    plant_sources(f"sqlite:///{tmp_path / 'registry.db'}", {"lis-rennes": range(1, 3)})
    config = parse_config(tomllib.loads(config_text(f"sqlite:///{tmp_path / 'registry.db'}", 9)),
                          path=tmp_path / "canary.toml")
    binds = {k: v for k, v in LOOPBACK.items() if k != "audit_syslog"}
    with Registry.open(config.registry_url) as registry:
        with ListenerService(config, registry, binds=binds, environ={TWILIO_ENV: TWILIO_TOKEN}) as service:
            checks = service.readiness()
    assert "audit_syslog" not in checks and "audit_fhir" not in checks and checks["http"] == "ok"
