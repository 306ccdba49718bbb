"""Settings of the admin dashboard: the ``[admin]`` table and ``listener.admin``.

The dashboard is served by ``canary listen`` on its own address, loopback by
default and never the public HTTP listener's: it shows which databases hold
canaries and what was seen, exactly what an attacker would want to know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

from canary.config import Setting
from canary.errors import ConfigError
from listener.proxy import parse_bind

DEFAULT_ADMIN_BIND = "127.0.0.1:8081"
DEFAULT_SESSION_KEY_ENV = "CANARY_ADMIN_SESSION_KEY"
MIN_SESSION_KEY_BYTES = 32
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.admin", DEFAULT_ADMIN_BIND,
            "Address of the admin dashboard, /metrics, /healthz and /readyz, host:port (`canary listen "
            "--admin`); keep it on loopback or an internal network, never the public HTTP address."),
    Setting("admin.username", "admin", "Login name of the admin dashboard."),
    Setting("admin.password_hash", None,
            "bcrypt hash of the dashboard password, made by `canary admin hash-password`; "
            "without it nobody can log in (the login page says how to set it)."),
    Setting("admin.session_key_env", DEFAULT_SESSION_KEY_ENV,
            "Name of an environment variable holding the key that signs dashboard sessions (at least "
            "32 characters); unset, a random key is drawn at start and sessions end when the listener restarts.",
            secret_env=True),
    Setting("admin.secure_cookies", True,
            "Send the session cookie with Secure, HttpOnly and SameSite=Strict (browsers accept Secure "
            "cookies on http://127.0.0.1 and http://localhost, so an SSH tunnel works)."),
    Setting("admin.session_minutes", 120, "Minutes a dashboard login lasts."),
    Setting("admin.lockout_failures", 5,
            "Failed logins, per user name and per client address, that lock logins out."),
    Setting("admin.lockout_minutes", 15, "Minutes a lockout lasts."),
    Setting("admin.metrics_token_env", None,
            "Name of an environment variable holding a bearer token for GET /metrics. A scrape with "
            "`Authorization: Bearer <token>`, or from loopback, gets every metric; any other client gets "
            "only those that say nothing about canaries or hits (no token count, no live hit, alert or "
            "outbox figure).", secret_env=True),
    Setting("admin.read_only", True,
            "The dashboard only shows the registry. It has no write action yet (the registry has no "
            "incident acknowledgement): false is refused."),
)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    username: str = "admin"
    password_hash: bytes | None = field(default=None, repr=False)  # None: nobody can log in
    session_key: bytes | None = field(default=None, repr=False)  # None: random per process
    session_key_env: str = DEFAULT_SESSION_KEY_ENV
    secure_cookies: bool = True
    session_minutes: int = 120
    lockout_failures: int = 5
    lockout_minutes: int = 15
    read_only: bool = True
    metrics_token: str | None = field(default=None, repr=False)  # None: full metrics for loopback only

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.session_minutes)

    @property
    def lockout_time(self) -> timedelta:
        return timedelta(minutes=self.lockout_minutes)

    @classmethod
    def from_table(cls, admin_table: Mapping[str, Any] | None, environ: Mapping[str, str]) -> "AdminConfig":
        """From the ``[admin]`` table of canary.toml; the session key from ``environ``."""
        table = admin_table or {}
        username = table.get("username", "admin")
        if not isinstance(username, str) or not username.strip() or len(username) > 64:
            raise ConfigError("admin.username must be a non-empty string of at most 64 characters")
        key_env = table.get("session_key_env", DEFAULT_SESSION_KEY_ENV)
        if not isinstance(key_env, str) or not key_env:
            raise ConfigError("admin.session_key_env must name an environment variable")
        key = environ.get(key_env) or None
        if key is not None and len(key.encode("utf-8")) < MIN_SESSION_KEY_BYTES:
            raise ConfigError(f"{key_env} (admin.session_key_env) must hold at least "
                              f"{MIN_SESSION_KEY_BYTES} characters: use e.g. `openssl rand -hex 32`")
        token_env = table.get("metrics_token_env")
        if token_env is not None and (not isinstance(token_env, str) or not token_env):
            raise ConfigError("admin.metrics_token_env must name an environment variable")
        metrics_token = environ.get(token_env) if token_env else None
        if token_env and not metrics_token:
            raise ConfigError(f"{token_env} (admin.metrics_token_env) is not set in the environment")
        read_only = _bool(table, "read_only", True)
        if not read_only:
            raise ConfigError("admin.read_only = false: the dashboard has no write action (the registry "
                              "has no incident acknowledgement yet); remove the setting")
        return cls(
            username=username.strip(),
            password_hash=_password_hash(table.get("password_hash")),
            session_key=key.encode("utf-8") if key else None,
            session_key_env=key_env,
            secure_cookies=_bool(table, "secure_cookies", True),
            session_minutes=_int(table, "session_minutes", 120, 1, 7 * 24 * 60),
            lockout_failures=_int(table, "lockout_failures", 5, 1, 1000),
            lockout_minutes=_int(table, "lockout_minutes", 15, 1, 7 * 24 * 60),
            read_only=read_only,
            metrics_token=metrics_token,
        )


def admin_bind(listener_table: Mapping[str, Any] | None, override: str | None = None, *,
               http_override: str | None = None) -> tuple[str, int]:
    """``--admin`` or ``listener.admin`` as (host, port); never the public HTTP listener's port
    (``--http`` or ``listener.http``)."""
    from listener.wsgi import DEFAULT_HTTP_BIND

    table = listener_table or {}
    host, port = parse_bind(override or table.get("admin", DEFAULT_ADMIN_BIND), "listener.admin")
    _public_host, public_port = parse_bind(http_override or table.get("http", DEFAULT_HTTP_BIND),
                                           "listener.http")
    if port and port == public_port:
        raise ConfigError(f"listener.admin: port {port} is the public HTTP listener's (listener.http); "
                          f"give the dashboard its own port, on loopback (default {DEFAULT_ADMIN_BIND})")
    return host, port


def _password_hash(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _BCRYPT.match(value.strip()):
        # The value is never echoed: it might be a password pasted by mistake.
        raise ConfigError("admin.password_hash is not a bcrypt hash: make one with `canary admin hash-password`")
    return value.strip().encode("ascii")


def _bool(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"admin.{key} must be true or false")
    return value


def _int(table: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"admin.{key} must be a whole number from {low} to {high}")
    return value
