"""Resource floods against a real `canary listen` process, with small caps and deadlines:
DNS-over-TCP clients that pipeline and never read, SMTP idle sessions over the cap, HTTP and
HTTPS slowloris. While each runs, the listener's memory (RSS) and open descriptors are sampled
and must stay bounded; canary tokens are answered exactly like unknown ones; once it is over,
the descriptors come back down, every hit journaled is stored (counted in = counted out, and
in the registry) and the log holds no traceback. Loopback, ports 0, a few seconds each."""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest
import sqlalchemy as sa
import trustme

from canary.registry.schema import hits as hits_table
from support.listener_helpers import EMAIL_DOMAIN, PORTAL, ZONE, ListenProcess, plant_sources, wait_for

HTTP_HOST = "portail.example.fr"
DNS_CAP, SMTP_CAP, HTTP_CAP = 40, 20, 60
RSS_GROWTH_LIMIT = 40 * 1024 * 1024  # bytes a flood may add to the listener's memory


@dataclass
class Listener:
    process: ListenProcess
    ports: dict[str, int]
    url: str
    ca: trustme.CA

    @property
    def pid(self) -> int:
        return self.process.proc.pid


@pytest.fixture(scope="module")
def listener(tmp_path_factory):
    folder = tmp_path_factory.mktemp("floods")
    url = f"sqlite:///{folder / 'registry.db'}"
    plant_sources(url)
    ca = trustme.CA()
    issued = ca.issue_cert(HTTP_HOST, "127.0.0.1")
    (folder / "fullchain.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(folder / "privkey.pem"))
    (folder / "canary.toml").write_text(f"""
[registry]
url = "{url}"

[contacts]
email_domains = ["{EMAIL_DOMAIN}"]
dns_zone = "{ZONE}"
portal_url = "{PORTAL}"
phone_pool = ["+33612349999"]

[listener]
smtp_evidence_dir = "evidence"
dns_rate_limit = 0
dns_tcp_max_connections = {DNS_CAP}
dns_tcp_max_per_network = {DNS_CAP}
dns_tcp_idle_timeout = 0.5
dns_tcp_max_duration = 2.0
smtp_max_connections = {SMTP_CAP}
smtp_max_per_network = {SMTP_CAP}
smtp_timeout = 2
smtp_session_limit = 5
http_threads = 4
http_connection_limit = {HTTP_CAP}
http_timeout = 2
http_request_timeout = 1
tls_cert_file = "fullchain.pem"
tls_key_file = "privkey.pem"

[telephony]
hooks_path = "/hooks"
""", encoding="utf-8")
    process = ListenProcess(folder / "canary.toml", folder / "ports.json", args=("--https", "127.0.0.1:0"))
    try:
        ports = process.wait_ready()
        yield Listener(process, ports, url, ca)
        assert process.terminate() == 0
    finally:
        process.close()


# -- measuring the listener from outside -------------------------------------------------


def rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockets(pid: int) -> int:
    """Open sockets only: the registry's pool may open another SQLite connection meanwhile."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except OSError:
            pass
    return count


class Sampler:
    """The listener's RSS and descriptor count, every 50 ms while a flood runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_before, self.fds_before, self.sockets_before = rss(pid), fds(pid), sockets(pid)
        self.rss_max, self.fds_max = self.rss_before, self.fds_before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.rss_max = max(self.rss_max, rss(self.pid))
            self.fds_max = max(self.fds_max, fds(self.pid))

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def assert_bounded(self, cap: int) -> None:
        print(f"RSS {self.rss_before / 2**20:.1f} -> max {self.rss_max / 2**20:.1f} MiB, "
              f"descriptors {self.fds_before} -> max {self.fds_max}")
        assert self.rss_max - self.rss_before < RSS_GROWTH_LIMIT, (self.rss_before, self.rss_max)
        assert self.fds_max - self.fds_before <= cap + 10, (self.fds_before, self.fds_max)

    def released(self) -> bool:
        return sockets(self.pid) <= self.sockets_before


def journal_counts(listener: Listener) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{listener.ports['admin']}/metrics", timeout=5).read().decode()
    counts = {}
    for line in text.splitlines():
        found = re.match(r'canary_hit_journal_(entries_total\{direction="\w+",outcome="(\w+)"\}|pending) (\S+)', line)
        if found:
            counts[found.group(2) or "pending"] = float(found.group(3))
    return counts


# -- what a canary and an unknown token get ----------------------------------------------


def dns_answer(port: int, label: str, tcp: bool = False) -> tuple[int, list[str]]:
    query = dns.message.make_query(f"{label}.{ZONE}", "A")
    ask = dns.query.tcp if tcp else dns.query.udp
    response = ask(query, "127.0.0.1", port=port, timeout=3)
    return response.rcode(), sorted(rdata.to_text() for rrset in response.answer for rdata in rrset)


def http_get(port: int, path: str, context: ssl.SSLContext | None = None, form: str = "") -> tuple[bytes, float]:
    """GET ``path``, or POST ``form`` to it; the answer without its Date, and how long it took."""
    started = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = context.wrap_socket(raw, server_hostname=HTTP_HOST) if context else raw
    method = "POST" if form else "GET"
    body = (f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n{form}"
            if form else "\r\n")
    with sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {HTTP_HOST}\r\nConnection: close\r\n{body}".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    without_date = re.sub(rb"\r\nDate: [^\r]*", b"", answer)
    return without_date, time.monotonic() - started


def smtp_rcpt(port: int, address: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.ehlo("probe.example")
        client.mail("probe@probe.example")
        return client.rcpt(address)


# -- the floods ----------------------------------------------------------------------------


def test_dns_tcp_clients_that_pipeline_and_never_read(listener):
    port = listener.ports["dns"]
    framed = [dns.message.make_query(f"{label}.{ZONE}", "A").to_wire() for label in ("h4x1", "h4x2", "zz9unknown")]
    # Two canary queries, then unknown ones, pipelined; the answers are never read.
    wire = b"".join(len(data).to_bytes(2, "big") + data for data in framed) + (
        len(framed[2]).to_bytes(2, "big") + framed[2]) * 40000
    hogs: list[socket.socket] = []
    with Sampler(listener.pid) as sampler:
        for _ in range(DNS_CAP + 10):  # over the cap: the last ones wait in the backlog
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            hogs.append(sock)
        sent = [0] * len(hogs)
        until = time.monotonic() + 1.0
        while time.monotonic() < until:  # push until the kernel buffers are full both ways
            for n, sock in enumerate(hogs):
                try:
                    sent[n] += sock.send(wire[sent[n]:sent[n] + 65536])
                except (BlockingIOError, OSError):
                    pass
            time.sleep(0.01)
        assert sum(sent) > 2 * 1024 * 1024  # megabytes of queries nobody reads the answers of
        # Meanwhile a canary and an unknown label get the same answer over UDP.
        assert dns_answer(port, "h4x15") == dns_answer(port, "zzz15unknown")
        # Every hog is cut within its absolute deadline, those of the backlog in turn.
        wait_for(sampler.released, 10, what="the hogs closed")
    for sock in hogs:
        sock.close()
    sampler.assert_bounded(DNS_CAP)
    assert dns_answer(port, "h4x16", tcp=True) == dns_answer(port, "zzz16unknown", tcp=True)


def test_smtp_idle_sessions_over_the_cap(listener):
    port = listener.ports["smtp"]
    log_lines = _session_log_lines(listener)
    idle: list[socket.socket] = []
    with Sampler(listener.pid) as sampler:
        greetings = []
        for _ in range(SMTP_CAP + 15):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            greetings.append(sock.recv(1024)[:3])
            idle.append(sock)
        assert greetings.count(b"220") == SMTP_CAP and greetings.count(b"421") == 15
        # Over the cap, a canary address and an unknown one are refused alike...
        with pytest.raises(smtplib.SMTPConnectError):
            smtp_rcpt(port, f"camille.morel3@{EMAIL_DOMAIN}")
        # ...and once the idle sessions are cut (smtp_timeout), answered alike.
        wait_for(sampler.released, 6, what="the idle sessions cut")
    for sock in idle:
        sock.close()
    sampler.assert_bounded(SMTP_CAP)
    assert smtp_rcpt(port, f"camille.morel3@{EMAIL_DOMAIN}") == smtp_rcpt(port, f"camille.morel99@{EMAIL_DOMAIN}")
    # Refusals and cut sessions are summarised, not logged one line each.
    assert _session_log_lines(listener) - log_lines < 15


def _session_log_lines(listener) -> int:
    """Log lines other than stored hits (hits of earlier floods are still being logged as they drain)."""
    return sum(1 for line in listener.process.stderr().splitlines() if '"canary.hits.sink"' not in line)


@pytest.mark.parametrize("front_end", ["http", "https"])
def test_slowloris_does_not_keep_new_clients_out(listener, front_end):
    port = listener.ports[front_end]
    context = None
    if front_end == "https":
        context = ssl.create_default_context()
        listener.ca.configure_trust(context)
    slow: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.3):
            for sock in slow:
                try:
                    sock.send(b"X")
                except OSError:
                    pass

    with Sampler(listener.pid) as sampler:
        for _ in range(HTTP_CAP // 2):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock = context.wrap_socket(raw, server_hostname=HTTP_HOST) if context else raw
            sock.sendall(f"GET {PORTAL[len('https://portail.example.fr'):]}x HTTP/1.1\r\nHost: {HTTP_HOST}\r\n".encode())
            slow.append(sock)
        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        try:
            time.sleep(0.3)
            # More slow clients than worker threads; new ones are answered at once, canary or not.
            canary, canary_took = http_get(port, "/p/k7q2x9code4", context)
            unknown, unknown_took = http_get(port, "/p/k7q2x9zzzzz4", context)
            assert canary == unknown and canary.startswith(b"HTTP/1.1 200")
            assert canary_took < 1.0 and unknown_took < 1.0
            # A canary's portal login, with its own password, and an unknown one: the same page.
            canary_login, _ = http_get(port, "/p/", context, "identifiant=cmorel5&motdepasse=Tilleul%212024")
            unknown_login, _ = http_get(port, "/p/", context, "identifiant=cmorez5&motdepasse=Tilleul%212024")
            assert canary_login == unknown_login and b"incorrect" in canary_login
            wait_for(sampler.released, 5, what="the slow clients cut")
        finally:
            stop.set()
            feeder.join()
            for sock in slow:
                sock.close()
    sampler.assert_bounded(HTTP_CAP)


def test_every_hit_is_stored_and_the_log_holds_no_traceback(listener):
    wait_for(lambda: journal_counts(listener).get("pending") == 0, 20, what="the journal drained")
    counts = journal_counts(listener)
    engine = sa.create_engine(listener.url)
    try:
        with engine.connect() as connection:
            stored = dict(connection.execute(sa.select(hits_table.c.channel, sa.func.count())
                                             .group_by(hits_table.c.channel)).all())
            logins = connection.execute(sa.select(hits_table.c.evidence)
                                        .where(hits_table.c.kind == "portal_login")).scalars().all()
    finally:
        engine.dispose()
    # Counted in = counted out, and all of it in the registry.
    assert counts["rejected"] == 0 and counts["duplicates"] == 0
    assert counts["appended"] + counts["replayed"] == counts["stored"] == sum(stored.values())
    # Every canary probe that was answered is there: DNS, the two probes and the hogs' canary
    # queries the server read; SMTP, the canary and the unknown address at our domain (both
    # are stored, the unknown one unmatched); HTTP and HTTPS, one canary link and one canary
    # login each (the unknown codes and logins did the same work, kept nowhere).
    assert stored.get("dns", 0) >= 4 and stored.get("smtp") == 2 and stored.get("http") == 4, stored
    assert [e["credential"] for e in logins] == [True, True]  # its password, checked before the answer
    log = listener.process.stderr()
    assert "Traceback" not in log and '"exc"' not in log
