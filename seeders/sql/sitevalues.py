"""Values drawn from the site's own rows, in their proportions: not the mode, not the canary's.

A column mapped ``site = "values"`` gets a value drawn from what the site's
most recent rows hold in that column (NULL and '' included, each as often as
the site writes it); ``fill = "site"`` keeps the identity's value but leaves
the column empty (NULL or '', as the site does) as often as the site does.
Both may be conditioned on other columns of the same row (``given``: the
patient's sex, an age band for a date...), falling back to the whole site
when too few rows share the canary's values.

A value held by fewer than ``MIN_HOLDERS`` sampled rows is never copied: a
real patient's own free text (a treatment, a note) stays theirs, in the
target and out of the registry's placements. Nothing here writes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable, Sequence

MIN_HOLDERS = 3  # rows that must hold a value before a canary may be given it
MIN_GIVEN = 20  # rows sharing the canary's given values below which the whole site is used
SAMPLE = 2000  # most recent rows read per table


def given_key(value: Any, today: date) -> Any:
    """How a conditioning value is compared: dates by ten-year age band, text without case or blanks."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return ("age", (today - value).days // 3652)
    if isinstance(value, str):
        return value.strip().upper()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(slots=True)
class ColumnValues:
    """One column's values at the site, counted overall and per combination of ``given`` values."""

    overall: Counter = field(default_factory=Counter)
    by_given: dict[tuple, Counter] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)  # seconds after the `after` column, where both are set

    def add(self, value: Any, given: tuple) -> None:
        value = _plain(value)
        self.overall[value] += 1
        if given:
            self.by_given.setdefault(given, Counter())[value] += 1

    def counts(self, given: tuple) -> Counter:
        narrowed = self.by_given.get(given) if given else None
        if narrowed is not None and sum(narrowed.values()) >= MIN_GIVEN:
            return narrowed
        return self.overall


class SiteValues:
    """What the site's rows hold, column by column, to draw canaries' values from."""

    def __init__(self, columns: dict[tuple[str, str], ColumnValues], rnd: random.Random,
                 today: date | None = None) -> None:
        self._columns = columns
        self._rnd = rnd
        self.today = today or date.today()

    def key(self, values: dict[str, Any], given: Sequence[str]) -> tuple:
        return tuple(given_key(values.get(name), self.today) for name in given)

    def draw(self, table: str, column: str, given: tuple) -> Any:
        """A value of ``table.column`` as the site's rows hold it (common values only); None without any."""
        counts = self._counts(table, column, given)
        shared = {v: n for v, n in counts.items() if n >= MIN_HOLDERS or _empty(v)}
        if not shared:
            return None
        return self._pick(shared)

    def delay(self, table: str, column: str) -> timedelta:
        """A delay the site's rows show between the ``after`` column and this one (0 without any)."""
        values = self._columns.get((table, column))
        if values is None or not values.delays:
            return timedelta()
        return timedelta(seconds=self._rnd.choice(values.delays))

    def fill(self, table: str, column: str, given: tuple, value: Any) -> Any:
        """``value``, or the site's empty form (NULL or '') as often as the site leaves the column empty."""
        counts = self._counts(table, column, given)
        total = sum(counts.values())
        empties = {v: n for v, n in counts.items() if _empty(v)}
        if not total or not empties:
            return value
        if not _empty(value) and self._rnd.random() >= sum(empties.values()) / total:
            return value
        return self._pick(empties)

    def _counts(self, table: str, column: str, given: tuple) -> Counter:
        values = self._columns.get((table, column))
        return values.counts(given) if values is not None else Counter()

    def _pick(self, weights: dict[Any, int]) -> Any:
        items = sorted(weights.items(), key=lambda item: repr(item[0]))  # stable order: same seed, same draw
        roll = self._rnd.random() * sum(n for _, n in items)
        for value, n in items:
            roll -= n
            if roll < 0:
                return value
        return items[-1][0]


def count_values(rows: Iterable[dict[str, Any]], columns: dict[str, Sequence[str]],
                 today: date, after: dict[str, str] | None = None) -> dict[str, ColumnValues]:
    """Per column (-> its ``given`` columns), the values of ``rows`` counted; ``after``: column -> the
    column its delays are measured from."""
    out = {name: ColumnValues() for name in columns}
    after = after or {}
    for row in rows:
        for name, given in columns.items():
            out[name].add(row.get(name), tuple(given_key(row.get(g), today) for g in given))
            if name in after:
                start, end = as_moment(row.get(after[name])), as_moment(row.get(name))
                if start is not None and end is not None and end >= start:
                    out[name].delays.append((end - start).total_seconds())
    return out


def as_moment(value: Any) -> datetime | None:
    """A timestamp read from the site: a DATETIME, or text such as '2024-03-05 10:12:00'."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip()).replace(tzinfo=None)
        except ValueError:
            return None
    return None
