"""Files that are not text, each with canaries among ordinary rows: every canary found, nothing else,
and the reader that read each unit named (docs/scan.md, "Inputs")."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timezone

import pytest

from canary.registry import Registry
from canary.scan import documents
from canary.scan.service import scan
from support import leakfiles, leakgen

T0 = datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as registry:
        w = leakgen.World(registry, seed=41)
        w.source("lis")
        w.source("dpi")
        w.plant("lis", 6, T0, "lis-a")
        w.plant("dpi", 6, T0, "dpi-a")
        yield w


@pytest.fixture(scope="module")
def rows(world):
    """(rows mixing 200 ordinary patients with four canaries of each source, the canary ids)."""
    rng = random.Random(7)
    ids = world.by_source["lis"][:4] + world.by_source["dpi"][:4]
    canaries = [leakgen.canary_row(world.identity(c), rng) for c in ids]
    ordinary = leakgen.ordinary_dicts(leakgen.OrdinaryRows(3, **world.avoid()), 200)
    return leakgen.mix(ordinary, canaries, rng), set(ids)


def scanned(world, path):
    report = scan(world.registry, [path], jobs=1, use_cache=False)
    found = {m.canary_id for f in report.sources for m in f.matches if m.confirmed}
    return report, found


def test_a_sqlite_database_file_is_read_table_by_table(world, rows, tmp_path):
    data, ids = rows
    leakfiles.to_sqlite(tmp_path / "lis.db", data)
    report, found = scanned(world, tmp_path / "lis.db")
    assert found == ids
    assert [(u.member, u.reader, u.container) for u in report.units] == [("#patients", "sqlite3", "sqlite")]
    assert report.problems == []


def test_a_damaged_sqlite_file_is_read_from_its_pages(world, rows, tmp_path):
    data, ids = rows
    leakfiles.to_sqlite(tmp_path / "broken.db", data)
    leakfiles.damage_sqlite(tmp_path / "broken.db")
    report, found = scanned(world, tmp_path / "broken.db")
    assert [u.reader for u in report.units] == ["sqlite-pages"]
    assert found == ids


@pytest.mark.postgres
def test_a_pg_dump_custom_archive_is_read(world, rows, tmp_path, postgres_url, monkeypatch):
    if shutil.which("pg_dump") is None:
        from support.needs import missing

        missing("pg_dump", "needs PostgreSQL's pg_dump to write a custom-format archive")
    data, ids = rows
    leakfiles.to_pg_custom_dump(tmp_path / "lis.dump", data, postgres_url)
    report, found = scanned(world, tmp_path / "lis.dump")
    assert found == ids and [u.reader for u in report.units] == ["pg_restore"]
    # Without pg_restore: the archive's own zlib data blocks.
    monkeypatch.setattr(documents.shutil, "which", lambda name: None)
    report, found = scanned(world, tmp_path / "lis.dump")
    assert found == ids and [u.reader for u in report.units] == ["pgdump-blocks"]


@pytest.mark.parametrize("method", [None, "FILTER_LZMA", "FILTER_BZIP2", "FILTER_DEFLATE"],
                         ids=["lzma2-default", "lzma", "bzip2", "deflate"])
def test_a_7z_archive_is_unpacked_and_its_members_scanned(world, rows, tmp_path, method):
    import py7zr

    filters = [{"id": getattr(py7zr, method)}] if method else None
    data, ids = rows
    half = len(data) // 2
    members = {"export/part1.csv": leakgen.to_csv(data[:half]).encode(),
               "export/part2.csv.gz": _gzip(leakgen.to_csv(data[half:]).encode())}
    leakfiles.to_7z(tmp_path / "leak.7z", members, filters)
    report, found = scanned(world, tmp_path / "leak.7z")
    assert found == ids
    assert sorted(u.member for u in report.units) == ["export/part1.csv", "export/part2.csv.gz"]
    assert {u.container for u in report.units} == {"7z", "7z>gzip"}
    assert py7zr.is_7zfile(tmp_path / "leak.7z")


@pytest.mark.parametrize("name,safe", [("ok.txt", True), ("a/b.csv", True), ("../x", False), ("a/../../x", False),
                                       ("/etc/passwd", False), ("C:/x", False), ("\\\\server\\x", False)])
def test_archive_member_names_that_would_leave_the_folder_are_refused(name, safe):
    assert documents._safe_name(name) is safe


def test_a_pdf_with_compressed_content_streams_is_read(world, rows, tmp_path):
    data, ids = rows
    lines = [";".join(str(v) for v in r.values()) for r in data[:60]]
    chosen = {c for c in ids if any(world.identity(c).last_name.upper() in line.upper() for line in lines)}
    leakfiles.to_pdf(tmp_path / "liste.pdf", lines)
    assert b"FlateDecode" in (tmp_path / "liste.pdf").read_bytes()
    report, found = scanned(world, tmp_path / "liste.pdf")
    assert [u.reader for u in report.units] == ["pypdf"]
    assert chosen and found == chosen


def test_an_ods_workbook_is_read_sheet_by_sheet(world, rows, tmp_path):
    data, ids = rows
    leakfiles.to_ods(tmp_path / "patients.ods", data)
    report, found = scanned(world, tmp_path / "patients.ods")
    assert found == ids
    assert [(u.member, u.reader) for u in report.units] == [("#Patients", "ods")]


def test_a_rar_archive_without_a_reader_is_reported_not_scanned(world, tmp_path, monkeypatch):
    monkeypatch.setattr(documents.shutil, "which", lambda name: None)
    (tmp_path / "leak.rar").write_bytes(documents.RAR_MAGIC + b"\x01\x00" + b"\x00" * 64)
    report, found = scanned(world, tmp_path / "leak.rar")
    assert found == set()
    assert [m for _f, _m, m in report.problems] == [
        "RAR archive: install unrar or bsdtar (Debian: libarchive-tools) to read it"]


def test_a_corrupt_7z_is_reported_and_the_scan_goes_on(world, rows, tmp_path):
    data, ids = rows
    (tmp_path / "a.7z").write_bytes(documents.SEVENZIP_MAGIC + b"\x00\x04" + b"\x00" * 40)
    (tmp_path / "b.csv").write_text(leakgen.to_csv(data), encoding="utf-8")
    report, found = scanned(world, tmp_path)
    assert found == ids
    assert [(f.endswith("a.7z"), m.startswith("7z archive:")) for f, _m, m in report.problems] == [(True, True)]


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_a_folder_of_mixed_files_names_each_file_as_it_goes_and_ends_with_a_table(world, rows, tmp_path):
    from canary.scan import report as render

    data, ids = rows
    leakfiles.to_sqlite(tmp_path / "a.db", data[:100])
    leakfiles.to_ods(tmp_path / "b.ods", data[100:])
    (tmp_path / "c.txt").write_text("rien ici\n", encoding="utf-8")
    started = []
    result = scan(world.registry, [tmp_path], jobs=1, use_cache=False,
                  on_unit=lambda unit: started.append((unit.file.rsplit("/", 1)[-1], unit.member)))
    assert started == [("a.db", "#patients"), ("b.ods", "#Patients"), ("c.txt", None)]
    table = render.text(result).split("Summary:\n", 1)[1].splitlines()
    assert table[0].split() == ["SOURCE", "FOUND", "PLANTED", "TAKEN", "AFTER", "PROBABLY", "BEFORE",
                                "COMPLETENESS", "HOLDS", "MORE"]
    assert sorted(line.split()[:3] for line in table[1:]) == [["dpi", "4", "6"], ["lis", "4", "6"]]
