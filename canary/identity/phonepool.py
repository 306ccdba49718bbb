"""Hands out numbers from the configured phone pool.

Numbers are sorted into buckets (mobiles, landlines per zone 01-05, 09
VoIP/box numbers, anything else) and each bucket is shuffled once with the
person stream, so allocation is deterministic for a given seed and pool.

* ``unique=True`` (planting): a number is issued once, never one the
  registry already holds (``taken`` up front, ``reserved`` checked again
  when issuing); when no number is left, PoolExhausted.
* ``unique=False`` (preview): numbers are drawn with replacement, so a
  100,000-identity preview works from the 60,000-number demo pool.
* ``max_per_block`` (planting): at most that many numbers issued per
  10,000-number block, counting ``in_use`` (the numbers the source's live
  canaries already hold). Many patients in one block of a pool is what an
  attacker sorting phone numbers sees first (docs/concealment.md).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable

from canary.errors import PoolExhausted
from canary.model import Token, TokenKind
from canary.phones import is_telemarketing_number, kind, landline_zone
from canary.identity.sampling import choice

_PHONE = TokenKind.PHONE
_BUCKETS = ("mobile", "01", "02", "03", "04", "05", "voip", "other")


def block_of(number: str) -> str:
    """The 10,000-number block of an E.164 number: all but its last four digits."""
    return number[:-4]


class _Bucket:
    __slots__ = ("numbers", "next")

    def __init__(self, numbers: list[str]) -> None:
        self.numbers = numbers
        self.next = 0


class PhoneAllocator:
    def __init__(self, pool: Iterable[str], rng: random.Random, *, taken: Iterable[str] = (),
                 reserved: Callable[[Token], bool] | None = None, unique: bool = True,
                 max_per_block: int | None = None, in_use: Iterable[str] = ()) -> None:
        self._pool_size = 0
        self._max_per_block = max_per_block if unique else None
        self._blocks: Counter[str] = Counter(block_of(n) for n in in_use)
        self._full_skipped = 0
        self._rng = rng
        self._unique = unique
        self._reserved = reserved
        self._issued: set[str] = set()
        taken_set = set(taken) if unique else set()
        sorted_numbers: dict[str, list[str]] = {name: [] for name in _BUCKETS}
        for number in dict.fromkeys(pool):
            self._pool_size += 1
            # validate_pool refuses telemarketing numbers; never issue one anyway.
            if number in taken_set or is_telemarketing_number(number):
                continue
            line_kind = kind(number)
            bucket = landline_zone(number) if line_kind == "landline" else line_kind
            sorted_numbers[bucket].append(number)
        self._buckets = {}
        for name, numbers in sorted_numbers.items():
            rng.shuffle(numbers)
            self._buckets[name] = _Bucket(numbers)

    def available(self, bucket: str) -> bool:
        b = self._buckets[bucket]
        return b.next < len(b.numbers) if self._unique else bool(b.numbers)

    def take(self, bucket: str) -> str | None:
        """A number from one bucket ("mobile", "01".."05", "voip", "other"), or None."""
        b = self._buckets[bucket]
        if not self._unique:
            return choice(self._rng, b.numbers) if b.numbers else None
        while b.next < len(b.numbers):
            number = b.numbers[b.next]
            b.next += 1
            if number in self._issued:
                continue
            if self._reserved is not None and self._reserved(Token(_PHONE, number)):
                continue
            if self._max_per_block and self._blocks[block_of(number)] >= self._max_per_block:
                self._full_skipped += 1  # its block is full for this source: never issue it in this run
                continue
            self._issued.add(number)
            self._blocks[block_of(number)] += 1
            return number
        return None

    def take_first(self, buckets: Iterable[str]) -> str | None:
        for bucket in buckets:
            number = self.take(bucket)
            if number is not None:
                return number
        return None

    def exhausted(self) -> PoolExhausted:
        if self._full_skipped:
            return PoolExhausted(
                f"phone pool exhausted: every unused number is in a 10,000-number block that already holds "
                f"{self._max_per_block} canaries of this source; add numbers from other blocks to "
                "[contacts] phone_pool, or raise contacts.max_per_phone_block"
            )
        return PoolExhausted(
            f"phone pool exhausted: {self._pool_size} numbers, all in use; add numbers to [contacts] phone_pool"
        )

    def primary(self, zone: str | None, home_line_only: bool) -> str:
        """The patient's main number.

        Usually a mobile; a home line (landline of the address's zone, else a
        09 box number) for those who only have one. When the preferred kinds
        are used up, any consistent kind; as a last resort any number left.
        """
        zone_buckets = (zone,) if zone in _BUCKETS else ()
        if home_line_only:
            order = (*zone_buckets, "voip", "mobile")
        else:
            order = ("mobile", *zone_buckets, "voip")
        number = self.take_first(order)
        if number is None:
            number = self.take_first(_BUCKETS)
        if number is None:
            raise self.exhausted()
        return number

    def home_line(self, zone: str | None) -> str | None:
        """A second, home number: landline of the zone, else a 09 box number, else none."""
        zone_buckets = (zone,) if zone in _BUCKETS else ()
        return self.take_first((*zone_buckets, "voip"))
