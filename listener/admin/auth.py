"""Who may see the dashboard: one user, a bcrypt password, lockout, signed sessions.

* The password is checked with bcrypt against ``admin.password_hash``; an
  unknown user name costs the same bcrypt round (against a dummy hash) and
  gets the same answer as a wrong password, so neither timing nor the page
  tells which names exist.
* Lockout: after ``lockout_failures`` failed logins for one user name, or
  from one client address, logins for that name or address are refused for
  ``lockout_minutes`` (even with the right password), in memory. Failures
  older than that are forgotten. A lockout is logged as a warning with the
  client address (the name only if it is the configured one; never a password).
* Sessions are Flask's signed cookies holding the user, the login time and a
  random session id; the login time is checked here (a cookie replayed after
  ``session_minutes`` is refused) and logout revokes the id until it would
  have expired anyway (in memory: a restart forgets revocations, and with a
  random session key every session at once).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Hashable

import bcrypt
from flask import session

from listener.admin.config import AdminConfig

log = logging.getLogger("canary.admin")

MAX_NAME_CHARS = 256
MAX_TRACKED = 10_000  # keys kept by the lockout table; the oldest go first


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class _Failures:
    count: int
    last: datetime
    locked_until: datetime | None = None


class Lockout:
    """Failed logins per key, in memory; ``failures`` of them lock the key for ``duration``."""

    def __init__(self, failures: int, duration: timedelta, max_keys: int = MAX_TRACKED) -> None:
        self.failures = failures
        self.duration = duration
        self.max_keys = max_keys
        self._table: dict[Hashable, _Failures] = {}
        self._lock = threading.Lock()

    def locked_until(self, key: Hashable, now: datetime) -> datetime | None:
        with self._lock:
            entry = self._current(key, now)
            return entry.locked_until if entry is not None else None

    def fail(self, key: Hashable, now: datetime) -> datetime | None:
        """Count a failure; returns the end of the lockout if this one starts it."""
        with self._lock:
            entry = self._current(key, now)
            if entry is None:
                if len(self._table) >= self.max_keys:
                    self._prune(now)
                entry = self._table[key] = _Failures(0, now)
            entry.count += 1
            entry.last = now
            if entry.count >= self.failures and entry.locked_until is None:
                entry.locked_until = now + self.duration
                return entry.locked_until
            return None

    def reserve(self, keys: tuple[Hashable, ...], now: datetime) -> list[tuple[Hashable, datetime]] | None:
        """Count an attempt as a failure before its password is checked, atomically for all
        ``keys``: None if one is locked (do not check), else the lockouts this attempt
        starts. Concurrent attempts thus check at most ``failures`` passwords (counting
        after bcrypt let 40 parallel logins check 7 before the lockout of 5)."""
        with self._lock:
            entries = []
            for key in keys:
                entry = self._current(key, now)
                if entry is not None and entry.locked_until is not None:
                    return None
                entries.append((key, entry))
            started = []
            for key, entry in entries:
                if entry is None:
                    if len(self._table) >= self.max_keys:
                        self._prune(now)
                    entry = self._table[key] = _Failures(0, now)
                entry.count += 1
                entry.last = now
                if entry.count >= self.failures:
                    entry.locked_until = now + self.duration
                    started.append((key, entry.locked_until))
            return started

    def clear(self, key: Hashable) -> None:
        with self._lock:
            self._table.pop(key, None)

    def _current(self, key: Hashable, now: datetime) -> _Failures | None:
        entry = self._table.get(key)
        if entry is None:
            return None
        expired = (now >= entry.locked_until) if entry.locked_until else (now - entry.last >= self.duration)
        if expired:
            del self._table[key]
            return None
        return entry

    def _prune(self, now: datetime) -> None:
        for key in list(self._table):
            self._current(key, now)  # drops the key if its failures are forgotten
        excess = len(self._table) - self.max_keys + 1
        if excess > 0:
            for key in sorted(self._table, key=lambda k: self._table[k].last)[:excess]:
                del self._table[key]


@dataclass(frozen=True, slots=True)
class LoginResult:
    ok: bool
    locked: bool = False


class Authenticator:
    def __init__(self, config: AdminConfig) -> None:
        self.config = config
        self.lockout = Lockout(config.lockout_failures, config.lockout_time)
        # Same cost as the real hash, so an unknown name takes as long as a wrong password.
        cost = int(config.password_hash.split(b"$")[2]) if config.password_hash else 12
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._revoked: dict[str, datetime] = {}
        self._revoked_lock = threading.Lock()

    @property
    def can_log_in(self) -> bool:
        return self.config.password_hash is not None

    def login(self, username: str, password: str, client: str | None) -> LoginResult:
        now = _now()
        name_key = ("user", username.strip().lower()[:MAX_NAME_CHARS])
        addr_key = ("addr", client or "?")
        started = self.lockout.reserve((name_key, addr_key), now)  # counted now, cleared on success
        if started is None:
            return LoginResult(ok=False, locked=True)
        known = hmac.compare_digest(username.encode("utf-8"), self.config.username.encode("utf-8"))
        expected = self.config.password_hash if known and self.config.password_hash else self._dummy
        matched = _checkpw(password, expected)
        if known and matched and self.config.password_hash is not None:
            self.lockout.clear(name_key)
            self.lockout.clear(addr_key)
            log.info("admin login", extra={"event": "admin_login", "client": client})
            return LoginResult(ok=True)
        if started:
            log.warning("admin logins locked out after repeated failures", extra={
                "event": "admin_lockout", "client": client,
                "username": self.config.username if known else None, "known_user": known,
                "by": [kind for (kind, _), _until in started],
                "until": max(until for _, until in started).isoformat(),
            })
            return LoginResult(ok=False, locked=True)
        return LoginResult(ok=False)

    # -- sessions (Flask's signed cookie) ---------------------------------------------------
    def start_session(self) -> None:
        session.clear()  # a fresh session at login: nothing carried over from before
        session.permanent = True
        session["user"] = self.config.username
        session["since"] = int(_now().timestamp())
        session["sid"] = secrets.token_urlsafe(16)

    def current_user(self) -> str | None:
        user, since, sid = session.get("user"), session.get("since"), session.get("sid")
        if not (isinstance(user, str) and isinstance(since, int) and isinstance(sid, str)):
            return None
        if not hmac.compare_digest(user.encode("utf-8"), self.config.username.encode("utf-8")):
            return None  # the configured user changed since this login
        if _now() - datetime.fromtimestamp(since, timezone.utc) >= self.config.session_lifetime:
            return None
        with self._revoked_lock:
            if sid in self._revoked:
                return None
        return user

    def end_session(self) -> None:
        sid, since = session.get("sid"), session.get("since")
        if isinstance(sid, str) and isinstance(since, int):
            expires = datetime.fromtimestamp(since, timezone.utc) + self.config.session_lifetime
            now = _now()
            with self._revoked_lock:
                for old in [s for s, until in self._revoked.items() if until <= now]:
                    del self._revoked[old]
                self._revoked[sid] = expires
        session.clear()


def _checkpw(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed)
    except ValueError:  # longer than bcrypt's 72 bytes (bcrypt >= 5 refuses): cannot be ours
        bcrypt.checkpw(b"", hashed)  # same cost as any other failure
        return False


def hash_password(password: str, rounds: int = 12) -> str:
    """The bcrypt hash to put in ``admin.password_hash``."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")
