"""Benchmark: audit messages per second through the listener's TCP syslog receiver.

    python bench/bench_access_syslog.py                  # 20,000 messages, 1 canary read in 100
    python bench/bench_access_syslog.py --messages 50000 --write-docs   # also updates docs/access.md

A ListenerService runs in this process on 127.0.0.1 (port 0) over a fresh
SQLite registry with 200 planted canaries. The script builds N real-shaped
IHE ATNA messages (DICOM PS3.15 "Patient Record" reads in RFC 5424 syslog
messages), one in 100 naming a canary by its patient number, the others
ordinary patients, and sends them octet-counted on one TCP connection as
fast as the socket takes them. It waits until the receiver has accepted every
message, then checks that every one was parsed (none refused, none lost) and
that exactly one hit per canary read is stored (the hit journal's writer has
caught up). The rate is messages per second, from the first byte sent to the
last hit stored.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "access.md"
START, END = "<!-- bench-access-syslog:start -->", "<!-- bench-access-syslog:end -->"
CANARIES = 200
SENDER = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as tcp:
    tcp.sendall(open(sys.argv[2], "rb").read())
"""


def plant(registry) -> list[str]:
    """CANARIES canaries in source "dpi", each with its row key as patient number; returns the numbers."""
    from canary.contacts import demo_contacts
    from canary.identity.generator import IdentityGenerator
    from canary.model import Placement, SourceSpec
    from canary.tokens import tokens_of

    registry.add_source(SourceSpec(name="dpi", seeder="sql", url="sqlite:///unused.db"))
    batch = registry.new_batch("dpi", None, "bench", CANARIES)
    numbers = []
    for n, identity in enumerate(IdentityGenerator(demo_contacts(), seed=7).generate_many(CANARIES)):
        record = registry.add_planned(batch, identity, tokens_of(identity))
        number = str(900_000 + n)
        registry.mark_planted(record.id, Placement(rows=({"table": "patients", "key": {"id": number},
                                                          "values": {}},)))
        numbers.append(number)
    return numbers


def messages(count: int, canary_numbers: list[str]) -> tuple[bytes, int]:
    """The whole octet-counted stream, and how many canary reads it holds."""
    from canary.demo.atna import audit_message

    start = datetime.now(timezone.utc).replace(microsecond=0)
    chunks, reads = [], 0
    for i in range(count):
        if i % 100 == 50:
            number, reads = canary_numbers[reads % len(canary_numbers)], reads + 1
        else:
            number = str(10_000 + i)
        # One user per canary read: each is a single read (the burst rule is not what is measured).
        message = audit_message(f"user{i}", number, start + timedelta(milliseconds=i), "10.0.0.1")
        chunks.append(str(len(message)).encode() + b" " + message)
    return b"".join(chunks), reads


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)

    from canary.config import Config
    from canary.contacts import demo_contacts
    from canary.registry import Registry
    from listener.service import ListenerService

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'registry.db'}"
        with Registry.open(url, create=True) as registry:
            numbers = plant(registry)
            raw = {"listener": {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0",
                                "admin": "127.0.0.1:0", "audit_syslog": "127.0.0.1:0",
                                # the journal (and the webhook path file beside it) in the scratch folder
                                "hit_journal": str(Path(folder) / "hit-journal")},
                   "access": {"sources": {"DPI-DEMO": "dpi"}, "burst_canaries": 1_000_000}}
            config = Config(path=None, registry_url=url, contacts=demo_contacts(), raw=raw)
            stream, reads = messages(args.messages, numbers)
            service = ListenerService(config, registry, environ=dict(os.environ))
            with service:
                intake = service.audit.intake
                port = service.ports()["audit_syslog"]
                feed = Path(folder) / "stream"
                feed.write_bytes(stream)
                began, cpu_began = time.perf_counter(), time.process_time()
                writer_began = service.journal.writer_cpu()
                # The sender is another process, as an application sending its audit trail is: it
                # does not share this process's CPU time nor its interpreter lock.
                sender = subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(feed)])
                sender.wait()
                sent = time.perf_counter()
                deadline = sent + 600
                while sum(intake.counts.values()) < args.messages and time.perf_counter() < deadline:
                    time.sleep(0.01)
                parsed, cpu_parsed = time.perf_counter(), time.process_time()
                # Every canary hit stored: the hit journal's writer has caught up.
                service.journal.wait_idle(max(deadline - time.perf_counter(), 0))
                done, cpu_done = time.perf_counter(), time.process_time()
                writer_done = service.journal.writer_cpu()
                counts = dict(intake.counts)
                journal = service.journal.stats()
                load = os.getloadavg()
            hits = len(registry.list_hits(channel="access"))
    accepted = counts.get(("syslog", "accepted"), 0)
    rate = accepted / (done - began)
    lines = [
        f"- {args.messages:,} messages ({len(stream) / 1e6:.1f} MB), {reads} canary reads, one TCP connection, "
        f"SQLite registry, {platform.python_implementation()} {platform.python_version()} on "
        f"{os.cpu_count()} CPU(s) shared with other work (load average {load[0]:.1f} at the end):",
        f"- parsed and matched: {accepted:,} accepted, "
        f"{sum(n for (r, k), n in counts.items() if k != 'accepted')} refused or failed;",
        f"- hits stored: {hits} for {reads} canary reads (hit journal: {journal['appended']} in, "
        f"{journal['stored']} stored, {journal['pending']} pending);",
        f"- rate: {rate:,.0f} messages/s ({done - began:.2f} s from the first byte to the last hit stored; "
        f"the sender was done after {sent - began:.2f} s, the last message parsed after {parsed - began:.2f} s).",
    ]
    # CPU time of the listener's process (receiver, hit journal, registry; not the sender's):
    # less dependent on other work than the wall clock on a shared machine.
    per_message = (cpu_parsed - cpu_began) / max(accepted, 1) * 1e6
    per_all = (cpu_done - cpu_began) / max(accepted, 1) * 1e6
    lines.append(f"- CPU time: {per_message:.0f} us per message until the last was parsed, {per_all:.0f} us "
                 f"with every hit stored (a ceiling of {1e6 / per_all:,.0f} messages/s on one free core).")
    if writer_began is not None and writer_done is not None and journal["stored"]:
        # The hit journal's writer thread alone: what storing a hit costs (registry transaction
        # shared by a batch, incident, flood control, alert), whatever the parsing costs.
        lines.append(f"- storing: {(writer_done - writer_began) / journal['stored'] * 1e3:.2f} ms of CPU per "
                     f"stored hit in the hit journal's writer thread.")
    print("\n".join(lines))
    ok = accepted == args.messages and hits == reads and journal["appended"] == reads
    if args.write_docs and ok:
        text = DOC.read_text(encoding="utf-8")
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(head + START + "\n" + "\n".join(lines) + "\n" + END + tail, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
