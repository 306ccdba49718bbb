"""A load that runs now, then again every few seconds in a thread: the listener's in-memory indexes.

The token index, the access index and the portal credentials all follow the
registry the same way: load once at start (an error then is the caller's to
report: the listener must not start blind), then reload on a daemon thread,
keeping what is loaded when the registry is briefly unreachable.
``PeriodicRefresh`` is that lifecycle, once: ``start``/``stop`` like the
servers, ``alive`` for ``/readyz``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class PeriodicRefresh:
    """Calls ``load()`` at start, then every ``interval`` seconds until ``stop()``.

    ``on_result`` sees what each later load returned (to log what changed);
    ``on_error`` the exception of a failed one (the thread goes on).
    """

    def __init__(self, load: Callable[[], Any], *, name: str,
                 on_error: Callable[[Exception], None],
                 on_result: Callable[[Any], None] | None = None) -> None:
        self._load = load
        self._name = name
        self._on_error = on_error
        self._on_result = on_result
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        """Load now (errors raise), then reload every ``interval`` seconds in a thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already running")
        self._load()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval,), name=self._name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Started and its thread still running (the listener's /readyz: refreshing)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                result = self._load()
            except Exception as err:  # registry briefly unreachable: keep what is loaded
                self._on_error(err)
            else:
                if self._on_result is not None:
                    self._on_result(result)


class RefreshedInBackground:
    """``start``/``alive``/``stop`` for an index that keeps a ``PeriodicRefresh`` in ``_refresher``.

    ``refresh_seconds`` is the class's default interval.
    """

    _refresher: PeriodicRefresh
    refresh_seconds: float = 5.0

    def start(self, interval: float | None = None) -> None:
        """Load now (errors raise), then again every ``interval`` seconds in a thread."""
        self._refresher.start(self.refresh_seconds if interval is None else interval)

    @property
    def alive(self) -> bool:
        """Started and its thread still running (the listener's /readyz)."""
        return self._refresher.alive

    def stop(self) -> None:
        self._refresher.stop()
