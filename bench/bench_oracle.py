"""Benchmark: can response time tell a canary from an unknown token? (issue #13.2)

    python bench/bench_oracle.py                  # 1,000 + 1,000 probes per front end, idle and loaded
    python bench/bench_oracle.py --probes 300     # quicker
    python bench/bench_oracle.py --write-docs     # also updates the table in docs/listener.md
    python bench/bench_oracle.py --only dns-tcp   # one front end (repeatable)

A holder of leaked records can probe each record once (every probe is a hit,
so once is all they get before being noticed) and keep those that answer
slower. For each front end -- DNS over UDP and over TCP, SMTP ``RCPT TO``, a
portal link (HTTP GET), a portal login (POST) -- this sends ``--probes``
probes with canary tokens and as many with unknown tokens of the same shape,
shuffled together, to a real ``canary listen`` process on 127.0.0.1 (its own
registry, SQLite, with 2,000 planted canaries; the probes run in this
process, the listener in another, as an attacker's would). It measures each
probe's round trip and reports the accuracy of the best single threshold
("slower than t: canary", or faster): 0.5 is a coin toss, 1.0 tells every
canary. The goal is <= 0.55 on every front end.

Twice: idle, then under background load (two threads sending unknown DNS
queries and portal requests as fast as they are answered), since the
storing of earlier canary hits and a busy server are what made canaries
slower before.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import smtplib
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "listener.md"
BEGIN, END = "<!-- bench_oracle:begin -->", "<!-- bench_oracle:end -->"
FRONT_ENDS = ("dns-udp", "dns-tcp", "smtp-rcpt", "http-get", "login-post")
CANARIES = 2000


def best_threshold_accuracy(canary: list[float], unknown: list[float]) -> float:
    """Accuracy of the best rule "latency > t means canary" (or "<"), over every t."""
    points = sorted([(t, 1) for t in canary] + [(t, 0) for t in unknown])
    total, n_canary = len(points), len(canary)
    # Rule "above t: canary": correct = unknown at or below t + canary above t.
    best = max(n_canary, total - n_canary)  # t below everything / above everything
    unknown_below = canary_below = 0
    for index, (value, is_canary) in enumerate(points):
        if is_canary:
            canary_below += 1
        else:
            unknown_below += 1
        if index + 1 < total and points[index + 1][0] == value:
            continue  # a threshold must separate distinct values
        above = unknown_below + (n_canary - canary_below)
        best = max(best, above, total - above)
    return best / total


def plant(registry_url: str, count: int) -> list:
    from canary.contacts import demo_contacts
    from canary.identity.generator import IdentityGenerator
    from canary.model import Placement, SourceSpec
    from canary.registry import Registry
    from canary.registry.store import TokenTaken
    from canary.tokens import tokens_of

    planted = []
    with Registry.open(registry_url, create=True) as registry:
        registry.add_source(SourceSpec(name="lis-bench", seeder="sql", url="sqlite:///unused.db",
                                       establishment="Laboratoire de test"))
        batch = registry.new_batch("lis-bench", None, "bench", count)
        generator = IdentityGenerator(demo_contacts(), seed=11, reserve_phones=False)
        while len(planted) < count:
            identity = generator.generate()
            try:
                record = registry.add_planned(batch, identity, tokens_of(identity))
            except TokenTaken:
                continue
            registry.mark_planted(record.id, Placement(rows=()))
            planted.append(identity)
    return planted


def write_config(folder: Path, registry_url: str) -> Path:
    from canary.contacts import DEMO_DNS_ZONE, DEMO_EMAIL_DOMAINS, DEMO_PORTAL_URL

    path = folder / "canary.toml"
    path.write_text(f"""
[registry]
url = "{registry_url}"

[contacts]
email_domains = {json.dumps(list(DEMO_EMAIL_DOMAINS))}
dns_zone = "{DEMO_DNS_ZONE}"
portal_url = "{DEMO_PORTAL_URL}"
phone_pool = ["+33639980101"]

