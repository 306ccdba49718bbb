"""The hit journal: on disk before stored, stored exactly once, registry errors retried, nothing dropped."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

import pytest

from support.alert_helpers import add_source, make_identity, pipeline, plant, sqlite_registry  # noqa: F401
from support.listener_helpers import wait_for
from canary.errors import ConfigError, RegistryError
from canary.hits.hit import Channel, Observation
from canary.hits.journal import HitJournal, JournalError, JournalSink, journal_settings
from canary.model import TokenKind

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)


def dns_hit(n: int, remote: str = "198.51.100.7") -> Observation:
    return Observation(Channel.DNS, TokenKind.DNS_LABEL, f"h4x{n}", remote, {"qname": f"h4x{n}.dns.example.fr"}, T0)


@pytest.fixture
def planted(sqlite_registry):  # noqa: F811
    add_source(sqlite_registry, "lis-rennes", alert_to=())
    plant(sqlite_registry, "lis-rennes", range(1, 4))
    sink, _, _ = pipeline(sqlite_registry)
    return sqlite_registry, sink


def test_a_stopped_journal_keeps_its_hits_and_the_next_start_stores_each_once(tmp_path, planted):
    registry, sink = planted
    path = tmp_path / "hit-journal"
    first = HitJournal(path, sink)
    first.open()  # no writer started: the registry never sees these, as if it were far behind
    for n in range(30):
        first.append(dns_hit(1 + n % 3))
    first.stop(drain_timeout=0)
    assert registry.list_hits() == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    second = HitJournal(path, sink)
    second.start()
    assert second.replayed == 30
    assert second.wait_idle(20)
    second.stop()
    assert len(registry.list_hits()) == 30
    assert second.stats()["stored"] == 30 and second.pending() == 0
    assert path.stat().st_size == 0  # caught up: emptied


def test_entries_stored_before_a_crash_are_not_stored_again(tmp_path, planted):
    registry, sink = planted
    path = tmp_path / "hit-journal"
    journal = HitJournal(path, sink)
    journal.open()
    for n in range(5):
        journal.append(dns_hit(1))
    journal.stop(drain_timeout=0)
    kept = path.read_bytes()
    replay = HitJournal(path, sink)
    replay.start()
    assert replay.wait_idle(20)
    replay.stop()
    assert len(registry.list_hits()) == 5
    # A crash after storing and before the cursor moved: the same entries are read again.
    path.write_bytes(kept)
    (tmp_path / "hit-journal.cursor").write_text("0")
    again = HitJournal(path, sink)
    again.start()
    assert again.wait_idle(20)
    again.stop()
    assert again.duplicates == 5 and again.stored == 0
    assert len(registry.list_hits()) == 5


class LockedThenFine:
    """A registry that says "database is locked" a few times per hit, then stores."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.stored: list[Observation] = []

    def known(self, kind, value):
        return True

    def observe(self, observation):
        self.calls += 1
        if self.calls % (self.failures + 1):
            raise RegistryError("cannot write registry at sqlite:///r.db: database is locked")
        self.stored.append(observation)
        return True


def test_registry_errors_are_retried_until_the_hit_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr("canary.hits.journal.RETRY_FIRST", 0.001)
    sink = LockedThenFine(failures=3)
    journal = HitJournal(tmp_path / "j", sink)
    journal.start()
    front = JournalSink(journal, sink)
    for n in range(10):
        front.observe(dns_hit(n))
    assert journal.wait_idle(20)
    journal.stop()
    assert [o.value for o in sink.stored] == [f"h4x{n}" for n in range(10)]
    assert journal.retries == 30 and journal.rejected == 0


class Broken:
    def known(self, kind, value):
        return True

    def observe(self, observation):
        raise ValueError("a bug")


def test_an_entry_the_sink_never_takes_is_set_aside_not_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr("canary.hits.journal.RETRY_FIRST", 0.001)
    path = tmp_path / "j"
    path.write_bytes(b"not json\n")
    journal = HitJournal(path, Broken())
    journal.start()
    journal.append(dns_hit(1))
    assert journal.wait_idle(20)
    journal.stop()
    rejected = (tmp_path / "j.rejected").read_bytes().splitlines()
    assert rejected[0] == b"not json" and b"h4x1" in rejected[1]
    assert journal.rejected == 2 and journal.stored == 0
    assert stat.S_IMODE(os.stat(tmp_path / "j.rejected").st_mode) == 0o600


