"""How the host's own recent rows are written, so a canary row looks like them.

An application seeder samples the newest real rows of a table (a few hundred)
and asks: is this optional column usually filled? When empty, is it NULL or
''? Are surnames upper case, accents dropped? Which phone writing is used?
A canary row then follows the majority. With no rows to learn from (a fresh
install), each question falls back to the default the seeder gives, which is
what the stock application writes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from seeders.common.transforms import strip_accents

# Under this many filled values, "no accent seen" proves nothing.
_ACCENT_EVIDENCE = 20

# How each phone writing (seeders.common.transforms.PHONE_FORMATS) looks.
_PHONE_STYLES = (
    ("e164", re.compile(r"\+33\d{9}")),
    ("international", re.compile(r"\+33 \d( \d\d){4}")),
    ("national", re.compile(r"0\d{9}")),
    ("spaced", re.compile(r"0\d( \d\d){4}")),
    ("dotted", re.compile(r"0\d(\.\d\d){4}")),
    ("dashed", re.compile(r"0\d(-\d\d){4}")),
)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def phone_style(text: str) -> str | None:
    """The phone writing of ``text`` ("spaced", "e164"...), or None for another writing."""
    text = text.strip()
    for style, pattern in _PHONE_STYLES:
        if pattern.fullmatch(text):
            return style
    return None


class Neighbours:
    """Column habits of sampled rows (dicts of column -> value)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows = [dict(row) for row in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def _values(self, column: str) -> list[Any]:
        return [row.get(column) for row in self.rows if column in row]

    def _filled(self, column: str) -> list[str]:
        return [str(v) for v in self._values(column) if not _empty(v)]

    def fills(self, column: str, default: bool) -> bool:
        """Whether most rows have a value in ``column`` (``default`` without rows)."""
        values = self._values(column)
        if not values:
            return default
        return 2 * len(self._filled(column)) >= len(values)

    def filled_share(self, column: str) -> float | None:
        """The share of rows with a value in ``column`` (None without rows): a canary fills it as often."""
        values = self._values(column)
        return len(self._filled(column)) / len(values) if values else None

    def empty_value(self, column: str, default: str | None = None) -> str | None:
        """What an empty ``column`` holds: '' or None (NULL), as most empty rows do."""
        empties = [v for v in self._values(column) if _empty(v)]
        if not empties:
            return default
        blanks = sum(1 for v in empties if v is not None)
        return "" if 2 * blanks > len(empties) else None

    def upper_case(self, column: str, default: bool = False) -> bool:
        """Whether most filled values (with letters) are written all upper case."""
        lettered = [v for v in self._filled(column) if any(ch.isalpha() for ch in v)]
        if not lettered:
            return default
        return 2 * sum(1 for v in lettered if v == v.upper()) > len(lettered)

    def drops_accents(self, column: str, default: bool = False) -> bool:
        """Whether the application (or its users) writes this column without accents.

        True only with enough evidence: many filled values and none with a
        non-ASCII letter (about one French name in ten carries an accent).
        """
        filled = self._filled(column)
        if len(filled) < _ACCENT_EVIDENCE:
            return default
        return not any(ord(ch) > 127 for value in filled for ch in value)

    def phone_style(self, column: str, default: str) -> str:
        """The most common phone writing in ``column``."""
        styles = Counter(s for s in map(phone_style, self._filled(column)) if s)
        return styles.most_common(1)[0][0] if styles else default

    def most_common(self, column: str, default: Any = None) -> Any:
        """The most frequent value of ``column`` (NULL included), or ``default`` without rows."""
        values = self._values(column)
        if not values:
            return default
        counts = Counter(values)
        return counts.most_common(1)[0][0]

    def name_writing(self, column: str, value: str | None) -> str | None:
        """``value`` written as the column's names are: upper case, accents dropped, or as is."""
        if value is None:
            return None
        if self.drops_accents(column):
            value = strip_accents(value)
        return value.upper() if self.upper_case(column) else value

    def optional(self, column: str, value: Any, *, default_fill: bool) -> Any:
        """``value`` if rows usually fill ``column``, else its usual empty value ('' or NULL)."""
        if _empty(value) or not self.fills(column, default_fill):
            return self.empty_value(column)
        return value
