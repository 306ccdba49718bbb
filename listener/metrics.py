"""Prometheus metrics of the listener, served by the admin app (GET /metrics).

    metrics = ListenerMetrics()              # its own CollectorRegistry, never the global one
    metrics.hit("dns", "human")              # front ends, the hit sink and the outbox call these
    metrics.watch_registry(registry)         # outbox depth and registry up, read at scrape time
    body, content_type = metrics.exposition()

Two kinds of figures. Events counted as they happen (hits, alerts sent or
failed, HTTP requests, webhook rejections, SMTP sessions) are
prometheus_client counters: a few microseconds each, on paths that already
cost milliseconds. What is cheap to count but hot (DNS queries, tens of
thousands a second) or lives elsewhere (outbox depth in the registry, the
size of the token index) is read at scrape time by one custom collector:
the DNS server keeps plain int counters and the collector sums them.

The registry is asked at most once per ``cache_seconds`` whatever the scrape
rate (``RegistryProbe``); when it cannot answer, ``canary_registry_up`` is 0
and the outbox gauges are left out rather than reported stale.

No label ever carries a token value, an address or a name: only channels,
classifications, sink names, route groups, status classes, providers,
transports and DNS response codes, each from a short fixed set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

import canary
from canary.hits.hit import Channel, Classification
from canary.errors import error_text

log = logging.getLogger(__name__)


class DnsCounters(Protocol):
    """What the DNS front end (listener.dns.DnsServer) reports; it imports this module, not the reverse."""

    def stats(self) -> dict[str, int]: ...

    def query_counts(self) -> dict[tuple[str, str], int]: ...

REGISTRY_CACHE_SECONDS = 5.0  # the registry is read at most this often, however often Prometheus scrapes
ROUTE_GROUPS = ("portal", "webhook", "other")
SMTP_ERROR_STAGES = ("rcpt", "data", "session")
# DNS response codes by number (RFC 1035, 6895); others are reported by number.
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
NO_ANSWER = "none"  # queries left unanswered: rate-limited, hit queue full, unparseable
# Families an untrusted scraper must not see: how many canaries are watched, and anything
# that moves when a canary is hit (hits, their journal, alerts, the outbox). Someone reaching
# the admin port could otherwise probe a record and watch the counter.
PRIVATE_PREFIXES = (b"canary_tokens", b"canary_hit", b"canary_dns_hits", b"canary_alerts", b"canary_outbox")
# The classic text format: every Prometheus version reads it (our names need no UTF-8 escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RegistryProbe:
    """Pending deliveries per sink, read from the registry at most every ``ttl`` seconds.

    ``read()`` returns ``(pending, problem)``: the counts and None when the
    registry answered, or None and a short reason when it did not. Shared
    by the metrics collector and the listener's readiness check, so neither
    load balancers nor Prometheus can make it query more often.
    """

    def __init__(self, registry: Any, ttl: float = REGISTRY_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._result: tuple[dict[str, int] | None, str | None] = (None, "not read yet")

    def read(self) -> tuple[dict[str, int] | None, str | None]:
        with self._lock:  # concurrent scrapes wait for one query instead of each making one
            now = self._clock()
            if self._at is None or now - self._at >= self.ttl:
                was_down = self._at is not None and self._result[1] is not None
                self._result = self._query(was_down)
                self._at = self._clock()
            return self._result

    def _query(self, was_down: bool) -> tuple[dict[str, int] | None, str | None]:
        try:
            pending = dict(self._registry.pending_delivery_counts())
        except Exception as err:  # any driver error: the registry is not usable right now
            if not was_down:  # once per outage, not at every scrape
                log.error("registry unreachable: %s", error_text(err), extra={"event": "registry-down"})
            # The class only in the answer: /readyz is read by load balancers.
            return None, f"unreachable ({type(err).__name__})"
        if was_down:
            log.info("registry reachable again", extra={"event": "registry-up"})
        return pending, None


@dataclass(frozen=True, slots=True)
class _Watched:
    """What the collector reads; swapped whole, so a scrape sees the old set or the new one."""

    dns: tuple["DnsCounters", ...] = ()
    tokens: Callable[[], int] | None = None
    probe: RegistryProbe | None = None
    journal: Callable[[], dict[str, int]] | None = None


class ListenerMetrics:
    """Every metric of one listener process, in a registry of its own."""

    def __init__(self, *, cache_seconds: float = REGISTRY_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._watched = _Watched()
        self.started_at = time.time()
        r = self.registry
        self._hits = Counter("canary_hits", "Hits stored, by input channel and classification.",
                             ("channel", "classification"), registry=r)
        self._alerts_sent = Counter("canary_alerts_sent", "Alert deliveries a sink accepted.", ("sink",), registry=r)
        self._alerts_failed = Counter("canary_alerts_failed",
                                      "Alert delivery attempts that failed (each is retried later).",
                                      ("sink",), registry=r)
        self._http = Counter("canary_http_requests", "HTTP requests answered, by route group and status class.",
                             ("route", "status"), registry=r)
        self._http_errors = Counter("canary_http_errors",
                                    "HTTP requests that failed inside the listener (an exception or a 5xx).",
                                    ("route",), registry=r)
        self._webhook_rejected = Counter("canary_webhook_rejected",
                                         "Telephony webhook calls refused: bad signature, or provider not set up.",
                                         ("provider", "reason"), registry=r)
        self._smtp_sessions = Counter("canary_smtp_sessions", "SMTP connections accepted.", registry=r)
        self._smtp_recipients = Counter("canary_smtp_recipients",
                                        "SMTP RCPT TO commands: accepted (recorded) or refused (not our domain, "
                                        "too many).", ("result",), registry=r)
        self._smtp_messages = Counter("canary_smtp_messages", "SMTP messages (DATA) accepted and recorded.",
                                      registry=r)
        self._smtp_errors = Counter("canary_smtp_errors",
                                    "SMTP failures answered with a temporary error (the sender retries).",
                                    ("stage",), registry=r)
        self._smtp_relay = Counter("canary_smtp_relay_messages",
                                   "Messages to the relay address (mail forwarded by watched mailboxes), by what "
                                   "their headers gave: canary, none, notice (a provider's own notice), rejected "
                                   "(too large, no end, too many addresses).", ("result",), registry=r)
        self._start_time = Gauge("canary_listener_start_time_seconds",
                                 "When this listener process started (Unix time).", registry=r)
        self._start_time.set(self.started_at)
        r.register(_StateCollector(self))
        # Known label values exist from the start at 0, so that rate() and increase() see the first event.
        for channel in Channel:
            for classification in Classification:
                self._hits.labels(channel.value, classification.value)
        for route in ROUTE_GROUPS:
            self._http_errors.labels(route)
        for stage in SMTP_ERROR_STAGES:
            self._smtp_errors.labels(stage)
        for result in ("accepted", "refused"):
            self._smtp_recipients.labels(result)
        for result in ("canary", "none", "notice", "rejected"):
            self._smtp_relay.labels(result)
        for provider in ("twilio", "vonage"):
            for reason in ("signature",):
                self._webhook_rejected.labels(provider, reason)

    # -- what the listener parts report -----------------------------------------------

    def hit(self, channel: str, classification: str) -> None:
        self._hits.labels(channel, classification).inc()

    def alert_sinks(self, sinks: Iterable[str]) -> None:
        """Declare the configured sinks: their counters exist (at 0) before the first alert."""
        for sink in sinks:
            self._alerts_sent.labels(sink)
            self._alerts_failed.labels(sink)

    def alert_sent(self, sink: str) -> None:
        self._alerts_sent.labels(sink).inc()

    def alert_failed(self, sink: str) -> None:
        self._alerts_failed.labels(sink).inc()

    def http_request(self, route: str, status: int, error: bool = False) -> None:
        self._http.labels(route, f"{status // 100}xx").inc()
        if error or status >= 500:
            self._http_errors.labels(route).inc()

    def webhook_rejected(self, provider: str, reason: str) -> None:
        self._webhook_rejected.labels(provider, reason).inc()

    def smtp_session(self) -> None:
        self._smtp_sessions.inc()

    def smtp_recipient(self, accepted: bool) -> None:
        self._smtp_recipients.labels("accepted" if accepted else "refused").inc()

    def smtp_message(self) -> None:
        self._smtp_messages.inc()

    def smtp_relay(self, result: str) -> None:
        self._smtp_relay.labels(result).inc()

    def smtp_error(self, stage: str) -> None:
        self._smtp_errors.labels(stage).inc()

    # -- what is read at scrape time -----------------------------------------------------

    def watch_dns(self, server: "DnsCounters") -> None:
        """Report this DNS server's counters (it keeps them; see DnsServer.query_counts)."""
        self._watched = replace(self._watched, dns=self._watched.dns + (server,))

    def watch_tokens(self, size: Callable[[], int]) -> None:
        """``size()``: how many tokens the listener watches (the token index)."""
        self._watched = replace(self._watched, tokens=size)

    def watch_journal(self, stats: Callable[[], dict[str, int]]) -> None:
        """``stats()``: the hit journal's counts in and out (canary.hits.journal.HitJournal.stats)."""
        self._watched = replace(self._watched, journal=stats)

    def watch_registry(self, registry: Any) -> RegistryProbe:
        """Read outbox depth from ``registry.pending_delivery_counts()``; returns the shared probe."""
        probe = RegistryProbe(registry, self.cache_seconds, self._clock)
        self._watched = replace(self._watched, probe=probe)
        return probe

    @property
    def registry_probe(self) -> RegistryProbe | None:
        return self._watched.probe

    def exposition(self, full: bool = True) -> tuple[bytes, str]:
        """The text exposition format and its content type, for GET /metrics. Not ``full``:
        without the families that tell about canaries and hits (PRIVATE_PREFIXES)."""
        body = generate_latest(self.registry)
        if not full:
            body = b"".join(line for line in body.splitlines(keepends=True) if not _private(line))
        return body, CONTENT_TYPE


