"""Excel serial dates under a birth-date header, read as the dates they are.

A spreadsheet whose birth-date cells are in the General format exports them as
day numbers since 1899-12-30 ("19362" for 3 January 1953). A number like that
means nothing alone (postcodes look the same), so it is only read as a date in
a column whose header names a birth date. The column is found from the file's
first line; before matching, each of its values that is a plausible day
number is rewritten as an ISO date, so every later step (literals, records,
fingerprint confirmation) sees an ordinary date. Lines keep their count, so
reported line numbers do not move.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from canary.scan import forms

EPOCH = date(1899, 12, 30)  # Excel's day 0 (its 1900 leap-year bug folded in, as every tool does)
FIRST, LAST = 1, 73050  # 1900-01-01 .. 2099-12-31
FORM = "excel serial"
_DELIMITERS = (";", "\t", ",", "|")
# Folded header names of a birth date: "Date de naissance", "DDN", "date_naiss", "birth_date", "DOB"...
_BIRTH_HEADER = re.compile(r"^(?:date ?(?:de )?naiss\w*|naiss\w*|ddn|dn|ne le|nee le|date ?nais|"
                           r"birth ?date|date ?of ?birth|dob|birthdate|datenaissance|dt ?naiss\w*)$")


@dataclass(frozen=True, slots=True)
class SerialColumn:
    delimiter: bytes
    index: int


def birth_column(header: str) -> SerialColumn | None:
    """The birth-date column of a delimited file, from its first line; None if it names none."""
    if not header:
        return None
    delimiter = max(_DELIMITERS, key=header.count)
    if header.count(delimiter) == 0:
        return None
    for index, name in enumerate(header.split(delimiter)):
        folded = " ".join(forms.fold(name.strip().strip('"')).replace("_", " ").replace(".", " ").split())
        if _BIRTH_HEADER.match(folded):
            return SerialColumn(delimiter.encode(), index)
    return None


def holds_serials(sample: bytes, column: SerialColumn | None, lines: int = 200) -> SerialColumn | None:
    """``column`` if most of its values in the first lines of ``sample`` are day numbers, else None.

    A birth-date column written as dates (the usual case) is then left alone: no
    per-line rewriting pass over a file that needs none."""
    if column is None:
        return None
    values = []
    for line in sample.split(b"\n")[1:lines + 1]:
        fields = line.rstrip(b"\r").split(column.delimiter)
        if len(fields) > column.index and fields[column.index].strip(b'" '):
            values.append(fields[column.index].strip(b'" '))
    serial = sum(1 for v in values if v.split(b".")[0].isdigit() and FIRST <= int(v.split(b".")[0]) <= LAST)
    return column if values and serial * 2 > len(values) else None


def _pattern(column: SerialColumn) -> re.Pattern[bytes]:
    d = re.escape(column.delimiter)
    return re.compile(rb"^((?:[^" + d + rb"\n]*" + d + rb"){" + str(column.index).encode() + rb"})"
                      rb"(\"?)(\d{1,5})(?:\.0+)?\2(?=" + d + rb"|\r?$)", re.M)


def convert(data: bytes, column: SerialColumn | None) -> bytes:
    """``data`` with the column's day numbers written as ISO dates (other values untouched)."""
    return convert_counted(data, column)[0]


def convert_counted(data: bytes, column: SerialColumn | None) -> tuple[bytes, int]:
    """``convert``, and how many values it rewrote."""
    if column is None or not data:
        return data, 0

    converted = 0

    def iso(match: re.Match[bytes]) -> bytes:
        nonlocal converted
        number = int(match.group(3))
        if not FIRST <= number <= LAST:
            return match.group(0)
        converted += 1
        day = EPOCH + timedelta(days=number)
        return match.group(1) + match.group(2) + day.isoformat().encode() + match.group(2)

    return _pattern(column).sub(iso, data), converted
