"""Portal credential checks: is the password POSTed with a canary login that canary's own?

``CredentialChecker(registry)`` is the callable ``listener.http.create_app``
takes as ``credentials``: ``checker(login) -> expected password or None``.
The HTTP app only calls it for logins the token index already knows, so each
call is for a canary; the answer comes from the registry
(``find_token(login, PORTAL_LOGIN)``, then the canary's identity) and is
kept in a small cache: a bounded, time-limited map, safe to share between the
HTTP worker threads. A registry error propagates (the app records the hit
with ``credential: null``); it is not cached.

Passwords stay in memory only: never logged, never in a hit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Protocol

from canary.model import TokenKind

DEFAULT_SIZE = 1024
DEFAULT_TTL = 300.0  # seconds: a canary's password never changes, but a source may be removed


class _CanaryLookup(Protocol):
    def find_token(self, value: str, kind: TokenKind | None = None): ...


class CredentialChecker:
    def __init__(self, registry: _CanaryLookup, *, size: int = DEFAULT_SIZE, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] | None = None) -> None:
        self._registry = registry
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.lookups = 0  # registry reads, for tests and stats

    def __repr__(self) -> str:  # never show the cache
        return f"CredentialChecker(size={self._size}, ttl={self._ttl:g})"

    def __call__(self, login: str) -> str | None:
        key = login.strip().lower()
        now = self._clock() if self._clock is not None else time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(key)
                return cached[1]
        expected = self._read(key)  # outside the lock: a slow registry must not serialise threads
        with self._lock:
            self._cache[key] = (now + self._ttl, expected)
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return expected

    def _read(self, login: str) -> str | None:
        self.lookups += 1
        record = self._registry.find_token(login, TokenKind.PORTAL_LOGIN)
        if record is None:
            return None
        password = getattr(record.identity, "portal_password", None)
        return password or None

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
