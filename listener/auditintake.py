"""Audit intake: one audit payload from a receiver (syslog, FHIR) -> parsed -> access hits, counted.

Shared by listener/auditsyslog.py and listener/auditfhir.py. Audit messages
are hostile input: a message that cannot be read (oversized, malformed,
entity-laden XML, not an audit message, a broken syslog frame) is counted by
kind in ``canary_audit_messages{receiver, result}`` and logged by kind and
sender only (never its content), and is never a hit. Hits go to the
recorder's sink: in the listener the hit journal (an append, microseconds; the
journal's writer stores them). A recording failure (the journal cannot be
written) is counted as ``error`` and raised to the receiver, which answers
accordingly (FHIR 503; syslog has no answer: logged).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from typing import TYPE_CHECKING, Callable

from canary.access import syslog
from canary.access.event import AccessEvent, AuditMessageError

if TYPE_CHECKING:
    from canary.access.record import AccessRecorder
    from listener.metrics import ListenerMetrics

log = logging.getLogger("canary.listener.audit")

RESULTS = ("accepted", "oversized", "malformed", "hostile", "invalid", "error")


def rejection_kind(err: AuditMessageError) -> str:
    text = str(err)
    if text.startswith("oversized"):
        return "oversized"
    if text.startswith("refused XML"):
        return "hostile"  # a DTD, entities, external references: billion laughs, XXE
    if text.startswith(("malformed", "broken", "unterminated")):
        return "malformed"
    return "invalid"


class AuditIntake:
    """Parse and record audit payloads; counts every outcome (thread-safe)."""

    def __init__(self, recorder: "AccessRecorder", metrics: "ListenerMetrics | None" = None) -> None:
        self.recorder = recorder
        self.counts: Tally[tuple[str, str]] = Tally()
        self._lock = threading.Lock()
        self._counter = None
        self._children: dict[tuple[str, str], object] = {}  # labelled counters, looked up once (hot path)
        if metrics is not None:
            from prometheus_client import Counter

            self._counter = Counter("canary_audit_messages",
                                    "Audit messages received, by receiver and result (accepted, or why refused).",
                                    ("receiver", "result"), registry=metrics.registry)
            for receiver in ("syslog", "fhir"):
                for result in RESULTS:
                    self._children[(receiver, result)] = self._counter.labels(receiver, result)

    def count(self, receiver: str, result: str, remote: str | None = None, why: str = "") -> None:
        with self._lock:
            self.counts[(receiver, result)] += 1
        if self._counter is not None:
            child = self._children.get((receiver, result)) or self._counter.labels(receiver, result)
            child.inc()  # type: ignore[attr-defined]
        if result != "accepted":
            log.warning("audit message refused (%s) from %s via %s: %s", result, remote or "-", receiver, why[:160],
                        extra={"event": "audit-refused", "receiver": receiver, "result": result})

    def syslog_message(self, message: bytes, remote: str | None) -> int:
        """One syslog message (a UDP datagram or a stream frame); returns the hits stored."""
        return self._take("syslog", lambda: syslog.read(syslog.payload(message)), remote)

    def fhir_body(self, body: bytes, remote: str | None) -> int:
        from canary.access import fhiraudit

        return self._take("fhir", lambda: fhiraudit.parse(body), remote)

    def _take(self, receiver: str, parse: Callable[[], list[AccessEvent]], remote: str | None) -> int:
        try:
            events = parse()
        except AuditMessageError as err:
            self.count(receiver, rejection_kind(err), remote, str(err))
            raise
        except RecursionError:  # deeply nested JSON/XML: hostile, never a crash
            self.count(receiver, "hostile", remote, "nesting too deep")
            raise AuditMessageError("nesting too deep") from None
        try:
            hits = sum(self.recorder.submit(event) for event in events)
        except Exception:
            self.count(receiver, "error", remote, "recording failed")
            raise
        self.count(receiver, "accepted", remote)
        return hits