def test_a_journal_that_cannot_be_written_raises_one_error(tmp_path):
    journal = HitJournal(tmp_path / "j", Broken())
    journal.open()
    journal.stop(drain_timeout=0)
    with pytest.raises(JournalError, match="cannot write the hit journal"):
        journal.append(dns_hit(1))
    assert journal.append_failed == 1
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(JournalError, match="cannot open the hit journal"):
        HitJournal(blocked / "j", Broken()).open()


def test_settings_are_checked(tmp_path):
    assert journal_settings({}, tmp_path) == (tmp_path / "hit-journal", 10.0)
    assert journal_settings({"hit_journal": "/var/lib/canary/j", "hit_drain_timeout": 2}, tmp_path)[1] == 2.0
    with pytest.raises(ConfigError, match="hit_drain_timeout"):
        journal_settings({"hit_drain_timeout": -1}, tmp_path)
    with pytest.raises(ConfigError, match="hit_journal"):
        journal_settings({"hit_journal": ""}, tmp_path)


def test_undecodable_input_is_journaled_as_replacement_characters(tmp_path):
    from canary.hits.journal import decode, encode

    line = encode(Observation(Channel.SMTP, TokenKind.EMAIL, "x@mail-canary.fr", None,
                              {"helo": b"\xff\xfeok".decode("utf-8", "surrogateescape")}, T0), "r1")
    assert decode(line).evidence == {"helo": "\ufffd\ufffdok"} and decode(line).receipt == "r1"


def test_decoy_lines_go_to_a_bounded_scratch_file_never_stored(tmp_path, monkeypatch):
    """An unknown token's answer appends a line like a canary's, to ``<journal>.decoy``
    (a file on the same disk costs what the journal costs), kept small and emptied at stop."""
    import canary.hits.journal as journal_module

    monkeypatch.setattr(journal_module, "DECOY_MAX", 4096)
    journal = HitJournal(tmp_path / "j", Broken())
    journal.open()
    decoy = tmp_path / "j.decoy"
    assert stat.S_IMODE(decoy.stat().st_mode) == 0o600
    journal.decoy(dns_hit(1))
    assert b"h4x1" in decoy.read_bytes()
    for n in range(200):
        journal.decoy(dns_hit(n))
    assert 0 < decoy.stat().st_size <= 4096 + 1024  # emptied as it grows
    assert journal.appended == 0 and journal.pending() == 0 and (tmp_path / "j").stat().st_size == 0
    journal.stop(drain_timeout=0)
    assert decoy.stat().st_size == 0


# -- batches: many entries in one registry transaction ------------------------------------


def _journal_of(path, sink, observations):
    """A journal holding ``observations`` that no writer has read yet (as after a stop)."""
    journal = HitJournal(path, sink)
    journal.open()
    for observation in observations:
        journal.append(observation)
    journal.stop(drain_timeout=0)
    return HitJournal(path, sink)


def _drain(journal):
    journal.start()
    assert journal.wait_idle(20)
    journal.stop()
    return journal


def _alerts_and_incidents(registry):
    alerts = [(a.kind.value, a.status.value, a.incident_id) for a in registry.list_alerts(limit=None)]
    incidents = [(i.canary_id, i.hit_count, i.alert_count, i.next_digest_at is not None)
                 for i in registry.list_incidents(limit=None)]
    return sorted(alerts), sorted(incidents)


def test_a_batch_stores_what_one_at_a_time_stores_with_flood_control_unchanged(tmp_path):
    """Many canaries hit at once, more than the hourly cap: stored as one batch (one
    transaction) or one transaction per hit, the same incidents and the same messages,
    queued up to the cap and held past it."""
    from canary.alerts.config import AlertsConfig
    from canary.registry import Registry

    config = AlertsConfig(max_per_hour=3)
    hits = [dns_hit(n) for n in (1, 2, 1, 3, 4, 5, 2, 6)]
    outcomes = []
    for way in ("batch", "each"):
        with Registry.open(f"sqlite:///{tmp_path / way}.db", create=True) as registry:
            add_source(registry, "lis-rennes", alert_to=())
            plant(registry, "lis-rennes", range(1, 7))
            sink, _, _ = pipeline(registry, config)
            if way == "each":
                for observation in hits:
                    sink.observe(observation)
            else:
                journal = _drain(_journal_of(tmp_path / "j", sink, hits))
                assert journal.stored == len(hits) and journal.duplicates == 0
            outcomes.append(_alerts_and_incidents(registry))
            statuses = [a.status.value for a in registry.list_alerts(limit=None)]
            assert statuses.count("queued") == 3 and statuses.count("held") == 3
    assert outcomes[0] == outcomes[1]


