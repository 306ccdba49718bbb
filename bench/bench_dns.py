"""Benchmark: the DNS listener against dnslib's stock DNSServer, with dnsperf.

    python bench/bench_dns.py                  # 12 s per server, prints a table
    python bench/bench_dns.py --write-docs     # also updates the "Benchmark" section of docs/dns.md
    python bench/bench_dns.py --runs uvloop:memory --no-stock   # quick look

Needs dnsperf (Debian package `dnsperf`). The listener (by default on
uvloop and on the standard asyncio loop with an in-memory HitSink, then on
uvloop with the hit journal and the registry's, as `canary listen` runs) and
the stock server run on 127.0.0.1, one after the other, against the same query file: 10,000 names, one in ten a
canary label known to the sink, the rest unknown labels (90 % A, 10 % AAAA).
The listener runs with its rate limiter ON, set high (10,000,000 responses/s
per /24, since all of dnsperf's queries come from one address). The stock
server is dnslib's threaded DNSServer with a resolver that answers A for
every name and a logger that prints nothing.

Sinks: ``memory`` is a set and a list (``--sink-delay`` makes each
``observe`` sleep, like a database write); ``registry`` is the real
RegistryHitSink (canary/hits/sink.py) over a fresh SQLite registry in a
temporary folder, with the 1,000 canaries planted in it and no alerter,
called by the DNS front end's own worker thread, one transaction a hit;
``journal`` is what `canary listen` runs: the same sink behind the hit
journal (canary/hits/journal.py: the front end appends a line, the journal's
writer stores batches of hits in one transaction each). The script checks
that exactly one hit per canary query dnsperf sent reached the sink, and
counts the DNS hits in the registry's hits table.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = "rdv-portail.fr"
MAIL = ("courriel-sante.fr",)
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
DOC = ROOT / "docs" / "dns.md"
START, END = "<!-- bench-dns:start -->", "<!-- bench-dns:end -->"
DEFAULT_RUNS = "uvloop:memory,asyncio:memory,uvloop:journal"
SINKS = ("memory", "registry", "journal")


class ListSink:
    """In-memory HitSink: a set of labels and a list of observations."""

    def __init__(self, labels: set[str], delay: float) -> None:
        self.labels = labels
        self.delay = delay
        self.stored: list = []

    def known(self, kind, value) -> bool:
        return value in self.labels

    def observe(self, observation) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.stored.append(observation)


def query_file(path: Path, lines: int, seed: int) -> tuple[set[str], list[bool]]:
    rng = random.Random(seed)
    label = lambda: "".join(rng.choice(ALPHABET) for _ in range(16))  # noqa: E731
    canaries = {label() for _ in range(1000)}
    pool = sorted(canaries)
    flags = []
    with path.open("w") as out:
        for i in range(lines):
            canary = i % 10 == 0
            name = f"{rng.choice(pool) if canary else label()}.{ZONE}"
            if not canary and i % 10 == 5:
                name = "www." + name
            out.write(f"{name} {'AAAA' if i % 10 == 3 else 'A'}\n")
            flags.append(canary)
    return canaries, flags


def dnsperf(port: int, data: Path, seconds: int, outstanding: int) -> dict[str, float]:
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds),
            "-q", str(outstanding), "-t", "2", "-c", "4", "-T", "1"]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    figures = {}
    for key, pattern in (("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                         ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)"),
                         ("latency", r"Average Latency \(s\):\s+([\d.]+)")):
        match = re.search(pattern, result.stdout)
        if not match:
            raise SystemExit(f"cannot read dnsperf output:\n{result.stdout}\n{result.stderr}")
        figures[key] = float(match.group(1))
    return figures


def expected_hits(sent: int, flags: list[bool]) -> int:
    """dnsperf reads the file in order and starts over at its end."""
    rounds, rest = divmod(sent, len(flags))
    return rounds * sum(flags) + sum(flags[:rest])


class CountingSink:
    """Wraps a HitSink; counts the observations it stored."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.stored: list = []
        self.known = sink.known

    def observe(self, observation) -> None:
        self.sink.observe(observation)
        self.stored.append(observation.value)


