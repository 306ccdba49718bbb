"""Hand DNS hits to the HitSink off the event loop.

``HitSink.observe`` writes to a database (milliseconds); the DNS event loop
answers tens of thousands of queries a second. The loop calls ``submit``
(never blocks) and one worker thread calls ``observe``. The worker wakes at
most every BATCH_DELAY seconds and stores everything queued by then: a
worker woken at every hit would fight the event loop for the GIL at each of
its socket calls, which cost the loop 5x more than the hits themselves. And
when the event loop is saturated (a flood), the worker sleeps between
observations (YIELD_FACTOR): answering queries comes first, storing hits may
lag; the queue holds them meanwhile.

With the listener's journaling sink (canary/hits/journal.py: ``observe``
only appends one line to the hit journal, microseconds), there is no queue
here: ``submit`` journals the hit on the event loop, so the hit is on disk
before the answer leaves and nothing is held in memory; the journal's writer
stores it. Every query is answered whatever the backlog, canary or not.

The in-memory queue below serves sinks that store synchronously (tests,
benchmarks). It is bounded (the hit being stored counts): when it is full
``submit`` returns False and the listener leaves that query unanswered, so
the resolver retries and the hit is recorded on the retry; every such
refusal is counted and logged. A failing sink is
retried a few times, then the loss is counted and logged as an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from canary.hits.hit import Channel, HitSink, Observation
from canary.model import TokenKind
from listener.dnswire import Hit
from canary.errors import error_text

log = logging.getLogger("canary.listener.dns")
RETRY_DELAYS = (0.05, 0.5, 2.0)
BATCH_DELAY = 0.05  # seconds: hits are stored in batches, at most this late
YIELD_FACTOR = 4.0  # when the front end is saturated, sleep this many times each observe's duration


class HitRecorder:
    def __init__(self, sink: HitSink, maxsize: int = 50000, busy: Callable[[], bool] | None = None) -> None:
        self._sink = sink
        self._busy = busy  # True while the front end is saturated: the worker then yields
        self._maxsize = maxsize
        # A deque, not a queue.Queue: appending is one atomic operation with no
        # lock and no wake-up per hit; the worker is woken only when it sleeps.
        self._items: deque = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.queued = 0  # observations accepted (one per canary label)
        self.stored = 0
        self.failed = 0  # observe raised after every retry: lost, logged
        self.refused = 0  # queue full: query left unanswered
        self._submitted = 0  # hits accepted ...
        self._done = 0  # ... and hits handed to the sink (stored or failed)
        self._last_warning = 0.0
        # A journaling sink (it has a ``journal``): hits are written at once, on the caller's thread.
        self._direct = getattr(sink, "journal", None) is not None
        if self._direct and busy is not None:
            sink.journal.busy.append(busy)  # type: ignore[attr-defined]

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="dns-hits", daemon=True)
            self._thread.start()

    def submit(self, hit: Hit, remote: str, transport: str) -> bool:
        """Queue a hit (called on the event loop, never blocks); False when the queue is full."""
        if self._direct:
            self.queued += len(hit.labels)
            try:
                if not hit.labels:  # no canary: the same work, written nowhere (no timing oracle)
                    self._decoy(hit, remote, transport, time.time())
                    return True
                self._record(hit, remote, transport, time.time())
            except Exception as err:  # the journal cannot be written: counted and logged there
                self.failed += 1
                now = time.monotonic()
                if now - self._last_warning > 5.0:
                    self._last_warning = now
                    log.error("DNS hit LOST: %s (%d so far)", error_text(err), self.failed,
                              extra={"event": "dns-hit-lost"})
            return True
        if not hit.labels:
            return True
        if self._submitted - self._done >= self._maxsize:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_warning > 5.0:
                self._last_warning = now
                log.error("DNS hit queue full (%d waiting): %d canary queries left unanswered so far; "
                          "the hit sink is too slow or stuck", self.pending(), self.refused)
            return False
        self._items.append((hit, remote, transport, time.time()))
        self._submitted += 1
        self.queued += len(hit.labels)
        if not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def alive(self) -> bool:
        """The worker thread storing hits is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def pending(self) -> int:
        """Hits accepted and not yet handed to the sink."""
        return self._submitted - self._done

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued hit has been handed to the sink."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Store what is queued (up to ``timeout`` seconds), then end the worker."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            log.error("DNS hit worker still busy after %.0f s: %d hits not stored yet", timeout, self.pending())

    # -- worker ------------------------------------------------------------

    def _run(self) -> None:
        items, wake = self._items, self._wake
        while True:
            wake.wait()
            time.sleep(BATCH_DELAY)
            wake.clear()
            while items:  # everything queued so far, then sleep until the next wake-up
                hit, remote, transport, at = items.popleft()
                started = time.monotonic()
                try:
                    self._record(hit, remote, transport, at)
                except Exception:  # never let the worker die: that would stop all recording
                    log.exception("DNS hit worker: unexpected error")
                finally:
                    self._done += 1
                if self._busy is not None and items and not self._stopping and self._busy():
                    # The sink's Python work holds the GIL the event loop needs: when the
                    # loop is saturated, keep to about 1/(1 + YIELD_FACTOR) of the time.
                    time.sleep(min(YIELD_FACTOR * (time.monotonic() - started), 0.5))
            if self._stopping and not items:
                return

    def _record(self, hit: Hit, remote: str, transport: str, at: float) -> None:
        # The qname is at most 255 bytes (about 1,000 characters escaped): under
        # MAX_EVIDENCE_FIELD, so the evidence needs no capping here.
        qname = hit.qname  # decoded from the wire on each use: once
        evidence = {"qname": qname, "qtype": hit.qtype, "resolver": remote, "ecs": hit.ecs,
                    "transport": transport}
        when = datetime.fromtimestamp(at, timezone.utc)
        for label in hit.labels:
            self._observe(Observation(channel=Channel.DNS, kind=TokenKind.DNS_LABEL, value=label,
                                      remote=remote, evidence=evidence, at=when))

    def _decoy(self, hit: Hit, remote: str, transport: str, at: float) -> None:
        """What ``_record`` does for one label, line for line (the same work, measured to the
        microsecond by bench/bench_oracle.py), the journal line going to the decoy file."""
        qname = hit.qname  # decoded from the wire on each use: once
        evidence = {"qname": qname, "qtype": hit.qtype, "resolver": remote, "ecs": hit.ecs,
                    "transport": transport}
        when = datetime.fromtimestamp(at, timezone.utc)
        for label in (qname.partition(".")[0],):
            self._observe(Observation(channel=Channel.DNS, kind=TokenKind.DNS_LABEL, value=label,
                                      remote=remote, evidence=evidence, at=when), decoy=True)

    def _observe(self, observation: Observation, decoy: bool = False) -> None:
        if self._direct:  # journaled: the journal's writer stores and retries
            journal = self._sink.journal  # type: ignore[attr-defined]
            (journal.decoy if decoy else journal.append)(observation)
            self.stored += 1 - decoy
            return
        for delay in RETRY_DELAYS + (None,):
            try:
                self._sink.observe(observation)
                self.stored += 1
                return
            except Exception as err:
                # Never the label itself: it is a canary token (see listener/logs.py).
                if delay is None:
                    self.failed += 1
                    log.error("DNS hit LOST from %s: %s", observation.remote, error_text(err),
                              extra={"event": "dns-hit-lost"})
                    return
                log.warning("storing DNS hit failed (%s), retrying in %.2f s", error_text(err), delay)
                time.sleep(delay)
