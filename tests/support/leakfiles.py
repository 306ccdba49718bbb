"""Leaked files in the formats that are not text: SQLite, pg_dump -Fc, 7z, PDF, ODS.

Each writer takes the rows of ``leakgen`` (dicts of one patient each) and
makes the file the way the real tool would: sqlite3 itself, PostgreSQL's own
pg_dump, py7zr with its default LZMA2 (or another filter), a PDF whose page
content is a Flate-compressed stream (what any PDF tool writes), an ODS
workbook as LibreOffice lays it out.
"""

from __future__ import annotations

import sqlite3
import subprocess
import zipfile
import zlib
from pathlib import Path

import sqlalchemy as sa


def to_sqlite(path: Path, rows: list[dict], table: str = "patients") -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {', '.join(c + ' TEXT' for c in columns)})")
        db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                       [[r.get(c) for c in columns] for r in rows])
    # Page-sized files are easy to damage on purpose: keep the default page size.


def damage_sqlite(path: Path) -> None:
    """Break the schema page so that SQLite refuses the file; the table pages stay."""
    data = bytearray(path.read_bytes())
    data[100:200] = b"\xff" * 100  # page 1's b-tree header and cell pointers
    path.write_bytes(bytes(data))


def to_pg_custom_dump(path: Path, rows: list[dict], database_url: str, table: str = "patients") -> None:
    """A real ``pg_dump -Fc`` (default compression) of a table holding ``rows``."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} ({', '.join(c + ' text' for c in columns)})"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES ({', '.join(':' + c for c in columns)})"),
                     [{c: r.get(c) for c in columns} for r in rows])
    engine.dispose()
    url = sa.engine.make_url(database_url)
    subprocess.run(["pg_dump", "-Fc", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
                    "-U", url.username or "postgres", "-f", str(path), url.database], check=True)


def to_7z(path: Path, members: dict[str, bytes], filters: list[dict] | None = None) -> None:
    import py7zr

    with py7zr.SevenZipFile(path, "w", filters=filters) as archive:
        for name, data in members.items():
            archive.writestr(data, name)


def to_pdf(path: Path, lines: list[str]) -> None:
    """A one-page PDF whose text is in a Flate-compressed content stream (WinAnsi Helvetica)."""
    ops = ["BT", "/F1 9 Tf", "11 TL", "40 800 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    content = zlib.compress("\n".join(ops).encode("cp1252"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def to_ods(path: Path, rows: list[dict], sheet: str = "Patients") -> None:
    from xml.sax.saxutils import escape

    columns = list(dict.fromkeys(k for r in rows for k in r))

    def row(values):
        cells = "".join(f'<table:table-cell office:value-type="string"><text:p>{escape(str(v))}</text:p>'
                        f"</table:table-cell>" for v in values)
        return f"<table:table-row>{cells}<table:table-cell table:number-columns-repeated=\"1000\"/></table:table-row>"

    body = row(columns) + "".join(row(r.get(c, "") for c in columns) for r in rows)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">'
        f'<office:body><office:spreadsheet><table:table table:name="{sheet}">{body}'
        '<table:table-row table:number-rows-repeated="1048000"><table:table-cell/></table:table-row>'
        "</table:table></office:spreadsheet></office:body></office:document-content>")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", "<manifest/>", compress_type=zipfile.ZIP_DEFLATED)
