"""Serving the HTTP app: waitress, in-process, with the shared start/stop lifecycle.

Why waitress: ``canary listen`` runs the DNS, SMTP and HTTP front ends in one
process around one HitSink (its in-memory token set and its registry
connection). Waitress is a production WSGI server (used under Pyramid and
Plone for years, HTTP/1.1 keep-alive, request size limits, slow-client
buffering, no fork) that runs in a thread of that process and can be stopped
and joined; the Werkzeug server is a development server, and gunicorn forks
workers under a master that owns signals and the main thread, so each worker
would need its own sink.

``HttpServer(app, ...)``: ``start()`` binds (bind errors raise here, in the
caller's thread), serves from a background thread and returns when ready;
``address`` is the bound (host, port), port 0 picks a free one; ``stop()``
closes every socket and joins the threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from canary.config import Setting
from canary.errors import ConfigError
from listener.proxy import parse_bind

log = logging.getLogger(__name__)

DEFAULT_HTTP_BIND = "127.0.0.1:8080"

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.http", DEFAULT_HTTP_BIND,
            "Address the HTTP listener binds, host:port (\"0.0.0.0:80\" in production, usually behind "
            "a TLS-terminating reverse proxy); the default needs no root."),
    Setting("listener.http_threads", 8, "Worker threads of the HTTP server (requests handled at once)."),
    Setting("listener.http_connection_limit", 500,
            "Open HTTP connections accepted at once; more wait in the listen backlog."),
    Setting("listener.http_timeout", 30, "Seconds an idle HTTP connection is kept open."),
    Setting("listener.http_request_timeout", 10,
            "Seconds a client has to send a whole request, headers and body, from its first byte; a "
            "slower one (slowloris: a byte every few seconds) is disconnected. HTTP and HTTPS (where "
            "the TLS handshake counts too)."),
)


def int_setting(table: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """A whole-number ``listener.<key>`` setting within [low, high]; one ConfigError line otherwise."""
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"listener.{key} must be a whole number from {low} to {high}")
    return value


@dataclass(frozen=True, slots=True)
class HttpServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    connection_limit: int = 500
    timeout: int = 30
    request_timeout: int = 10
    max_body: int = 65536

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "HttpServeConfig":
        """From the ``[listener]`` table."""
        host, port = parse_bind(table.get("http", DEFAULT_HTTP_BIND), "listener.http")
        return cls(host=host, port=port,
                   threads=int_setting(table, "http_threads", 8, 1, 256),
                   connection_limit=int_setting(table, "http_connection_limit", 500, 10, 100000),
                   timeout=int_setting(table, "http_timeout", 30, 1, 3600),
                   request_timeout=int_setting(table, "http_request_timeout", 10, 1, 3600),
                   max_body=int_setting(table, "http_max_body", 65536, 1024, 2**26))


CLEANUP_INTERVAL = 1  # seconds between waitress's sweeps of expired connections (default 30)


def _deadline_channel(request_timeout: float) -> type:
    """Waitress's channel with a deadline on reading each request.

    Waitress closes a connection idle for ``channel_timeout``, and every byte
    received counts as activity: one byte every 20 s held a connection forever,
    and 520 of them kept every new client out. Here, while a request is only
    partly received, its activity time stays at its first byte, moved back so
    that the sweep closes it ``request_timeout`` seconds after that byte.
    """
    from waitress.channel import HTTPChannel

    class DeadlineChannel(HTTPChannel):  # type: ignore[misc,valid-type]
        _request_started: float | None = None

        def received(self, data: bytes) -> bool:
            now = self.last_activity
            if self.request is None and self._request_started is None:
                self._request_started = now
            result = super().received(data)
            if self.request is not None and not self.request.completed:
                started = self._request_started if self._request_started is not None else now
                self.last_activity = started - (self.adj.channel_timeout - request_timeout)
            else:
                self._request_started = None
            return result

    return DeadlineChannel


class HttpServer:
    def __init__(self, app: Callable[..., Any], config: HttpServeConfig | None = None, **overrides: Any):
        self.app = app
        self.config = replace(config or HttpServeConfig(), **overrides)
        self._server: Any = None
        self._map: dict[int, Any] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("HTTP server not started")
        return str(self._server.effective_host), int(self._server.effective_port)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("HTTP server already running")
        from waitress.server import create_server

        cfg = self.config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self._stopping.clear()
        self._map = {}
        self._server = create_server(  # binds now: an address in use raises OSError here
            self.app, map=self._map, listen=f"{host}:{cfg.port}", threads=cfg.threads,
            connection_limit=cfg.connection_limit, channel_timeout=cfg.timeout,
            max_request_body_size=4 * cfg.max_body, max_request_header_size=32768,
            ident="", expose_tracebacks=False, clear_untrusted_proxy_headers=False,
            asyncore_use_poll=True, cleanup_interval=CLEANUP_INTERVAL,
        )
        self._server.channel_class = _deadline_channel(min(cfg.request_timeout, cfg.timeout))
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="canary-http", daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        from waitress import wasyncore

        server = self._server
        ready.set()
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
        finally:
            server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            wasyncore.close_all(self._map, ignore_all=True)

    @property
    def alive(self) -> bool:
        """Started and its thread still running (for the listener's /readyz)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        try:
            self._server.pull_trigger()  # wake the poll loop now rather than at its timeout
        except OSError:
            pass
        self._thread.join()
        self._thread = None

    def __enter__(self) -> "HttpServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
