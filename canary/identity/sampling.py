"""Weighted draws and the two random streams of the identity generator.

* The *person* stream (``random.Random``) draws everything an attacker sees
  as ordinary data: names, dates, places, medical content.
* The *secret* stream draws the unguessable access codes and DNS labels. It
  is BLAKE2b keyed with a key derived from the seed, in counter mode: still
  fully determined by the seed, but, unlike the Mersenne Twister, its past
  outputs (which a leaked file shows) do not reveal its next ones.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

from canary.identity.refdata import Weighted

T = TypeVar("T")


def pick(rng: random.Random, table: Weighted[T]) -> T:
    """One item of a Weighted table (bisect on the cumulated weights)."""
    cum = table.cum_weights
    return table.items[bisect.bisect(cum, rng.random() * cum[-1])]


def weighted(pairs: Sequence[tuple[T, float]]) -> Weighted[T]:
    """A Weighted table from (item, weight) pairs; zero weights are dropped."""
    items, cum, total = [], [], 0.0
    for item, weight in pairs:
        if weight > 0:
            total += weight
            items.append(item)
            cum.append(total)
    if not items:
        raise ValueError("weighted table with no positive weight")
    return Weighted(tuple(items), tuple(cum))


MAX_AGE = 120  # above canary.identity.ages.MAX_AGE


def by_age_steps(table: Sequence[tuple[int, T]]) -> tuple[T, ...]:
    """Expand rows of (upper age limit, value) into a tuple indexed by age
    0..MAX_AGE, so the hot path reads ``values[age]``."""
    values = []
    for age in range(MAX_AGE + 1):
        values.append(next((value for limit, value in table if age <= limit), table[-1][1]))
    return tuple(values)


def chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


def choice(rng: random.Random, items: Sequence[T]) -> T:
    """Uniform pick; cheaper than ``rng.choice`` on the hot path."""
    return items[int(rng.random() * len(items))]


def randint(rng: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high]; cheaper than ``rng.randint``."""
    return low + int(rng.random() * (high - low + 1))


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# 10 bits -> 2 base32 characters, so 80 bits take 8 lookups.
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)


class SecretStream:
    """Deterministic, unpredictable bits: BLAKE2b(key, counter), 512 at a time."""

    def __init__(self, seed: int, purpose: str = "canary-secret") -> None:
        material = f"{purpose}:{seed}".encode()
        self._key = hashlib.blake2b(material, digest_size=32).digest()
        self._counter = 0
        self._pool = 0  # unused bits, as an integer
        self._left = 0  # how many

    def bits(self, count: int) -> int:
        """An integer of ``count`` fresh random bits."""
        while self._left < count:
            self._counter += 1
            block = hashlib.blake2b(self._counter.to_bytes(16, "big"), key=self._key, digest_size=64).digest()
            self._pool |= int.from_bytes(block, "big") << self._left
            self._left += 512
        value = self._pool & ((1 << count) - 1)
        self._pool >>= count
        self._left -= count
        return value

    def code80(self) -> str:
        """16 lowercase RFC 4648 base32 characters carrying 80 fresh bits."""
        v = self.bits(80)
        t = _B32_PAIRS  # 10 bits -> 2 characters
        return (t[v & 1023] + t[v >> 10 & 1023] + t[v >> 20 & 1023] + t[v >> 30 & 1023]
                + t[v >> 40 & 1023] + t[v >> 50 & 1023] + t[v >> 60 & 1023] + t[v >> 70 & 1023])
