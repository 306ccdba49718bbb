"""Audit syslog receiver: IHE ATNA (ITI-20) audit messages over UDP, TCP and TLS syslog.

One address (``[listener] audit_syslog = "ADDR:PORT"``, ``--audit-syslog``)
is served on UDP (RFC 5426: one message per datagram) and TCP (RFC 6587:
octet-counting or newline framing, read by canary.access.syslog.frames);
with ``audit_syslog_tls_cert``/``_key`` the TCP side is TLS (RFC 5425), and
``audit_syslog_tls_client_ca`` makes it require client certificates signed
by that CA (the ATNA "secure node" mutual authentication).

Each message goes to the AuditIntake (listener/auditintake.py). A message
that cannot be read is counted and logged, and the stream goes on; a broken
frame (a length that lies, a line over the cap) closes that connection, whose
framing can no longer be trusted. Nothing a sender does stops the receiver.

Lifecycle like the other front ends: ``start`` binds (errors raise) and
reports the address, ``stop`` closes the sockets, ends open connections and
joins every thread.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from canary.access.event import AuditMessageError
from canary.access.syslog import frames
from canary.config import Setting
from canary.errors import ConfigError
from listener.auditintake import AuditIntake, rejection_kind
from listener.proxy import parse_bind

log = logging.getLogger("canary.listener.audit")

IDLE_SECONDS = 300.0  # a silent TCP sender is closed after this
HANDSHAKE_SECONDS = 10.0
MAX_CONNECTIONS = 200

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.audit_syslog", None,
            "Address (\"ADDR:PORT\") of the audit syslog receiver (IHE ATNA ITI-20: DICOM / RFC 3881 audit "
            "messages, or FHIR AuditEvent JSON) on UDP and TCP; unset: no receiver. See docs/access.md."),
    Setting("listener.audit_syslog_tls_cert", None,
            "PEM certificate of the audit syslog receiver: with the key, its TCP side is TLS (RFC 5425)."),
    Setting("listener.audit_syslog_tls_key", None, "PEM private key (unencrypted) of that certificate."),
    Setting("listener.audit_syslog_tls_client_ca", None,
            "PEM CA bundle: when set, TLS senders must present a certificate it signed (mutual TLS)."),
)


@dataclass(frozen=True, slots=True)
class AuditSyslogConfig:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base_dir: Path) -> "AuditSyslogConfig | None":
        """None when ``listener.audit_syslog`` is not set."""
        if not table.get("audit_syslog"):
            return None
        host, port = parse_bind(table["audit_syslog"], "listener.audit_syslog")
        paths = {}
        for key in ("tls_cert", "tls_key", "tls_client_ca"):
            value = table.get(f"audit_syslog_{key}")
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"listener.audit_syslog_{key} must be a file path")
            paths[key] = (base_dir / value) if value else None
        if bool(paths["tls_cert"]) != bool(paths["tls_key"]):
            raise ConfigError("listener.audit_syslog_tls_cert and listener.audit_syslog_tls_key go together")
        if paths["tls_client_ca"] and not paths["tls_cert"]:
            raise ConfigError("listener.audit_syslog_tls_client_ca needs audit_syslog_tls_cert and _key")
        return cls(host, port, **paths)

    def context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        from listener.tls import tls_context

        context = tls_context(self.tls_cert, self.tls_key)
        if self.tls_client_ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.tls_client_ca))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"cannot load listener.audit_syslog_tls_client_ca "
                                  f"{self.tls_client_ca}: {err}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = True


class AuditSyslogServer:
    def __init__(self, config: AuditSyslogConfig, intake: AuditIntake) -> None:
        self.config = config
        self.intake = intake
        self._context = config.context()  # a bad certificate fails here, before binding
        self._tcp: _TcpServer | None = None
        self._udp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._serve_stream(self.request, self.client_address)

        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        server_class = type("AuditTcpServer", (_TcpServer,), {"address_family": family})
        self._tcp = server_class((self.config.host, self.config.port), Handler)
        port = self._tcp.server_address[1]
        try:
            self._udp = socket.socket(family, socket.SOCK_DGRAM)
            self._udp.bind((self.config.host, port))
            self._udp.settimeout(0.5)
        except OSError:
            self._tcp.server_close()
            if self._udp is not None:
                self._udp.close()
            raise
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._tcp.serve_forever, kwargs={"poll_interval": 0.2},
                             name="canary-audit-syslog-tcp", daemon=True),
            threading.Thread(target=self._serve_udp, name="canary-audit-syslog-udp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("audit syslog receiver on %s:%d (udp, tcp%s)", self.config.host, port,
                 " with TLS" if self._context else "", extra={"event": "audit-syslog-ready"})

    def stop(self) -> None:
        self._stop.set()
        if self._tcp is not None:
            self._tcp.shutdown()
        with self._lock:  # end the open connections: their threads are joined by server_close
            for conn in list(self._open):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._tcp is not None:
            self._tcp.server_close()
        for thread in self._threads:
            thread.join()
        if self._udp is not None:
            self._udp.close()
        self._tcp, self._udp, self._threads = None, None, []

    @property
    def address(self) -> tuple[str, int]:
        if self._tcp is None:
            raise RuntimeError("audit syslog receiver not started")
        host, port = self._tcp.server_address[:2]
        return host, port

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    # -- serving ------------------------------------------------------------------
    def _serve_udp(self) -> None:
        assert self._udp is not None
        while not self._stop.is_set():
            try:
                datagram, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self._message(datagram, peer[0])

    def _serve_stream(self, conn: socket.socket, peer: tuple) -> None:
        remote, raw = peer[0], conn  # shutting the raw socket down ends a TLS session on it too
        with self._lock:
            if len(self._open) >= MAX_CONNECTIONS:
                self.intake.count("syslog", "invalid", remote, "too many connections")
                return
            self._open.add(conn)
        try:
            if self._context is not None:
                conn.settimeout(HANDSHAKE_SECONDS)
                try:
                    conn = self._context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as err:
                    self.intake.count("syslog", "invalid", remote, f"TLS handshake failed: {type(err).__name__}")
                    return
            conn.settimeout(IDLE_SECONDS)
            buffer = b""
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except (socket.timeout, OSError, ssl.SSLError):
                    return
                if not data:
                    if buffer.strip():
                        self.intake.count("syslog", "malformed", remote, "truncated: connection closed mid-frame")
                    return
                try:
                    found, buffer = frames(buffer + data)
                except AuditMessageError as err:
                    self.intake.count("syslog", rejection_kind(err), remote, str(err))
                    return  # the framing cannot be trusted any more
                for frame in found:
                    self._message(frame, remote)
        finally:
            with self._lock:
                self._open.discard(raw)
            try:
                conn.close()
            except OSError:
                pass

    def _message(self, message: bytes, remote: str) -> None:
        try:
            self.intake.syslog_message(message, remote)
        except AuditMessageError:
            pass  # counted and logged by the intake
        except Exception:  # the registry down: counted; syslog has no way to ask for a retry
            log.exception("audit message from %s could not be recorded", remote)
