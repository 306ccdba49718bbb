"""canary scan end to end: leaks in every format, container and encoding, several sources.

A registry with three sources is planted through the registry API; leak
files mixing ordinary rows with canaries of several sources, each value in a
writing drawn at random, are written in every supported form; the scan must
attribute every planted canary in them to its source and find nothing else.
"""

from __future__ import annotations

import io
import platform
import random
import tarfile
import zipfile
from datetime import datetime, timezone

import pytest

from support import leakgen
from canary.registry import Registry
from canary.scan import engines
from canary.scan.service import load_patterns, scan

T0 = datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as registry:
        w = leakgen.World(registry, seed=11)
        for name in ("lis-rennes", "dpi-brest", "rad-nantes"):
            w.source(name)
        w.plant("lis-rennes", 12, T0, "lis-a")
        w.plant("dpi-brest", 12, T0.replace(month=2))
        w.plant("lis-rennes", 8, T0.replace(month=3), "lis-b")
        w.plant("rad-nantes", 10, T0.replace(month=4))
        yield w


def _writers(tmp, rows_for, rng):
    """{file name: expected canary ids} after writing every leak form into ``tmp``."""
    expected: dict[str, set[int]] = {}

    def leak(name, ids, render, **options):
        rows = rows_for(ids, **options)
        render(tmp / name, rows)
        expected[name] = set(ids)

    def text(fmt, encoding="utf-8", container="plain"):
        return lambda path, rows: leakgen.write_text(path, fmt(rows), encoding, container)

    return expected, leak, text


