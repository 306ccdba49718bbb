"""TokenIndex: which values are canary tokens, in memory, for the listener's hot paths.

``known(kind, value)`` is a dict lookup (no I/O), fit for the DNS front end at
tens of thousands of queries per second. The index loads the registry's
tokens once, then adds the new ones (id above the last seen) on ``refresh()``,
called on demand or every few seconds by ``start()``'s thread, so canaries
planted while the listener runs are recognised within seconds. Retired
canaries keep their tokens, so they stay known; tokens of a removed source stay
known until ``reload()`` (harmless: the hit sink looks the token up again in
the registry and records an unmatched hit).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from canary.errors import error_text
from canary.model import TokenKind
from canary.periodic import PeriodicRefresh, RefreshedInBackground
from canary.registry.hitrecords import TokenEntry
from canary.registry.records import fold, fold_any, token_kind

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 5.0
_PAGE = 50_000


class TokenFeed(Protocol):
    def tokens_since(self, after_id: int = 0, limit: int | None = None) -> list[TokenEntry]: ...


@dataclass(frozen=True, slots=True)
class IndexEntry:
    canary_id: int
    source: str
    kind: TokenKind


class TokenIndex(RefreshedInBackground):
    """(kind, value) -> canary, and value -> canaries, from ``registry.tokens_since``."""

    refresh_seconds = DEFAULT_REFRESH_SECONDS

    def __init__(self, feed: TokenFeed) -> None:
        self._feed = feed
        self._by_key: dict[tuple[TokenKind, str], IndexEntry] = {}
        self._by_value: dict[str, tuple[IndexEntry, ...]] = {}
        self._last_id = 0
        self._lock = threading.Lock()  # one refresh at a time; readers never wait
        self._refresher = PeriodicRefresh(self.refresh, name="canary-token-index",
                                          on_error=self._refresh_failed, on_result=self._refreshed)

    # -- lookups (no I/O) ----------------------------------------------------
    def known(self, kind: TokenKind | str, value: str) -> bool:
        try:
            kind = token_kind(kind)
        except ValueError:
            return False
        return (kind, fold(kind, value)) in self._by_key

    def lookup(self, kind: TokenKind | str, value: str) -> IndexEntry | None:
        kind = token_kind(kind)
        return self._by_key.get((kind, fold(kind, value)))

    def lookup_value(self, value: str) -> tuple[IndexEntry, ...]:
        """Every token with this value, whatever its kind (for front ends that cannot tell)."""
        found: tuple[IndexEntry, ...] = ()
        for form in sorted(fold_any(value)):
            found += self._by_value.get(form, ())
        return found

    def known_value(self, value: str) -> bool:
        return any(form in self._by_value for form in fold_any(value))

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def last_token_id(self) -> int:
        return self._last_id

    # -- loading -------------------------------------------------------------
    def refresh(self) -> int:
        """Add tokens created since the last refresh; returns how many were added."""
        with self._lock:
            added = 0
            while True:
                page = self._feed.tokens_since(self._last_id, limit=_PAGE)
                for token in page:
                    self._add(self._by_key, self._by_value, token)
                    self._last_id = max(self._last_id, token.token_id)
                added += len(page)
                if len(page) < _PAGE:
                    return added

    def reload(self) -> int:
        """Rebuild from scratch (drops tokens of removed sources); returns the size."""
        by_key: dict[tuple[TokenKind, str], IndexEntry] = {}
        by_value: dict[str, tuple[IndexEntry, ...]] = {}
        with self._lock:
            last = 0
            while True:
                page = self._feed.tokens_since(last, limit=_PAGE)
                for token in page:
                    self._add(by_key, by_value, token)
                    last = max(last, token.token_id)
                if len(page) < _PAGE:
                    break
            # Swap whole dicts: a reader sees the old index or the new one.
            self._by_key, self._by_value, self._last_id = by_key, by_value, last
            return len(by_key)

    @staticmethod
    def _add(by_key: dict, by_value: dict, token: TokenEntry) -> None:
        entry = IndexEntry(canary_id=token.canary_id, source=token.source, kind=token.kind)
        by_key[(token.kind, token.value)] = entry
        by_value[token.value] = by_value.get(token.value, ()) + (entry,)

    # -- background refresh ----------------------------------------------------
    def _refreshed(self, added: int) -> None:
        if added:
            log.info("token index: %d new tokens (%d known)", added, len(self))

    def _refresh_failed(self, err: Exception) -> None:  # registry briefly unreachable: keep the old index
        log.warning("token index refresh failed, keeping %d tokens: %s", len(self), error_text(err))