class Batching:
    """The real sink, counting its batches; ``observe`` of one value fails (a bug)."""

    def __init__(self, sink, bad: str | None = None) -> None:
        self.sink, self.bad, self.batches = sink, bad, []

    def known(self, kind, value):
        return True

    def observe_many(self, observations):
        self.batches.append(len(observations))
        if any(o.value == self.bad for o in observations):
            raise ValueError("a bug")
        return self.sink.observe_many(observations)

    def observe(self, observation):
        if observation.value == self.bad:
            raise ValueError("a bug")
        return self.sink.observe(observation)


def test_an_entry_failing_in_a_batch_is_set_aside_alone_the_others_stored_once(tmp_path, planted, monkeypatch):
    monkeypatch.setattr("canary.hits.journal.RETRY_FIRST", 0.001)
    registry, sink = planted
    batching = Batching(sink, bad="h4x2")
    journal = _drain(_journal_of(tmp_path / "j", batching, [dns_hit(n) for n in (1, 2, 3, 1, 3)]))
    assert batching.batches == [5]  # tried together, then one by one
    assert sorted(h.value for h in registry.list_hits()) == ["h4x1", "h4x1", "h4x3", "h4x3"]
    assert journal.stored == 4 and journal.rejected == 1
    assert b"h4x2" in (tmp_path / "j.rejected").read_bytes()


def test_a_registry_error_mid_batch_rolls_it_back_and_the_retry_stores_each_once(tmp_path, planted, monkeypatch):
    monkeypatch.setattr("canary.hits.journal.RETRY_FIRST", 0.001)
    registry, sink = planted
    on_hit, calls = sink.alerter.on_hit, []

    def locked_at_the_third(tx, hit, match):
        calls.append(hit.value)
        if len(calls) == 3:  # two hits of the batch are already written in this transaction
            raise RegistryError("cannot write registry at sqlite:///r.db: database is locked")
        return on_hit(tx, hit, match)

    monkeypatch.setattr(sink.alerter, "on_hit", locked_at_the_third)
    journal = _drain(_journal_of(tmp_path / "j", sink, [dns_hit(n) for n in (1, 2, 3, 1)]))
    assert journal.retries == 1 and journal.stored == 4 and journal.duplicates == 0
    assert sorted(h.value for h in registry.list_hits()) == ["h4x1", "h4x1", "h4x2", "h4x3"]
    assert sum(i.hit_count for i in registry.list_incidents()) == 4


def test_one_receipt_twice_in_a_batch_is_stored_once(tmp_path, planted):
    from dataclasses import replace

    registry, sink = planted
    twice = replace(dns_hit(1), receipt="sms:provider-42")
    journal = _drain(_journal_of(tmp_path / "j", sink, [twice, dns_hit(2), twice]))
    assert journal.stored == 2 and journal.duplicates == 1
    assert sorted(h.value for h in registry.list_hits()) == ["h4x1", "h4x2"]


@pytest.mark.postgres
def test_a_batch_on_postgresql_locks_stores_and_replays_once(tmp_path, postgres_url):
    """The batch path on PostgreSQL (row locks FOR UPDATE, taken once per transaction): the
    cap holds, and a replay of the whole journal after a crash stores nothing twice."""
    from canary.alerts.config import AlertsConfig
    from canary.registry import Registry

    with Registry.open(postgres_url, create=True) as registry:
        add_source(registry, "lis-rennes", alert_to=())
        plant(registry, "lis-rennes", range(1, 7))
        sink, _, _ = pipeline(registry, AlertsConfig(max_per_hour=3))
        hits = [dns_hit(n) for n in (1, 2, 1, 3, 4, 5, 2, 6)]
        journal = _journal_of(tmp_path / "j", sink, hits)
        kept = (tmp_path / "j").read_bytes()
        _drain(journal)
        assert journal.stored == 8
        statuses = [a.status.value for a in registry.list_alerts(limit=None)]
        assert statuses.count("queued") == 3 and statuses.count("held") == 3
        assert sorted(i.hit_count for i in registry.list_incidents(limit=None)) == [1, 1, 1, 1, 2, 2]
        (tmp_path / "j").write_bytes(kept)
        (tmp_path / "j.cursor").write_text("0")
        again = _drain(HitJournal(tmp_path / "j", sink))
        assert again.duplicates == 8 and again.stored == 0
        assert len(registry.list_hits()) == 8
