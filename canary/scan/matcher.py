"""The hot loop: one chunk in, its confirmed matches and line count out.

Runs in the worker processes (``runner``), on the pattern set they inherited
when forked. Everything per byte happens in C (the engine's scan, newline
counting); Python only runs per hit (``verify.confirm``).
"""

from __future__ import annotations

from typing import NamedTuple

from canary.scan import inputs, verify
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
               header: bool = False) -> ChunkResult:
    hits = patterns.engine.scan(data) if data else []
    found = verify.confirm(data, hits, patterns) if hits else []
    items: list[Item] = []
    line, at = 0, 0
    for f in sorted((f for f in found if f.start < limit), key=lambda f: f.start):
        start = max(f.start, 0)
        line += data.count(b"\n", at, start)
        at = start
        items.append(Item(f.canary, f.kind, f.form, line, f.text, f.confirmed, f.record))
    newlines = line + data.count(b"\n", at, limit)
    return ChunkResult(unit, seq, limit, newlines, inputs.header_of(data) if header else None, items)
