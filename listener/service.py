"""The listener service: every front end, the hit sink and the alert outbox in one process.

    service = ListenerService(config, registry, binds={"http": "127.0.0.1:0"})
    service.start()      # builds from config, binds everything, returns once all answer
    service.ports()      # {"dns": 53530, "http": 8081, "smtp": 2526}
    service.stop()       # stop accepting, store in-flight hits, let the outbox finish its send

One ``RegistryHitSink`` (with its in-memory ``TokenIndex``, refreshed in a
thread) is shared by the DNS server (UDP and TCP), the HTTP app (patient
portal and telephony webhooks, served by waitress) and the SMTP server; the
``OutboxWorker`` thread delivers the alerts those hits enqueue. ``run()``
is ``canary listen``: start, write the ports file, wait for SIGTERM/SIGINT,
drain, stop.

``metrics`` (a ``ListenerMetrics``, built by ``start()``) is what every part
reports to, for GET /metrics; ``readiness()`` says whether each part works,
for GET /readyz.

Stopping drains in order: the front ends stop accepting and finish what
they hold (the DNS hit queue is stored, running HTTP requests complete, SMTP
hits already handed to the sink are stored before the process exits), then
the token refresher stops, then the outbox worker finishes the delivery in
progress and gives the rest of its claims back for the next worker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from canary.errors import CanaryError, ConfigError

if TYPE_CHECKING:
    from canary.config import Config
    from canary.registry import Registry

log = logging.getLogger("canary.listener")

FRONT_ENDS = ("dns", "http", "smtp")
# Bind overrides (--dns, --http...): the public front ends, the optional TLS one, the admin address.
BINDABLE = (*FRONT_ENDS, "https", "admin", "audit_syslog")
# Front ends first (stop accepting, store in-flight hits), then the token refresher,
# the outbox worker last so that it finishes the delivery in progress.
# The hit journal's writer after every front end (it stores what they journaled until they stopped).
STOP_ORDER = ("hibp", "dns", "http", "https", "smtp", "audit syslog", "admin", "hit journal",
              "token index", "portal credentials", "audit index", "outbox")
DEFAULT_INDEX_REFRESH = 5.0  # seconds between token index refreshes
INDEX_LAG_LIMIT = 30.0  # a token the index still lacks this long after readiness first saw it: not ready


class ListenerError(CanaryError):
    """A front end could not start (address in use, privileged port...)."""


class ListenerService:
    """All front ends around one hit sink, plus the alert outbox worker.

    ``binds`` overrides the ``listener.dns`` / ``listener.http`` /
    ``listener.smtp`` addresses ("host:port", port 0 picks a free one).
    ``environ`` is where ``*_env`` settings (SMTP password, Twilio token...)
    are read. ``outbox_lease`` shortens how long a delivery claimed by a
    crashed process waits before another takes it (default: the outbox's 10
    minutes).
    """

    def __init__(self, config: "Config", registry: "Registry", *, binds: Mapping[str, str | None] | None = None,
                 environ: Mapping[str, str] = os.environ, index_refresh: float = DEFAULT_INDEX_REFRESH,
                 outbox_lease: timedelta | None = None) -> None:
        unknown = set(binds or {}) - set(BINDABLE)
        if unknown:
            raise ValueError(f"unknown front ends: {sorted(unknown)}")
        self.config = config
        self.registry = registry
        self.binds = {name: value for name, value in (binds or {}).items() if value}
        self.environ = environ
        self.index_refresh = index_refresh
        self.outbox_lease = outbox_lease
        self.sink: Any = None
        self.index: Any = None
        self.alerting: Any = None
        self.worker: Any = None
        self.dns: Any = None
        self.http: Any = None
        self.smtp: Any = None
        self.https: Any = None  # only with listener.https (TLS)
        self.credentials: Any = None  # the canaries' portal passwords, as keyed digests (listener/credentials.py)
        self.journal: Any = None  # every front end's hits wait here until stored (canary/hits/journal.py)
        self.admin: Any = None  # the dashboard, /metrics, /healthz, /readyz
        self.metrics: Any = None
        self.audit: Any = None  # the audit receivers (listener/audit.py), when set up
        self.hooks_path = ""  # where the provider webhooks are served (random per installation)
        self._index_lag: tuple[int, float] | None = None  # (oldest token id the index lacks, first seen)
        self._started: list[tuple[str, Callable[[], None]]] = []  # (name, stop) in start order
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------

    def listener_table(self) -> dict[str, Any]:
        """The ``[listener]`` settings with the command-line addresses applied."""
        table = dict(self.config.raw.get("listener") or {})
        table.update(self.binds)
        return table

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("listener already started")
            try:
                self._start()
            except BaseException:
                self._stop_started()
                raise
        log.info("listener ready; provider webhooks under %s", self.hooks_path,
                 extra={"event": "ready", **self.ports(),
                                          "sinks": list(self.alerting.sinks), "tokens": len(self.index)})

    def _start(self) -> None:
        from canary.alerts.outbox import OutboxWorker
        from canary.alerts.service import build_alerting, build_hit_sink
        from canary.hits.journal import HitJournal, JournalSink, journal_settings
        from listener.credentials import CredentialChecker
        from listener.dns import DnsConfig, DnsServer
        from listener.http import HttpConfig, create_app
        from listener.admin import AdminConfig, admin_bind, create_admin_app
        from listener.limits import descriptors_needed, raise_descriptor_limit
        from listener.metrics import ListenerMetrics
        from listener.smtp import SmtpConfig, SmtpServer
        from listener.telephony import TelephonyConfig
        from listener.tls import HttpsServeConfig, HttpsServer
        from listener.wsgi import HttpServeConfig, HttpServer

        config, raw, table = self.config, self.config.raw, self.listener_table()
        contacts = config.contacts
        # Every setting is checked before anything binds: a typo fails fast, with one line.
        dns_config = DnsConfig.from_table(table)
        http_config = HttpConfig.from_table(table, contacts=contacts)
        serve_config = HttpServeConfig.from_table(table)
        https_config = HttpsServeConfig.from_table(table, config.base_dir)  # None unless listener.https is set
        admin_host, admin_port = admin_bind(table)
        admin_config = AdminConfig.from_table(raw.get("admin"), self.environ)
        smtp_config = SmtpConfig.from_table(table, contacts=contacts, base_dir=config.base_dir)
        journal_path, drain_timeout = journal_settings(table, config.base_dir)
        telephony = TelephonyConfig.from_table(raw.get("telephony") or {}, self.environ, journal_path.parent)
        soft, needed = raise_descriptor_limit(descriptors_needed(table))
        if soft < needed:
            log.warning("open files limited to %d, the connection caps need %d: raise LimitNOFILE "
                        "(see canary doctor)", soft, needed, extra={"event": "nofile-low"})
        self.alerting = build_alerting(self.registry, raw, self.environ)
        if not self.alerting.sinks:
            log.warning("no alert sink configured ([alerts.email], [alerts.webhook] or [alerts.syslog]): "
                        "hits are recorded but nobody is told", extra={"event": "no-sink"})
        self.sink, self.index = build_hit_sink(self.registry, raw, self.alerting)
        self.worker = self.alerting.worker
        if self.outbox_lease is not None:
            a = self.alerting
            slowest = max((float(getattr(getattr(s, "config", None), "timeout", 0) or 0)
                           for s in a.sinks.values()), default=0.0)
            if self.outbox_lease.total_seconds() <= 3 * max(slowest, 1.0):
                raise ConfigError(f"the outbox lease ({self.outbox_lease.total_seconds():g} s) must be longer "
                                  f"than three times the slowest sink timeout ({slowest:g} s)")
            self.worker = OutboxWorker(self.registry, a.sinks, a.config, alerter=a.alerter,
                                       composer=a.composer, lease=self.outbox_lease)
        self.metrics = metrics = ListenerMetrics()
        metrics.watch_registry(self.registry)
        metrics.watch_tokens(lambda: len(self.index))
        self._index_lag = None
        metrics.alert_sinks(self.alerting.sinks)
        self.sink.metrics = self.worker.metrics = metrics  # built by canary.alerts.service, without metrics
        self.sink.wake = self.worker.wake  # an immediate alert leaves at once, not at the next poll

        from listener.audit import AuditReceivers

        self.audit = AuditReceivers.build(self)  # its settings are checked before anything binds
        self.index.start(self.index_refresh)
        self._started.append(("token index", self.index.stop))
        # Front ends journal their hits and answer; the journal's writer stores them (and
        # first those a previous run left). They never wait for the registry.
        self.journal = HitJournal(journal_path, self.sink)
        self.journal.start()
        self._started.append(("hit journal", lambda: self.journal.stop(drain_timeout)))
        metrics.watch_journal(self.journal.stats)
        front = JournalSink(self.journal, self.sink)
        self.audit.journal_to(front)  # access hits are journaled like the other channels'
        self.dns = DnsServer(dns_config, front, dns_zone=contacts.dns_zone,
                             email_domains=contacts.email_domains, metrics=metrics)
        self._bind("DNS", ", ".join(f"{h}:{p}" for h, p in dns_config.binds), self.dns.start)
        self._started.append(("dns", self.dns.stop))
        # A POSTed login's password is checked against digests loaded ahead: the same work for
        # every login, no registry read while the client waits (a canary must not answer later).
        self.credentials = CredentialChecker(self.registry)
        self.credentials.start(self.index_refresh)
        self._started.append(("portal credentials", self.credentials.stop))
        self.hooks_path = telephony.hooks_path
        app = create_app(front, http_config, credentials=self.credentials, telephony=telephony, metrics=metrics)
        app = self.audit.wrap(app)  # POST /audit/fhir... when listener.audit_fhir_token_env is set
        self.http = HttpServer(app, serve_config)
        self._bind("HTTP", f"{serve_config.host}:{serve_config.port}", self.http.start)
        self._started.append(("http", self.http.stop))
        if https_config is not None:
            self.https = HttpsServer(app, https_config)
            self._bind("HTTPS", f"{https_config.host}:{https_config.port}", self.https.start)
            self._started.append(("https", self.https.stop))
        self.smtp = SmtpServer(front, smtp_config, metrics=metrics)
        self._bind("SMTP", f"{smtp_config.host}:{smtp_config.port}", self.smtp.start)
        self._started.append(("smtp", self.smtp.stop))
        self.audit.start(self._bind, self._started)
        self.worker.start()
        self._started.append(("outbox", self.worker.stop))
        # The admin address comes last: /readyz must not answer before the front ends do.
        admin_app = create_admin_app(self.registry, admin_config, metrics=metrics, readiness=self.readiness)
        self.admin = HttpServer(admin_app, HttpServeConfig(host=admin_host, port=admin_port, threads=4,
                                                           connection_limit=50))
        self._bind("admin", f"{admin_host}:{admin_port}", self.admin.start)
        self._started.append(("admin", self.admin.stop))
        from canary.scan.hibp import schedule_for_listen  # only an API key in the environment turns it on

        hibp = schedule_for_listen(self.registry, config, self.environ)
        if hibp is not None:
            hibp.start()
            self._started.append(("hibp", hibp.stop))

    @staticmethod
    def _bind(what: str, where: str, start: Callable[[], None]) -> None:
        try:
            start()
        except OSError as err:
            hint = ""
            if err.errno in (13,):  # EACCES
                hint = " (ports below 1024 need CAP_NET_BIND_SERVICE: see docs/listener.md)"
            elif err.errno in (98, 48):  # EADDRINUSE (Linux, BSD)
                hint = " (address in use: is another listener running?)"
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise ListenerError(f"the {what} listener cannot bind {where}: {reason}{hint}") from None

    def stop(self) -> None:
        """Drain and stop everything that started; safe to call twice."""
        with self._lock:
            if not self._started:
                return
            log.info("listener stopping", extra={"event": "stopping"})
            self._stop_started()
            log.info("listener stopped", extra={"event": "stopped"})

    def _stop_started(self) -> None:
        started, self._started = self._started, []
        for name, stop in sorted(started, key=lambda item: STOP_ORDER.index(item[0])):
            try:
                stop()
            except Exception:
                log.exception("stopping the %s failed", name)

    @property
    def running(self) -> bool:
        return bool(self._started)

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Bound (host, port) of each front end (the first DNS address)."""
        if not self.running:
            raise RuntimeError("listener not started")
        bound = {"dns": self.dns.addresses[0], "http": self.http.address, "smtp": self.smtp.address,
                 "admin": self.admin.address}
        if self.https is not None:
            bound["https"] = self.https.address
        if self.audit is not None and self.audit.syslog is not None:
            bound["audit_syslog"] = self.audit.syslog.address
        return bound

    def ports(self) -> dict[str, int]:
        return {name: int(address[1]) for name, address in self.addresses.items()}

    def stats(self) -> dict[str, Any]:
        return {"tokens": len(self.index) if self.index is not None else 0,
                "dns": self.dns.stats() if self.dns is not None and self.running else {}}

    # -- readiness ----------------------------------------------------------------

    def readiness(self) -> dict[str, str]:
        """Each part -> "ok" or a short problem (GET /readyz answers 503 unless all are ok).

        Front ends and the outbox worker: started and their threads alive; the audit
        receivers too when configured (listener/audit.py, ``readiness``).
        Registry: answered a cheap query (at most one every few seconds, shared
        with the metrics). Token index: its refresh thread alive, and no token
        of the registry missing from it for more than INDEX_LAG_LIMIT seconds.
        """
        parts = (*FRONT_ENDS, "registry", "token_index", "outbox")
        if not self.running:
            return {name: "not started" for name in parts}
        checks = {name: "ok" if _alive(getattr(self, name)) else "not running" for name in FRONT_ENDS}
        if self.https is not None:
            checks["https"] = "ok" if _alive(self.https) else "not running"
        if checks["http"] == "ok" and not _alive(self.credentials):
            checks["http"] = "portal credential refresh not running"
        probe = self.metrics.registry_probe
        _, problem = probe.read()
        checks["registry"] = problem or "ok"
        checks["token_index"] = self._index_problem(registry_up=problem is None) or "ok"
        checks["outbox"] = "ok" if _alive(self.worker) else "worker not running"
        if not _alive(self.journal):
            checks["registry"] = "hit journal writer not running"
        if self.audit is not None:  # the audit receivers that are configured (syslog, FHIR)
            checks.update(self.audit.readiness(http_alive=checks["http"] == "ok"))
        return checks

    def _index_problem(self, registry_up: bool) -> str | None:
        if not _alive(self.index):
            return "refresh not running"
        if not registry_up:
            return None  # reported under "registry"; the index keeps serving what it holds
        try:
            missing = self.registry.tokens_since(self.index.last_token_id, limit=1)
        except Exception as err:
            return f"registry unreachable ({type(err).__name__})"
        if not missing:
            self._index_lag = None
            return None
        now = time.monotonic()
        oldest = missing[0].token_id  # the oldest token it lacks; once refreshed past, the next is timed anew
        if self._index_lag is None or self._index_lag[0] != oldest:
            self._index_lag = (oldest, now)
        lag = now - self._index_lag[1]
        limit = max(INDEX_LAG_LIMIT, 3 * self.index_refresh)
        return f"not refreshed: behind the registry for {lag:.0f} s" if lag > limit else None

    def reload_tls(self) -> bool:
        """Read the TLS certificate and key again; on a bad file keep serving the old ones (logged)."""
        if self.https is None:
            log.info("reload requested: no TLS front end, nothing to reload", extra={"event": "tls-reload"})
            return False
        try:
            self.https.reload()
        except CanaryError as err:
            log.error("TLS reload failed, still serving the previous certificate: %s", err,
                      extra={"event": "tls-reload-failed"})
            return False
        return True

    def __enter__(self) -> "ListenerService":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _alive(part: Any) -> bool:
    return part is not None and bool(part.alive)


