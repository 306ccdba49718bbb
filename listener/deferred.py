"""Work a front end hands off so that its answer does not wait for it.

The portal answers a canary's link with the same page as any other link; if
it stored the hit (a registry transaction: hit, incident, alert) before
answering, a canary link would answer measurably later than an unknown one
(3.2 ms against 0.11 ms, median, SQLite), and anyone could tell them apart
from outside. So the request only queues the work and answers; one worker
thread does it. ``canary listen`` does not use it (its sink journals, which
takes microseconds, see canary/hits/journal.py); it is for a sink that
stores before returning (tests, benchmarks).

``submit(task)`` never blocks; it returns False when the queue is full (the
task is dropped and the drop counted and logged). ``stop()`` runs what is
queued, then returns: the listener stops the HTTP server first, so nothing
is submitted after. A task that raises is logged by its class only (its
text may quote values) and counted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

log = logging.getLogger("canary.listener.deferred")


class Deferred:
    def __init__(self, name: str, maxsize: int = 10000) -> None:
        self.name = name
        self._maxsize = maxsize
        self._items: deque[Callable[[], None]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.done = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"canary-{self.name}", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def pending(self) -> int:
        return len(self._items)

    def submit(self, task: Callable[[], None]) -> bool:
        if len(self._items) >= self._maxsize:
            self.dropped += 1
            log.error("%s: queue full (%d): a hit was dropped", self.name, self._maxsize,
                      extra={"event": "deferred-full", "dropped": self.dropped})
            return False
        self._items.append(task)
        self._wake.set()
        return True

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._items:
                task = self._items.popleft()
                try:
                    task()
                    self.done += 1
                except Exception as err:
                    self.failed += 1
                    log.error("%s: a deferred task failed (%s)", self.name, type(err).__name__,
                              extra={"event": "deferred-failed"})
            if self._stopping:
                return