[listener]
smtp_evidence_dir = "evidence"
dns_rate_limit = 0
smtp_max_per_network = 100
dns_tcp_max_per_network = 100
""", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def look_alike(value: str, rng: random.Random) -> str:
    """An unknown token of the same shape: same length, same kinds of characters."""
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif ch.isalpha():
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(ch)
    return "".join(out)


class Prober:
    """One client per front end, kept open between probes like an attacker's would be."""

    def __init__(self, ports: dict[str, int], zone: str) -> None:
        import dns.message

        self.ports, self.zone = ports, zone
        self._dns = dns.message
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.settimeout(5)
        self.tcp = socket.create_connection(("127.0.0.1", ports["dns"]), timeout=5)
        self.smtp = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10)
        self.smtp.ehlo("probe.example")
        self.smtp.mail("probe@probe.example")
        self._rcpts = 0
        self.http = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=10)

    def close(self) -> None:
        for closing in (self.udp.close, self.tcp.close, self.smtp.close, self.http.close):
            try:
                closing()
            except Exception:
                pass

    def dns_udp(self, label: str) -> float:
        wire = self._dns.make_query(f"{label}.{self.zone}", "A").to_wire()
        started = time.perf_counter()
        self.udp.sendto(wire, ("127.0.0.1", self.ports["dns"]))
        self.udp.recvfrom(4096)
        return time.perf_counter() - started

    def dns_tcp(self, label: str) -> float:
        wire = self._dns.make_query(f"{label}.{self.zone}", "A").to_wire()
        started = time.perf_counter()
        self.tcp.sendall(len(wire).to_bytes(2, "big") + wire)
        size = int.from_bytes(_recv_exact(self.tcp, 2), "big")
        _recv_exact(self.tcp, size)
        return time.perf_counter() - started

    def smtp_rcpt(self, address: str) -> float:
        if self._rcpts >= 40:  # under the recipient limit (50) and the per-command limit (100)
            self.smtp.quit()
            self.smtp = smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=10)
            self.smtp.ehlo("probe.example")
            self.smtp.mail("probe@probe.example")
            self._rcpts = 0
        self._rcpts += 1
        started = time.perf_counter()
        self.smtp.rcpt(address)
        return time.perf_counter() - started

    def _request(self, method: str, path: str, host: str, body: str | None = None) -> float:
        headers = {"Host": host}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        self.http.request(method, path, body=body, headers=headers)
        self.http.getresponse().read()
        return time.perf_counter() - started

    def http_get(self, url: str) -> float:
        parts = urlsplit(url)
        return self._request("GET", parts.path, parts.netloc)

    def login_post(self, url: str, login: str) -> float:
        parts = urlsplit(url)
        body = urlencode({"identifiant": login, "motdepasse": "Pas-le-bon-1"})
        return self._request("POST", parts.path, parts.netloc, body)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def probes_for(front_end: str, identity, rng: random.Random, canary: bool):
    """(method name, argument) of one probe with this identity's token, or a look-alike."""
    if front_end in ("dns-udp", "dns-tcp"):
        label = identity.dns_label if canary else look_alike(identity.dns_label, rng)
        return front_end.replace("-", "_"), (label,)
    if front_end == "smtp-rcpt":
        local, _, domain = identity.email.partition("@")
        return "smtp_rcpt", ((identity.email if canary else f"{look_alike(local, rng)}@{domain}"),)
    parts = urlsplit(identity.portal_url)
    if front_end == "http-get":
        code = parts.path.rstrip("/").rpartition("/")[2]
        url = identity.portal_url if canary else identity.portal_url[:-len(code)] + look_alike(code, rng)
        return "http_get", (url,)
    base = identity.portal_url[:identity.portal_url.rstrip("/").rfind("/") + 1]
    login = identity.portal_login if canary else look_alike(identity.portal_login, rng)
    return "login_post", (base, login)


def measure(prober: Prober, front_end: str, identities: list, count: int, rng: random.Random) -> float:
    chosen = rng.sample(identities, 2 * count)  # every canary probed once, each look-alike is new
    plan = [(True, identity) for identity in chosen[:count]] + [(False, identity) for identity in chosen[count:]]
    rng.shuffle(plan)
    canary_times, unknown_times = [], []
    for is_canary, identity in plan:
        method, args = probes_for(front_end, identity, rng, is_canary)
        elapsed = getattr(prober, method)(*args)
        (canary_times if is_canary else unknown_times).append(elapsed)
    return best_threshold_accuracy(canary_times, unknown_times)