def registry_sink(folder: Path, labels: set[str]):
    """A RegistryHitSink over a new SQLite registry holding one canary per label."""
    from datetime import date

    from canary.hits.sink import RegistryHitSink
    from canary.model import Address, Birthplace, Identity, Placement, Practitioner, Sex, SourceSpec
    from canary.registry import Registry
    from canary.hits.tokenindex import TokenIndex
    from canary.tokens import tokens_of

    url = f"sqlite:///{folder / 'registry.db'}"
    registry = Registry.open(url, create=True)
    registry.add_source(SourceSpec(name="bench-lis", seeder="sql", url_env="LIS_URL"))
    batch = registry.new_batch("bench-lis", "bench", "bench", len(labels))
    for n, label in enumerate(sorted(labels)):
        identity = Identity(
            sex=Sex.FEMALE, civility="Mme", first_names=("Camille",), last_name="Morel", birth_name="Morel",
            birth_date=date(1984, 5, 7), birthplace=Birthplace("75115", "Paris 15e Arrondissement", "75"),
            nir=f"{2840575115000 + n:013d}45", address=Address("12 rue des Tilleuls", "69003", "Lyon", "69383", "69"),
            phone=f"+3361234{n:04d}", phone2=None, email=f"camille.morel{n}@{MAIL[0]}", url_code=f"code{label}",
            portal_url=f"https://mon-espace.{ZONE}/acces/code{label}", dns_label=label, hostname=f"{label}.{ZONE}",
            portal_login=f"cmorel{n}", portal_password="Tilleul!2024", blood_group="A+", allergies=(),
            treatments=(), gp=Practitioner("Dr", "Paul", "Girard", "10001234567"))
        record = registry.add_planned(batch, identity, tokens_of(identity))
        registry.mark_planted(record.id, Placement(rows=({"table": "patients", "key": {"id": n}, "values": {}},)))
    index = TokenIndex(registry)
    index.refresh()
    return RegistryHitSink(registry, index), registry, url


def count_dns_hits(url: str) -> int:
    import sqlalchemy as sa

    from canary.registry.schema import hits

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(hits)
                                   .where(hits.c.channel == "dns")).scalar_one()
    engine.dispose()
    return int(count)


def run_listener(data: Path, folder: Path, labels: set[str], flags: list[bool], args, loop: str,
                 sink_kind: str) -> dict:
    from listener.dns import DnsConfig, DnsServer

    registry = url = journal = None
    if sink_kind == "registry":
        inner, registry, url = registry_sink(folder, labels)
        sink = CountingSink(inner)
    elif sink_kind == "journal":
        from canary.hits.journal import HitJournal, JournalSink

        inner, registry, url = registry_sink(folder, labels)
        journal = HitJournal(folder / "hits.journal", inner)
        journal.open()
        journal.start()
        sink = JournalSink(journal, inner)
    else:
        sink = ListSink(labels, args.sink_delay)
    config = DnsConfig.from_table({"dns": "127.0.0.1:0", "public_ip": "203.0.113.5",
                                   "public_ipv6": "2001:db8::5", "dns_rate_limit": 10_000_000,
                                   "dns_uvloop": loop == "uvloop", "dns_hit_queue": 1_000_000})
    server = DnsServer(config, sink, dns_zone=ZONE, email_domains=MAIL)
    server.start()
    storing = journal if journal is not None else server.hits  # what holds the hits not yet stored
    try:
        started = time.monotonic()
        figures = dnsperf(server.addresses[0][1], data, args.seconds, args.outstanding)
        finished = time.monotonic()
        figures["backlog"] = storing.pending()
        drained = storing.wait_idle(timeout=1800)
        figures["drain_seconds"] = time.monotonic() - finished
        figures["store_seconds"] = time.monotonic() - started
        stats = server.stats()
        figures["loop"] = server.loop_name
    finally:
        server.stop()
        if journal is not None:
            figures["writer_cpu"] = journal.writer_cpu()
            journal.stop()
    figures["sink"] = {"registry": "RegistryHitSink on SQLite", "journal": "hit journal, RegistryHitSink on SQLite",
                       "memory": "in-memory sink"}[sink_kind]
    figures["in_registry"] = count_dns_hits(url) if url else len(sink.stored)
    if registry is not None:
        registry.close()
    handed = journal.appended if journal is not None else len(sink.stored)
    figures.update(expected=expected_hits(int(figures["sent"]), flags), stored=handed,
                   received_canary=stats["hits_queued"], refused=stats["hits_refused"],
                   failed=stats["hits_failed"], drained=drained, rrl=stats["rrl_dropped"] + stats["rrl_slipped"])
    return figures


def run_stock(data: Path, args) -> dict:
    from dnslib import QTYPE, RR, A
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    class Trivial(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("203.0.113.5"), ttl=300))
            return reply

    class Quiet(DNSLogger):
        def __init__(self) -> None:
            super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data")

    server = DNSServer(Trivial(), port=0, address="127.0.0.1", logger=Quiet())
    server.start_thread()
    try:
        return dnsperf(server.server.server_address[1], data, args.seconds, args.outstanding)
    finally:
        server.stop()
        server.server.server_close()


