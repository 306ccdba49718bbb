"""The hit sink and token index: matching, durable storage, atomic alert enqueue."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from support.alert_helpers import (  # noqa: F401 (fixtures)
    add_source,
    make_identity,
    pipeline,
    plant,
    registry,
    registry_sqlite_url,
    registry_url,
    sqlite_registry,
)
from canary.errors import RegistryError
from canary.hits.hit import MAX_EVIDENCE_FIELD, Channel, Classification, HitSink, Observation
from canary.model import CanaryStatus, TokenKind
from canary.registry import Registry
from canary.registry.hitrecords import AlertKind, AlertStatus, DeliveryStatus
from canary.registry.schema import hits as hits_table
from canary.hits.sink import RegistryHitSink
from canary.hits.tokenindex import TokenIndex

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)


def email_hit(n: int, at: datetime | None = T0, remote: str = "203.0.113.5", **evidence) -> Observation:
    return Observation(channel=Channel.SMTP, kind=TokenKind.EMAIL,
                       value=make_identity(n).email, remote=remote,
                       evidence=evidence or {"mail_from": "x@attacker.example"}, at=at)


class CountingFeed:
    def __init__(self, registry):
        self.registry = registry
        self.calls = 0

    def tokens_since(self, after_id=0, limit=None):
        self.calls += 1
        return self.registry.tokens_since(after_id, limit)


# -- token index -------------------------------------------------------------------------
def test_index_knows_tokens_in_memory_and_learns_new_ones_on_refresh(registry):
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    feed = CountingFeed(registry)
    index = TokenIndex(feed)
    assert index.refresh() == 6  # email, phone, url code, dns label, login, NIR
    calls = feed.calls
    identity = make_identity(1)
    assert index.known(TokenKind.EMAIL, identity.email.upper())  # case-insensitive
    assert index.known("dns_label", identity.dns_label)
    assert index.known(TokenKind.NIR, identity.nir.lower())  # NIR stored upper case
    assert not index.known(TokenKind.EMAIL, "nobody@mail-canary.fr")
    assert not index.known("not-a-kind", identity.email)
    assert feed.calls == calls  # lookups do no I/O

    [second] = plant(registry, "lis-rennes", [2])
    assert not index.known(TokenKind.EMAIL, make_identity(2).email)
    assert index.refresh() == 6  # only the new ones
    entry = index.lookup(TokenKind.EMAIL, make_identity(2).email)
    assert (entry.canary_id, entry.source) == (second, "lis-rennes")
    assert [e.kind for e in index.lookup_value(make_identity(2).phone)] == [TokenKind.PHONE]
    assert index.known_value(make_identity(2).url_code.upper())
    assert len(index) == 12


def test_retired_canaries_stay_known_and_reload_drops_removed_sources(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    add_source(registry, "lab-b", establishment=None)
    [first] = plant(registry, "lis-rennes", [1])
    plant(registry, "lab-b", [2])
    registry.set_status(first, CanaryStatus.RETIRED)
    index = TokenIndex(registry)
    index.refresh()
    assert index.known(TokenKind.EMAIL, make_identity(1).email)
    registry.remove_source("lab-b", force=True)
    assert index.known(TokenKind.EMAIL, make_identity(2).email)  # until reload
    assert index.reload() == 6
    assert not index.known(TokenKind.EMAIL, make_identity(2).email)
    assert index.known(TokenKind.EMAIL, make_identity(1).email)


def test_background_refresh_thread(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    index = TokenIndex(registry)
    index.start(interval=0.05)
    try:
        plant(registry, "lis-rennes", [1])
        deadline = datetime.now() + timedelta(seconds=10)
        while not index.known(TokenKind.EMAIL, make_identity(1).email) and datetime.now() < deadline:
            threading.Event().wait(0.02)
        assert index.known(TokenKind.EMAIL, make_identity(1).email)
    finally:
        index.stop()


# -- the sink --------------------------------------------------------------------------------
def test_sink_is_a_hitsink(sqlite_registry):
    registry = sqlite_registry
    sink, _alerter, _index = pipeline(registry)
    typed: HitSink = sink  # the protocol the front ends receive
    assert callable(typed.observe) and callable(typed.known)
    assert sink.known(TokenKind.EMAIL, "x@y") is False


def test_matched_hit_is_stored_with_incident_and_queued_alert(registry):
    add_source(registry)
    [canary_id] = plant(registry, "lis-rennes", [1])
    sink, _alerter, index = pipeline(registry, sinks=("email", "syslog"))
    assert sink.known(TokenKind.EMAIL, make_identity(1).email)
    sink.observe(email_hit(1))

    [hit] = registry.list_hits()
    assert (hit.canary_id, hit.source, hit.channel, hit.classification) == \
        (canary_id, "lis-rennes", Channel.SMTP, Classification.HUMAN)
    assert hit.at == T0 and hit.remote == "203.0.113.5"
    assert hit.evidence == {"mail_from": "x@attacker.example"}
    [incident] = registry.list_incidents()
    assert (incident.canary_id, incident.hit_count, incident.alert_count) == (canary_id, 1, 1)
    assert incident.opened_at == T0 and incident.closes_at == T0 + timedelta(hours=24)
    [alert] = registry.list_alerts()
    assert (alert.kind, alert.status, alert.incident_id) == (AlertKind.NEW, AlertStatus.QUEUED, incident.id)
    assert sorted(d.sink for d in alert.deliveries) == ["email", "syslog"]
    assert all(d.status is DeliveryStatus.PENDING for d in alert.deliveries)
    assert "lis-rennes" in alert.subject and f"#{canary_id}" in alert.subject


def test_unknown_token_is_stored_unmatched_without_alert(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _index = pipeline(registry)
    stored = sink.record(Observation(Channel.DNS, TokenKind.DNS_LABEL, "zz9unknown", "198.51.100.7",
                                     {"qtype": "A"}))
    assert stored.classification is Classification.UNMATCHED and stored.canary_id is None
    assert stored.at.tzinfo is not None
    assert [h.id for h in registry.list_hits()] == [stored.id]
    assert registry.list_incidents() == [] and registry.list_alerts() == []


def test_evidence_is_capped_made_json_and_naive_times_are_utc(registry):
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _index = pipeline(registry)
    hit = sink.record(email_hit(1, at=datetime(2025, 3, 14, 10, 0), subject="x" * 10_000,
                                raw=b"\xff\x00bytes", nul="a\x00b", ratio=float("nan"),
                                when=T0, nested={"deep": [1, 2.5, {"k": None}]}))
    assert hit.at == T0
    [stored] = registry.list_hits()
    assert len(stored.evidence["subject"]) < MAX_EVIDENCE_FIELD + 20
    assert stored.evidence["subject"].endswith("[truncated]")
    assert isinstance(stored.evidence["raw"], str) and stored.evidence["nul"] == "a\x00b"
    assert stored.evidence["ratio"] == "nan" and stored.evidence["when"] == str(T0)
    assert stored.evidence["nested"] == {"deep": [1, 2.5, {"k": None}]}


def test_storage_and_alert_enqueue_are_one_transaction(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _index = pipeline(registry)

    def broken(tx, hit, match):
        raise RuntimeError("alerting broke")

    alerter.on_hit = broken
    with pytest.raises(RuntimeError):
        sink.observe(email_hit(1))
    assert registry.list_hits() == []  # no hit without its alert: the sender retries


def test_storage_failure_raises_for_the_front_end(registry_sqlite_url):
    with Registry.open(registry_sqlite_url, create=True) as reg:
        add_source(reg)
        plant(reg, "lis-rennes", [1])
        sink, _alerter, _index = pipeline(reg)
        with reg._engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE deliveries"))
        with pytest.raises(Exception):
            sink.observe(email_hit(1))
        with reg._engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(hits_table)).scalar() == 0


def test_concurrent_observes_from_threads(registry):
    add_source(registry)
    ids = plant(registry, "lis-rennes", [1, 2])
    sink, _alerter, _index = pipeline(registry)

    def work(n: int) -> None:
        for i in range(10):
            sink.observe(email_hit(1 + n % 2, at=T0 + timedelta(seconds=i)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(4)))
    stored = registry.list_hits()
    assert len(stored) == 40
    incidents = registry.list_incidents()
    assert sorted(i.canary_id for i in incidents) == sorted(ids)  # one incident per canary
    assert sum(i.hit_count for i in incidents) == 40
    # One "new" message per canary; the rest waits for digests.
    assert sorted(a.kind for a in registry.list_alerts()) == [AlertKind.NEW, AlertKind.NEW]


def test_removing_a_source_keeps_its_hits_readable(registry):
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _index = pipeline(registry)
    sink.observe(email_hit(1))
    registry.remove_source("lis-rennes", force=True)
    [hit] = registry.list_hits(source="lis-rennes")
    assert hit.canary_id is None and hit.value == make_identity(1).email
    [incident] = registry.list_incidents(source="lis-rennes")
    assert incident.canary_id is None and incident.hit_count == 1
    assert len(registry.list_alerts()) == 1


def test_list_hits_filters(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    add_source(registry, "lab-b")
    plant(registry, "lis-rennes", [1])
    plant(registry, "lab-b", [2])
    sink, _alerter, _index = pipeline(registry)
    sink.observe(email_hit(1, at=T0))
    sink.observe(email_hit(2, at=T0 + timedelta(hours=1)))
    sink.observe(email_hit(1, at=T0 + timedelta(hours=2)))
    assert [h.source for h in registry.list_hits()] == ["lis-rennes", "lab-b", "lis-rennes"]
    assert len(registry.list_hits(source="lis-rennes")) == 2
    assert [h.at for h in registry.list_hits(since=T0 + timedelta(minutes=30))] == \
        [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert [h.at for h in registry.list_hits(limit=1)] == [T0 + timedelta(hours=2)]


def test_registry_unreachable_is_a_registry_error():
    import socket

    from canary.registry.engine import create_engine

    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"postgresql+psycopg://canary@127.0.0.1:{closed.getsockname()[1]}/registry"
        reg = Registry(create_engine(url, create=False), "unreachable")
        sink = RegistryHitSink(reg, TokenIndex(reg))
        with pytest.raises(RegistryError, match="cannot reach registry"):
            sink.observe(email_hit(1))
        reg.close()