class _StateCollector:
    """Figures read when Prometheus scrapes: DNS counters, token index, registry and outbox."""

    def __init__(self, metrics: ListenerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # names vary with what is watched; nothing to check for clashes

    def collect(self) -> Iterator[Metric]:
        watched = self._metrics._watched
        info = InfoMetricFamily("canary_listener", "The listener's version.")
        info.add_metric([], {"version": canary.__version__})
        yield info
        if watched.tokens is not None:
            yield GaugeMetricFamily("canary_tokens_watched", "Canary token values in the listener's index.",
                                    value=watched.tokens())
        if watched.dns:
            yield from _dns_families(watched.dns)
        if watched.journal is not None:
            yield from _journal_families(watched.journal())
        if watched.probe is not None:
            pending, problem = watched.probe.read()
            yield GaugeMetricFamily("canary_registry_up", "1 if the registry answered its last probe, else 0.",
                                    value=0 if problem else 1)
            if pending is not None:
                family = GaugeMetricFamily("canary_outbox_pending",
                                           "Alert deliveries waiting in the outbox (not yet accepted by the sink).",
                                           labels=("sink",))
                for sink, count in sorted(pending.items()):
                    family.add_metric([sink], count)
                yield family


def _dns_families(servers: Iterable["DnsCounters"]) -> Iterator[Metric]:
    queries = CounterMetricFamily("canary_dns_queries", "DNS queries received, by transport and response code "
                                  f"({NO_ANSWER}: left unanswered).", labels=("transport", "rcode"))
    by_key: dict[tuple[str, str], int] = {}
    totals: dict[str, int] = {}
    for server in servers:
        for (transport, rcode), count in server.query_counts().items():
            by_key[transport, rcode] = by_key.get((transport, rcode), 0) + count
        for name, value in server.stats().items():
            totals[name] = totals.get(name, 0) + value
    for (transport, rcode), count in sorted(by_key.items()):
        queries.add_metric([transport, rcode], count)
    yield queries
    limited = CounterMetricFamily("canary_dns_rate_limited", "UDP responses held back by response rate limiting: "
                                  "slipped (sent truncated) or dropped.", labels=("action",))
    limited.add_metric(["slip"], totals.get("rrl_slipped", 0))
    limited.add_metric(["drop"], totals.get("rrl_dropped", 0))
    yield limited
    yield CounterMetricFamily("canary_dns_tcp_refused", "DNS TCP connections refused over the connection cap.",
                              value=totals.get("tcp_refused", 0))
    yield CounterMetricFamily("canary_dns_errors", "Unexpected errors in the DNS front end (bugs: see the log).",
                              value=totals.get("errors", 0) + totals.get("handler_errors", 0))
    yield GaugeMetricFamily("canary_dns_hits_pending", "DNS hits queued and not yet stored.",
                            value=totals.get("hits_pending", 0))
    lost = CounterMetricFamily("canary_dns_hits_dropped", "DNS canary queries not stored: queue full (left "
                               "unanswered, the resolver retries) or storage failed after retries (lost).",
                               labels=("reason",))
    lost.add_metric(["queue_full"], totals.get("hits_refused", 0))
    lost.add_metric(["store_failed"], totals.get("hits_failed", 0))
    yield lost


def _journal_families(stats: dict[str, int]) -> Iterator[Metric]:
    entries = CounterMetricFamily("canary_hit_journal_entries", "Hits through the hit journal: in (appended now, "
                                  "or replayed from the last run) and out (stored, already stored, set aside).",
                                  labels=("direction", "outcome"))
    for direction, outcome in (("in", "appended"), ("in", "replayed"), ("out", "stored"),
                               ("out", "duplicates"), ("out", "rejected")):
        entries.add_metric([direction, outcome], stats.get(outcome, 0))
    yield entries
    yield GaugeMetricFamily("canary_hit_journal_pending", "Hits in the journal, not yet stored in the registry.",
                            value=stats.get("pending", 0))
    yield CounterMetricFamily("canary_hit_journal_write_failures", "Hits the journal could not write "
                              "(disk full): the front end answered with a temporary error or lost them.",
                              value=stats.get("append_failed", 0))
    yield CounterMetricFamily("canary_hit_journal_retries", "Registry errors while storing journaled hits "
                              "(each is retried until stored).", value=stats.get("retries", 0))


def _private(line: bytes) -> bool:
    name = line[7:] if line.startswith((b"# HELP ", b"# TYPE ")) else line
    return name.startswith(PRIVATE_PREFIXES)


def rcode_name(code: int) -> str:
    return RCODES.get(code, str(code))
