"""The whole listener, end to end, on real loopback sockets (port 0).

In-process (``ListenerService``) for the protocol checks, and ``canary
listen`` as real processes for signals, two processes sharing one PostgreSQL
registry, and a kill -9 in the middle of a flood. Canaries are planted into
two sources first, so every alert must name the right one. Alerts go to an
aiosmtpd server in the test process.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time
import tomllib
from collections import Counter

import dns.flags
import dns.rcode
import pytest
import requests

from support.alert_helpers import Capture, LoopbackController
from canary.config import parse_config
from canary.registry import Registry
from listener.service import ListenerService
from support.needs import missing
from support.listener_helpers import (
    CANARY_BIN,
    EMAIL_DOMAIN,
    SOURCES,
    TWILIO_ENV,
    TWILIO_TOKEN,
    ZONE,
    ListenProcess,
    config_text,
    dns_query,
    http_get,
    plant_sources,
    send_mail,
    twilio_sms,
    wait_for,
    write_config,
)

SUBJECT_CANARY = re.compile(r"canari #(\d+)")


@pytest.fixture(scope="module")
def alert_inbox():
    capture = Capture()
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0)
    controller.start()
    capture.port = controller.port
    yield capture
    controller.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, alert_inbox):
    """A ListenerService on 127.0.0.1 port 0, over a SQLite registry with two planted sources."""
    folder = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{folder / 'registry.db'}"
    planted = plant_sources(url)
    path = folder / "canary.toml"
    config = parse_config(tomllib.loads(config_text(url, alert_inbox.port)), path=path)
    with Registry.open(url) as registry:
        service = ListenerService(config, registry, environ={TWILIO_ENV: TWILIO_TOKEN},
                                  binds={"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0",
                                         "admin": "127.0.0.1:0"})
        service.start()
        try:
            yield service, canary_ids(planted), folder
        finally:
            service.stop()


def canary_ids(planted) -> dict[int, tuple[int, str]]:
    """identity number -> (canary id, source)."""
    return {n: (cid, source) for source, numbers in SOURCES.items()
            for n, cid in zip(numbers, planted[source])}


def alerts_for(inbox: Capture, canary_id: int) -> list:
    with inbox.lock:
        messages = list(inbox.messages)
    return [m for m in messages if (found := SUBJECT_CANARY.search(str(m["Subject"])))
            and int(found.group(1)) == canary_id]


# -- protocols, in-process -------------------------------------------------------------


def test_dns_answers_canary_names_with_authority_and_refuses_the_rest(served):
    service, ids, _ = served
    port = service.ports()["dns"]
    for tcp in (False, True):
        reply = dns_query(port, f"h4x13.{ZONE}", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert [item.address for rrset in reply.answer for item in rrset] == ["127.0.0.1"]
        refused = dns_query(port, "www.example.com", tcp=tcp)
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
    assert wait_for(lambda: service.registry.list_hits(source="dpi-nantes") and any(
        h.canary_id == ids[13][0] for h in service.registry.list_hits(source="dpi-nantes")), 5)


def test_dig_sees_an_authoritative_answer_and_refused(served):
    if shutil.which("dig") is None:
        missing("dig", "dig not installed (apt-get install bind9-dnsutils)")
    service, _, _ = served
    port = str(service.ports()["dns"])
    out = subprocess.run(["dig", "@127.0.0.1", "-p", port, f"h4x14.{ZONE}", "A", "+norec", "+time=2"],
                         capture_output=True, text=True, timeout=15).stdout
    assert "status: NOERROR" in out and re.search(r"flags: qr aa;", out), out
    assert re.search(rf"h4x14\.{re.escape(ZONE)}\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1", out), out
    out = subprocess.run(["dig", "@127.0.0.1", "-p", port, "www.example.com", "+time=2"],
                         capture_output=True, text=True, timeout=15).stdout
    assert "status: REFUSED" in out, out


def test_each_channel_makes_exactly_one_alert_naming_its_source(served, alert_inbox):
    service, ids, folder = served
    ports = service.ports()
    reply = dns_query(ports["dns"], f"h4x11.{ZONE}")  # dpi-nantes
    assert reply.flags & dns.flags.AA
    assert http_get(ports["http"], "/p/k7q2x9code1").status_code == 200  # lis-rennes
    send_mail(ports["smtp"], f"camille.morel12@{EMAIL_DOMAIN}")  # dpi-nantes
    assert twilio_sms(ports["http"], "+33612340002").status_code == 200  # lis-rennes
    login = requests.post(f"http://127.0.0.1:{ports['http']}/p/", headers={"Host": "portail.example.fr"},
                          data={"identifiant": "cmorel3", "motdepasse": "Tilleul!2024"}, timeout=5)  # lis-rennes
    assert login.status_code == 200 and "incorrect" in login.text  # the page never lets anyone in
    expected = {11: "dpi-nantes", 1: "lis-rennes", 12: "dpi-nantes", 2: "lis-rennes", 3: "lis-rennes"}
    wait_for(lambda: all(alerts_for(alert_inbox, ids[n][0]) for n in expected), 10, what="5 alerts")
    time.sleep(1.0)  # five poll rounds more: nothing else may come
    for n, source in expected.items():
        messages = alerts_for(alert_inbox, ids[n][0])
        assert len(messages) == 1, [str(m["Subject"]) for m in messages]
        assert f"« {source} »" in str(messages[0]["Subject"])
        assert f"Etablissement {source}" in str(messages[0]["Subject"])
    assert "Identifiants utilis" in str(alerts_for(alert_inbox, ids[3][0])[0]["Subject"])  # credential use
    hits = {h.canary_id: h for h in service.registry.list_hits()}
    assert hits[ids[3][0]].evidence["credential"] is True
    assert "motdepasse" not in str(hits[ids[3][0]].evidence) and "Tilleul" not in str(hits[ids[3][0]].evidence)
    assert list((folder / "evidence").glob("*.eml"))  # the phishing mail is kept


def test_a_bad_webhook_signature_is_refused_and_not_recorded(served):
    service, ids, _ = served
    before = len(service.registry.list_hits())
    assert twilio_sms(service.ports()["http"], "+33612340004", token="forged").status_code == 403
    time.sleep(0.2)
    assert len(service.registry.list_hits()) == before


def test_junk_never_kills_the_service(served, alert_inbox):
    service, ids, _ = served
    ports = service.ports()
    rng = random.Random(1234)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(60)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # DNS over UDP
        for packet in junk:
            udp.sendto(packet, ("127.0.0.1", ports["dns"]))
    for packet in junk[:10] + [b"\xff\xff" + b"x" * 100, b"\x00"]:  # DNS over TCP, bad framing
        with socket.create_connection(("127.0.0.1", ports["dns"]), timeout=2) as tcp:
            tcp.sendall(packet)
    http_junk = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),  # a TLS hello
        b"GET /" + b"A" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /p/\x00\xff HTTP/1.1\r\nHost: \xff\xfe\r\nX: " + b"y" * 40000 + b"\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /hooks/twilio/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 9\r\n\r\n%%%&&&===",
    ] + junk[:10]
    for packet in http_junk:
        with socket.create_connection(("127.0.0.1", ports["http"]), timeout=5) as conn:
            # The server may answer and close (or reset) before we are done:
            # that is a fine reaction to junk, not a failure of the test.
            try:
                conn.sendall(packet)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(65536)
            except OSError:
                pass
    smtp_junk = [b"\x00\xff\xfe garbage\r\n", b"RCPT TO:<camille.morel16@" + EMAIL_DOMAIN.encode() + b">\r\n",
                 b"DATA\r\n", b"MAIL FROM:<" + b"a" * 5000 + b">\r\n", b"AUTH PLAIN AGFhAGI=\r\n",
                 b"EHLO \xc3\x28\r\n", b"BDAT 10\r\n", b"STARTTLS\r\n"] + [j + b"\r\n" for j in junk[:20]]
    with socket.create_connection(("127.0.0.1", ports["smtp"]), timeout=5) as conn:
        conn.recv(1024)
        for line in smtp_junk:
            conn.sendall(line)
        conn.sendall(b"QUIT\r\n")
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
    # Everything still answers, and a real hit still raises its alert.
    assert dns_query(ports["dns"], f"www.{ZONE}").rcode() == dns.rcode.NOERROR
    assert dns_query(ports["dns"], f"www.{ZONE}", tcp=True).rcode() == dns.rcode.NOERROR
    assert http_get(ports["http"], "/p/k7q2x9code5").status_code == 200
    send_mail(ports["smtp"], f"camille.morel17@{EMAIL_DOMAIN}")
    wait_for(lambda: alerts_for(alert_inbox, ids[5][0]) and alerts_for(alert_inbox, ids[17][0]), 10)
    assert service.running and service.dns.stats()["errors"] == 0


def test_the_demo_resolver_works_without_dnspython(served, monkeypatch):
    """`canary demo` falls back on dnslib (a runtime dependency) when dnspython is absent."""
    import builtins

    from canary.demo import attack as demo_attack

    real_import = builtins.__import__

    def no_dnspython(name, *args, **kwargs):
        if name == "dns" or name.startswith("dns."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dnspython)
    answer = demo_attack.resolve(f"h4x18.{ZONE}", ("127.0.0.1", served[0].ports()["dns"]))
    assert answer == "NOERROR, authoritative, A 127.0.0.1"


# -- `canary listen` as real processes ------------------------------------------------


def _port_free(port: int, kind: int) -> bool:
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


def test_listen_process_writes_its_ports_and_exits_0_on_sigterm(tmp_path, alert_inbox):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(31, 33)})
    listen = ListenProcess(write_config(tmp_path, url, alert_inbox.port), tmp_path / "ports.json")
    try:
        ports = listen.wait_ready()
        assert set(ports) == {"dns", "http", "smtp", "admin"} and all(p > 0 for p in ports.values())
        admin = f"http://127.0.0.1:{ports['admin']}"
        assert requests.get(f"{admin}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"{admin}/readyz", timeout=5)
        assert ready.status_code == 200 and set(ready.json()["checks"].values()) == {"ok"}, ready.text
        assert "canary_dns_queries_total" in requests.get(f"{admin}/metrics", timeout=5).text
        assert requests.get(f"{admin}/", timeout=5, allow_redirects=False).status_code in (302, 303)
        assert dns_query(ports["dns"], f"h4x31.{ZONE}").flags & dns.flags.AA
        assert http_get(ports["http"], "/p/k7q2x9code32").status_code == 200
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=5) as smtp:
            assert smtp.noop()[0] == 250
        with Registry.open(url) as registry:
            wait_for(lambda: len(registry.list_hits()) == 2, 5)
            wait_for(lambda: all(a.delivery_state == "sent" for a in registry.list_alerts())
                     and len(registry.list_alerts()) == 2, 10, what="two alerts sent")
        assert listen.terminate() == 0
    finally:
        listen.close()
    for port, kind in ((ports["dns"], socket.SOCK_DGRAM), (ports["dns"], socket.SOCK_STREAM),
                       (ports["http"], socket.SOCK_STREAM), (ports["smtp"], socket.SOCK_STREAM),
                       (ports["admin"], socket.SOCK_STREAM)):
        assert _port_free(port, kind), f"port {port} still bound"
    assert not listen.ports_file.exists()
    lines = [line for line in listen.stderr().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ready", "stopping", "stopped"} <= {e.get("event") for e in events}
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in events)
    assert TWILIO_TOKEN not in listen.stderr() and "Tilleul" not in listen.stderr()


def test_listen_refuses_a_busy_port_with_one_line(tmp_path, alert_inbox):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry.open(url, create=True).close()
    config = write_config(tmp_path, url, alert_inbox.port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(CANARY_BIN), "--config", str(config), "listen",
             "--dns", "127.0.0.1:0", "--http", f"127.0.0.1:{port}", "--smtp", "127.0.0.1:0",
             "--admin", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=30, env={TWILIO_ENV: TWILIO_TOKEN, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("canary: error:")]
    assert len(errors) == 1 and f"HTTP listener cannot bind 127.0.0.1:{port}" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_two_processes_on_one_postgresql_registry_send_each_alert_once(tmp_path, postgres_url, alert_inbox):
    plant_sources(postgres_url, {"lis-rennes": range(41, 47), "dpi-nantes": range(47, 53)})
    config = write_config(tmp_path, "CANARY_TEST_REGISTRY_URL", alert_inbox.port, url_env=True)
    env = {"CANARY_TEST_REGISTRY_URL": postgres_url}
    first = ListenProcess(config, tmp_path / "a.json", env)
    second = ListenProcess(config, tmp_path / "b.json", env)
    try:
        a, b = first.wait_ready(), second.wait_ready()
        with alert_inbox.lock:
            already = len(alert_inbox.messages)
        # Different canaries on each process, and three canaries hit on both at once.
        jobs = [lambda n=n: http_get(a["http"], f"/p/k7q2x9code{n}") for n in (41, 42, 47)]
        jobs += [lambda n=n: send_mail(b["smtp"], f"camille.morel{n}@{EMAIL_DOMAIN}") for n in (43, 48)]
        jobs += [lambda n=n: dns_query(b["dns"], f"h4x{n}.{ZONE}") for n in (44, 49)]
        for n in (45, 46, 50):
            jobs += [lambda n=n: http_get(a["http"], f"/p/k7q2x9code{n}"),
                     lambda n=n: http_get(b["http"], f"/p/k7q2x9code{n}")]
        threads = [threading.Thread(target=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with Registry.open(postgres_url) as registry:
            wait_for(lambda: len(registry.list_hits()) >= 15, 10, what="15 hits")  # SMTP: rcpt + data
            hits = registry.list_hits()
            alerts = wait_for(lambda: (lambda al: al if len(al) == 10 and all(
                x.delivery_state == "sent" for x in al) else None)(registry.list_alerts()), 15,
                what="10 alerts sent")
        time.sleep(1.0)
        with alert_inbox.lock:
            mine = alert_inbox.messages[already:]
        ids = Counter(str(m["Message-ID"]) for m in mine)
        assert len(mine) == 10 and all(count == 1 for count in ids.values()), ids
        assert ids.keys() == {f"<canary-alert-{x.id}@soc.example>" for x in alerts}
        by_canary = {h.canary_id: h.source for h in hits}
        for message in mine:
            canary = int(SUBJECT_CANARY.search(str(message["Subject"])).group(1))
            assert f"« {by_canary[canary]} »" in str(message["Subject"])
        assert first.terminate() == 0 and second.terminate() == 0
    finally:
        first.close()
        second.close()


class SlowCapture(Capture):
    """A mail server taking 50 ms per message: alerts are still waiting when the listener dies."""

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_inbox():
    capture = SlowCapture()
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0)
    controller.start()
    capture.port = controller.port
    yield capture
    controller.stop()


def test_kill_9_mid_flood_records_every_canary_used_and_the_outbox_resumes(tmp_path, slow_inbox):
    alert_inbox, already = slow_inbox, 0
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    numbers = range(61, 101)  # 40 canaries: 40 alerts to send while the flood goes on
    plant_sources(url, {"lis-rennes": numbers})
    config = write_config(tmp_path, url, alert_inbox.port, timeout="1s")
    # Claims of the killed process expire after 4 s instead of 10 min (a lease must
    # exceed three times the sink timeout, so that a claimed delivery can finish).
    lease = ("--outbox-lease", "4")
    listen = ListenProcess(config, tmp_path / "ports.json", args=lease)
    acknowledged: list[int] = []
    stop = threading.Event()

    def flood(port: int, start: int, step: int) -> None:
        session = requests.Session()
        n = start
        while not stop.is_set():
            code = 61 + n % len(numbers)
            try:
                response = session.get(f"http://127.0.0.1:{port}/p/k7q2x9code{code}?n={n}",
                                       headers={"Host": "portail.example.fr"}, timeout=5)
            except requests.RequestException:
                return  # the listener is gone
            if response.status_code == 200:
                acknowledged.append(n)
            n += step

    try:
        port = listen.wait_ready()["http"]
        threads = [threading.Thread(target=flood, args=(port, i, 4)) for i in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 120, 20, what="120 acknowledged hits")
        with Registry.open(url) as registry:
            wait_for(lambda: len(registry.list_hits()) >= len(numbers), 20, what="40 stored hits")
        with alert_inbox.lock:
            sent_before_kill = len(alert_inbox.messages) - already
        listen.kill()  # SIGKILL: no drain, no cleanup
        stop.set()
        for thread in threads:
            thread.join(10)
        listen.ports_file.unlink()
        restarted = ListenProcess(config, tmp_path / "ports.json", args=lease)
        try:
            restarted.wait_ready()
            with Registry.open(url) as registry:
                hits = registry.list_hits()
                stored = {int(h.evidence["query"].partition("n=")[2]) for h in hits}
                # The portal answers before it stores (a canary link must not answer later than
                # another: listener/deferred.py), so hits still queued at the kill are lost, like
                # DNS hits; what was stored survives, once each.
                assert len(stored) >= len(numbers) and len(hits) == len(stored)
                hit_canaries = {h.canary_id for h in hits}

                def all_sent():
                    found = registry.list_alerts()
                    done = {a.incident_id for a in found if a.delivery_state == "sent"}
                    return found if len(done) == len(found) == len(hit_canaries) else None

                alerts = wait_for(all_sent, 30, what="every alert sent after the restart")
                assert {a.source for a in alerts} == {"lis-rennes"}
            time.sleep(0.5)
            with alert_inbox.lock:
                mine = alert_inbox.messages[already:]
            ids = Counter(str(m["Message-ID"]) for m in mine)
            assert ids.keys() == {f"<canary-alert-{x.id}@soc.example>" for x in alerts}
            # At most the delivery in flight at the kill goes twice (same Message-ID).
            assert sum(ids.values()) - len(ids) <= 1, ids
            assert sent_before_kill < len(alerts)  # the restart really had work left
            assert restarted.terminate() == 0
        finally:
            restarted.close()
    finally:
        stop.set()
        listen.close()
