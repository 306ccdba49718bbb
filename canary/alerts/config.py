"""The ``[alerts]`` tables of canary.toml, validated into frozen values.

A sink is enabled when its table is present (``[alerts.email]``,
``[alerts.webhook]``, ``[alerts.syslog]``); every key has a default that
works with a mail server, SIEM or collector on the loopback interface.
Secrets never sit in the file: the SMTP password and a webhook URL carrying a
token are read from environment variables named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping, Self

from canary.config import Setting
from canary.errors import ConfigError

DEFAULT_CNIL_URL = "https://notifications.cnil.fr/notifications/index"
DEFAULT_CERT_SANTE_URL = "https://signalement.social-sante.gouv.fr"
DEFAULT_ART34_URL = "https://www.cnil.fr/fr/les-violations-de-donnees-personnelles"

TLS_MODES = ("none", "starttls", "tls")
WEBHOOK_FORMATS = ("json", "slack", "teams", "mattermost")
SYSLOG_FORMATS = ("rfc5424", "json")
SYSLOG_PROTOCOLS = ("udp", "tcp")
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
    "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}
_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

SETTINGS: tuple[Setting, ...] = (
    Setting("alerts.window", "24h",
            "How long an incident stays open after a canary's first hit: later hits of that "
            "canary update it (follow-up, digest) instead of opening a new one."),
    Setting("alerts.digest_interval", "15m",
            "Least time between two digests of one incident (hits that need no immediate alert)."),
    Setting("alerts.max_emails_per_hour", 10,
            "Most messages per source in any hour (each goes to every sink); more are held and "
            "sent as one summary when the hour allows."),
    Setting("alerts.notify_internal", True,
            "Whether internal hits alone (establishment networks, reminder gateways) cause a "
            "digest; false records them and shows them only in the next alert of their incident."),
    Setting("alerts.retry_initial", "30s", "Wait before retrying a failed delivery; doubles each time."),
    Setting("alerts.retry_max", "1h", "Longest wait between retries; deliveries are retried forever."),
    Setting("alerts.failing_after", 5,
            "Failures in a row after which a sink is reported failing (log, `canary alerts`, "
            "a notice through the other sinks)."),
    Setting("alerts.poll_interval", "1s",
            "How often the delivery worker looks for due messages: at most this long between a hit "
            "and its alert being sent."),
    Setting("alerts.cnil_url", DEFAULT_CNIL_URL, "Link to the CNIL data-breach notification service (GDPR Art. 33)."),
    Setting("alerts.cert_sante_url", DEFAULT_CERT_SANTE_URL,
            "Link for reporting a security incident of a health establishment (CERT Santé)."),
    Setting("alerts.art34_url", DEFAULT_ART34_URL,
            "Link to guidance on telling patients when they are at high risk (GDPR Art. 34)."),
    Setting("alerts.email.host", "localhost", "SMTP server sending the alert emails."),
    Setting("alerts.email.port", None, "SMTP port; default 25, 587 with starttls, 465 with tls."),
    Setting("alerts.email.tls", "none", "none, starttls or tls (implicit TLS)."),
    Setting("alerts.email.username", None, "SMTP login; none: no authentication."),
    Setting("alerts.email.password_env", None,
            "Name of the environment variable holding the SMTP password.", secret_env=True),
    Setting("alerts.email.from", "canary@localhost", "Sender address of the alerts."),
    Setting("alerts.email.to", ("root@localhost",),
            "Security team addresses; each alert also goes to its source's --alert-to addresses."),
    Setting("alerts.email.timeout", "30s", "SMTP connection and command timeout."),
    Setting("alerts.email.ca_file", None,
            "CA certificate file (PEM) to verify the SMTP server with, for a private CA."),
    Setting("alerts.webhook.url", None, "Webhook URL (https://...) receiving a JSON POST per alert."),
    Setting("alerts.webhook.url_env", None,
            "Name of an environment variable holding the webhook URL (use it when the URL "
            "carries a token, as Slack, Teams and Mattermost ones do).", secret_env=True),
    Setting("alerts.webhook.format", "json", "json (full structured alert), slack, teams or mattermost."),
    Setting("alerts.webhook.timeout", "10s", "HTTP timeout of the webhook call."),
    Setting("alerts.syslog.host", "127.0.0.1", "Syslog collector (SIEM) host."),
    Setting("alerts.syslog.port", 514, "Syslog collector port."),
    Setting("alerts.syslog.protocol", "udp", "udp or tcp (octet-counted framing, RFC 6587)."),
    Setting("alerts.syslog.format", "rfc5424", "rfc5424 (syslog line with structured data) or json (one JSON object)."),
    Setting("alerts.syslog.path", None,
            "Append JSON lines to this file instead of sending over the network (for a SIEM agent)."),
    Setting("alerts.syslog.facility", "local0", "Syslog facility name (e.g. auth, authpriv, local0-local7)."),
    Setting("alerts.syslog.app_name", "canary", "APP-NAME of the syslog messages."),
)

_KEYS = {s.name for s in SETTINGS}


def parse_duration(value: Any, name: str) -> timedelta:
    """Seconds as a number, or text like "90s", "15m", "24h", "1d", "1h30m"."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration like \"15m\" or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"{name}: {value!r} is not a duration (e.g. \"30s\", \"15m\", \"24h\")")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ConfigError(f"{name} must be a duration like \"15m\" or a number of seconds")
    if seconds <= 0:
        raise ConfigError(f"{name} must be longer than zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    host: str = "localhost"
    port: int = 25
    tls: str = "none"
    username: str | None = None
    password_env: str | None = None
    sender: str = "canary@localhost"
    to: tuple[str, ...] = ("root@localhost",)
    timeout: float = 30.0
    ca_file: str | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        _reject_unknown(table, "alerts.email")
        tls = _choice(table.get("tls", "none"), TLS_MODES, "alerts.email.tls")
        port = _int(table.get("port", _DEFAULT_PORTS[tls]), "alerts.email.port", 1, 65535)
        password_env = _env_name(table.get("password_env"), "alerts.email.password_env")
        username = _opt_str(table.get("username"), "alerts.email.username")
        if password_env and not username:
            raise ConfigError("alerts.email.password_env is set but alerts.email.username is not")
        to = _strings(table.get("to", ["root@localhost"]), "alerts.email.to")
        for address in (*to, str(table.get("from", "canary@localhost"))):
            if not _EMAIL.match(address):
                raise ConfigError(f"alerts.email: {address!r} is not an email address")
        if not to:
            raise ConfigError("alerts.email.to needs at least one address (the security team)")
        return cls(
            host=_str(table.get("host", "localhost"), "alerts.email.host"), port=port, tls=tls,
            username=username, password_env=password_env,
            sender=_str(table.get("from", "canary@localhost"), "alerts.email.from"), to=to,
            timeout=parse_duration(table.get("timeout", "30s"), "alerts.email.timeout").total_seconds(),
            ca_file=_opt_str(table.get("ca_file"), "alerts.email.ca_file"),
        )


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str | None = field(default=None, repr=False)  # Slack/Teams URLs carry their token
    url_env: str | None = None
    format: str = "json"
    timeout: float = 10.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        _reject_unknown(table, "alerts.webhook")
        url = _opt_str(table.get("url"), "alerts.webhook.url")
        url_env = _env_name(table.get("url_env"), "alerts.webhook.url_env")
        if bool(url) == bool(url_env):
            raise ConfigError("[alerts.webhook] needs exactly one of url or url_env")
        if url and not url.startswith(("https://", "http://")):
            raise ConfigError("alerts.webhook.url must start with https://")
        return cls(
            url=url, url_env=url_env,
            format=_choice(table.get("format", "json"), WEBHOOK_FORMATS, "alerts.webhook.format"),
            timeout=parse_duration(table.get("timeout", "10s"), "alerts.webhook.timeout").total_seconds(),
        )


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    host: str = "127.0.0.1"
    port: int = 514
    protocol: str = "udp"
    format: str = "rfc5424"
    path: str | None = None
    facility: int = FACILITIES["local0"]
    app_name: str = "canary"

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        _reject_unknown(table, "alerts.syslog")
        facility = _choice(table.get("facility", "local0"), tuple(FACILITIES), "alerts.syslog.facility")
        app_name = _str(table.get("app_name", "canary"), "alerts.syslog.app_name")
        if len(app_name) > 48 or not all(33 <= ord(c) <= 126 for c in app_name):
            raise ConfigError("alerts.syslog.app_name: at most 48 printable ASCII characters, no spaces")
        return cls(
            host=_str(table.get("host", "127.0.0.1"), "alerts.syslog.host"),
            port=_int(table.get("port", 514), "alerts.syslog.port", 1, 65535),
            protocol=_choice(table.get("protocol", "udp"), SYSLOG_PROTOCOLS, "alerts.syslog.protocol"),
            format=_choice(table.get("format", "rfc5424"), SYSLOG_FORMATS, "alerts.syslog.format"),
            path=_opt_str(table.get("path"), "alerts.syslog.path"),
            facility=FACILITIES[facility], app_name=app_name,
        )


@dataclass(frozen=True, slots=True)
class Links:
    cnil: str = DEFAULT_CNIL_URL
    cert_sante: str = DEFAULT_CERT_SANTE_URL
    art34: str = DEFAULT_ART34_URL


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    window: timedelta = timedelta(hours=24)
    digest_interval: timedelta = timedelta(minutes=15)
    max_per_hour: int = 10
    notify_internal: bool = True
    retry_initial: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(hours=1)
    failing_after: int = 5
    poll_interval: timedelta = timedelta(seconds=1)
    links: Links = field(default_factory=Links)
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None
    syslog: SyslogConfig | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> Self:
        """From the ``[alerts]`` table (with its sub-tables); None or {} gives the defaults."""
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError("[alerts] must be a table")
        table = dict(table or {})
        subs = {}
        for name in ("email", "webhook", "syslog"):
            sub = table.pop(name, None)
            if sub is not None and not isinstance(sub, Mapping):
                raise ConfigError(f"[alerts.{name}] must be a table")
            subs[name] = sub
        _reject_unknown(table, "alerts")
        notify_internal = table.get("notify_internal", True)
        if not isinstance(notify_internal, bool):
            raise ConfigError("alerts.notify_internal must be true or false")
        retry_initial = parse_duration(table.get("retry_initial", "30s"), "alerts.retry_initial")
        retry_max = parse_duration(table.get("retry_max", "1h"), "alerts.retry_max")
        if retry_max < retry_initial:
            raise ConfigError("alerts.retry_max must not be shorter than alerts.retry_initial")
        return cls(
            window=parse_duration(table.get("window", "24h"), "alerts.window"),
            digest_interval=parse_duration(table.get("digest_interval", "15m"), "alerts.digest_interval"),
            max_per_hour=_int(table.get("max_emails_per_hour", 10), "alerts.max_emails_per_hour", 1, 10_000),
            notify_internal=notify_internal,
            retry_initial=retry_initial, retry_max=retry_max,
            failing_after=_int(table.get("failing_after", 5), "alerts.failing_after", 1, 1000),
            poll_interval=parse_duration(table.get("poll_interval", "1s"), "alerts.poll_interval"),
            links=Links(
                cnil=_url(table.get("cnil_url", DEFAULT_CNIL_URL), "alerts.cnil_url"),
                cert_sante=_url(table.get("cert_sante_url", DEFAULT_CERT_SANTE_URL), "alerts.cert_sante_url"),
                art34=_url(table.get("art34_url", DEFAULT_ART34_URL), "alerts.art34_url"),
            ),
            email=EmailConfig.from_table(subs["email"]) if subs["email"] is not None else None,
            webhook=WebhookConfig.from_table(subs["webhook"]) if subs["webhook"] is not None else None,
            syslog=SyslogConfig.from_table(subs["syslog"]) if subs["syslog"] is not None else None,
        )

    @property
    def sink_names(self) -> tuple[str, ...]:
        """Enabled sinks, in a fixed order."""
        return tuple(name for name in ("email", "webhook", "syslog") if getattr(self, name) is not None)

    def retry_delay(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failed try: initial, doubling, capped."""
        seconds = self.retry_initial.total_seconds() * (2 ** min(max(attempts - 1, 0), 32))
        return min(timedelta(seconds=seconds), self.retry_max)


# -- validation helpers -------------------------------------------------------------


def _reject_unknown(table: Mapping[str, Any], prefix: str) -> None:
    for key in table:
        if f"{prefix}.{key}" not in _KEYS:
            known = sorted(n[len(prefix) + 1:] for n in _KEYS
                           if n.startswith(prefix + ".") and "." not in n[len(prefix) + 1:])
            raise ConfigError(f"unknown setting {prefix}.{key} (known in [{prefix}]: {', '.join(known)})")


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string")
    return value.strip()


def _opt_str(value: Any, name: str) -> str | None:
    return None if value is None or value == "" else _str(value, name)


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return tuple(v.strip() for v in value)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}")
    return value


def _choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}")
    return value.lower()


def _env_name(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigError(f"{name} must name an environment variable (e.g. CANARY_SMTP_PASSWORD)")
    return value


def _url(value: Any, name: str) -> str:
    value = _str(value, name)
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"{name} must be an https:// link")
    return value
