"""Wiring and the library behind ``canary hits``, ``canary alerts`` and ``canary alerts test``.

The listener builds its pipeline with ``build_alerting`` and
``build_hit_sink``; the commands call ``list_hits``, ``alerts_overview`` and
``send_test_alert`` and only format what they get (``*_to_dict`` for --json).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from canary.alerts.compose import Composer
from canary.alerts.config import AlertsConfig, parse_duration
from canary.alerts.message import DeliveryError
from canary.alerts.outbox import OutboxWorker
from canary.alerts.policy import Alerter
from canary.alerts.sinks import Sink, build_sinks
from canary.errors import ConfigError
from canary.hits.hit import Hit
from canary.registry.hitrecords import AlertRecord, Incident, SinkHealth

if TYPE_CHECKING:
    from canary.hits.sink import RegistryHitSink
    from canary.registry import Registry
    from canary.hits.tokenindex import TokenIndex


@dataclass(frozen=True)
class Alerting:
    config: AlertsConfig
    sinks: Mapping[str, Sink]
    composer: Composer
    alerter: Alerter
    worker: OutboxWorker


def build_alerting(registry: "Registry", raw: Mapping[str, Any],
                   environ: Mapping[str, str] = os.environ) -> Alerting:
    """From the whole parsed canary.toml (``Config.raw``): config, sinks, alerter, worker."""
    config = AlertsConfig.from_table(raw.get("alerts"))
    sinks = build_sinks(config, environ)
    composer = Composer(config.links)
    alerter = Alerter(config, composer, tuple(sinks))
    worker = OutboxWorker(registry, sinks, config, alerter=alerter, composer=composer)
    return Alerting(config=config, sinks=sinks, composer=composer, alerter=alerter, worker=worker)


def build_hit_sink(registry: "Registry", raw: Mapping[str, Any], alerting: Alerting | None
                   ) -> tuple["RegistryHitSink", "TokenIndex"]:
    """The HitSink for the front ends and its token index (loaded; call ``index.start()``)."""
    from canary.hits.classify import ClassifyRules
    from canary.hits.sink import RegistryHitSink
    from canary.hits.tokenindex import TokenIndex

    rules = ClassifyRules.from_table(raw.get("listener") or {})
    index = TokenIndex(registry)
    index.refresh()
    sink = RegistryHitSink(registry, index, rules, alerting.alerter if alerting else None)
    return sink, index


# -- canary hits -------------------------------------------------------------------------


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date or time (UTC if no offset), or a duration ago ("24h", "7d")."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text, "--since")
        except ConfigError:
            raise ConfigError(f"--since {text!r}: give a date (2025-03-14), a time "
                              "(2025-03-14T10:00) or a duration (24h, 7d)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def list_hits(registry: "Registry", *, source: str | None = None, since: datetime | None = None,
              limit: int | None = None, channel: str | None = None) -> list[Hit]:
    if source is not None:
        registry.get_source(source)  # unknown source: one clear line
    return registry.list_hits(source=source, since=since, limit=limit, channel=channel)


def hit_to_dict(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id, "at": hit.at.isoformat(), "source": hit.source, "canary": hit.canary_id,
        "channel": hit.channel.value, "kind": hit.kind.value, "value": hit.value,
        "remote": hit.remote, "classification": hit.classification.value,
        "evidence": dict(hit.evidence),
    }


# -- canary alerts ----------------------------------------------------------------------


@dataclass(frozen=True)
class AlertsOverview:
    alerts: list[AlertRecord]
    incidents: list[Incident]
    sinks: list[SinkHealth]  # every configured or seen sink, with its failure streak

    @property
    def failing(self) -> list[SinkHealth]:
        return [s for s in self.sinks if s.failing]


def alerts_overview(registry: "Registry", config: AlertsConfig | None = None, *,
                    source: str | None = None, limit: int | None = 50) -> AlertsOverview:
    configured = config.sink_names if config is not None else ()
    return AlertsOverview(
        alerts=registry.list_alerts(source=source, limit=limit),
        incidents=registry.list_incidents(source=source, limit=limit),
        sinks=registry.sink_health(configured),
    )


def alert_to_dict(alert: AlertRecord) -> dict[str, Any]:
    return {
        "id": alert.id, "kind": alert.kind.value, "status": alert.status.value,
        "state": alert.delivery_state, "source": alert.source, "incident": alert.incident_id,
        "created_at": alert.created_at.isoformat(), "subject": alert.subject,
        "summary": alert.summary_id,
        "deliveries": [{
            "sink": d.sink, "status": d.status.value, "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat(),
            "sent_at": d.sent_at.isoformat() if d.sent_at else None, "last_error": d.last_error,
        } for d in alert.deliveries],
    }


def incident_to_dict(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "source": incident.source, "canary": incident.canary_id,
        "opened_at": incident.opened_at.isoformat(), "closes_at": incident.closes_at.isoformat(),
        "last_hit_at": incident.last_hit_at.isoformat(), "hits": incident.hit_count,
        "messages": incident.alert_count,
        "next_digest_at": incident.next_digest_at.isoformat() if incident.next_digest_at else None,
    }


def sink_to_dict(health: SinkHealth) -> dict[str, Any]:
    return {
        "sink": health.sink, "failing": health.failing,
        "consecutive_failures": health.consecutive_failures,
        "failing_since": health.failing_since.isoformat() if health.failing_since else None,
        "last_error": health.last_error,
        "last_success_at": health.last_success_at.isoformat() if health.last_success_at else None,
        "pending": health.pending,
    }


# -- canary alerts test -----------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest class

    sink: str
    ok: bool
    error: str | None = None


def send_test_alert(alerting: Alerting, now: datetime | None = None) -> list[TestResult]:
    """Send a test message through every configured sink now (not through the outbox)."""
    if not alerting.sinks:
        raise ConfigError("no alert sink configured: add [alerts.email], [alerts.webhook] "
                          "or [alerts.syslog] to canary.toml")
    alert = alerting.composer.test(now or datetime.now(timezone.utc))
    results = []
    for name, sink in alerting.sinks.items():
        try:
            sink.send(alert)
        except DeliveryError as err:
            results.append(TestResult(name, False, str(err)))
        else:
            results.append(TestResult(name, True))
    return results
