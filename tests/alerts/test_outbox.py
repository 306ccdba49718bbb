"""The outbox: delivery with retry and backoff, restarts, failing sinks, exactly once."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from support.alert_helpers import (  # noqa: F401 (fixtures)
    add_source,
    email_config,
    make_identity,
    pipeline,
    plant,
    registry,
    registry_sqlite_url,
    registry_url,
    smtp_server,
    sqlite_registry,
)
from canary.alerts.compose import Composer
from canary.alerts.config import AlertsConfig, SyslogConfig
from canary.alerts.message import DeliveryError
from canary.alerts.outbox import OutboxWorker
from canary.alerts.service import alert_to_dict, alerts_overview, sink_to_dict
from canary.alerts.sinks import EmailSink, SyslogSink
from canary.hits.hit import Channel, Observation
from canary.model import TokenKind
from canary.registry import Registry
from canary.registry.hitrecords import AlertKind, DeliveryStatus

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)
CONFIG = AlertsConfig(retry_initial=timedelta(seconds=30), retry_max=timedelta(minutes=5),
                      failing_after=3, max_per_hour=1000)


def frozen(at=T0):
    return freeze_time(at, real_asyncio=True)  # the SMTP server's event loop keeps real time


def email_hit(sink, n: int, channel=Channel.SMTP):
    identity = make_identity(n)
    kind, value = (TokenKind.EMAIL, identity.email) if channel is Channel.SMTP else \
        (TokenKind.URL_CODE, identity.url_code)
    sink.observe(Observation(channel, kind, value, "203.0.113.5", {"user_agent": "curl/8"}))


def worker_for(registry, port, **sinks):
    sinks = {"email": EmailSink(email_config(port)), **sinks}
    composer = Composer(CONFIG.links)
    return OutboxWorker(registry, sinks, CONFIG, composer=composer)


def deliveries(registry):
    return [d for a in registry.list_alerts() for d in a.deliveries]


def test_delivers_once_and_records_it(sqlite_registry, smtp_server):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1, 2])
    sink, _alerter, _ = pipeline(registry, CONFIG)
    email_hit(sink, 1)
    email_hit(sink, 2)
    worker = worker_for(registry, smtp_server.port)
    assert worker.run_once().sent == 2
    assert worker.run_once().sent == 0
    assert len(smtp_server.messages) == 2
    assert {m["Subject"] for m in smtp_server.messages} == {a.subject for a in registry.list_alerts()}
    assert all(d.status is DeliveryStatus.SENT and d.attempts == 1 for d in deliveries(registry))
    [health] = registry.sink_health()
    assert health.sink == "email" and not health.failing and health.last_success_at is not None


def test_smtp_outage_is_retried_with_backoff_nothing_lost(sqlite_registry, smtp_server):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _ = pipeline(registry, CONFIG)
    smtp_server.fail = True
    with frozen() as clock:
        email_hit(sink, 1)
        worker = worker_for(registry, smtp_server.port)
        assert worker.run_once().failed == 1
        [delivery] = deliveries(registry)
        assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
        assert delivery.next_attempt_at == T0 + timedelta(seconds=30)
        assert "451" in delivery.last_error
        assert worker.run_once().failed == 0  # not due yet
        clock.tick(timedelta(seconds=31))
        assert worker.run_once().failed == 1
        [delivery] = deliveries(registry)
        assert delivery.next_attempt_at == T0 + timedelta(seconds=31 + 60)
        assert alert_to_dict(registry.list_alerts()[0])["state"] == "failing"
        smtp_server.fail = False
        clock.tick(timedelta(seconds=61))
        assert worker.run_once().sent == 1
    assert len(smtp_server.messages) == 1
    [delivery] = deliveries(registry)
    assert delivery.status is DeliveryStatus.SENT and delivery.attempts == 3 and delivery.last_error is None


def test_a_restart_finishes_pending_and_abandoned_deliveries(registry_sqlite_url, smtp_server):
    with Registry.open(registry_sqlite_url, create=True) as first:
        add_source(first)
        plant(first, "lis-rennes", [1, 2])
        sink, _alerter, _ = pipeline(first, CONFIG)
        with frozen() as clock:
            email_hit(sink, 1)
            email_hit(sink, 2)
            # A worker that claims both, sends nothing and dies (no release, no outcome).
            claimed = first.claim_deliveries("dead-worker", ["email"], T0, timedelta(minutes=10))
            assert len(claimed) == 2
    with Registry.open(registry_sqlite_url) as second, frozen(T0 + timedelta(minutes=1)) as clock:
        worker = worker_for(second, smtp_server.port)
        assert worker.run_once().sent == 0  # claims are still valid
        clock.tick(timedelta(minutes=10))
        assert worker.run_once().sent == 2
        assert worker.run_once().sent == 0
    assert len(smtp_server.messages) == 2


def test_a_failing_sink_is_reported_through_the_others(sqlite_registry, smtp_server, tmp_path):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    siem = tmp_path / "siem.jsonl"
    sink, _alerter, _ = pipeline(registry, CONFIG, sinks=("email", "syslog"))
    smtp_server.fail = True
    with frozen() as clock:
        email_hit(sink, 1)
        worker = worker_for(registry, smtp_server.port, syslog=SyslogSink(SyslogConfig(path=str(siem))))
        for _ in range(3):
            worker.run_once()
            clock.tick(timedelta(minutes=6))
        [email] = [h for h in registry.sink_health() if h.sink == "email"]
        assert email.failing and email.consecutive_failures == 3 and "451" in email.last_error
        assert email.pending == 1
        worker.run_once()  # delivers the notice to the syslog file
        notices = [a for a in registry.list_alerts() if a.kind is AlertKind.NOTICE]
        assert len(notices) == 1 and [d.sink for d in notices[0].deliveries] == ["syslog"]
        lines = [json.loads(line) for line in siem.read_text().splitlines()]
        assert [line["kind"] for line in lines] == ["new", "notice"]
        assert lines[1]["sink"] == "email" and "451" in lines[1]["last_error"]
        overview = alerts_overview(registry, AlertsConfig.from_table({"email": {}, "syslog": {}}))
        assert [s.sink for s in overview.failing] == ["email"]
        assert sink_to_dict(overview.failing[0])["failing"] is True
        # Still failing: no second notice. Back up: healthy again, the alert goes out.
        clock.tick(timedelta(minutes=6))
        worker.run_once()
        assert len([a for a in registry.list_alerts() if a.kind is AlertKind.NOTICE]) == 1
        smtp_server.fail = False
        clock.tick(timedelta(minutes=6))
        worker.run_once()
    assert len(smtp_server.messages) == 1
    assert not [h for h in registry.sink_health() if h.sink == "email"][0].failing


def test_a_crashing_sink_does_not_stop_the_others(sqlite_registry, smtp_server):
    class Broken:
        name = "webhook"

        def send(self, alert):
            raise ZeroDivisionError("bug")

    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _ = pipeline(registry, CONFIG, sinks=("webhook", "email"))
    email_hit(sink, 1)
    report = worker_for(registry, smtp_server.port, webhook=Broken()).run_once()
    assert (report.sent, report.failed) == (1, 1)
    [webhook] = [d for d in deliveries(registry) if d.sink == "webhook"]
    assert webhook.status is DeliveryStatus.PENDING and "ZeroDivisionError: bug" in webhook.last_error


def test_deliveries_of_sinks_this_process_lacks_wait(sqlite_registry, smtp_server):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _ = pipeline(registry, CONFIG, sinks=("email", "webhook"))
    email_hit(sink, 1)
    assert worker_for(registry, smtp_server.port).run_once().sent == 1
    [pending] = [h for h in registry.sink_health(["email"]) if h.sink == "webhook"]
    assert pending.pending == 1  # shown by `canary alerts`, never silently dropped


def test_two_workers_share_the_outbox_each_alert_exactly_once(registry_url, smtp_server):
    """Two listener processes (separate engines) on one registry, with digests to make too."""
    with Registry.open(registry_url, create=True) as setup:
        add_source(setup)
        add_source(setup, "lab-b")
        plant(setup, "lis-rennes", range(1, 11))
        plant(setup, "lab-b", range(11, 21))
    registries = [Registry.open(registry_url) for _ in range(2)]
    try:
        with frozen() as clock:
            sink, _alerter, _ = pipeline(registries[0], CONFIG)
            for n in range(1, 21):
                email_hit(sink, n)
                email_hit(sink, n, Channel.HTTP)  # same seriousness: waits for a digest
            clock.tick(timedelta(minutes=16))
            start = threading.Barrier(2)
            reports: list = [[], []]

            def run(i: int) -> None:
                _sink, alerter, _ = pipeline(registries[i], CONFIG)
                worker = OutboxWorker(registries[i], {"email": EmailSink(email_config(smtp_server.port))},
                                      CONFIG, alerter=alerter, worker_id=f"w{i}")
                start.wait()
                while True:
                    report = worker.run_once()
                    reports[i].append(report)
                    if not (report.sent or report.made or report.failed):
                        break

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        alerts = registries[0].list_alerts()
        assert sorted(a.kind for a in alerts).count(AlertKind.DIGEST) == 20
        assert len(alerts) == 40
        ids = [m["Message-ID"] for m in smtp_server.messages]
        assert len(ids) == 40 and len(set(ids)) == 40
        assert sum(r.sent for rs in reports for r in rs) == 40
        assert sum(r.made for rs in reports for r in rs) == 20
        assert all(d.status is DeliveryStatus.SENT for d in deliveries(registries[0]))
    finally:
        for reg in registries:
            reg.close()


def test_worker_thread_start_and_stop(sqlite_registry, smtp_server):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _ = pipeline(registry, CONFIG)
    worker = OutboxWorker(registry, {"email": EmailSink(email_config(smtp_server.port))},
                          AlertsConfig(poll_interval=timedelta(milliseconds=20)), alerter=alerter)
    worker.start()
    try:
        with pytest.raises(RuntimeError):
            worker.start()
        email_hit(sink, 1)
        done = threading.Event()
        for _ in range(500):
            if smtp_server.messages:
                break
            done.wait(0.02)
    finally:
        worker.stop()
    assert len(smtp_server.messages) == 1
    assert all(d.status is DeliveryStatus.SENT for d in deliveries(registry))


def test_release_gives_claims_back(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _ = pipeline(registry, CONFIG)
    email_hit(sink, 1)
    now = datetime.now(timezone.utc)
    [claimed] = registry.claim_deliveries("w1", ["email"], now, timedelta(minutes=5))
    assert registry.claim_deliveries("w2", ["email"], now, timedelta(minutes=5)) == []
    registry.release_deliveries([claimed.id], "w1")
    [again] = registry.claim_deliveries("w2", ["email"], now, timedelta(minutes=5))
    assert again.id == claimed.id and again.attempts == 1 and again.payload["kind"] == "new"


def test_delivery_error_type_is_what_sinks_raise():
    assert issubclass(DeliveryError, Exception)


def test_a_digest_bug_does_not_block_deliveries(sqlite_registry, smtp_server):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _ = pipeline(registry, CONFIG)
    email_hit(sink, 1)

    def broken(tx, now=None):
        raise RuntimeError("bug")

    alerter.tick = broken
    worker = OutboxWorker(registry, {"email": EmailSink(email_config(smtp_server.port))}, CONFIG,
                          alerter=alerter)
    assert worker.run_once().sent == 1
