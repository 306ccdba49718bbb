"""Alert sinks: SMTP email, JSON webhook, syslog / JSON lines. ``send(alert)`` or DeliveryError.

A sink only transports an Alert; retries, backoff and failure reporting are
the outbox worker's job. Error messages never carry the SMTP password or a
webhook URL's path (where chat services keep their token).
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Callable, Mapping, Protocol
from urllib.parse import urlsplit

from canary.alerts.config import AlertsConfig, EmailConfig, SyslogConfig, WebhookConfig
from canary.alerts.formats import WEBHOOK_FORMATS, json_document, rfc5424, shrink
from canary.alerts.message import Alert, DeliveryError
from canary.errors import ConfigError

log = logging.getLogger(__name__)

UDP_LIMIT = 8192
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class Sink(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class EmailSink:
    """SMTP with none/STARTTLS/implicit TLS, optional login; text and HTML parts."""

    name = "email"

    def __init__(self, config: EmailConfig, environ: Mapping[str, str] = os.environ) -> None:
        if config.username and config.tls == "none" and config.host not in _LOOPBACK:
            raise ConfigError("alerts.email.username needs tls = \"starttls\" or \"tls\": the "
                              "password would cross the network in clear")
        self.config = config
        self._password: str | None = None
        if config.password_env:
            self._password = environ.get(config.password_env)
            if not self._password:
                raise ConfigError(f"alerts.email.password_env names {config.password_env}, which is not set")

    def __repr__(self) -> str:
        return f"EmailSink({self.config.host}:{self.config.port}, tls={self.config.tls})"

    def recipients(self, alert: Alert) -> list[str]:
        return list(dict.fromkeys([*self.config.to, *alert.recipients]))

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.recipients(alert))
        msg["Date"] = format_datetime(alert.created_at)
        domain = self.config.sender.rpartition("@")[2] or "localhost"
        # The same id on a resend (after a crash) lets mail systems drop the duplicate.
        msg["Message-ID"] = f"<canary-alert-{alert.id}@{domain}>" if alert.id is not None \
            else make_msgid("canary", domain=domain)
        msg["X-Canary-Alert"] = f"{alert.kind.value}; level={alert.level}"
        if alert.level == "critical":
            msg["Importance"] = "high"
            msg["X-Priority"] = "1"
        msg.set_content(alert.text)
        msg.add_alternative(alert.html, subtype="html")
        return msg

    def send(self, alert: Alert) -> None:
        config = self.config
        where = f"SMTP {config.host}:{config.port}"
        try:
            with self._connect() as smtp:
                if config.username:
                    smtp.login(config.username, self._password or "")
                refused = smtp.send_message(self.message(alert), from_addr=config.sender,
                                            to_addrs=self.recipients(alert))
        except smtplib.SMTPAuthenticationError as err:
            raise DeliveryError(f"{where}: login refused for {config.username} ({err.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as err:
            raise DeliveryError(f"{where}: every recipient refused ({', '.join(err.recipients)})") from None
        except smtplib.SMTPResponseException as err:
            raise DeliveryError(f"{where}: {err.smtp_code} {self._scrub(err.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(f"{where}: {type(err).__name__}: {self._scrub(err)}") from None
        if refused:
            log.warning("%s refused some recipients of alert %s: %s", where, alert.id, ", ".join(refused))

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = ssl.create_default_context(cafile=config.ca_file) if config.tls != "none" else None
        if config.tls == "tls":
            return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            if config.tls == "starttls":
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _scrub(self, value: object) -> str:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        text = " ".join(text.split())[:300]
        return text.replace(self._password, "***") if self._password else text


class WebhookSink:
    """An HTTP POST of the alert as JSON, in the json, slack, teams or mattermost shape."""

    name = "webhook"

    def __init__(self, config: WebhookConfig, environ: Mapping[str, str] = os.environ,
                 session: object | None = None) -> None:
        url = config.url or (environ.get(config.url_env) if config.url_env else None)
        if not url:
            raise ConfigError(f"alerts.webhook.url_env names {config.url_env}, which is not set")
        if not url.startswith(("https://", "http://")):
            raise ConfigError("the webhook URL must start with https://")
        self.config = config
        self._url = url
        self._where = f"webhook {urlsplit(url).scheme}://{urlsplit(url).hostname}"
        self._format: Callable[[Alert], dict] = WEBHOOK_FORMATS[config.format]
        self._session = session

    def __repr__(self) -> str:
        return f"WebhookSink({self._where}, format={self.config.format})"

    def send(self, alert: Alert) -> None:
        import requests

        post = self._session.post if self._session is not None else requests.post  # type: ignore[attr-defined]
        try:
            response = post(self._url, json=self._format(alert), timeout=self.config.timeout,
                            allow_redirects=False)
        except requests.RequestException as err:
            # The exception text holds the full URL (and its token): say only what failed.
            raise DeliveryError(f"{self._where}: {type(err).__name__}") from None
        if not 200 <= response.status_code < 300:
            body = " ".join((response.text or "").split())[:200]
            raise DeliveryError(f"{self._where}: HTTP {response.status_code} {body}".rstrip())


class SyslogSink:
    """RFC 5424 or JSON over UDP/TCP to a collector, or JSON lines appended to a file."""

    name = "syslog"

    def __init__(self, config: SyslogConfig) -> None:
        self.config = config
        self._hostname = socket.gethostname()

    def __repr__(self) -> str:
        where = self.config.path or f"{self.config.protocol}://{self.config.host}:{self.config.port}"
        return f"SyslogSink({where}, format={self.config.format})"

    def encode(self, alert: Alert, limit: int | None = None) -> bytes:
        if self.config.format == "json" or self.config.path:
            document = json_document(alert)
            if limit is None:
                return json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
            return shrink(document, limit)
        return rfc5424(alert, facility=self.config.facility, app_name=self.config.app_name,
                       hostname=self._hostname, procid=os.getpid())

    def send(self, alert: Alert) -> None:
        config = self.config
        try:
            if config.path:
                self._append(self.encode(alert) + b"\n")
            elif config.protocol == "udp":
                self._udp(self.encode(alert, UDP_LIMIT))
            else:
                self._tcp(self.encode(alert))
        except OSError as err:
            where = config.path or f"{config.protocol}://{config.host}:{config.port}"
            raise DeliveryError(f"syslog {where}: {type(err).__name__}: {err.strerror or err}") from None

    def _append(self, line: bytes) -> None:
        fd = os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write: lines of concurrent writers do not interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def _udp(self, message: bytes) -> None:
        infos = socket.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_DGRAM)
        family, kind, proto, _name, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.sendto(message, address)

    def _tcp(self, message: bytes) -> None:
        if self.config.format == "json":
            frame = message + b"\n"  # JSON lines
        else:
            frame = str(len(message)).encode("ascii") + b" " + message  # RFC 6587 octet counting
        with socket.create_connection((self.config.host, self.config.port), timeout=10) as sock:
            sock.sendall(frame)


SINK_CLASSES = {"email": EmailSink, "webhook": WebhookSink, "syslog": SyslogSink}


def build_sinks(config: AlertsConfig, environ: Mapping[str, str] = os.environ) -> dict[str, Sink]:
    """The enabled sinks by name; ConfigError (one line) if one cannot be set up."""
    sinks: dict[str, Sink] = {}
    if config.email is not None:
        sinks["email"] = EmailSink(config.email, environ)
    if config.webhook is not None:
        sinks["webhook"] = WebhookSink(config.webhook, environ)
    if config.syslog is not None:
        sinks["syslog"] = SyslogSink(config.syslog)
    return sinks