def background(ports: dict[str, int], zone: str, stop: threading.Event) -> list[threading.Thread]:
    import dns.message

    def dns_load() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(1)
        rng = random.Random(3)
        while not stop.is_set():
            label = "".join(rng.choice(string.ascii_lowercase) for _ in range(10))
            sock.sendto(dns.message.make_query(f"{label}.{zone}", "A").to_wire(), ("127.0.0.1", ports["dns"]))
            try:
                sock.recvfrom(4096)
            except OSError:
                pass
        sock.close()

    def http_load() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
        while not stop.is_set():
            try:
                connection.request("GET", "/acces/zz" + str(random.randrange(10**9)))
                connection.getresponse().read()
            except Exception:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
        connection.close()

    threads = [threading.Thread(target=job, daemon=True) for job in (dns_load, http_load)]
    for thread in threads:
        thread.start()
    return threads


def run(probes: int, front_ends: tuple[str, ...] = FRONT_ENDS) -> dict[str, dict[str, float]]:
    from canary.contacts import DEMO_DNS_ZONE

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        registry_url = f"sqlite:///{folder / 'registry.db'}"
        identities = plant(registry_url, max(CANARIES, 4 * probes))
        config = write_config(folder, registry_url)
        ports_file = folder / "ports.json"
        canary_bin = Path(sys.executable).with_name("canary")
        env = {**os.environ, "CANARY_CONFIG": str(config)}
        listen = subprocess.Popen([str(canary_bin), "listen", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                   "--smtp", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ports-file",
                                   str(ports_file)], env=env, cwd=folder, stdout=subprocess.DEVNULL,
                                  stderr=(folder / "listener.log").open("wb"))
        try:
            deadline = time.monotonic() + 60
            while not ports_file.exists():
                if listen.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("canary listen did not start: " + (folder / "listener.log").read_text()[-2000:])
                time.sleep(0.1)
            ports = json.loads(ports_file.read_text())
            rng = random.Random(1)
            for phase in ("idle", "loaded"):
                stop = threading.Event()
                threads = background(ports, DEMO_DNS_ZONE, stop) if phase == "loaded" else []
                prober = Prober(ports, DEMO_DNS_ZONE)
                try:
                    for front_end in front_ends:
                        pool = identities[:]  # each phase and front end draws its own canaries
                        accuracy = measure(prober, front_end, pool, probes, rng)
                        results.setdefault(front_end, {})[phase] = accuracy
                        print(f"{phase:6} {front_end:10} accuracy {accuracy:.3f}", flush=True)
                finally:
                    prober.close()
                    stop.set()
                    for thread in threads:
                        thread.join(5)
        finally:
            listen.terminate()
            listen.wait(60)
    return results


def table(results: dict[str, dict[str, float]], probes: int) -> str:
    lines = [f"Best single-probe threshold accuracy, {probes} canary and {probes} unknown probes per front end "
             f"({platform.python_version()}, {os.cpu_count()} CPU, {time.strftime('%Y-%m-%d')}); goal <= 0.55:",
             "", "| front end | idle | under load |", "| --- | --- | --- |"]
    for front_end in FRONT_ENDS:
        row = results.get(front_end, {})
        lines.append(f"| {front_end} | {row.get('idle', float('nan')):.3f} | {row.get('loaded', float('nan')):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000, help="canary probes (and as many unknown) per front end")
    parser.add_argument("--write-docs", action="store_true", help="update the table in docs/listener.md")
    parser.add_argument("--only", choices=FRONT_ENDS, action="append",
                        help="measure this front end only (repeatable; not with --write-docs)")
    args = parser.parse_args()
    if args.only and args.write_docs:
        parser.error("--write-docs needs every front end")
    results = run(args.probes, tuple(args.only or FRONT_ENDS))
    text = table(results, args.probes)
    print(text)
    if args.write_docs:
        doc = DOC.read_text(encoding="utf-8")
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in doc:
            doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.DOTALL)
        else:
            doc += "\n" + block + "\n"
        DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
