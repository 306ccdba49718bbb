"""XLSX workbooks as text: one tab-separated line per row, one unit per sheet.

openpyxl in read-only mode streams rows from the XML, so memory stays flat.
Cells are written as a person sees them: dates in their number format
(dd/mm/yyyy, yyyy-mm-dd...), whole numbers without ".0", and 9-digit numbers
that are phone numbers Excel stripped of their leading zero get it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from typing import BinaryIO

from canary.errors import CanaryError

_DATE_FORMATS = (  # number format fragments -> strftime
    ("dd/mm/yyyy", "%d/%m/%Y"), ("dd/mm/yy", "%d/%m/%y"), ("d/m/yyyy", "%d/%m/%Y"),
    ("yyyy-mm-dd", "%Y-%m-%d"), ("dd-mm-yyyy", "%d-%m-%Y"), ("dd.mm.yyyy", "%d.%m.%Y"),
    ("mm/dd/yyyy", "%m/%d/%Y"), ("mm-dd-yy", "%d/%m/%Y"),
)


def sheets(handle: BinaryIO) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(sheet name, lines) for each sheet of a workbook (a seekable binary file)."""
    try:
        import openpyxl
    except ImportError:
        raise CanaryError("scanning XLSX needs openpyxl: pip install openpyxl") from None
    book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            yield sheet.title, _lines(sheet)
    finally:
        book.close()


def _lines(sheet) -> Iterator[bytes]:
    for row in sheet.iter_rows():
        cells = [_cell(c) for c in row]
        while cells and not cells[-1]:
            cells.pop()
        yield ("\t".join(cells) + "\n").encode("utf-8")


def _cell(cell) -> str:
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        fmt = (getattr(cell, "number_format", "") or "").lower().replace("\\", "")
        for fragment, pattern in _DATE_FORMATS:
            if fragment in fmt:
                return value.strftime(pattern)
        return value.date().isoformat() if isinstance(value, datetime) and value.time() == time() \
            else value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if 100_000_000 <= value <= 799_999_999:  # a French phone number that lost its 0
            return f"0{value}"
        return str(value)
    return " ".join(str(value).split())
