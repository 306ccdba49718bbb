"""Where the record around a hit starts and ends, in a chunk of a leaked file.

A fingerprint only counts when its three parts are in ONE record, so the
record must be found without parsing the file:

* a line (CSV, TSV, pg_dump COPY, JSON lines, spreadsheet rows, most pastes);
* in a very long line (mysqldump extended INSERT, one-line JSON array), the
  tuple or object between "),(" or "},{" separators;
* in pretty-printed JSON, the object: lines up to the enclosing bare "{" and
  down to its closing brace (nested "key": { objects are climbed through, and
  so are lists of a person's parts: a FHIR Patient's "name": [ {...} ] entry
  is not a record, the Patient is);
* in a paste of "Label: value" lines, the paragraph (up to blank lines).

Records are capped (MAX_RECORD bytes) so a pathological file cannot make one
hit cost megabytes of work.
"""

from __future__ import annotations

import re

LONG_LINE = 4096
MAX_RECORD = 8192
MAX_BLOCK_LINES = 80
_SEPARATORS = (b"),(", b"), (", b"},{", b"}, {", b"),\n(")
_LABEL_LINE = re.compile(rb"^\s*[^\s:;,|\t\"{}\[\]()][^:;,|\t\"{}\[\]()]{0,40}\s?:\s")


def bounds(chunk: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the record holding byte ``pos`` of ``chunk``."""
    start = chunk.rfind(b"\n", 0, pos) + 1
    end = chunk.find(b"\n", pos)
    if end < 0:
        end = len(chunk)
    if end - start > LONG_LINE:
        return _packed(chunk, pos, start, end)
    line = chunk[start:end]
    stripped = line.lstrip()
    if stripped[:1] == b'"' and b'":' in line and not stripped.startswith((b'"{', b'"[')) \
            and line.count(b'","') < 2:
        return _json_object(chunk, start, end, len(line) - len(stripped))
    if _LABEL_LINE.match(line):
        return _paragraph(chunk, start, end)
    return start, end


def _packed(chunk: bytes, pos: int, start: int, end: int) -> tuple[int, int]:
    low, high = max(start, pos - MAX_RECORD // 2), min(end, pos + MAX_RECORD // 2)
    left = max((chunk.rfind(sep, low, pos) + len(sep) - 1 for sep in _SEPARATORS
                if chunk.rfind(sep, low, pos) >= 0), default=low)
    right = min((i + 1 for i in (chunk.find(sep, pos, high) for sep in _SEPARATORS) if i >= 0), default=high)
    return left, right


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip(b" \t"))


# Lists of these keys hold parts of one person (a FHIR Patient's names, telecoms...): an object in
# one is not a record of its own, the object holding the list is.
_PART_KEYS = frozenset({b"name", b"names", b"given", b"nom", b"noms", b"prenoms", b"telecom", b"telecoms",
                        b"address", b"addresses", b"adresse", b"adresses", b"identifier", b"identifiers",
                        b"identifiants", b"contact", b"contacts", b"extension", b"coding", b"telephones",
                        b"phones", b"emails", b"communication", b"link", b"period", b"coordonnees"})
_KEYED_LIST = re.compile(rb'^\s*"([^"]{1,40})"\s*:\s*\[\s*$')


def is_object(raw: bytes) -> bool:
    """Whether a record is one JSON object (pretty-printed or packed): one patient, whatever its layout."""
    stripped = raw.strip()
    return stripped[:1] == b"{" and stripped.rstrip(b",")[-1:] == b"}"


def _json_object(chunk: bytes, start: int, end: int, indent: int) -> tuple[int, int]:
    """Climb to the enclosing bare "{" line (through a list of a person's parts such as
    "name": [ ... ]), then down to the line closing it."""
    top = _opening(chunk, start, indent)
    if top is None:
        return start, end
    for _ in range(3):
        parent = _part_list_above(chunk, top)
        if parent is None:
            break
        higher = _opening(chunk, parent, _indent(chunk[parent:chunk.find(b"\n", parent)]))
        if higher is None:
            break
        top = higher
    opening = _indent(chunk[top:chunk.find(b"\n", top)])
    bottom = end
    for _ in range(MAX_BLOCK_LINES * 4):
        if bottom >= len(chunk) or bottom - top > MAX_RECORD:
            break
        below = chunk.find(b"\n", bottom + 1)
        below = len(chunk) if below < 0 else below
        line = chunk[bottom + 1:below]
        bottom = below
        if line.strip() and _indent(line) <= opening:
            break
    return top, bottom


def _opening(chunk: bytes, start: int, indent: int) -> int | None:
    """Start of the bare "{" line enclosing the line at ``start`` (of ``indent``), or None."""
    top = start
    for _ in range(MAX_BLOCK_LINES):
        if top == 0 or start - top > MAX_RECORD:
            return None
        above = chunk.rfind(b"\n", 0, top - 1) + 1
        line = chunk[above:top - 1]
        top = above
        if line.strip() and _indent(line) < indent:
            if line.strip() in (b"{", b"[{", b", {", b",{"):
                return top
            indent = _indent(line)  # a nested object or list: keep climbing
    return None


def _part_list_above(chunk: bytes, top: int) -> int | None:
    """Start of the '"name": [' line whose list holds the object opening at ``top``, when its key
    is one of a person's parts; None otherwise."""
    indent = _indent(chunk[top:chunk.find(b"\n", top)])
    at = top
    for _ in range(MAX_BLOCK_LINES):
        if at == 0:
            return None
        above = chunk.rfind(b"\n", 0, at - 1) + 1
        line = chunk[above:at - 1]
        at = above
        if line.strip() and _indent(line) < indent:
            keyed = _KEYED_LIST.match(line)
            return above if keyed and keyed.group(1).lower() in _PART_KEYS else None
    return None


def _label(line: bytes) -> bytes | None:
    found = _LABEL_LINE.match(line)
    return line[:found.end()].split(b":")[0].strip().lower() if found else None


def _paragraph(chunk: bytes, start: int, end: int) -> tuple[int, int]:
    """Lines around a "Label: value" line, up to a blank or rule line, or to a label
    met twice (the previous or next record of a paste without blank lines)."""
    seen = {_label(chunk[start:end])}
    top = start
    for _ in range(MAX_BLOCK_LINES // 4):
        if top == 0:
            break
        above = chunk.rfind(b"\n", 0, top - 1) + 1
        line = chunk[above:top - 1]
        label = _label(line)
        if not line.strip() or line.strip()[:3] in (b"---", b"===", b"***") or label in seen:
            break
        if label is not None:
            seen.add(label)
        top = above
    bottom = end
    for _ in range(MAX_BLOCK_LINES // 4):
        if bottom >= len(chunk):
            break
        below = chunk.find(b"\n", bottom + 1)
        below = len(chunk) if below < 0 else below
        line = chunk[bottom + 1:below]
        label = _label(line)
        if not line.strip() or line.strip()[:3] in (b"---", b"===", b"***") or label in seen:
            break
        if label is not None:
            seen.add(label)
        bottom = below
    return top, bottom
