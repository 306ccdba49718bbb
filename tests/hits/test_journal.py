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
