"""A flood of canary queries, faster than SQLite stores them, then SIGTERM or SIGKILL and a restart:
every answered canary query is stored exactly once, and canary labels are answered like unknown
ones however far storage lags. Bounded: 600 queries, loopback, ports 0."""

from __future__ import annotations

import socket
import time

import dns.message
import dns.query
import dns.rcode
import pytest
import sqlalchemy as sa

from support.listener_helpers import ZONE, ListenProcess, config_text, plant_sources, wait_for
from canary.registry.schema import hits as hits_table

FLOOD = 600
CANARY_LABELS = [f"h4x{n}" for n in range(1, 11)]  # source lis-rennes; h4x11.. are left for probes


def flood_tcp(port: int, count: int, timeout: float = 30.0) -> int:
    """Pipeline ``count`` canary queries on one connection, read every answer; returns the answers."""
    wire = b""
    for n in range(count):
        query = dns.message.make_query(f"{CANARY_LABELS[n % len(CANARY_LABELS)]}.{ZONE}", "A")
        query.id = n % 65536
        data = query.to_wire()
        wire += len(data).to_bytes(2, "big") + data
    answers = 0
    buffer = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(wire)
        while answers < count and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                size = int.from_bytes(buffer[:2], "big")
                response = dns.message.from_wire(buffer[2:2 + size])
                assert response.rcode() == dns.rcode.NOERROR and response.answer
                buffer = buffer[2 + size:]
                answers += 1
    return answers


def answer_of(port: int, label: str) -> tuple[int, list[str]]:
    response = dns.query.udp(dns.message.make_query(f"{label}.{ZONE}", "A"), "127.0.0.1", port=port, timeout=3)
    return response.rcode(), [rdata.to_text() for rrset in response.answer for rdata in rrset]


def dns_hits(url: str) -> list[str | None]:
    """Receipts of the stored DNS hits (read-only, straight from the file)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(hits_table.c.receipt)
                                           .where(hits_table.c.channel == "dns")).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_flooded_canary_queries_are_all_answered_and_stored_once_across_a_restart(tmp_path, stop):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url)
    text = config_text(url, 9).replace("[listener]\n", "[listener]\ndns_rate_limit = 0\nhit_drain_timeout = 0\n")
    config = tmp_path / "canary.toml"
    config.write_text(text, encoding="utf-8")
    first = ListenProcess(config, tmp_path / "first.json")
    try:
        port = first.wait_ready()["dns"]
        answered = flood_tcp(port, FLOOD)
        assert answered == FLOOD
        # Storage lags far behind now; another canary label and an unknown one get the same answer.
        assert answer_of(port, "h4x15") == answer_of(port, "zzunknown1")
        answered += 1
        stored_before_stop = len(dns_hits(url))
        assert stored_before_stop < answered  # the flood did outrun the registry
        if stop == "sigterm":
            assert first.terminate() == 0
            assert "not stored yet" in first.stderr()
        else:
            first.kill()
    finally:
        first.close()
    journal = tmp_path / "hit-journal"
    assert journal.stat().st_size > 0

    second = ListenProcess(config, tmp_path / "second.json")
    try:
        second.wait_ready()
        wait_for(lambda: len(dns_hits(url)) >= answered, timeout=120, what="every journaled hit stored")
        time.sleep(0.5)  # nothing more arrives: exactly once, not at least once
        receipts = dns_hits(url)
        assert len(receipts) == answered
        assert len(set(receipts)) == answered and None not in receipts
        wait_for(lambda: journal.stat().st_size == 0, what="the journal emptied once caught up")
        assert second.terminate() == 0
    finally:
        second.close()
    assert "Traceback" not in second.stderr()