@pytest.fixture(scope="module")
def leaks(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leaks")
    rng = random.Random(5)
    ordinary = leakgen.OrdinaryRows(3, **world.avoid())
    ids = {s: list(v) for s, v in world.by_source.items()}
    everyone = [i for v in ids.values() for i in v]
    rng.shuffle(everyone)
    groups = [everyone[i::9] for i in range(9)]  # 9 leaks, each mixing sources

    def rows_for(chosen, date_style=None, strip=False, n=150):
        canaries = [leakgen.canary_row(world.identity(i), rng, date_style=date_style, strip_contacts=strip)
                    for i in chosen]
        return leakgen.mix(leakgen.ordinary_dicts(ordinary, n, date_style or "dd/mm/yyyy"), canaries, rng)

    expected, leak, text = _writers(tmp, rows_for, rng)
    leak("export.csv", groups[0], text(leakgen.to_csv))
    leak("export_cp1252.csv.gz", groups[1], text(lambda r: leakgen.to_csv(r, ",", quote=True), "cp1252", "gz"))
    leak("dump.sql.bz2", groups[2], text(leakgen.to_mysqldump, container="bz2"))
    leak("pg.sql.xz", groups[3], text(leakgen.to_pg_copy, container="xz"))
    leak("patients.json", groups[4], text(lambda r: leakgen.to_json(r, ascii_only=True)))
    leak("patients_utf16.txt", groups[5], text(lambda r: leakgen.to_csv(r, "\t"), "utf-16"))
    leak("paste.txt", groups[6][:2], text(leakgen.to_paste))
    leak("stripped.csv", groups[6][2:], text(lambda r: leakgen.to_csv(r, "|")), strip=True, date_style="yyyy-mm-dd")
    leak("patients.xlsx", groups[7][:3], leakgen.to_xlsx)
    # An archive: members in JSON lines, pretty JSON, a gz member, a nested zip holding a
    # tar.gz, a corrupt gz member, and a CSV; the corrupt member must not stop the scan.
    chosen = groups[7][3:] + groups[8]
    parts = [chosen[i::5] for i in range(5)]
    inner_tar = io.BytesIO()
    with tarfile.open(fileobj=inner_tar, mode="w:gz") as archive:
        data = leakgen.to_csv(rows_for(parts[3], date_style="d mois yyyy")).encode()
        info = tarfile.TarInfo("export/old.csv")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("backup.tar.gz", inner_tar.getvalue())
    import gzip
    leakgen.zip_members(tmp / "leak.zip", {
        "a/patients.jsonl": leakgen.to_jsonl(rows_for(parts[0])).encode(),
        "a/patients.json": leakgen.to_json(rows_for(parts[1])).encode(),
        "b/export.csv.gz": gzip.compress(leakgen.to_csv(rows_for(parts[2], date_style="dd.mm.yyyy")).encode()),
        "b/nested.zip": nested.getvalue(),
        "c/broken.csv.gz": gzip.compress(random.Random(1).randbytes(5000))[:200],
        "c/last.csv": leakgen.to_csv(rows_for(parts[4]), "\t").encode("utf-8"),
    })
    expected["leak.zip"] = set(chosen)
    return tmp, expected


@pytest.fixture(scope="module")
def report(world, leaks, tmp_path_factory):
    folder, _ = leaks
    cache = tmp_path_factory.mktemp("cache")
    cache.chmod(0o700)
    return scan(world.registry, [folder], jobs=2, cache_folder=cache)


def test_every_planted_canary_in_a_leak_is_attributed_to_its_source(world, leaks, report):
    _, expected = leaks
    wanted = set().union(*expected.values())
    found = {cid: f.source for f in report.sources for cid in f.analysis.found}
    assert set(found) == wanted
    assert all(found[cid] == world.source_of(cid) for cid in found)
    assert {f.source for f in report.sources} == {"lis-rennes", "dpi-brest", "rad-nantes"}


def test_each_file_holds_exactly_its_canaries(leaks, report):
    folder, expected = leaks
    per_file: dict[str, set[int]] = {}
    for finding in report.sources:
        for m in finding.matches:
            per_file.setdefault(m.file.rsplit("/", 1)[-1], set()).add(m.canary_id)
    assert per_file == expected


def test_matches_name_file_member_line_and_form(leaks, report):
    folder, _ = leaks
    matches = [m for f in report.sources for m in f.matches]
    kinds = {m.kind for m in matches}
    assert {"email", "phone", "nir", "url_code", "fingerprint"} <= kinds
    members = {m.member for m in matches if m.file.endswith("leak.zip")}
    assert "b/nested.zip/backup.tar.gz/export/old.csv" in members
    phone_forms = {m.form for m in matches if m.kind == "phone"}
    assert {"0X XX XX XX XX", "+33XXXXXXXXX", "0XXXXXXXXX", "0X.XX.XX.XX.XX"} & phone_forms
    assert len(phone_forms) >= 6
    # Line numbers point at the canary: read the line back.
    in_export = [m for m in matches if m.member is None and m.file.endswith("export.csv") and m.kind == "email"]
    assert in_export
    lines = (folder / "export.csv").read_text(encoding="utf-8").splitlines()
    for m in in_export:
        assert m.text.lower() in lines[m.line - 1].lower()


def test_stripped_file_is_matched_by_fingerprint_only(leaks, report):
    _, expected = leaks
    matches = [m for f in report.sources for m in f.matches if m.file.endswith("stripped.csv")]
    assert {m.kind for m in matches} == {"fingerprint"}
    assert {m.canary_id for m in matches} == expected["stripped.csv"]
    assert {m.form for m in matches} == {"yyyy-mm-dd"}


def test_corrupt_member_is_reported_and_skipped(report):
    assert [p[1] for p in report.problems] == ["c/broken.csv.gz"]
    assert any(u.member == "c/last.csv" for u in report.units)


def test_encodings_and_containers_are_recognised(report):
    units = {(u.file.rsplit("/", 1)[-1], u.member): u for u in report.units}
    assert units[("export_cp1252.csv.gz", None)].encoding == "cp1252"
    assert units[("export_cp1252.csv.gz", None)].container == "gzip"
    assert units[("patients_utf16.txt", None)].encoding == "utf-16"
    assert units[("patients.xlsx", "#Patients")].container == "xlsx"
    assert units[("dump.sql.bz2", None)].container == "bz2"
    assert units[("pg.sql.xz", None)].container == "xz"


def require_hyperscan() -> None:
    """Hyperscan is a dependency on x86_64 only (pyproject.toml): elsewhere the test skips."""
    if "hyperscan" in engines.available():
        return
    if platform.machine() == "x86_64":
        pytest.fail("hyperscan is a dependency on x86_64 but cannot be imported")
    pytest.skip(f"hyperscan is not a dependency on {platform.machine()}")


def test_the_fallback_engine_and_one_process_find_the_same(world, leaks, report):
    assert "pyahocorasick" in engines.available()  # a dependency on every platform (pyproject.toml)
    folder, _ = leaks
    other = scan(world.registry, [folder], jobs=1, engine="pyahocorasick", use_cache=False)

    def key(r):
        return sorted((m.file, m.member or "", m.line, m.canary_id, m.kind, m.form)
                      for f in r.sources for m in f.matches)

    assert key(other) == key(report)


def test_export_shape_names_columns_and_formats(leaks, report):
    shapes = {(s.file.rsplit("/", 1)[-1], s.member): s for f in report.sources for s in f.shapes}
    csv_shape = shapes[("export.csv", None)]
    assert csv_shape.layout == "csv" and csv_shape.delimiter == ";"
    assert csv_shape.columns[:4] == ("ipp", "nom", "nom_naissance", "prenom")
    assert "email" in csv_shape.columns and "telephone" in csv_shape.columns
    assert shapes[("dump.sql.bz2", None)].layout == "sql-insert"
    assert shapes[("pg.sql.xz", None)].layout == "sql-copy"
    assert shapes[("patients.json", None)].layout == "json"
    assert shapes[("patients.json", None)].columns[:3] == ("ipp", "nom", "nom_naissance")


def test_cache_is_used_then_invalidated_by_a_new_canary(world, tmp_path, monkeypatch):
    require_hyperscan()
    from canary.scan import patterns

    folder = tmp_path / "cache"
    first = load_patterns(world.registry, cache_folder=folder)
    assert list(folder.glob("*.patterns")) and (folder.stat().st_mode & 0o077) == 0

    def no_build(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(patterns, "build", no_build)
    again = load_patterns(world.registry, cache_folder=folder)
    assert again.key == first.key and len(again) == len(first)
    monkeypatch.undo()
    world.source("extra-src")
    world.plant("extra-src", 1, T0)
    fresh = load_patterns(world.registry, cache_folder=folder)
    assert fresh.key != first.key and len(fresh.canaries) == len(first.canaries) + 1


def test_a_damaged_or_foreign_cache_file_is_not_used(tmp_path, monkeypatch):
    """The payload is read in pieces, each hashed while the next is read: any change,
    a shorter file or another key is refused."""
    from canary.scan import cache

    monkeypatch.setattr(cache, "PIECE", 1000)
    folder = tmp_path / "cache"
    payload = bytes(range(256)) * 40
    path = cache.save("key", payload, folder)
    assert bytes(cache.load("key", folder)) == payload
    assert cache.load("other", folder) is None
    data = bytearray(path.read_bytes())
    data[-4000] ^= 1
    path.write_bytes(bytes(data))
    assert cache.load("key", folder) is None
    path.write_bytes(bytes(data[:-1]))
    assert cache.load("key", folder) is None
    assert cache.save("empty", b"", folder) and cache.load("empty", folder) == b""


def test_cached_pattern_set_keeps_the_hot_loop_tables(world, tmp_path):
    """The bulk hit table and the obfuscated-email table are cached with the databases."""
    require_hyperscan()
    folder = tmp_path / "cache"
    compiled = load_patterns(world.registry, cache_folder=folder)
    loaded = load_patterns(world.registry, cache_folder=folder)
    assert loaded.hit_table == compiled.hit_table and loaded._hit_table is not None
    assert loaded.email_locals and loaded.email_locals == compiled.email_locals


def test_families_are_packed_into_as_few_databases_as_fit(monkeypatch):
    """Each database is one pass over the data: whole families share one while they fit,
    a family too big for one is cut in equal parts of its own."""
    monkeypatch.setattr(engines.HyperscanEngine, "MAX_LITERALS", 6)
    monkeypatch.setattr(engines.HyperscanEngine, "PACK_LITERALS", 5)
    groups = engines.HyperscanEngine.groups([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4])
    assert sorted(map(sorted, groups)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15],
                                           [16, 17]]
    monkeypatch.setattr(engines.HyperscanEngine, "MAX_LITERALS", 200_000)
    monkeypatch.setattr(engines.HyperscanEngine, "PACK_LITERALS", 50_000)
    one = engines.HyperscanEngine.groups(bytes([0, 1, 2, 3, 4, 5] * 1000))
    assert len(one) == 1 and sorted(one[0]) == list(range(6000))


def test_patterns_split_over_several_databases_find_the_same(world, leaks, report, tmp_path, monkeypatch):
    """100,000 canaries' literals are compiled in parts (engines.HyperscanEngine); here
    parts of 40 literals: the scan, compiled then loaded back from the cache, is unchanged."""
    require_hyperscan()
    folder, _ = leaks
    monkeypatch.setattr(engines.HyperscanEngine, "MAX_LITERALS", 40)
    cache = tmp_path / "cache"
    compiled = load_patterns(world.registry, cache_folder=cache)
    assert len(compiled.engine._dbs) > len(compiled) // 40
    loaded = load_patterns(world.registry, cache_folder=cache)
    assert len(loaded.engine._dbs) == len(compiled.engine._dbs)

    def key(r):
        return sorted((m.file, m.member or "", m.line, m.canary_id, m.kind, m.form)
                      for f in r.sources for m in f.matches)

    assert key(scan(world.registry, [folder], jobs=1, pattern_set=loaded)) == key(report)


def test_pattern_rows_stream_only_what_the_patterns_use(world):
    """Whole identities of 100,000 canaries took 1 GB before compiling: only the compiled fields come."""
    from canary.registry import scanstore

    rows = scanstore.pattern_rows(world.registry)
    assert not isinstance(rows, list)  # a stream, not everything at once
    rows = list(rows)
    planted = world.registry.list_canaries()
    assert [r.canary_id for r in rows] == sorted(c.id for c in planted)
    for row in rows:
        assert set(row.identity) <= set(scanstore.PATTERN_FIELDS)
        assert {"last_name", "first_names", "birth_date"} <= set(row.identity)
        kinds = {kind for kind, _ in row.tokens}
        assert {"email", "phone", "nir"} <= kinds, kinds