def table(listeners: list[dict], stock: dict) -> str:
    rows = [
        "| server | queries/s | sent | lost | avg latency | canary queries sent | hits stored |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for run in listeners:
        rows.append(f"| canary DNS listener ({run['loop']}, RRL on, {run['sink']}) | {run['qps']:,.0f} "
                    f"| {run['sent']:,.0f} | {run['lost']:,.0f} | {run['latency'] * 1000:.2f} ms "
                    f"| {run['expected']:,} | {run['in_registry']:,} |")
        ratio = f"{run['qps'] / stock['qps']:.1f}x" if stock.get("qps") else "n/a"
        note = f"{run['loop']}, {run['sink']}: {ratio} the stock server"
        if run["in_registry"] and run["sink"] != "in-memory sink":
            note += (f"; {run['in_registry'] / run['store_seconds']:,.0f} hits stored per second, from the first "
                     f"query to the last hit stored")
            if run.get("writer_cpu"):
                note += f" (journal writer {run['writer_cpu'] / run['in_registry'] * 1000:.2f} ms of CPU per hit)"
        if run["drain_seconds"] >= 1:
            note += (f"; when dnsperf stopped {run['backlog']:,} hits were still queued for the sink, "
                     f"all stored {run['drain_seconds']:.0f} s later")
        notes.append(note)
    if stock.get("qps"):
        rows.append(f"| dnslib stock DNSServer (threaded) | {stock['qps']:,.0f} | {stock['sent']:,.0f} "
                    f"| {stock['lost']:,.0f} | {stock['latency'] * 1000:.2f} ms | - | - |")
    return "\n".join(rows) + "\n\n" + ".\n".join(f"- {n}" for n in notes) + "."


def complete(run: dict) -> bool:
    """No lost query, and one stored hit per canary query sent."""
    return (run["lost"] == 0 and run["drained"] and run["failed"] == run["refused"] == 0
            and run["stored"] == run["expected"] == run["received_canary"] == run["in_registry"])


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def write_docs(text: str, args, load_before: float) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {START} ... {END} markers")
    load = f" (1-minute load average {load_before:.1f} before the run, {load_average():.1f} after)"
    block = (f"{START}\nLast run: {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs{load}, dnsperf 1 thread, "
             f"4 clients, {args.outstanding} queries outstanding, {args.seconds} s per server, "
             f"`python bench/bench_dns.py --runs {args.runs}`:\n\n{text}\n{END}")
    head, rest = doc.split(START, 1)
    DOC.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help="listener runs, comma-separated LOOP:SINK with LOOP uvloop or asyncio, SINK "
                             f"{', '.join(SINKS)} (default {DEFAULT_RUNS})")
    parser.add_argument("--sink-delay", type=float, default=0.0, help="seconds each in-memory observe() sleeps")
    parser.add_argument("--no-stock", action="store_true", help="skip dnslib's stock server")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("canary.hits.sink").setLevel(logging.ERROR)  # it logs every hit
    listeners = []
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "queries.txt"
        labels, flags = query_file(data, 10_000, seed=1)
        for spec in filter(None, args.runs.split(",")):
            loop, _, sink_kind = spec.partition(":")
            if loop not in ("uvloop", "asyncio") or sink_kind not in SINKS:
                raise SystemExit(f"--runs: {spec!r} is not LOOP:SINK (uvloop|asyncio : {'|'.join(SINKS)})")
            with tempfile.TemporaryDirectory(dir=tmp) as folder:
                run = run_listener(data, Path(folder), labels, flags, args, loop, sink_kind)
            print(f"listener ({spec}): {run}", flush=True)
            listeners.append(run)
        stock = {} if args.no_stock else run_stock(data, args)
        print(f"stock: {stock}", flush=True)
    text = table(listeners, stock)
    print("\n" + text + "\n")
    for run in listeners:
        print(f"{run['loop']}, {run['sink']}: every query answered and every canary query stored: "
              f"{'yes' if complete(run) else 'NO'} (canary queries sent {run['expected']:,}, "
              f"received {run['received_canary']:,}, handed to the sink {run['stored']:,}, "
              f"stored {run['in_registry']:,}, failed {run['failed']}, refused {run['refused']}, "
              f"rate-limited responses {run['rrl']})")
    if args.write_docs:
        write_docs(text, args, load_before)
    if not all(complete(run) for run in listeners):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
