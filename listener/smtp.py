"""SMTP front end: mail to our email domains, never relayed.

A RCPT to an address at one of our domains is recorded at once, before DATA
(an attacker checking addresses quits after RCPT), then answered 250; an
address at any other domain is refused (550, relay denied) and nothing is
recorded. Addresses that are no canary are accepted and recorded the same
way (the sink stores them without alert), so nothing can be enumerated. When
the message comes, its raw bytes are kept as a .eml file (mode 0600) if it is
addressed to a canary, and its envelope, HELO, subject and links are
recorded. Every 250 goes out only after the sink stored the hit; if storing
fails the answer is 451, and the sender retries later.

Mail for the relay address (``listener.smtp_relay``: where the watched
mailboxes at common providers forward) is answered like any other address;
its headers say which mailbox it was for (listener/smtprelay.py), and each
one that is a canary's email gets one hit, with the message kept as for a
direct recipient.

Three pieces, as aiosmtpd has them: the protocol (aiosmtpd.smtp.SMTP), our
handler (CanaryHandler: what to record) and a controller (SmtpServer: bind,
start, stop).
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from canary.config import Setting
from canary.contacts import ContactPoints
from canary.errors import ConfigError
from canary.hits.hit import Channel, HitSink, Observation, cap_evidence
from canary.model import TokenKind
from listener.conncap import ConnectionGate
from listener.evidence import EvidenceStore
from listener.proxy import parse_bind
from listener.smtprelay import DEFAULT_NOTICE_SENDERS, forwarded_canaries, notice_senders, relay_addresses
from listener.tls import no_password
from listener.wsgi import int_setting

if TYPE_CHECKING:
    from listener.metrics import ListenerMetrics

log = logging.getLogger(__name__)

DEFAULT_SMTP_BIND = "127.0.0.1:2525"
MAX_LINKS = 50
COMMAND_CALL_LIMIT = 100  # per command and session: a flood gets 421 and is cut
RELAY_DENIED = "550 5.7.1 Relaying denied"
MALFORMED = "553 5.1.3 Error: malformed address"  # aiosmtpd's own answer to a bad address
TEMP_FAILURE = "451 4.3.0 Temporary local problem, please try again later"

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.smtp", DEFAULT_SMTP_BIND,
            "Address the SMTP listener binds, host:port (\"0.0.0.0:25\" in production); the default needs no root."),
    Setting("listener.smtp_hostname", None,
            "Name the SMTP server gives in its greeting and EHLO; default: the first of contacts.email_domains."),
    Setting("listener.smtp_max_message", 10 * 1024 * 1024,
            "Largest message accepted, in bytes (a larger one is refused with 552 and not kept)."),
    Setting("listener.smtp_max_recipients", 50, "Most recipients accepted per message (452 after that)."),
    Setting("listener.smtp_timeout", 60, "Seconds an idle SMTP connection is kept open."),
    Setting("listener.smtp_max_connections", 200,
            "Simultaneous SMTP connections; more get 421 and are closed (the sender retries)."),
    Setting("listener.smtp_max_per_network", 10,
            "Simultaneous SMTP connections from one client network (/24 IPv4, /56 IPv6); more get 421."),
    Setting("listener.smtp_session_limit", 300,
            "Seconds an SMTP session may last in all, active or not (a slow sender is cut with 421)."),
    Setting("listener.smtp_evidence_dir", "smtp-evidence",
            "Folder (mode 0700) where messages sent to canaries are kept as .eml files (mode 0600); "
            "relative to the folder of canary.toml."),
    Setting("listener.smtp_evidence_per_canary", 20 * 1024 * 1024,
            "Bytes of .eml kept per canary address; a message beyond is kept in part (or not) and its "
            "hit says evidence_truncated."),
    Setting("listener.smtp_evidence_max", 1024 * 1024 * 1024,
            "Bytes of .eml kept in all, every canary together; beyond, as for the per-canary quota."),
    Setting("listener.min_free_space", 1024 * 1024 * 1024,
            "Bytes that must stay free on the evidence folder's disk: below, no .eml is written (hits "
            "are still recorded)."),
    Setting("listener.smtp_tls_cert", None,
            "PEM certificate (chain) offered with STARTTLS; with smtp_tls_key. Unset: no STARTTLS."),
    Setting("listener.smtp_tls_key", None, "PEM private key of smtp_tls_cert."),
    Setting("listener.smtp_relay", None,
            "Address (or list) at one of contacts.email_domains where the watched mailboxes of "
            "contacts.mailbox_pool_file forward their mail; its headers name the mailbox, which is recorded "
            "as a hit. Answered like any other address."),
    Setting("listener.smtp_relay_notice_senders", ["no-reply@accounts.google.com", "forwarding-noreply@google.com",
                                                   "account-security-noreply@accountprotection.microsoft.com"],
            "Exact From addresses of the providers' own notices to the watched mailboxes (sign-in alerts, "
            "forwarding confirmations): kept with the relay, never a canary hit."),
)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    domains: tuple[str, ...]  # our email domains, lower case
    evidence_dir: Path
    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "localhost"
    max_message: int = 10 * 1024 * 1024
    max_recipients: int = 50
    timeout: int = 60
    max_connections: int = 200
    max_per_network: int = 10
    session_limit: int = 300
    evidence_per_canary: int = 20 * 1024 * 1024
    evidence_max: int = 1024 * 1024 * 1024
    min_free_space: int = 1024 * 1024 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    relays: tuple[str, ...] = ()  # listener.smtp_relay, lower case
    relay_notice_senders: frozenset[str] = frozenset(DEFAULT_NOTICE_SENDERS)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, contacts: ContactPoints,
                   base_dir: Path | None = None) -> "SmtpConfig":
        """From the ``[listener]`` table and the ``[contacts]`` we watch."""
        base = base_dir or Path.cwd()
        host, port = parse_bind(table.get("smtp", DEFAULT_SMTP_BIND), "listener.smtp")
        domains = tuple(d.lower().strip(".") for d in contacts.email_domains)
        hostname = table.get("smtp_hostname") or domains[0]
        if not isinstance(hostname, str) or not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", hostname):
            raise ConfigError("listener.smtp_hostname must be a host name like \"mx.example.fr\"")
        cert, key = table.get("smtp_tls_cert"), table.get("smtp_tls_key")
        if bool(cert) != bool(key):
            raise ConfigError("listener.smtp_tls_cert and listener.smtp_tls_key go together: set both or neither")
        folder = table.get("smtp_evidence_dir", "smtp-evidence")
        if not isinstance(folder, str) or not folder:
            raise ConfigError("listener.smtp_evidence_dir must be a folder path")
        return cls(
            domains=domains, evidence_dir=base / folder, host=host, port=port, hostname=hostname,
            max_message=int_setting(table, "smtp_max_message", 10 * 1024 * 1024, 1024, 2**30),
            max_recipients=int_setting(table, "smtp_max_recipients", 50, 1, 1000),
            timeout=int_setting(table, "smtp_timeout", 60, 1, 3600),
            max_connections=int_setting(table, "smtp_max_connections", 200, 1, 100_000),
            max_per_network=int_setting(table, "smtp_max_per_network", 10, 1, 100_000),
            session_limit=int_setting(table, "smtp_session_limit", 300, 5, 86_400),
            evidence_per_canary=int_setting(table, "smtp_evidence_per_canary", 20 * 1024 * 1024, 0, 2**40),
            evidence_max=int_setting(table, "smtp_evidence_max", 1024 * 1024 * 1024, 0, 2**44),
            min_free_space=int_setting(table, "min_free_space", 1024 * 1024 * 1024, 0, 2**44),
            tls_cert=base / cert if cert else None, tls_key=base / key if key else None,
            relays=relay_addresses(table.get("smtp_relay"), domains),
            relay_notice_senders=notice_senders(table.get("smtp_relay_notice_senders")),
        )


class CanaryHandler:
    """aiosmtpd handler: what to accept, record and keep."""

    def __init__(self, sink: HitSink, config: SmtpConfig, metrics: "ListenerMetrics | None" = None):
        self.sink = sink
        self.config = config
        self.metrics = metrics
        self._domains = frozenset(config.domains)
        self._relays = frozenset(config.relays)
        self.evidence = EvidenceStore(config.evidence_dir, per_canary=config.evidence_per_canary,
                                      total=config.evidence_max, min_free=config.min_free_space)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        metrics = self.metrics
        value = address.strip().lower()
        if not value.isascii() and not _valid_utf8(value):
            # Bytes that are not UTF-8 (aiosmtpd keeps them as surrogates): a malformed
            # address like any other, answered as aiosmtpd answers those, nothing logged.
            if metrics is not None:
                metrics.smtp_recipient(accepted=False)
            return MALFORMED
        if value.rpartition("@")[2].rstrip(".") not in self._domains:
            if metrics is not None:
                metrics.smtp_recipient(accepted=False)
            return RELAY_DENIED
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            if metrics is not None:
                metrics.smtp_recipient(accepted=False)
            return "452 4.5.3 Too many recipients"
        evidence = {**_envelope_evidence(session, envelope), "stage": "rcpt", "rcpt": value}
        observation = Observation(Channel.SMTP, TokenKind.EMAIL, value, _peer_ip(session), cap_evidence(evidence))
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.sink.observe, observation)
        except Exception:
            log.exception("could not record an SMTP RCPT hit")
            if metrics is not None:
                metrics.smtp_error("rcpt")
            return TEMP_FAILURE
        if metrics is not None:
            metrics.smtp_recipient(accepted=True)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        if len(content) > self.config.max_message:  # aiosmtpd enforces it too; be sure
            return "552 5.3.4 Message too big"
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self._record_message, content, _envelope_evidence(session, envelope),
                [a.lower() for a in envelope.rcpt_tos], _peer_ip(session))
        except Exception:
            log.exception("could not record an SMTP message")
            if self.metrics is not None:
                self.metrics.smtp_error("data")
            return TEMP_FAILURE
        if self.metrics is not None:
            self.metrics.smtp_message()
        return "250 2.0.0 OK: queued"

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %s", type(error).__name__)
        if self.metrics is not None:
            self.metrics.smtp_error("session")
        return "451 4.3.0 Error, please try again later"

    def _record_message(self, content: bytes, envelope_evidence: dict[str, Any],
                        recipients: list[str], remote: str | None) -> None:
        """Keep the message (if it is for a canary) and record one hit per recipient.

        Only canary recipients get the full evidence (subject, text, links, the .eml
        within the quotas of listener/evidence.py); any other recipient's hit holds the
        envelope, size and digest: fifty recipients no longer store fifty copies.
        Mail to the relay is kept too: besides what the mailboxes forward for canaries,
        it is the providers' own mail to the operator (forwarding confirmation codes,
        notices of accounts closed for inactivity)."""
        unique = list(dict.fromkeys(recipients))
        canaries = {r for r in unique if self.sink.known(TokenKind.EMAIL, r)}
        relay = next((r for r in unique if r in self._relays), None)
        relayed = forwarded_canaries(content, relay, unique, self.sink, self.metrics,
                                     self.config.relay_notice_senders) if relay else {}
        kept_for = [r for r in unique if r in canaries] + list(relayed) + ([relay] if relay else [])
        base = {**envelope_evidence, "stage": "data", "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest()}
        full: dict[str, Any] = {}
        if kept_for:
            path, kept = self.evidence.save(content, kept_for[0])
            full = cap_evidence({**base, **parse_message(content), "rcpt": recipients,
                                 "eml_path": str(path) if path else None, **kept})
        brief = cap_evidence({**base, "rcpt_count": len(recipients)})
        for recipient in unique:
            self.sink.observe(Observation(Channel.SMTP, TokenKind.EMAIL, recipient, remote,
                                          full if recipient in canaries or recipient == relay else brief))
        for address, header in relayed.items():  # once per message: a direct recipient is not counted again
            self.sink.observe(Observation(Channel.SMTP, TokenKind.EMAIL, address, remote,
                                          {**full, "relay": relay, "relay_header": header}))


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _peer_ip(session: Any) -> str | None:
    peer = getattr(session, "peer", None)
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else None


def _envelope_evidence(session: Any, envelope: Any) -> dict[str, Any]:
    return {"helo": session.host_name or "", "mail_from": envelope.mail_from or "",
            "tls": bool(getattr(session, "ssl", None))}


_URL = re.compile(r"""https?://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)


