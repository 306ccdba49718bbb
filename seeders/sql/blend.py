"""How a host table writes its rows, learnt from its most recent ones.

A canary row must be filled the way its neighbours are: surnames in upper
case or not, empty text or NULL in the optional columns, which optional
columns are filled at all, dates kept as text in which format, phone numbers
written how. ``sample_habits`` reads the N most recent rows of a table and
reports, column by column, what they do; seeders then ask questions
(``upper``, ``empty_value``, ``constant``...). Nothing here writes.

Application seeders sample once when they open, so the canaries they plant
during a run never become their own models.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

# Text dates, most specific first; the first that parses names the format.
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d")
_DATE_SHAPE = re.compile(r"\d[\d/.: -]{6,18}\d")

# French phone writings, as canary.phones.formats names them.
_PHONE_STYLES = (
    ("e164", re.compile(r"\+33\d{9}")),
    ("international", re.compile(r"\+33 \d( \d\d){4}")),
    ("national", re.compile(r"0\d{9}")),
    ("spaced", re.compile(r"0\d( \d\d){4}")),
    ("dotted", re.compile(r"0\d(\.\d\d){4}")),
    ("dashed", re.compile(r"0\d(-\d\d){4}")),
)

# Values longer than this are free text, never a "constant" worth copying.
_SHORT = 64


@dataclass(slots=True)
class ColumnHabit:
    """What the sampled rows hold in one column."""

    column: str
    count: int = 0
    nulls: int = 0
    empties: int = 0  # '' or only spaces
    texts: int = 0  # non-empty text values
    uppers: int = 0  # text values with letters, all of them upper case
    lowers: int = 0  # text values with letters, all of them lower case
    mixed: int = 0  # text values with letters in both cases
    date_formats: Counter = field(default_factory=Counter)
    phone_styles: Counter = field(default_factory=Counter)
    values: Counter = field(default_factory=Counter)  # short values (None included)

    def add(self, value: Any) -> None:
        self.count += 1
        if value is None:
            self.nulls += 1
            self.values[None] += 1
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            return  # binary: uuids, hashes, addresses; never a habit to copy
        if isinstance(value, str):
            self._add_text(value)
        if not isinstance(value, str) or len(value) <= _SHORT:
            self.values[_hashable(value)] += 1

    def _add_text(self, value: str) -> None:
        text = value.strip()
        if not text:
            self.empties += 1
            return
        self.texts += 1
        if any(ch.isalpha() for ch in text):
            if text == text.upper():
                self.uppers += 1
            elif text == text.lower():
                self.lowers += 1
            else:
                self.mixed += 1
        if _DATE_SHAPE.fullmatch(text):
            fmt = text_date_format(text)
            if fmt:
                self.date_formats[fmt] += 1
        style = phone_style(text)
        if style:
            self.phone_styles[style] += 1

    # -- shares (0.0 when nothing was sampled) ---------------------------
    def _share(self, part: int, whole: int | None = None) -> float:
        whole = self.count if whole is None else whole
        return part / whole if whole else 0.0

    @property
    def null_share(self) -> float:
        return self._share(self.nulls)

    @property
    def empty_share(self) -> float:
        return self._share(self.empties)

    @property
    def filled_share(self) -> float:
        """Share of rows with a value that is neither NULL nor empty text."""
        return self._share(self.count - self.nulls - self.empties)

    @property
    def upper_share(self) -> float:
        """Among texts with letters, the share written all in upper case."""
        return self._share(self.uppers, self.uppers + self.lowers + self.mixed)

    @property
    def date_format(self) -> str | None:
        return self.date_formats.most_common(1)[0][0] if self.date_formats else None

    @property
    def phone_style(self) -> str | None:
        return self.phone_styles.most_common(1)[0][0] if self.phone_styles else None

    def modal(self) -> tuple[Any, float]:
        """The most common short value and its share of all sampled rows."""
        if not self.values:
            return None, 0.0
        value, count = self.values.most_common(1)[0]
        return value, self._share(count)


@dataclass(slots=True)
class TableHabits:
    """The habits of a table, column by column, plus the sampled rows themselves."""

    table: str
    # Real patients' rows: kept out of repr so no traceback or log ever shows them.
    rows: list[dict[str, Any]] = field(repr=False)
    columns: dict[str, ColumnHabit] = field(repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> ColumnHabit:
        return self.columns.get(column) or ColumnHabit(column)

    def upper(self, column: str, default: bool = False) -> bool:
        """Whether text in ``column`` is written in upper case (``default`` without evidence)."""
        habit = self[column]
        if habit.uppers + habit.lowers + habit.mixed == 0:
            return default
        return habit.upper_share >= 0.5

    def empty_value(self, column: str, default: Any = None) -> Any:
        """What the rows hold when they have nothing: '' or None (``default`` without evidence)."""
        habit = self[column]
        if habit.empties == habit.nulls == 0:
            return default
        return "" if habit.empties >= habit.nulls else None

    def filled(self, column: str, default: bool = False, *, threshold: float = 0.5) -> bool:
        """Whether most rows fill ``column`` (``default`` without evidence)."""
        if not self.rows:
            return default
        return self[column].filled_share >= threshold

    def constant(self, column: str, *, min_rows: int = 10, share: float = 0.8) -> tuple[bool, Any]:
        """(True, value) when at least ``share`` of at least ``min_rows`` rows hold one short value."""
        habit = self[column]
        if habit.count < min_rows:
            return False, None
        value, found = habit.modal()
        return found >= share, value

    def modal_where(self, column: str, given: dict[str, Any], default: Any = None) -> Any:
        """The most common value of ``column`` among the sampled rows matching ``given``."""
        values = Counter(_hashable(row.get(column)) for row in self.rows
                         if all(row.get(k) == v for k, v in given.items()))
        return values.most_common(1)[0][0] if values else default

    def filled_share_where(self, column: str, given: dict[str, Any]) -> float | None:
        """Share of rows matching ``given`` whose ``column`` is filled; None without such rows."""
        rows = [row for row in self.rows if all(row.get(k) == v for k, v in given.items())]
        if not rows:
            return None
        filled = [row for row in rows if row.get(column) not in (None, "") and str(row.get(column)).strip()]
        return len(filled) / len(rows)


def sample_habits(engine_or_conn: sa.Engine | sa.Connection, table: sa.Table, *,
                  newest_first: Sequence[sa.ColumnElement] | None = None,
                  where: sa.ColumnElement[bool] | None = None, limit: int = 200) -> TableHabits:
    """Habits of the ``limit`` most recent rows of ``table`` (matching ``where``).

    "Most recent" is ``newest_first`` (e.g. ``[table.c.id.desc()]``), by
    default the primary key descending: application tables number their
    rows as they come.
    """
    order = list(newest_first) if newest_first is not None else [c.desc() for c in table.primary_key.columns]
    query = sa.select(table)
    if where is not None:
        query = query.where(where)
    if order:
        query = query.order_by(*order)
    query = query.limit(limit)
    if isinstance(engine_or_conn, sa.Engine):
        with engine_or_conn.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    else:
        rows = [dict(r._mapping) for r in engine_or_conn.execute(query)]
    return habits_of(table.name, rows, [c.name for c in table.c])


def habits_of(table_name: str, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> TableHabits:
    """Habits computed from rows already read (tests, or rows joined by hand)."""
    rows = list(rows)
    habits = {name: ColumnHabit(name) for name in columns}
    for row in rows:
        for name, habit in habits.items():
            habit.add(row.get(name))
    return TableHabits(table_name, rows, habits)


def neighbour_fill(habits: TableHabits, table: sa.Table, *, skip: Iterable[str] = (),
                   min_rows: int = 10, share: float = 0.8) -> dict[str, Any]:
    """Values for the columns the seeder does not set, copied from what the neighbours agree on.

    A column is copied when at least ``share`` of at least ``min_rows``
    sampled rows hold one short value (NULL, '', 'NO', a provider id...):
    that is how the application fills it for every patient. Keys, unique
    columns, binary columns and timestamps (unless the neighbours leave them
    NULL) are never copied.
    """
    skipped = set(skip) | _unique_columns(table)
    out: dict[str, Any] = {}
    for column in table.c:
        if column.name in skipped or isinstance(column.type, (sa.LargeBinary, sa.types._Binary)):
            continue
        ok, value = habits.constant(column.name, min_rows=min_rows, share=share)
        if not ok:
            continue
        if value is None and not column.nullable:
            continue
        if value is not None and isinstance(column.type, (sa.Date, sa.DateTime, sa.Time)):
            continue  # a shared timestamp is a batch import, not a habit
        out[column.name] = value
    return out


def text_date_format(text: str) -> str | None:
    """The strftime format ``text`` is written in, among the usual ones."""
    for fmt in _DATE_FORMATS:
        try:
            datetime.strptime(text, fmt)
        except ValueError:
            continue
        return fmt
    return None


def phone_style(text: str) -> str | None:
    """The canary.phones style a French number is written in, or None."""
    for name, pattern in _PHONE_STYLES:
        if pattern.fullmatch(text):
            return name
    return None


def _unique_columns(table: sa.Table) -> set[str]:
    names = {c.name for c in table.primary_key.columns}
    names |= {c.name for c in table.c if c.unique or c.autoincrement is True}
    for index in table.indexes:
        if index.unique:
            names |= {c.name for c in index.columns}
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            names |= {c.name for c in constraint.columns}
    return names


def _hashable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, (date, datetime, str, int, float, bool)) or value is None:
        return value
    return str(value)


_CODE = re.compile(r"^(.*?)(\d+)$")


def next_code(codes: Iterable[str | None]) -> str | None:
    """The number after the highest of ``codes`` written the same way, or None.

    Codes are hospital numbers such as ``000123``, ``P2024-00017`` or
    ``10042``: a prefix and digits. The shape (prefix and width) of the most
    recent code wins; the next code keeps it (``P2024-00018``).
    """
    parsed = [m.groups() for c in codes if c and (m := _CODE.match(str(c).strip()))]
    if not parsed:
        return None
    prefix, digits = parsed[0]
    width = len(digits) if digits.startswith("0") else 0
    same = [int(d) for p, d in parsed if p == prefix and (not width or len(d) == width)]
    return f"{prefix}{max(same) + 1:0{width}d}"


def habitual(habits: TableHabits, column: str, default: Any) -> Any:
    """The value most neighbours hold in ``column`` (empty ones aside), or ``default``."""
    values = Counter({v: n for v, n in habits[column].values.items() if v not in (None, "")})
    return values.most_common(1)[0][0] if values else default
