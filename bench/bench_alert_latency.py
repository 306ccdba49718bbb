"""Benchmark: hit-to-alert-email latency of a running listener.

    python bench/bench_alert_latency.py                      # 300 hits at 5/s, SQLite registry
    python bench/bench_alert_latency.py --write-docs         # also updates docs/listener.md
    python bench/bench_alert_latency.py --poll-interval 2s   # another alerts.poll_interval
    python bench/bench_alert_latency.py --registry-url postgresql+psycopg://postgres@127.0.0.1/canary_bench

``canary listen`` runs as a real process on 127.0.0.1 (port 0, ports file),
over a fresh registry holding one canary per hit; its alerts go by email to a
local aiosmtpd server in this process. The script fires N hits at a steady
rate, a mix of HTTP (GET of the canary's portal link), SMTP (a mail to the
canary's address) and DNS (an A query for the canary's hostname, over UDP),
each on its own canary, so each is the first hit of an incident and sends its
alert at once. Latency is from the moment the hit is sent to the moment the
alert email, matched by the canary number in its subject, is received. The
script checks that exactly one email arrived per hit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "listener.md"
START, END = "<!-- bench-alert-latency:start -->", "<!-- bench-alert-latency:end -->"
SUBJECT_CANARY = re.compile(r"canari #(\d+)")


class Inbox:
    """aiosmtpd handler: arrival time of each alert, by canary id."""

    def __init__(self) -> None:
        self.arrivals: dict[int, list[float]] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        now = time.time()
        subject = str(message_from_bytes(envelope.content, policy=policy.default)["Subject"])
        found = SUBJECT_CANARY.search(subject)
        if found:
            with self.lock:
                self.arrivals.setdefault(int(found.group(1)), []).append(now)
        return "250 OK"


def start_inbox(inbox: Inbox):
    from aiosmtpd.controller import Controller

    class _Controller(Controller):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    return controller


def plant(registry_url: str, count: int) -> list:
    """``count`` canaries in one source, straight into the registry (no target database)."""
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
        generator = IdentityGenerator(demo_contacts(), seed=7, reserve_phones=False)
        while len(planted) < count:
            identity = generator.generate()
            try:
                record = registry.add_planned(batch, identity, tokens_of(identity))
            except TokenTaken:  # the demo phone pool is small: draw again
                continue
            registry.mark_planted(record.id, Placement(rows=()))
            planted.append((record.id, identity))
    return planted


def write_config(folder: Path, registry_env: str, alert_port: int, poll: str | None) -> Path:
    from canary.contacts import DEMO_DNS_ZONE, DEMO_EMAIL_DOMAINS, DEMO_PORTAL_URL

    poll_line = f'poll_interval = "{poll}"' if poll else ""
    path = folder / "canary.toml"
    path.write_text(f"""
[registry]
url_env = "{registry_env}"

[contacts]
email_domains = {json.dumps(list(DEMO_EMAIL_DOMAINS))}
dns_zone = "{DEMO_DNS_ZONE}"
portal_url = "{DEMO_PORTAL_URL}"
phone_pool = ["+33639980101"]

[listener]
smtp_evidence_dir = "evidence"

[alerts]
max_emails_per_hour = 10000
{poll_line}

