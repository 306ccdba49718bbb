"""Python values versus reflected SQL columns: fit, coerce, serialise, compare.

Kept apart from the connection handling so the rules are easy to read and
test: what a column accepts, how a value is converted just before it is
written, how it is stored in a Placement (JSON), and how a stored value is
compared with what the database returns later (dates, decimals and padded
CHAR columns come back in other shapes than they went in).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from seeders.sql.fields import ANY, BOOL, DATE, DATETIME, INT, LIST, TEXT

_INTEGER = re.compile(r"-?\d+")


def describe(column: sa.Column) -> str:
    """The column's SQL type as a user reads it, e.g. ``VARCHAR(20)``."""
    try:
        return str(column.type.compile())
    except Exception:  # some reflected types only compile with their dialect
        return type(column.type).__name__.upper()


def _is(column: sa.Column, *types: type) -> bool:
    return isinstance(column.type, types)


def _is_integer(column: sa.Column) -> bool:
    return _is(column, sa.Integer) and not _is(column, sa.Enum)


def kind_problem(column: sa.Column, kind: str) -> str | None:
    """Why a value of ``kind`` can never go into ``column``, or None.

    Only sure mismatches are reported here; text into an INTEGER column may
    be all digits ("%Y%m%d") and is checked value by value.
    """
    sql = describe(column)
    if kind in (ANY, INT, BOOL):
        return None
    if kind == LIST:
        return f"is {sql} but the mapping writes a list: add join or index"
    if _is(column, sa.Boolean):
        return f"is {sql} but the mapping writes {kind}"
    if kind in (DATE, DATETIME) and (_is_integer(column) or _is(column, sa.Numeric)):
        return f"is {sql} but the mapping writes a {kind}: add a format such as \"%Y%m%d\""
    if kind == TEXT and _is(column, sa.Date, sa.DateTime):
        return f"is {sql} but the mapping writes text: drop the format to write a real {sql.lower()}"
    if kind == DATETIME and _is(column, sa.Date) and not _is(column, sa.DateTime):
        return f"is {sql} but the mapping writes a date and time: use now = \"date\""
    return None


def value_problem(column: sa.Column, value: Any) -> str | None:
    """Why ``value`` does not fit ``column`` (NOT NULL, length, type, enum), or None."""
    sql = describe(column)
    if value is None:
        if not column.nullable and column.server_default is None:
            return "is NOT NULL but the value is empty: give a default"
        return None
    if _is(column, sa.Enum) and column.type.enums:
        return None if str(value) in column.type.enums else f"is {sql} and does not accept {value!r}"
    if _is_integer(column):
        if isinstance(value, int):  # bool included
            return None
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            return None
        return f"is {sql} but the value is not an integer"
    if _is(column, sa.Numeric):
        try:
            Decimal(str(value))
        except InvalidOperation:
            return f"is {sql} but the value is not a number"
        return None
    if _is(column, sa.DateTime):
        return None if isinstance(value, (date, datetime)) else f"is {sql} but the value is not a date"
    if _is(column, sa.Date):
        if isinstance(value, date) and not isinstance(value, datetime):
            return None
        return f"is {sql} but the value is not a date"
    if _is(column, sa.String):
        length = column.type.length
        text = to_text(value)
        if length is not None and len(text) > length:
            return f"is {sql}: a value of {len(text)} characters does not fit (no truncation)"
    return None


def to_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def coerce(column: sa.Column, value: Any) -> Any:
    """``value`` converted to what the column's driver expects (after value_problem)."""
    if value is None:
        return None
    if _is(column, sa.Enum):
        return str(value)
    if _is_integer(column) and isinstance(value, str):
        return int(value)
    if _is(column, sa.Numeric) and not _is_integer(column) and not isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if _is(column, sa.DateTime) and not isinstance(value, datetime):
        return datetime.fromisoformat(value) if isinstance(value, str) else datetime(value.year, value.month, value.day)
    if _is(column, sa.Date) and not _is(column, sa.DateTime) and isinstance(value, str):
        return date.fromisoformat(value)
    if _is(column, sa.String) and not isinstance(value, str):
        return to_text(value)
    return value


def to_json(value: Any) -> Any:
    """A JSON-friendly copy of a value written or read (for Placement rows)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return to_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def comparable(column: sa.Column | None, value: Any) -> Any:
    """A normal form so a stored JSON value equals the same value read back."""
    if value is None:
        return None
    if column is not None and not isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = coerce(column, value)
        except (ValueError, TypeError, InvalidOperation):
            pass  # not of the column's type: compare as it is
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
        return format(number.normalize(), "f")
    text = to_json(value)
    if column is not None and _is(column, sa.CHAR) and isinstance(text, str):
        return text.rstrip(" ")  # PostgreSQL pads CHAR(n), MariaDB strips it
    return text