def parse_message(content: bytes) -> dict[str, Any]:
    """Subject, From, Message-ID and the http(s) links of a raw message; never raises."""
    result: dict[str, Any] = {"subject": None, "header_from": None, "message_id": None, "links": []}
    try:
        message = BytesParser(policy=email.policy.default).parsebytes(content)
        for field, name in (("subject", "Subject"), ("header_from", "From"), ("message_id", "Message-ID")):
            try:
                value = message.get(name)
                result[field] = str(value) if value is not None else None
            except Exception:
                result[field] = None
        texts = []
        for part in message.walk():
            if part.get_content_maintype() != "text":
                continue
            try:
                texts.append(part.get_content())
            except Exception:
                payload = part.get_payload(decode=True)
                texts.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))
    except Exception:
        texts = [content.decode("utf-8", "replace")]
    links: dict[str, None] = {}
    for text in texts:
        for match in _URL.finditer(text):
            links[match.group(0).rstrip(".,;:!?)")] = None
            if len(links) >= MAX_LINKS:
                break
    result["links"] = list(links)[:MAX_LINKS]
    return result


TOO_MANY = b"421 4.7.0 Too many connections, try again later\r\n"
SESSION_OVER = b"421 4.4.2 Session too long, closing\r\n"


class _CappedSMTP(SMTP):
    """aiosmtpd's protocol under the connection caps and an absolute session deadline
    (its own timeout is an idle timer that every command restarts)."""

    def __init__(self, *args: Any, gate: ConnectionGate, session_limit: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate
        self._session_limit = session_limit
        self._admitted: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted is not None:  # STARTTLS: the same session on a new transport
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else None
        if not self._gate.admit(ip):
            transport.write(TOO_MANY)  # type: ignore[attr-defined]
            transport.close()
            return
        self._admitted = ip or ""
        self._deadline = self.loop.call_later(self._session_limit, self._session_over, transport)
        super().connection_made(transport)

    def _session_over(self, transport: asyncio.BaseTransport) -> None:
        if not transport.is_closing():
            transport.write(SESSION_OVER)  # type: ignore[attr-defined]
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted is None:
            return  # refused at once: aiosmtpd never set this connection up
        if self._deadline is not None:
            self._deadline.cancel()
        self._gate.release(self._admitted or None)
        self._admitted = None
        super().connection_lost(error)


class _Controller(Controller):
    """aiosmtpd's threaded controller on a socket we bound ourselves (port 0 works)."""

    def __init__(self, handler: Any, sock: socket.socket, *, gate: ConnectionGate, session_limit: float,
                 **kwargs: Any):
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock
        self.gate = gate
        self._session_limit = session_limit
        self.on_session: Callable[[], None] | None = None  # set once started: start()'s own probe is no session

    def factory(self) -> Any:
        """One SMTP protocol object per connection: the place to count sessions."""
        if self.on_session is not None:
            self.on_session()
        return _CappedSMTP(self.handler, gate=self.gate, session_limit=self._session_limit, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)

    def _trigger_server(self) -> None:
        host = self.hostname
        if host in ("0.0.0.0", "", None):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        with socket.create_connection((host, self.port), 1.0) as conn:
            conn.recv(1024)


class SmtpServer:
    """start() binds (errors raise here) and waits until the server answers; stop() closes and joins."""

    def __init__(self, sink: HitSink, config: SmtpConfig, *, metrics: "ListenerMetrics | None" = None):
        self.config = config
        self.metrics = metrics
        self.handler = CanaryHandler(sink, config, metrics)
        self._controller: _Controller | None = None
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("SMTP server not started")
        return self._address

    @property
    def alive(self) -> bool:
        """Started, and its event loop thread still running."""
        thread = getattr(self._controller, "_thread", None)
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("SMTP server already running")
        cfg = self.config
        cfg.evidence_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.handler.evidence.load()
        tls = _tls_context(cfg)
        family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
        sock = socket.create_server((cfg.host, cfg.port), family=family, backlog=128)
        sock.setblocking(False)
        controller = _Controller(
            self.handler, sock, server_hostname=cfg.hostname, ident="ESMTP",
            data_size_limit=cfg.max_message, timeout=cfg.timeout, tls_context=tls,
            command_call_limit=COMMAND_CALL_LIMIT, enable_SMTPUTF8=True,
            gate=ConnectionGate(cfg.max_connections, cfg.max_per_network), session_limit=cfg.session_limit,
        )
        try:
            controller.start()
        except BaseException:
            try:
                controller.stop(no_assert=True)
            except RuntimeError:  # its loop never ran
                pass
            sock.close()
            raise
        if self.metrics is not None:
            controller.on_session = self.metrics.smtp_session
        self._controller = controller
        self._address = (str(sock.getsockname()[0]), int(sock.getsockname()[1]))

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None

    def __enter__(self) -> "SmtpServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _tls_context(cfg: SmtpConfig) -> ssl.SSLContext | None:
    if not cfg.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # An encrypted key must fail here, not make OpenSSL prompt on the terminal.
        context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key), password=no_password)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"listener.smtp_tls_cert/smtp_tls_key: cannot load {cfg.tls_cert}: {err}") from None
    return context
