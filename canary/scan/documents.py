"""Files that are not text: database files, dumps, 7z and RAR archives, PDF, ODS.

Each reader turns one file into what the scan reads everywhere else:

* ``Lines``: text lines of one unit (a table of a SQLite file, the pages of a
  PDF, a sheet of an ODS workbook, the SQL of a pg_dump archive), named by
  its member suffix ("#patients") and by the reader that produced them;
* ``Extracted``: a folder of files taken out of a 7z or RAR archive, to be
  opened like any other file (an archive inside is opened in turn).

A reader that cannot read a file raises an error that ``inputs`` reports
under "Not scanned"; one that can read part of it (a damaged SQLite file,
pg_dump data blocks without pg_restore) says so in its reader name.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from canary.errors import CanaryError

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
PDF_MAGIC = b"%PDF-"
RAR_MAGIC = b"Rar!\x1a\x07"
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
MAX_CELL_REPEAT = 64  # an ODS row or cell "repeated" a million times is styling, not data
MAX_EXTRACTED = 20 << 30  # refuse to unpack more than this from one archive (a bomb)


class UnreadableDocument(CanaryError):
    """The file is of a known kind but cannot be read here (reported, the scan goes on)."""


@dataclass
class Lines:
    member: str  # suffix of the unit's member name: "#patients", "" for the whole file
    lines: Iterator[bytes]  # UTF-8, without line ends
    reader: str  # what read it: "sqlite3", "sqlite-pages", "pg_restore", "pypdf"...


@dataclass
class Extracted:
    folder: Path
    reader: str


def kind(head: bytes) -> str | None:
    """The document kind of a file from its first bytes, or None."""
    for magic, name in ((SQLITE_MAGIC, "sqlite"), (PGDUMP_MAGIC, "pgdump"), (SEVENZIP_MAGIC, "7z"),
                        (PDF_MAGIC, "pdf"), (RAR_MAGIC, "rar")):
        if head.startswith(magic):
            return name
    return None


# -- SQLite --------------------------------------------------------------------------------


def sqlite_tables(path: str) -> Iterator[Lines]:
    """Each table as a unit: its column names, then one tab-separated line per row.

    A file SQLite refuses (damaged, truncated) is read page by page instead: every
    record of every table leaf page, fields tab-separated (``sqlite-pages``)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            tables = [row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        except sqlite3.DatabaseError:
            connection.close()
            raise
    except sqlite3.DatabaseError:
        yield Lines("#pages", _sqlite_pages(path), "sqlite-pages")
        return
    try:
        for table in tables:
            yield Lines(f"#{table}", _table_lines(connection, table), "sqlite3")
    finally:
        connection.close()


def _table_lines(connection: sqlite3.Connection, table: str) -> Iterator[bytes]:
    quoted = '"' + table.replace('"', '""') + '"'
    try:
        cursor = connection.execute(f"SELECT * FROM {quoted}")  # noqa: S608 (a name read from the file)
        yield "\t".join(d[0] for d in cursor.description).encode("utf-8", "replace")
        for row in cursor:
            yield "\t".join(_cell(v) for v in row).encode("utf-8", "replace")
    except sqlite3.DatabaseError:
        return  # a damaged table: what was read stands


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return " ".join(str(value).split())


def _sqlite_pages(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size = int.from_bytes(data[16:18], "big")
        page_size = 65536 if size == 1 else size
        if page_size < 512 or page_size & (page_size - 1):
            page_size = 4096
        for offset in range(0, len(data), page_size):
            header = offset + (100 if offset == 0 else 0)
            if data[header:header + 1] != b"\x0d":  # table b-tree leaf
                continue
            count = int.from_bytes(data[header + 3:header + 5], "big")
            for i in range(min(count, page_size // 2)):
                at = header + 8 + 2 * i
                cell = offset + int.from_bytes(data[at:at + 2], "big")
                fields = _record(data, cell, offset + page_size)
                if fields:
                    yield "\t".join(fields).encode("utf-8", "replace")


def _varint(data, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        if at + i >= len(data):
            return value, at + i
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return value, at + 9


def _record(data, cell: int, page_end: int) -> list[str]:
    """The fields of one leaf cell's record (its local part; overflow pages are not followed)."""
    try:
        _payload, at = _varint(data, cell)
        _rowid, at = _varint(data, at)
        header_size, body = _varint(data, at)
        header_end = at + header_size
        types = []
        while body < header_end and len(types) < 256:
            serial, body = _varint(data, body)
            types.append(serial)
        body = header_end
        fields = []
        for serial in types:
            width = (0, 1, 2, 3, 4, 6, 8, 8, 0, 0)[serial] if serial < 10 else (serial - 12) // 2 \
                if serial >= 12 else 0
            if body + width > page_end:
                break
            raw = data[body:body + width]
            body += width
            if serial >= 13 and serial % 2:
                fields.append(" ".join(raw.decode("utf-8", "replace").split()))
            elif 1 <= serial <= 6:
                fields.append(str(int.from_bytes(raw, "big", signed=True)))
            elif serial in (8, 9):
                fields.append(str(serial - 8))
            else:
                fields.append("")
        return fields
    except (IndexError, ValueError):
        return []


# -- pg_dump custom format -----------------------------------------------------------------


def pgdump_lines(path: str) -> Iterator[Lines]:
    """The SQL (COPY data included) of a ``pg_dump -Fc`` archive.

    ``pg_restore -f -`` when it is installed and reads this archive's version;
    otherwise the archive's data blocks themselves: zlib-compressed (the
    default) or stored plain (``-Z0``). lz4/zstd blocks (PostgreSQL 16+
    ``-Z lz4``) need pg_restore."""
    tool = shutil.which("pg_restore")
    if tool is not None:
        lines = _pg_restore(tool, path)
        first = next(lines, None)
        if first is not None:
            yield Lines("", _chain(first, lines), "pg_restore")
            return
    yield Lines("", _zlib_blocks(path), "pgdump-blocks")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _pg_restore(tool: str, path: str) -> Iterator[bytes]:
    process = subprocess.Popen([tool, "--no-owner", "--no-privileges", "-f", "-", path],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in process.stdout:
            yield line.rstrip(b"\r\n")
    finally:
        process.stdout.close()
        process.kill()
        process.wait()


def _zlib_blocks(path: str) -> Iterator[bytes]:
    """The table data of a custom-format archive, read without pg_restore.

    Layout (pg_dump's pg_backup_custom.c, _StartData/_CustomWriteFunc/_EndData): a
    data block is a run of chunks, each an archive integer (a sign byte then
    ``intSize`` bytes, least significant first; ``intSize`` is byte 8 of the
    header) giving the length of the compressed bytes that follow, ended by a
    zero length. The chunks of one block are one zlib stream."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        int_size = data[8] if len(data) > 8 and 1 <= data[8] <= 8 else 4
        found = False
        at = data.find(b"\x78", 5)
        while 0 <= at < len(data) - 2:
            stream = _chunked_stream(data, at, int_size) if (data[at] << 8 | data[at + 1]) % 31 == 0 else None
            if stream is not None:
                compressed, end = stream
                text = _inflate(compressed)
                if text is not None:
                    found = True
                    yield from text.splitlines()
                    at = data.find(b"\x78", end)
                    continue
            at = data.find(b"\x78", at + 1)
        if not found:  # -Z0: the data blocks are plain text between binary lengths
            yield from (line for line in data[:].splitlines() if line)


def _archive_int(data, at: int, int_size: int) -> int | None:
    if at < 0 or at + 1 + int_size > len(data) or data[at] not in (0, 1):
        return None
    value = int.from_bytes(data[at + 1:at + 1 + int_size], "little")
    return -value if data[at] else value


def _chunked_stream(data, at: int, int_size: int) -> tuple[bytes, int] | None:
    """(the chunks' bytes joined, where the block ends) for a block whose first chunk starts at ``at``."""
    length = _archive_int(data, at - 1 - int_size, int_size)
    if length is None or not 0 < length <= len(data) - at:
        return None
    parts, pos = [], at
    while length:
        if length < 0 or pos + length > len(data):
            return None
        parts.append(data[pos:pos + length])
        pos += length
        length = _archive_int(data, pos, int_size)
        if length is None:
            return None
        pos += 1 + int_size
    return b"".join(parts), pos


def _inflate(compressed: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed)
    except zlib.error:
        return None
    return text if inflater.eof else None


# -- 7z and RAR ------------------------------------------------------------------------------


@contextmanager
def extracted(path: str, kind_: str) -> Iterator[Extracted]:
    """The archive's files in a temporary folder (deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix="canary-scan-") as folder:
        target = Path(folder)
        if kind_ == "7z":
            reader = _extract_7z(path, target)
        else:
            reader = _extract_rar(path, target)
        yield Extracted(target, reader)


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def _extract_7z(path: str, target: Path) -> str:
    try:
        import py7zr
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UnreadableDocument("7z archive: install py7zr") from None
    try:
        with py7zr.SevenZipFile(path, mode="r") as archive:
            members = [m for m in archive.list() if not m.is_directory]
            if sum(m.uncompressed or 0 for m in members) > MAX_EXTRACTED:
                raise UnreadableDocument("7z archive: unpacks to more than 20 GB, not extracted")
            wanted = [m.filename for m in members if _safe_name(m.filename) and not getattr(m, "is_symlink", False)]
            archive.extract(path=target, targets=wanted)
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.Bad7zFile, py7zr.exceptions.PasswordRequired,
            py7zr.exceptions.UnsupportedCompressionMethodError, EOFError, OSError, ValueError, KeyError) as err:
        raise UnreadableDocument(f"7z archive: {type(err).__name__}: {err}"[:300]) from None
    return "py7zr"


def _extract_rar(path: str, target: Path) -> str:
    for tool, command in (("unrar", ["x", "-o+", "-p-", "-idq", path, str(target) + os.sep]),
                          ("bsdtar", ["-x", "-f", path, "-C", str(target)])):
        found = shutil.which(tool)
        if found is None:
            continue
        run = subprocess.run([found, *command], capture_output=True, timeout=3600)
        _drop_unsafe(target)
        if run.returncode != 0 and not any(target.rglob("*")):
            message = run.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["failed"]
            raise UnreadableDocument(f"RAR archive: {tool}: {message[0]}"[:300])
        return tool
    raise UnreadableDocument("RAR archive: install unrar or bsdtar (Debian: libarchive-tools) to read it")


def _drop_unsafe(target: Path) -> None:
    """Links an archive put in the folder could point anywhere: never followed, removed."""
    for path in list(target.rglob("*")):
        if path.is_symlink():
            path.unlink()


# -- PDF -------------------------------------------------------------------------------------


def pdf_lines(path: str) -> Iterator[Lines]:
    """The text of every page (compressed content streams included), pages apart by a blank line."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UnreadableDocument("PDF: install pypdf") from None
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("PDF: encrypted with a password")
        pages = len(reader.pages)
    except (PdfReadError, OSError, ValueError, KeyError) as err:
        raise UnreadableDocument(f"PDF: {type(err).__name__}: {err}"[:300]) from None

    def lines() -> Iterator[bytes]:
        for number in range(pages):
            try:
                text = reader.pages[number].extract_text() or ""
            except Exception:  # a broken page: the others are still read  # noqa: BLE001
                continue
            yield from (line.encode("utf-8", "replace") for line in text.splitlines())
            yield b""

    yield Lines("", lines(), "pypdf")


# -- ODS -------------------------------------------------------------------------------------

_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"


def ods_sheets(content) -> Iterator[Lines]:
    """Each sheet of an ODS workbook's content.xml as tab-separated rows (dates as ISO)."""
    from defusedxml.ElementTree import iterparse

    sheet_name, rows = None, []

    def flush():
        return Lines(f"#{sheet_name}", iter(rows), "ods")

    try:
        for event, element in iterparse(content, events=("start", "end")):
            tag = element.tag
            if event == "start" and tag == _TABLE + "table":
                sheet_name, rows = element.get(_TABLE + "name") or "sheet", []
            elif event == "end" and tag == _TABLE + "table-row":
                cells = []
                for cell in element:
                    if cell.tag not in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                        continue
                    value = cell.get(_OFFICE + "date-value") or " ".join(
                        "".join(p.itertext()) for p in cell.iter(_TEXT + "p"))
                    repeat = min(int(cell.get(_TABLE + "number-columns-repeated") or 1), MAX_CELL_REPEAT)
                    cells.extend([" ".join(value.split())] * repeat)
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    repeat = min(int(element.get(_TABLE + "number-rows-repeated") or 1), MAX_CELL_REPEAT)
                    rows.extend(["\t".join(cells).encode("utf-8")] * repeat)
                element.clear()
            elif event == "end" and tag == _TABLE + "table":
                yield flush()
                sheet_name, rows = None, []
    except Exception as err:  # defusedxml's refusals and ParseError alike  # noqa: BLE001
        raise UnreadableDocument(f"ODS: {type(err).__name__}: {err}"[:300]) from None
