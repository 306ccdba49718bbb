"""What to scan: files and folders, opened whatever they are, as UTF-8 byte chunks.

``walk(paths)`` yields, in path order, either

* ``SlicedFile``: a plain UTF-8 (or ASCII, or binary) file, which workers read
  themselves in slices cut at line ends (``read_slice``): no copy through
  the main process, the fast path for big CSV and SQL files; or
* ``Stream``: anything that must be decoded in order (gzip, bz2, xz, zip
  members, tar members, nested archives, XLSX sheets, Latin-1/CP1252 and
  UTF-16 text, transcoded to UTF-8), as an iterator of chunks cut at line
  ends.

Containers are recognised by their first bytes, not their names. Nothing is
read whole: archives are streamed member by member (a zip inside a zip is
spooled to a temporary file, zip needing to seek). A member that cannot be
read is reported through ``on_problem`` and skipped; the walk goes on.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from canary.errors import CanaryError
from canary.scan import documents
from canary.scan.readers import Counting, LineReader, peek, sniff_encoding, transcode

CHUNK = 16 << 20
MAX_LINE = 1 << 20  # past this without a line end, cut anyway (with OVERLAP)
OVERLAP = 4096  # bytes re-read after a cut inside a line: longer than any literal
SNIFF = 64 << 10
SPOOL = 64 << 20
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, lzma.LZMAError,
               tarfile.TarError, ValueError, KeyError, RuntimeError, NotImplementedError)


@dataclass
class Unit:
    """One scanned text: a file, or a member of an archive, or a sheet."""

    id: int
    file: str
    member: str | None = None
    container: str = "plain"  # plain, gzip, bz2, xz, zip, tar, xlsx, and chains "zip>gzip"
    encoding: str = "utf-8"
    bytes: int = 0  # UTF-8 bytes scanned
    header: str = ""  # first line, for the export shape
    problem: str | None = None
    reader: str = ""  # what read a non-text file: sqlite3, pg_restore, py7zr, pypdf, ods...


@dataclass
class SlicedFile:
    unit: Unit
    path: str
    size: int


@dataclass
class Stream:
    unit: Unit
    chunks: Iterator[tuple[bytes, int]]  # (data, limit): see "chunks" below
    progress: Callable[[], int] = field(default=lambda: 0)  # raw bytes of the file read so far


Problem = Callable[[str, str | None, str], None]  # (file, member, message)


def walk(paths: Iterable[str | os.PathLike], on_problem: Problem, chunk: int = CHUNK,
         ) -> Iterator[SlicedFile | Stream]:
    counter = iter(range(1 << 62))
    for top in paths:
        top = Path(top)
        if not top.exists():
            raise CanaryError(f"{top}: no such file or folder")
        files = [top] if not top.is_dir() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            try:
                yield from _open_file(path, counter, on_problem, chunk)
            except READ_ERRORS as err:
                on_problem(str(path), None, _describe(err))


def total_size(paths: Iterable[str | os.PathLike]) -> int:
    size = 0
    for top in map(Path, paths):
        files = [top] if not top.is_dir() else (p for p in top.rglob("*") if p.is_file())
        size += sum(p.stat().st_size for p in files if p.exists())
    return size


def _describe(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return f"{type(err).__name__}: {text}"[:300]


# -- containers ------------------------------------------------------------------------------


def _kind(head: bytes) -> str:
    document = documents.kind(head)
    if document is not None:
        return document
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    return "text"


def _open_file(path: Path, counter, on_problem: Problem, chunk: int):
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(SNIFF)
    kind = _kind(head)
    if kind == "text":
        encoding = sniff_encoding(head, complete=size <= SNIFF)
        unit = Unit(next(counter), str(path), encoding=encoding)
        if encoding == "utf-8":
            yield SlicedFile(unit, str(path), size)
            return
    if kind == "zip":  # zipfile seeks: give it the file itself
        with open(path, "rb") as handle:
            yield from _zip(handle, str(path), None, "zip", counter, on_problem, chunk, handle.tell)
        return
    if kind in DOCUMENTS:
        yield from _document(kind, str(path), str(path), None, "", counter, on_problem, chunk, lambda: size)
        return
    handle = Counting(open(path, "rb"))
    try:
        yield from _open_stream(handle, str(path), None, "", counter, on_problem, chunk, handle.tell)
    finally:
        handle.close()


def _open_stream(stream: BinaryIO, file: str, member: str | None, chain: str, counter,
                 on_problem: Problem, chunk: int, progress) -> Iterator[Stream]:
    head, stream = peek(stream, SNIFF)
    kind = _kind(head)
    label = f"{chain}>{kind}" if chain else kind
    if kind in ("gzip", "bz2", "xz"):
        if kind == "gzip":
            inner = gzip.GzipFile(fileobj=stream, mode="rb")
        else:
            inner = (bz2.BZ2File if kind == "bz2" else lzma.LZMAFile)(stream, mode="rb")
        yield from _open_stream(inner, file, member, label, counter, on_problem, chunk, progress)
    elif kind == "zip":
        yield from _zip(stream, file, member, label, counter, on_problem, chunk, progress)
    elif kind in DOCUMENTS:  # readers that need a file: spool the member to one
        with tempfile.NamedTemporaryFile(prefix="canary-scan-") as spool:
            shutil.copyfileobj(stream, spool, 1 << 20)
            spool.flush()
            yield from _document(kind, spool.name, file, member, chain, counter, on_problem, chunk, progress)
    elif kind == "tar":
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for entry in archive:
                if not entry.isfile():
                    continue
                inner = archive.extractfile(entry)
                name = f"{member}/{entry.name}" if member else entry.name
                yield from _guarded(inner, file, name, label, counter, on_problem, chunk, progress)
    else:
        encoding = sniff_encoding(head, complete=len(head) < SNIFF)
        unit = Unit(next(counter), file, member, chain or "plain", encoding)
        yield Stream(unit, _chunks(transcode(stream, encoding), chunk, unit, on_problem), progress)


def _guarded(inner: BinaryIO, file: str, member: str, chain: str, counter, on_problem, chunk, progress):
    try:
        yield from _open_stream(inner, file, member, chain, counter, on_problem, chunk, progress)
    except READ_ERRORS as err:
        on_problem(file, member, _describe(err))


def _zip(stream: BinaryIO, file: str, member: str | None, label: str, counter, on_problem, chunk, progress):
    seekable = stream if getattr(stream, "seekable", lambda: False)() else None
    spool = None
    if seekable is None:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL)
        while block := stream.read(1 << 20):
            spool.write(block)
        spool.seek(0)
        seekable = spool
    try:
        with zipfile.ZipFile(seekable) as archive:
            names = archive.namelist()
            if "mimetype" in names and "content.xml" in names and \
                    archive.read("mimetype").strip() == documents.ODS_MIMETYPE:
                with archive.open("content.xml") as content:
                    yield from _lines_units(documents.ods_sheets(content), file, member,
                                            label.replace("zip", "ods"), counter, on_problem, chunk, progress)
                return
            if "xl/workbook.xml" in names:
                yield from _xlsx(seekable, file, member, label.replace("zip", "xlsx"), counter, on_problem,
                                 chunk, progress)
                return
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = f"{member}/{info.filename}" if member else info.filename
                try:
                    inner = archive.open(info)
                except (RuntimeError, NotImplementedError, zipfile.BadZipFile) as err:
                    on_problem(file, name, _describe(err))
                    continue
                with inner:
                    yield from _guarded(inner, file, name, label, counter, on_problem, chunk, progress)
    finally:
        if spool is not None:
            spool.close()


DOCUMENTS = ("sqlite", "pgdump", "7z", "rar", "pdf")


def _document(kind: str, path: str, file: str, member: str | None, chain: str, counter, on_problem, chunk,
              progress) -> Iterator[SlicedFile | Stream]:
    """A database file, dump, PDF or 7z/RAR archive at ``path`` (``file``/``member`` name it)."""
    label = f"{chain}>{kind}" if chain else kind
    try:
        if kind in ("7z", "rar"):
            with documents.extracted(path, kind) as unpacked:
                for inner in sorted(p for p in unpacked.folder.rglob("*") if p.is_file()):
                    name = inner.relative_to(unpacked.folder).as_posix()
                    name = f"{member}/{name}" if member else name
                    with open(inner, "rb") as handle:
                        yield from _guarded(Counting(handle), file, name, label, counter, on_problem, chunk,
                                            progress)
            return
        readers = {"sqlite": documents.sqlite_tables, "pgdump": documents.pgdump_lines,
                   "pdf": documents.pdf_lines}
        yield from _lines_units(readers[kind](path), file, member, label, counter, on_problem, chunk, progress)
    except documents.UnreadableDocument as err:
        on_problem(file, member, str(err))


def _lines_units(found: Iterable[documents.Lines], file: str, member: str | None, label: str, counter,
                 on_problem, chunk, progress) -> Iterator[Stream]:
    for part in found:
        name = f"{member}{part.member}" if member else (part.member or None)
        unit = Unit(next(counter), file, name, label, "utf-8", reader=part.reader)
        yield Stream(unit, _chunks(LineReader(line + b"\n" for line in part.lines), chunk, unit, on_problem),
                     progress)


def _xlsx(seekable: BinaryIO, file: str, member: str | None, label: str, counter, on_problem, chunk, progress):
    from canary.scan.spreadsheet import sheets

    seekable.seek(0)
    for title, lines in sheets(seekable):
        name = f"{member}#{title}" if member else f"#{title}"
        unit = Unit(next(counter), file, name, label, "utf-8")
        yield Stream(unit, _chunks(LineReader(lines), chunk, unit, on_problem), progress)


# -- chunks ---------------------------------------------------------------------------------
# A chunk is (data, limit): matches starting before ``limit`` are its own. Chunks end
# at a line end, before a bare "{" line when one is near (a pretty-printed JSON record
# stays whole); a line longer than MAX_LINE is cut, the chunk then carries OVERLAP
# bytes past ``limit`` so a value across the cut is still seen whole.

_RECORD_START = re.compile(rb"\n[ \t]*\{[ \t]*\r?\n")
NEAR = 8192


def _cut(window: bytes) -> int:
    """Offset just after the line end where to cut in ``window`` (which starts at a
    line's last byte or before), or -1."""
    found = _RECORD_START.search(window, 0, NEAR)
    if found:
        return found.start() + 1
    return window.find(b"\n") + 1 or -1


def _stream_cut(data: bytes) -> int:
    """Cut offset for a streamed chunk: after its last line end, or before the last
    bare "{" line just above it; -1 without any line end."""
    last = data.rfind(b"\n")
    if last < 0:
        return -1
    best = last + 1
    for found in _RECORD_START.finditer(data, max(0, last - NEAR), last + 1):
        best = found.start() + 1
    return best


def _chunks(stream: BinaryIO, size: int, unit: Unit, on_problem: Problem) -> Iterator[tuple[bytes, int]]:
    rest = b""
    try:
        while True:
            block = stream.read(size)
            if not block:
                break
            data = rest + block if rest else block
            cut = _stream_cut(data)
            if cut <= 0 and len(data) < max(size, MAX_LINE):
                rest = data
                continue
            if cut <= 0:  # one huge line: cut it, keep a little past the cut
                limit = len(data) - OVERLAP
                yield _counted(unit, data, limit), limit
                rest = data[limit:]
                continue
            yield _counted(unit, data[:cut], cut), cut
            rest = data[cut:]
        if rest:
            yield _counted(unit, rest, len(rest)), len(rest)
    except READ_ERRORS as err:
        unit.problem = f"stopped after {unit.bytes:,} bytes: {_describe(err)}"
        on_problem(unit.file, unit.member, unit.problem)
    except UnicodeError as err:
        on_problem(unit.file, unit.member, _describe(err))


def _counted(unit: Unit, data: bytes, limit: int) -> bytes:
    if not unit.bytes:
        unit.header = header_of(data)
    unit.bytes += limit
    return data


def first_bytes(path: str, size: int = 1 << 16) -> bytes:
    """The first bytes of a plain file (its header line and a sample of rows)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def header_of(data: bytes) -> str:
    end = data.find(b"\n", 0, 4096)
    return data[: end if end >= 0 else 4096].decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")


def _boundary(handle: BinaryIO, position: int) -> int | None:
    """Where a slice boundary near ``position`` falls (the same for both neighbours),
    or None when no line ends within MAX_LINE (hard cut at ``position``)."""
    handle.seek(position - 1)
    window = handle.read(MAX_LINE + 1)
    at = _cut(window)
    return None if at < 0 else position - 1 + at


def read_slice(path: str, start: int, end: int, size: int) -> tuple[bytes, int]:
    """(data, limit) for the lines of ``path`` that start in its slice [start, end)."""
    with open(path, "rb") as handle:
        begin = 0 if start == 0 else _boundary(handle, start)
        if begin is None:
            begin = start
        if begin >= end and start > 0:
            return b"", 0
        finish = size if end >= size else _boundary(handle, end)
        extra = 0
        if finish is None:
            finish, extra = end, min(OVERLAP, size - end)
        if finish <= begin:
            return b"", 0
        handle.seek(begin)
        data = handle.read(finish + extra - begin)
        return data, finish - begin
