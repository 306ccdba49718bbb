"""Audit events become access hits and alerts: one read a warning, a burst or an export one critical alert."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from support.access_helpers import INS, dicom_message
from support.alert_helpers import add_source, make_identity, pipeline, plant, sqlite_registry  # noqa: F401
from canary.access import syslog
from canary.access.config import AccessConfig
from canary.access.record import AccessBook, AccessRecorder
from canary.alerts.message import Alert
from canary.errors import ConfigError
from canary.hits.hit import Channel, Classification

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(sqlite_registry):
    """Source lis-rennes with canaries 1..4 (row keys 1..4), wired like the listener."""
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1, 2, 3, 4])
    sink, alerter, _ = pipeline(registry)
    book = AccessBook(registry, {"DPI-PROD": "lis-rennes"})
    assert book.reload() == 4
    return registry, AccessRecorder(sink, book, AccessConfig())


def read(recorder, user, patients, at, **kw):
    [event] = syslog.read(dicom_message(user, patients, at=at, **kw))
    return recorder.record(event)


def alerts(registry):
    return [Alert.from_payload(a.payload, a.id) for a in registry.list_alerts(with_payload=True)]


def test_one_canary_read_is_one_unjustified_hit_and_ordinary_patients_none(world):
    registry, recorder = world
    assert read(recorder, "jmartin", ["9001", "9002"], T0) == []  # ordinary patients
    [hit] = read(recorder, "jmartin", ["9003", "2"], T0 + timedelta(minutes=1))
    assert hit.channel is Channel.ACCESS and hit.classification is Classification.UNJUSTIFIED_ACCESS
    assert hit.remote == "10.20.30.40" and hit.at == T0 + timedelta(minutes=1)
    assert hit.evidence["account"] == "jmartin" and hit.evidence["identifier"] == "2"
    assert hit.evidence["audit_source"] == "DPI-PROD" and hit.evidence["action"] == "read"
    assert len(registry.list_hits()) == 1
    [alert] = alerts(registry)
    assert alert.level == "high"
    assert alert.subject == ("[CANARY] Accès injustifié : base « lis-rennes » (CHU de Rennes) — "
                             "compte « jmartin », canari #2")


def test_a_number_from_an_unknown_application_is_not_a_canary_but_its_nir_is(world):
    registry, recorder = world
    assert read(recorder, "jmartin", ["1"], T0, source="OTHER-APP") == []
    [hit] = read(recorder, "jmartin", [make_identity(1).nir], T0, source="OTHER-APP", authority=INS)
    assert hit.canary_id == 1


def test_a_burst_of_three_canaries_by_one_account_is_one_critical_alert(world):
    registry, recorder = world
    for n, canary in enumerate((1, 2, 3)):
        read(recorder, "stolen", [str(canary)], T0 + timedelta(minutes=n))
    read(recorder, "other", ["4"], T0 + timedelta(minutes=4))  # another account: its own count
    classes = [h.classification for h in registry.list_hits()]
    assert classes == [Classification.UNJUSTIFIED_ACCESS] * 2 + [Classification.BULK_ACCESS] + \
        [Classification.UNJUSTIFIED_ACCESS]
    levels = [a.level for a in alerts(registry)]
    assert levels.count("critical") == 1 and len(levels) == 4
    [critical] = [a for a in alerts(registry) if a.level == "critical"]
    assert critical.subject.startswith("[CANARY] Accès en masse : base « lis-rennes »")
    assert "compte « stolen »" in critical.subject
    text = critical.text
    assert "3 dossiers de patients fictifs" in text and "compte volé" in text
    assert "Suspendre maintenant le compte « stolen »" in text
    assert "10.20.30.40" in text and "DPI-PROD" in text and "read 2024-03-05 14:02 UTC" in text
    assert "RGPD art. 33" in text and "72 h" in text
    assert make_identity(3).nir not in text and make_identity(3).nir not in critical.html


def test_an_export_naming_one_canary_is_bulk_at_once(world):
    registry, recorder = world
    [hit] = read(recorder, "prestataire", ["9001", "3", "9002"], T0, action="E")
    assert hit.classification is Classification.BULK_ACCESS
    [alert] = alerts(registry)
    assert alert.level == "critical" and alert.data["access"]["bulk"] is True


def test_the_burst_count_survives_a_new_process_through_the_registry(world):
    registry, recorder = world
    read(recorder, "stolen", ["1"], T0)
    read(recorder, "stolen", ["2"], T0 + timedelta(minutes=1))
    fresh = AccessRecorder(recorder.sink, recorder.book, AccessConfig())  # a later `canary access poll`
    assert fresh.prime(now=T0 + timedelta(minutes=2)) == 2
    [hit] = read(fresh, "stolen", ["3"], T0 + timedelta(minutes=2))
    assert hit.classification is Classification.BULK_ACCESS


def test_the_same_canary_read_again_goes_to_the_incident_digest(world):
    registry, recorder = world
    read(recorder, "jmartin", ["1"], T0)
    read(recorder, "jmartin", ["1"], T0 + timedelta(minutes=5))
    assert len(registry.list_hits()) == 2 and len(registry.list_alerts()) == 1


def test_access_configuration():
    config = AccessConfig.from_table({"burst_canaries": 5, "burst_window": "30m",
                                      "sources": {"DPI-PROD": "dpi-brest"}})
    assert (config.burst_canaries, config.burst_window, dict(config.sources)) == \
        (5, timedelta(minutes=30), {"DPI-PROD": "dpi-brest"})
    assert AccessConfig.from_table(None) == AccessConfig()
    for table, message in (({"burst_canaries": 0}, "at least 1"), ({"burst_window": "soon"}, "not a duration"),
                           ({"sources": {"X": 3}}, "[access.sources]")):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            AccessConfig.from_table(table)


def test_hits_can_be_listed_by_channel(world):
    from canary.alerts.service import list_hits

    registry, recorder = world
    read(recorder, "jmartin", ["1"], T0)
    assert [h.channel for h in list_hits(registry, channel="access")] == [Channel.ACCESS]
    assert list_hits(registry, channel="dns", source="lis-rennes") == []


def test_an_event_dated_in_the_future_is_dated_on_receipt(world):
    registry, recorder = world
    future = datetime.now(timezone.utc) + timedelta(days=400)
    before = datetime.now(timezone.utc)
    [hit] = read(recorder, "jmartin", ["1"], future)
    assert before <= hit.at <= datetime.now(timezone.utc)
    assert hit.evidence["event_at"] == future.isoformat()  # kept as evidence
