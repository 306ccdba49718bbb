"""The audit receivers of the listener, wired together: syslog, FHIR, and their access index.

``AuditReceivers.build(service)`` reads the settings (errors before anything
binds) and, when a receiver is set up, starts the AccessBook refresh (the
registry's canaries -> their application identifiers, reloaded like the
token index) and an AccessRecorder; ``journal_to(front)`` hands its hits to the
listener's hit journal, so access hits are journaled, stored, replayed and
counted like every other front end's (same transaction, incidents, outbox and
metrics). ``wrap(app)`` puts the FHIR receiver in front of the HTTP app;
``start(bind, started)`` binds the syslog receiver. See docs/access.md.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from listener.auditfhir import AuditFhirMiddleware, fhir_token
from listener.auditintake import AuditIntake
from listener.auditsyslog import AuditSyslogConfig, AuditSyslogServer

log = logging.getLogger("canary.listener.audit")

INDEX_REFRESH = 10.0


class AuditReceivers:
    def __init__(self, syslog_config: AuditSyslogConfig | None, token: str | None, intake: AuditIntake | None,
                 book: Any = None) -> None:
        self.syslog_config = syslog_config
        self.token = token
        self.intake = intake
        self.book = book
        self.syslog: AuditSyslogServer | None = None

    @classmethod
    def build(cls, service: Any) -> "AuditReceivers":
        table = service.listener_table()
        syslog_config = AuditSyslogConfig.from_table(table, service.config.base_dir)
        token = fhir_token(table, service.environ)
        if syslog_config is None and token is None:
            return cls(None, None, None)
        from canary.access.config import AccessConfig
        from canary.access.record import AccessBook, AccessRecorder

        access = AccessConfig.from_table(service.config.raw.get("access"))
        book = AccessBook(service.registry, dict(access.sources))
        recorder = AccessRecorder(service.sink, book, access)
        return cls(syslog_config, token, AuditIntake(recorder, service.metrics), book)

    @property
    def enabled(self) -> bool:
        return self.intake is not None

    def readiness(self, http_alive: bool) -> dict[str, str]:
        """Each configured receiver -> "ok" or what stops it (for GET /readyz).

        Syslog: its UDP and TCP threads alive (a receiver that died or never bound is not
        listening). FHIR: the HTTP listener that serves it alive. Both: the refresh of the
        canary identifiers they match against alive (without it new canaries go unseen).
        """
        checks: dict[str, str] = {}
        if self.intake is None:
            return checks
        index = None if self.book is not None and self.book.alive else "identifier index not refreshing"
        if self.syslog_config is not None:
            alive = self.syslog is not None and self.syslog.alive
            checks["audit_syslog"] = index or ("ok" if alive else "not listening")
        if self.token is not None:
            checks["audit_fhir"] = index or ("ok" if http_alive else "not listening (HTTP listener down)")
        return checks

    def journal_to(self, sink: Any) -> None:
        """Hand access hits to ``sink`` (the listener's JournalSink) instead of storing them in
        the receiving thread: on disk at once, stored by the journal's writer, replayed at start."""
        if self.intake is not None:
            self.intake.recorder.sink = sink

    def wrap(self, app: Callable) -> Callable:
        if self.token is None or self.intake is None:
            return app
        return AuditFhirMiddleware(app, self.intake, self.token)

    def start(self, bind: Callable[[str, str, Callable[[], None]], None],
              started: list[tuple[str, Callable[[], None]]]) -> None:
        if self.intake is None:
            return
        self.book.start(INDEX_REFRESH)
        started.append(("audit index", self.book.stop))
        self.intake.recorder.prime()
        if self.syslog_config is not None:
            self.syslog = AuditSyslogServer(self.syslog_config, self.intake)
            bind("audit syslog", f"{self.syslog_config.host}:{self.syslog_config.port}", self.syslog.start)
            started.append(("audit syslog", self.syslog.stop))
