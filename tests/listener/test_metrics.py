"""Metrics and readiness of the listener: a ListenerService on loopback port 0 receives a
DNS query, portal requests, a badly signed webhook and mail; its exposition text counts
them by label; alerts go to a sink that works and one that fails; readiness reports a
registry made unreachable and a stopped front end."""

from __future__ import annotations

import os
import tomllib
from collections import Counter

import dns.rcode
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.alert_helpers import (  # noqa: F401 (fixtures)
    add_source,
    pipeline,
    plant,
    registry,
    registry_sqlite_url,
    registry_url,
    smtp_server,
)
from canary.config import parse_config
from canary.registry import Registry
from listener.metrics import ListenerMetrics, RegistryProbe
from listener.service import ListenerService
from support.listener_helpers import (
    EMAIL_DOMAIN, TWILIO_ENV, TWILIO_TOKEN, ZONE, config_text, dns_query, http_get, plant_sources, send_mail, wait_for,
)

LOOPBACK = {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0", "admin": "127.0.0.1:0"}


def scrape(metrics: ListenerMetrics) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, from the exposition text as Prometheus would read it."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def service(tmp_path, smtp_server):  # noqa: F811
    """Email alerts to a loopback server that accepts them; syslog alerts into a folder
    that does not exist, so every one of them fails."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 6)})
    extra = f'\n[alerts.syslog]\npath = "{tmp_path / "missing" / "alerts.log"}"\nformat = "json"\n'
    config = parse_config(tomllib.loads(config_text(url, smtp_server.port, extra=extra)),
                          path=tmp_path / "canary.toml")
    with Registry.open(url) as registry:
        service = ListenerService(config, registry, environ={TWILIO_ENV: TWILIO_TOKEN}, binds=LOOPBACK)
        service.start()
        try:
            yield service
        finally:
            service.stop()


def test_exposition_counts_what_each_front_end_saw(service, smtp_server):  # noqa: F811
    ports = service.ports()
    assert dns_query(ports["dns"], f"h4x1.{ZONE}").rcode() == dns.rcode.NOERROR
    assert dns_query(ports["dns"], "www.example.com").rcode() == dns.rcode.REFUSED
    assert dns_query(ports["dns"], f"h4x2.{ZONE}", tcp=True).rcode() == dns.rcode.NOERROR
    assert http_get(ports["http"], "/p/k7q2x9code3").status_code == 200  # a canary link: portal
    assert http_get(ports["http"], "/wp-login.php", host="203.0.113.9").status_code == 200  # a scan: other
    hook = f"http://127.0.0.1:{ports['http']}/hooks/twilio/sms"
    refused = requests.post(hook, data={"To": "+33612340004", "Body": "x"},
                            headers={"X-Twilio-Signature": "forged"}, timeout=5)
    assert refused.status_code == 403
    send_mail(ports["smtp"], f"camille.morel5@{EMAIL_DOMAIN}")

    # DNS, HTTP (URL code), SMTP RCPT and DATA: four hits, stored by the hit sink's thread or the request's.
    wait_for(lambda: len(service.registry.list_hits()) >= 5, what="five stored hits")
    samples = scrape(service.metrics)
    stored = Counter((h.channel.value, h.classification.value) for h in service.registry.list_hits())
    counted = {(dict(labels)["channel"], dict(labels)["classification"]): v for (name, labels), v in samples.items()
               if name == "canary_hits_total" and v}
    assert counted == stored and {channel for channel, _ in stored} == {"dns", "http", "smtp"}
    assert value(samples, "canary_hits_total", channel="sms", classification="human") == 0  # exists at 0

    assert value(samples, "canary_dns_queries_total", transport="udp", rcode="NOERROR") == 1
    assert value(samples, "canary_dns_queries_total", transport="udp", rcode="REFUSED") == 1
    assert value(samples, "canary_dns_queries_total", transport="tcp", rcode="NOERROR") == 1
    assert value(samples, "canary_dns_queries_total", transport="udp", rcode="none") == 0
    assert value(samples, "canary_dns_hits_dropped_total", reason="store_failed") == 0

    assert value(samples, "canary_http_requests_total", route="portal", status="2xx") == 1
    assert value(samples, "canary_http_requests_total", route="other", status="2xx") == 1
    assert value(samples, "canary_http_requests_total", route="webhook", status="4xx") == 1
    assert value(samples, "canary_http_errors_total", route="portal") == 0
    assert value(samples, "canary_webhook_rejected_total", provider="twilio", reason="signature") == 1

    assert value(samples, "canary_smtp_sessions_total") == 1
    assert value(samples, "canary_smtp_recipients_total", result="accepted") == 1
    assert value(samples, "canary_smtp_messages_total") == 1

    assert value(samples, "canary_tokens_watched") == len(service.index) > 0
    assert value(samples, "canary_listener_info", version=__import__("canary").__version__) == 1
    assert value(samples, "canary_registry_up") == 1


def test_smtp_refusals_and_tcp_dns_are_counted_apart(service):
    import smtplib

    with smtplib.SMTP("127.0.0.1", service.ports()["smtp"], timeout=5) as smtp:
        smtp.ehlo("probe.example")
        smtp.mail("x@evil.example")
        code, _ = smtp.rcpt("someone@gmail.example")
        assert code == 550
    samples = scrape(service.metrics)
    assert value(samples, "canary_smtp_recipients_total", result="refused") == 1
    assert value(samples, "canary_smtp_recipients_total", result="accepted") == 0
    assert value(samples, "canary_smtp_sessions_total") == 1


def test_alerts_sent_and_failed_per_sink_and_outbox_depth(service, smtp_server):  # noqa: F811
    service.metrics.registry_probe.ttl = 0.0  # read the outbox at every scrape in this test
    send_mail(service.ports()["smtp"], f"camille.morel2@{EMAIL_DOMAIN}")

    def delivered():
        samples = scrape(service.metrics)
        if value(samples, "canary_alerts_sent_total", sink="email") and \
                value(samples, "canary_alerts_failed_total", sink="syslog"):
            return samples
        return None

    samples = wait_for(delivered, what="an alert sent by email and failed through syslog")
    assert smtp_server.messages  # the email really went out
    # The syslog delivery waits for its retry: the outbox holds it, and only it.
    assert value(samples, "canary_outbox_pending", sink="syslog") >= 1
    assert value(samples, "canary_outbox_pending", sink="email") is None
    assert service.registry.pending_delivery_counts() == {"syslog": value(samples, "canary_outbox_pending",
                                                                           sink="syslog")}


def test_readiness_ok_then_registry_unreachable_then_a_front_end_stopped(service, tmp_path):
    assert service.readiness() == {"dns": "ok", "http": "ok", "smtp": "ok", "registry": "ok",
                                   "token_index": "ok", "outbox": "ok"}
    probe = service.metrics.registry_probe
    probe.ttl = 0.0
    database = tmp_path / "registry.db"
    os.rename(database, tmp_path / "away.db")
    os.mkdir(database)  # a folder where the file was: SQLite cannot open it
    # Then drop pooled connections (the service's threads may have opened one on the file until
    # the rename): the next query opens the path again and fails.
    service.registry.close()
    try:
        checks = service.readiness()
        assert checks["registry"].startswith("unreachable") and checks["dns"] == "ok"
        samples = scrape(service.metrics)
        assert value(samples, "canary_registry_up") == 0
        assert not any(name == "canary_outbox_pending" for name, _ in samples)  # absent, not stale
    finally:
        os.rmdir(database)
        service.registry.close()
        os.rename(tmp_path / "away.db", database)
    assert service.readiness()["registry"] == "ok"
    assert value(scrape(service.metrics), "canary_registry_up") == 1

    service.smtp.stop()
    checks = service.readiness()
    assert checks["smtp"] == "not running"
    assert {name for name, state in checks.items() if state != "ok"} == {"smtp"}


def test_the_admin_app_serves_them(service):
    from support.admin_helpers import admin_config
    from listener.admin import create_admin_app

    client = create_admin_app(service.registry, admin_config(), metrics=service.metrics,
                              readiness=service.readiness).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["token_index"] == "ok"
    scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"canary_registry_up 1.0" in scraped.data
    service.dns.stop()
    unready = client.get("/readyz")
    assert unready.status_code == 503 and unready.json["checks"]["dns"] == "not running"


def test_readiness_before_start_and_after_stop(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 2)})
    config = parse_config(tomllib.loads(config_text(url, 1)), path=tmp_path / "canary.toml")
    with Registry.open(url) as registry:
        service = ListenerService(config, registry, environ={TWILIO_ENV: TWILIO_TOKEN}, binds=LOOPBACK)
        assert set(service.readiness().values()) == {"not started"}
        with service:
            assert service.readiness()["dns"] == "ok"
        assert set(service.readiness().values()) == {"not started"}


def test_the_token_index_lagging_behind_the_registry_is_not_ready(service, monkeypatch):
    import listener.service as service_module
    from support.alert_helpers import plant

    service.index.stop()  # no refresh any more: a canary planted now stays unknown
    assert service.readiness()["token_index"] == "refresh not running"
    service.index.start(3600)  # refreshes now, then not for an hour
    plant(service.registry, "lis-rennes", [9])
    assert service.readiness()["token_index"] == "ok"  # just planted: the index has time
    monkeypatch.setattr(service_module, "INDEX_LAG_LIMIT", 0.0)
    monkeypatch.setattr(service, "index_refresh", 0.0)
    assert service.readiness()["token_index"].startswith("not refreshed")
    service.index.refresh()
    assert service.readiness()["token_index"] == "ok"


# -- the parts on their own ------------------------------------------------------------


def test_pending_delivery_counts_per_sink(registry):  # noqa: F811 (SQLite and PostgreSQL)
    from datetime import datetime, timedelta, timezone

    from canary.hits.hit import Channel, Observation
    from canary.model import TokenKind
    from support.alert_helpers import make_identity

    assert registry.pending_delivery_counts() == {}
    add_source(registry)
    plant(registry, "lis-rennes", [1, 2])
    sink, _, _ = pipeline(registry, sinks=("email", "syslog"))
    for n in (1, 2):
        sink.observe(Observation(Channel.SMTP, TokenKind.EMAIL, make_identity(n).email, "203.0.113.5"))
    assert registry.pending_delivery_counts() == {"email": 2, "syslog": 2}
    now = datetime.now(timezone.utc)
    claimed = registry.claim_deliveries("w1", ["email"], now, timedelta(minutes=10), limit=1)
    registry.delivery_sent(claimed[0], now)
    assert registry.pending_delivery_counts() == {"email": 1, "syslog": 2}  # claimed or not: pending until sent


class FakeRegistry:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def pending_delivery_counts(self):
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return {"email": 3}


def test_the_registry_is_read_at_most_once_per_cache_period():
    now = [100.0]
    registry = FakeRegistry()
    probe = RegistryProbe(registry, ttl=5.0, clock=lambda: now[0])
    assert probe.read() == ({"email": 3}, None)
    now[0] += 4.9
    assert probe.read() == ({"email": 3}, None) and registry.calls == 1  # many scrapes, one query
    now[0] += 0.2
    registry.down = True
    pending, problem = probe.read()
    assert pending is None and problem == "unreachable (OSError)" and registry.calls == 2


def test_outbox_gauge_is_absent_while_the_registry_is_down():
    metrics = ListenerMetrics(cache_seconds=0.0)
    registry = FakeRegistry()
    metrics.watch_registry(registry)
    samples = scrape(metrics)
    assert value(samples, "canary_outbox_pending", sink="email") == 3
    assert value(samples, "canary_registry_up") == 1
    registry.down = True
    samples = scrape(metrics)
    assert value(samples, "canary_registry_up") == 0
    assert not [name for name, _ in samples if name.startswith("canary_outbox")]


def test_each_metrics_object_has_its_own_registry():
    first, second = ListenerMetrics(), ListenerMetrics()  # two services in one process: no clash
    first.hit("dns", "human")
    first.alert_sinks(["email"])
    assert value(scrape(first), "canary_hits_total", channel="dns", classification="human") == 1
    assert value(scrape(second), "canary_hits_total", channel="dns", classification="human") == 0
    assert value(scrape(first), "canary_alerts_failed_total", sink="email") == 0
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("canary_hits_total", {"channel": "dns", "classification": "human"}) is None


def test_http_errors_count_exceptions_and_5xx():
    metrics = ListenerMetrics()
    metrics.http_request("portal", 200, error=True)  # the portal answers its page even when it failed
    metrics.http_request("webhook", 503)
    metrics.http_request("webhook", 200)
    samples = scrape(metrics)
    assert value(samples, "canary_http_errors_total", route="portal") == 1
    assert value(samples, "canary_http_errors_total", route="webhook") == 1
    assert value(samples, "canary_http_requests_total", route="webhook", status="5xx") == 1
    assert value(samples, "canary_http_requests_total", route="portal", status="2xx") == 1


def test_a_portal_hit_that_cannot_be_stored_counts_as_an_error_and_looks_the_same():
    from canary.contacts import demo_contacts
    from listener.http import HttpConfig, create_app
    from test_http import CODE, OTHER_CODE, canary_sink

    metrics = ListenerMetrics()
    config = HttpConfig.from_table({}, contacts=demo_contacts())
    counted = create_app(canary_sink(fail=True), config, metrics=metrics).test_client()
    plain = create_app(canary_sink(fail=True), config).test_client()
    answer = counted.get(f"/acces/{CODE}")  # storing the hit fails: an error, same page
    assert answer.status_code == 200 and answer.data == plain.get(f"/acces/{CODE}").data
    assert counted.get(f"/acces/{OTHER_CODE}").data == answer.data
    samples = scrape(metrics)
    assert value(samples, "canary_http_requests_total", route="portal", status="2xx") == 2
    assert value(samples, "canary_http_errors_total", route="portal") == 1


def test_every_metric_is_documented(service):
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    service.metrics.http_request("portal", 200)  # series with labels appear at their first event
    body, _ = service.metrics.exposition()
    names = {sample.name for family in text_string_to_metric_families(body.decode("utf-8"))
             for sample in family.samples} | {"canary_outbox_pending"}  # no sample while nothing is pending
    exposed = {name for name in names if name.startswith("canary_") and not name.endswith("_created")}
    documented = set(re.findall(r"^\| `(canary_[a-z_]+)` \|", doc, re.MULTILINE))
    assert exposed == documented
