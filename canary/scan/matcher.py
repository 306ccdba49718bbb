"""The hot loop: one chunk in, its confirmed matches and line count out.

Runs in the worker processes (``runner``), on the pattern set they inherited
when forked. Everything per byte happens in C (the engine's scan, newline
counting); Python only runs per hit (``verify.confirm``).
"""

from __future__ import annotations

from typing import NamedTuple

from canary.scan import inputs, serials, verify
from canary.scan.patterns import PatternSet


class Item(NamedTuple):
    canary: int  # index in PatternSet.canaries
    kind: str
    form: str
    line: int  # 0-based, relative to the chunk's first line
    text: str
    confirmed: bool
    record: str


class ChunkResult(NamedTuple):
    unit: int
    seq: int
    size: int  # bytes owned by this chunk
    newlines: int  # line ends in the owned bytes
    header: str | None  # the unit's first line, from its first slice
    items: list[Item]


def scan_chunk(patterns: PatternSet, unit: int, seq: int, data: bytes, limit: int,
               header: bool = False, serial_column: serials.SerialColumn | None = None) -> ChunkResult:
    first_line = inputs.header_of(data) if header else None
    converted = 0
    if serial_column is not None:  # day numbers under a birth-date header, as dates (same lines)
        owned, converted = serials.convert_counted(data[:limit], serial_column)
        data, limit = owned + serials.convert(data[limit:], serial_column), len(owned)
    hits = patterns.engine.scan(data) if data else []
    found = verify.confirm(data, hits, patterns) if hits else []
    items: list[Item] = []
    line, at = 0, 0
    for f in sorted((f for f in found if f.start < limit), key=lambda f: f.start):
        start = max(f.start, 0)
        line += data.count(b"\n", at, start)
        at = start
        form = serials.FORM if converted and f.kind == "fingerprint" and f.form == "yyyy-mm-dd" else f.form
        items.append(Item(f.canary, f.kind, form, line, f.text, f.confirmed, f.record))
    newlines = line + data.count(b"\n", at, limit)
    return ChunkResult(unit, seq, limit, newlines, first_line, items)
