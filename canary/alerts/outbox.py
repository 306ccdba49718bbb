"""OutboxWorker: delivers queued alerts through the sinks, with retry and backoff.

``run_once()`` makes due digests and summaries (``Alerter.tick``), claims due
deliveries for the sinks this process has, sends each, and records the
outcome: sent (never sent again), or failed (retried after
``alerts.retry_initial`` doubling up to ``alerts.retry_max``, forever: an
alert is never dropped). A sink failing ``alerts.failing_after`` times in a
row is reported: an ERROR log line, its state in ``canary alerts``, and a
notice through the other sinks. ``start()``/``stop()`` run it in a thread
for the listener.

Exactly once: claims are exclusive (see canary/registry/outboxstore.py), so
two listener processes on one PostgreSQL registry, or a restarted one, never
send a delivery that another already sent. The one exception is a crash
between a sink's acceptance and the commit of "sent": that delivery is sent
again after its claim expires (emails keep the same Message-ID).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Mapping, Protocol

from canary.alerts.config import AlertsConfig
from canary.alerts.message import Alert, DeliveryError
from canary.alerts.sinks import Sink
from canary.registry.hitrecords import Delivery, SinkHealth

if TYPE_CHECKING:
    from canary.alerts.compose import Composer
    from canary.alerts.policy import Alerter
    from canary.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)
BATCH = 10


class DeliveryMetrics(Protocol):
    """What the worker reports (listener/metrics.py's ListenerMetrics has it)."""

    def alert_sent(self, sink: str) -> None: ...

    def alert_failed(self, sink: str) -> None: ...


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class RunReport:
    made: int = 0  # digests and summaries made (or held)
    sent: int = 0
    failed: int = 0


class OutboxWorker:
    def __init__(self, registry: "Registry", sinks: Mapping[str, Sink], config: AlertsConfig | None = None,
                 *, alerter: "Alerter | None" = None, composer: "Composer | None" = None,
                 worker_id: str | None = None, lease: timedelta = DEFAULT_LEASE,
                 metrics: DeliveryMetrics | None = None) -> None:
        self.registry = registry
        self.metrics = metrics  # counts outcomes per sink; the listener sets it
        self.sinks = dict(sinks)
        self.config = config or AlertsConfig()
        self.alerter = alerter
        self.composer = composer or (alerter.composer if alerter is not None else None)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by wake() or stop(): ends the wait between rounds
        self._thread: threading.Thread | None = None

    # -- one round ------------------------------------------------------------------------
    def run_once(self) -> RunReport:
        made = 0
        if self.alerter is not None:
            try:
                with self.registry.alert_transaction() as tx:
                    made = self.alerter.tick(tx, _now())
            except Exception:  # digests wait for the next round; deliveries go on
                log.exception("making digests and summaries failed")
        sent = failed = 0
        claimed = self.registry.claim_deliveries(self.worker_id, tuple(self.sinks), _now(),
                                                 self.lease, BATCH)
        started = time.monotonic()
        for n, delivery in enumerate(claimed):
            if self._stop.is_set() or self._lease_short(started):
                # Stopping, or too little lease left to finish safely: give the rest back.
                self.registry.release_deliveries([d.id for d in claimed[n:]], self.worker_id)
                break
            if self._deliver(delivery):
                sent += 1
            else:
                failed += 1
        return RunReport(made=made, sent=sent, failed=failed)

    def _lease_short(self, started: float) -> bool:
        budget = self.lease.total_seconds() - 3 * max(self._longest_timeout(), 1.0)
        return time.monotonic() - started > max(budget, 0.0)

    def _longest_timeout(self) -> float:
        return max((float(getattr(getattr(s, "config", None), "timeout", 30.0) or 30.0)
                    for s in self.sinks.values()), default=30.0)

    def _deliver(self, delivery: Delivery) -> bool:
        sink = self.sinks[delivery.sink]
        try:
            sink.send(Alert.from_payload(delivery.payload or {}, alert_id=delivery.alert_id))
        except Exception as err:  # a sink bug must not stop the other deliveries
            message = str(err) if isinstance(err, DeliveryError) else f"{type(err).__name__}: {err}"
            if not isinstance(err, DeliveryError):
                log.exception("sink %s crashed on alert %d", delivery.sink, delivery.alert_id)
            if self.metrics is not None:
                self.metrics.alert_failed(delivery.sink)
            self._failed(delivery, message)
            return False
        if self.metrics is not None:  # the sink accepted it: sent, even if recording that fails below
            self.metrics.alert_sent(delivery.sink)
        self.registry.delivery_sent(delivery, _now())
        log.info("alert %d sent via %s", delivery.alert_id, delivery.sink)
        return True

    def _failed(self, delivery: Delivery, message: str) -> None:
        now = _now()
        retry_at = now + self.config.retry_delay(delivery.attempts)
        became = self.registry.delivery_failed(
            delivery, now, message, retry_at, self.config.failing_after, notice=self._notice,
        )
        log_fn = log.error if became else log.warning
        log_fn("alert %d via %s failed (attempt %d), retry at %s: %s", delivery.alert_id,
               delivery.sink, delivery.attempts, retry_at.isoformat(timespec="seconds"), message)
        if became:
            log.error("sink %s is failing: %d failures in a row; alerts wait in the outbox",
                      delivery.sink, self.config.failing_after)

    def _notice(self, health: SinkHealth):
        others = [name for name in self.sinks if name != health.sink]
        if not others or self.composer is None:
            return None
        alert = self.composer.sink_failing(health, _now())
        return alert.subject, alert.to_payload(), others

    # -- thread --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("outbox worker already running")
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="canary-outbox", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Started and its thread still running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wake(self) -> None:
        """Start a round now (a hit just enqueued an alert) instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the delivery in progress, give back the other claims, and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        interval = self.config.poll_interval.total_seconds()
        while not self._stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # registry briefly unreachable: try again next round
                log.exception("outbox round failed")
                report = RunReport()
            if report.sent or report.failed or report.made:
                continue  # more may be due: go again at once
            # Polling stays: other processes' hits, retries and digests come due without a wake.
            self._wake.wait(interval)
            self._wake.clear()
