"""Portal credential checks: is the password POSTed with a login a canary's own?

``CredentialChecker(registry)`` is what ``listener.http.create_app`` takes as
``credentials``: ``checker.check(login, password) -> bool | None``. It runs on
the portal's response path for EVERY login POSTed, canary or not, and does the
same work for both: one dictionary lookup (a canary's password digest, or a
dummy one), one keyed hash of the submitted password, one constant-time
comparison. No registry read, no I/O: a canary login must not answer later
than an unknown one (issue #13.2; reading the canary's password from the
registry after the answer, in this process, still made canary logins
measurably slower, 0.563 accuracy on bench/bench_oracle.py).

The canaries' passwords are loaded ahead, from the registry
(``portal_passwords_since``), at ``start()`` and then every few seconds in a
thread, like the token index (canary/hits/tokenindex.py): a canary planted
while the listener runs is checked within seconds; until then its login is a
hit with ``credential: null``. Only keyed digests are kept (HMAC-SHA256 under a
key drawn at start, never written anywhere): no password sits in memory in the
clear, and none is ever logged or stored in a hit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from typing import Protocol

from canary.errors import error_text
from canary.model import TokenKind
from canary.periodic import PeriodicRefresh, RefreshedInBackground
from canary.registry.records import fold

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 5.0
_PAGE = 50_000


class _PasswordFeed(Protocol):
    def portal_passwords_since(self, after_id: int = 0, limit: int | None = None) -> list[tuple[int, str, str]]: ...


class CredentialChecker(RefreshedInBackground):
    refresh_seconds = DEFAULT_REFRESH_SECONDS

    def __init__(self, registry: _PasswordFeed) -> None:
        self._registry = registry
        self._key = secrets.token_bytes(32)
        self._dummy = secrets.token_bytes(32)  # what an unknown login is compared with: matches nothing
        self._digests: dict[str, bytes] = {}
        self._last_id = 0
        self._lock = threading.Lock()  # one refresh at a time; checks never wait
        self._refresher = PeriodicRefresh(self.refresh, name="canary-credentials", on_error=self._refresh_failed)

    def __repr__(self) -> str:  # never show the digests
        return f"CredentialChecker({len(self._digests)} canary logins)"

    def __len__(self) -> int:
        return len(self._digests)

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def check(self, login: str, password: str) -> bool | None:
        """True when ``password`` is the canary's whose portal login this is; False otherwise,
        None for a login whose password is not loaded (no canary's, or a canary planted
        since the last refresh). The same work whatever the login."""
        key = fold(TokenKind.PORTAL_LOGIN, login)
        expected = self._digests.get(key)
        given = self._digest(password)
        same = hmac.compare_digest(expected if expected is not None else self._dummy, given)
        return same if expected is not None else None

    def loaded(self, login: str) -> bool:
        return fold(TokenKind.PORTAL_LOGIN, login) in self._digests

    # -- loading -------------------------------------------------------------
    def refresh(self) -> int:
        """Load the passwords of portal logins added since the last refresh; how many."""
        with self._lock:
            added = 0
            while True:
                page = self._registry.portal_passwords_since(self._last_id, limit=_PAGE)
                for token_id, login, password in page:
                    if password:
                        self._digests[login] = self._digest(password)
                        added += 1
                    self._last_id = max(self._last_id, token_id)
                if len(page) < _PAGE:
                    return added

    def _refresh_failed(self, err: Exception) -> None:  # registry briefly unreachable: keep what is loaded
        log.warning("portal credential refresh failed, keeping %d logins: %s", len(self), error_text(err))
