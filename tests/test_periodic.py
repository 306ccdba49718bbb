"""canary/periodic.py: load now, reload on a thread, survive a failing load, stop cleanly."""

from __future__ import annotations

import threading

import pytest

from canary.periodic import PeriodicRefresh, RefreshedInBackground


def test_loads_at_start_then_every_interval_and_keeps_going_after_a_failure():
    calls, errors, results = [], [], []
    done = threading.Event()

    def load():
        calls.append(1)
        if len(calls) == 2:
            raise OSError("registry unreachable")
        if len(calls) >= 4:
            done.set()
        return len(calls)

    refresh = PeriodicRefresh(load, name="test-refresh", on_error=errors.append, on_result=results.append)
    assert not refresh.alive
    refresh.start(0.01)
    assert calls  # the first load ran before start returned
    assert refresh.alive
    assert done.wait(5)
    refresh.stop()
    assert not refresh.alive
    assert [type(e) for e in errors] == [OSError]
    assert results[:2] == [3, 4]  # the start's own load is not reported: the caller saw it
    stopped_at = len(calls)
    threading.Event().wait(0.05)
    assert len(calls) == stopped_at  # nothing runs after stop


def test_a_failing_first_load_raises_and_starts_no_thread():
    def load():
        raise OSError("no registry")

    refresh = PeriodicRefresh(load, name="test-refresh", on_error=lambda err: None)
    with pytest.raises(OSError):
        refresh.start(0.01)
    assert not refresh.alive
    with pytest.raises(RuntimeError, match="already running"):
        ok = PeriodicRefresh(lambda: 0, name="twice", on_error=lambda err: None)
        ok.start(10)
        try:
            ok.start(10)
        finally:
            ok.stop()


def test_an_index_gets_start_alive_stop_with_its_own_default_interval():
    intervals = []

    class Index(RefreshedInBackground):
        refresh_seconds = 7.5

        def __init__(self):
            self._refresher = PeriodicRefresh(self.load, name="test-index", on_error=lambda err: None)
            self._refresher.start = lambda interval: intervals.append(interval)  # no thread: the interval only

        def load(self):
            return 0

    index = Index()
    index.start()
    index.start(0.5)
    assert intervals == [7.5, 0.5]
    assert not index.alive
    index.stop()  # nothing running: nothing to join


class _FailsAfterFirst:
    """A registry that answers once, then fails with a driver error quoting a secret."""

    SECRET = "hunter2-connection-secret"

    def __init__(self) -> None:
        self.calls = 0
        self.failed = threading.Event()

    def _answer(self, empty):
        self.calls += 1
        if self.calls > 1:
            self.failed.set()
            from sqlalchemy.exc import OperationalError

            raise OperationalError("SELECT 1", {"password": self.SECRET},
                                   Exception(f"could not connect: password={self.SECRET}"))
        return empty

    def tokens_since(self, after_id=0, limit=None):
        return self._answer([])

    def list_canaries(self, status=None):
        return self._answer([])

    def portal_passwords_since(self, after_id=0, limit=None):
        return self._answer([])


@pytest.mark.parametrize("make", ["token index", "access book", "portal credentials"])
def test_a_failed_refresh_logs_the_error_class_not_the_driver_text(make, caplog):
    from canary.access.record import AccessBook
    from canary.hits.tokenindex import TokenIndex
    from listener.credentials import CredentialChecker

    registry = _FailsAfterFirst()
    index = {"token index": TokenIndex, "access book": AccessBook,
             "portal credentials": CredentialChecker}[make](registry)
    with caplog.at_level("WARNING"):
        index.start(0.01)
        try:
            assert registry.failed.wait(5)
            for _ in range(100):  # the warning is logged just after the failing call
                if any("refresh failed" in r.getMessage() for r in caplog.records):
                    break
                threading.Event().wait(0.01)
        finally:
            index.stop()
    lines = [r.getMessage() for r in caplog.records if "refresh failed" in r.getMessage()]
    assert lines and all(line.endswith("OperationalError") for line in lines)
    assert _FailsAfterFirst.SECRET not in caplog.text