# -- canary listen -----------------------------------------------------------------------


def write_ports_file(path: Path, ports: Mapping[str, int]) -> None:
    """Write the ports as JSON atomically: readers see no file or the whole file."""
    path = Path(path)
    data = json.dumps(dict(ports), sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def run(service: ListenerService, *, ports_file: Path | None = None, stop: threading.Event | None = None,
        handle_signals: bool = True) -> None:
    """``canary listen``: start, publish the ports, serve until SIGTERM/SIGINT (or ``stop``), drain.

    The ports file is written once every front end answers and removed after a
    clean stop. Signal handlers are installed only in the main thread. SIGHUP
    (``systemctl reload``) reads the TLS certificate files again, after a
    renewal, without dropping a query.
    """
    stop = stop or threading.Event()
    reload = threading.Event()
    previous: dict[int, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: Any) -> None:
            if not stop.is_set():
                log.info("received %s: draining", signal.Signals(signum).name, extra={"event": "signal"})
            stop.set()

        def on_hangup(_signum: int, _frame: Any) -> None:
            reload.set()  # the work is done by the main loop, not inside the handler

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    wrote = False
    try:
        service.start()
        if ports_file is not None:
            write_ports_file(ports_file, service.ports())
            wrote = True
        while not stop.wait(0.5):
            if reload.is_set():
                reload.clear()
                service.reload_tls()
    finally:
        service.stop()
        if wrote:
            try:
                Path(ports_file).unlink()
            except OSError:
                pass
        for signum, handler in previous.items():
            signal.signal(signum, handler)
