"""Access hits go through the hit journal like every other channel's: on disk first, replayed, counted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from support.access_helpers import dicom_message
from support.alert_helpers import add_source, pipeline, plant, sqlite_registry  # noqa: F401
from canary.access import syslog
from canary.access.config import AccessConfig
from canary.access.record import AccessBook, AccessRecorder
from canary.hits.hit import Channel, Classification
from canary.hits.journal import HitJournal, JournalSink, decode, encode

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)


def world(registry):
    add_source(registry)
    plant(registry, "lis-rennes", [1, 2, 3, 4])
    sink, _, _ = pipeline(registry)
    book = AccessBook(registry, {"DPI-PROD": "lis-rennes"})
    book.reload()
    return sink, book


def read(user, patients, minutes):
    [event] = syslog.read(dicom_message(user, patients, at=T0 + timedelta(minutes=minutes)))
    return event


def test_a_classification_decided_at_receipt_survives_the_journal_line():
    from canary.hits.hit import Observation
    from canary.model import TokenKind

    recorder_observation = Observation(Channel.ACCESS, TokenKind.NIR, "184127645108946", "10.0.0.1",
                                       {"account": "stolen"}, T0, classification=Classification.BULK_ACCESS)
    back = decode(encode(recorder_observation, "j:x:1").rstrip(b"\n"))
    assert back.classification is Classification.BULK_ACCESS and back.receipt == "j:x:1"
    assert back.evidence == {"account": "stolen"} and back.at == T0
    plain = decode(encode(Observation(Channel.DNS, TokenKind.DNS_LABEL, "h4x1", None, {}, T0), "j:x:2"))
    assert plain.classification is None  # other channels: classify() decides when storing


def test_access_hits_left_in_the_journal_by_a_killed_listener_are_stored_at_the_next_start(
        tmp_path, sqlite_registry):  # noqa: F811
    registry = sqlite_registry
    sink, book = world(registry)
    path = tmp_path / "hit-journal"
    crashed = HitJournal(path, sink)
    crashed.open()  # its writer never ran: the process was killed before storing anything
    recorder = AccessRecorder(JournalSink(crashed, sink), book, AccessConfig(burst_canaries=3))
    assert recorder.submit(read("jmartin", ["9001"], 0)) == 0  # an ordinary patient: nothing journaled
    for n, canary in enumerate((1, 2, 3)):
        assert recorder.submit(read("stolen", [str(canary)], n)) == 1
    assert crashed.stats()["appended"] == 3
    crashed.stop(drain_timeout=0)
    assert registry.list_hits() == []

    restarted = HitJournal(path, sink)
    restarted.start()
    assert restarted.replayed == 3
    assert restarted.wait_idle(20)
    restarted.stop()
    stats = restarted.stats()
    assert stats["stored"] == 3 and stats["pending"] == 0 and stats["rejected"] == 0
    hits = registry.list_hits(channel="access")
    assert [h.canary_id for h in hits] == [1, 2, 3]
    # The burst was decided when the messages arrived, not re-decided by the replay.
    assert [h.classification for h in hits] == [Classification.UNJUSTIFIED_ACCESS] * 2 + [Classification.BULK_ACCESS]
    assert hits[2].evidence["account"] == "stolen" and hits[2].evidence["canaries_by_account"] == 3
    assert len(registry.list_alerts()) == 3
    # The three were stored as one batch (one registry transaction): still one critical alert.
    assert [a.subject.startswith("[CANARY] Accès en masse") for a in registry.list_alerts()] == [False, False, True]