[alerts.email]
host = "127.0.0.1"
port = {alert_port}
to = ["soc@bench.example"]
timeout = "10s"
""", encoding="utf-8")
    return path


def fire(kind: str, identity, ports: dict[str, int]) -> None:
    from urllib.parse import urlsplit

    if kind == "http":
        import requests

        parts = urlsplit(identity.portal_url)
        requests.get(f"http://127.0.0.1:{ports['http']}{parts.path}", headers={"Host": parts.netloc},
                     timeout=10).raise_for_status()
    elif kind == "smtp":
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as smtp:
            smtp.sendmail("bench@sender.example", [identity.email],
                          f"Subject: bench\r\nTo: {identity.email}\r\n\r\nhello\r\n".encode())
    else:
        import dns.message
        import dns.query

        dns.query.udp(dns.message.make_query(identity.hostname, "A"), "127.0.0.1", port=ports["dns"], timeout=5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run(args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="canary-bench-latency-"))
    registry_url = args.registry_url or f"sqlite:///{folder / 'registry.db'}"
    planted = plant(registry_url, args.hits)
    inbox = Inbox()
    controller = start_inbox(inbox)
    config = write_config(folder, "CANARY_BENCH_REGISTRY_URL", controller.port, args.poll_interval)
    ports_file = folder / "ports.json"
    env = {**os.environ, "CANARY_CONFIG": str(config), "CANARY_BENCH_REGISTRY_URL": registry_url}
    command = [str(Path(sys.executable).with_name("canary")), "listen", "--dns", "127.0.0.1:0",
               "--http", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ports-file", str(ports_file)]
    stderr = (folder / "listener.log").open("wb")
    listener = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, cwd=folder)
    try:
        deadline = time.monotonic() + 30
        while not ports_file.exists():
            if listener.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"canary listen did not start; see {folder / 'listener.log'}")
            time.sleep(0.05)
        ports = json.loads(ports_file.read_text())
        mix = [k for k, share in (("http", args.http), ("smtp", args.smtp), ("dns", args.dns))
               for _ in range(share)]
        rng = random.Random(11)
        sent: dict[int, tuple[str, float]] = {}
        interval = 1.0 / args.rate
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = []
            for n, (canary_id, identity) in enumerate(planted):
                target = began + n * interval
                time.sleep(max(0.0, target - time.monotonic()))
                kind = rng.choice(mix)
                sent[canary_id] = (kind, time.time())
                futures.append(pool.submit(fire, kind, identity, ports))
            for future in futures:
                future.result()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with inbox.lock:
                if len(inbox.arrivals) >= len(sent):
                    break
            time.sleep(0.1)
        time.sleep(max(1.0, 2 * _poll_seconds(args.poll_interval)))  # anything more would be a duplicate
    finally:
        listener.terminate()
        listener.wait(30)
        stderr.close()
        controller.stop()
    with inbox.lock:
        arrivals = dict(inbox.arrivals)
    missing = sorted(set(sent) - set(arrivals))
    duplicates = sum(len(times) - 1 for times in arrivals.values())
    latencies: dict[str, list[float]] = {"http": [], "smtp": [], "dns": []}
    for canary_id, (kind, at) in sent.items():
        if canary_id in arrivals:
            latencies[kind].append(arrivals[canary_id][0] - at)
    return {"sent": len(sent), "received": len(arrivals), "missing": missing, "duplicates": duplicates,
            "latencies": latencies, "registry": "PostgreSQL" if args.registry_url else "SQLite",
            "poll": args.poll_interval or _default_poll(), "rate": args.rate}


def _default_poll() -> str:
    from canary.alerts.config import SETTINGS

    return next(s.default for s in SETTINGS if s.name == "alerts.poll_interval")


def _poll_seconds(text: str | None) -> float:
    from canary.alerts.config import parse_duration

    return parse_duration(text or _default_poll(), "poll").total_seconds()


def table(result: dict) -> str:
    rows = ["| hits | count | p50 | p95 | p99 | max |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    groups = [("HTTP (portal link)", result["latencies"]["http"]), ("SMTP (mail to the address)",
              result["latencies"]["smtp"]), ("DNS (hostname lookup, UDP)", result["latencies"]["dns"]),
              ("all", [v for values in result["latencies"].values() for v in values])]
    for name, values in groups:
        if not values:
            continue
        cells = [f"{percentile(values, q) * 1000:,.0f} ms" for q in (50, 95, 99, 100)]
        rows.append(f"| {name} | {len(values)} | " + " | ".join(cells) + " |")
    load = os.getloadavg()[0]
    rows += ["", f"{result['sent']} hits at {result['rate']:g}/s, each on its own canary; "
             f"{result['received']} alert emails received, {len(result['missing'])} missing, "
             f"{result['duplicates']} duplicates. `alerts.poll_interval` {result['poll']}, "
             f"{result['registry']} registry, `canary listen` and the load on one machine: "
             f"{os.cpu_count()} CPUs, load average {load:.1f} at the end, CPython {platform.python_version()}."]
    return "\n".join(rows)


def write_docs(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"markers {START} / {END} not found in {DOC}")
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hits", type=int, default=300)
    parser.add_argument("--rate", type=float, default=5.0, help="hits per second")
    parser.add_argument("--http", type=int, default=4, help="share of HTTP hits")
    parser.add_argument("--smtp", type=int, default=3, help="share of SMTP hits")
    parser.add_argument("--dns", type=int, default=3, help="share of DNS hits")
    parser.add_argument("--poll-interval", help="alerts.poll_interval (default: the setting's default)")
    parser.add_argument("--registry-url", help="registry URL (default: a fresh SQLite file)")
    parser.add_argument("--write-docs", action="store_true", help=f"update the table in {DOC.name}")
    args = parser.parse_args()
    result = run(args)
    text = table(result)
    print(text)
    if result["missing"] or result["duplicates"]:
        raise SystemExit(f"FAILED: {len(result['missing'])} alerts missing, {result['duplicates']} duplicates")
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
