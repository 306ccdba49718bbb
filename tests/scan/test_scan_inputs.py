"""Inputs and the runner: chunk boundaries, line numbers, long lines, encodings, forms."""

from __future__ import annotations

import gzip
import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support import leakgen, needs
from canary.registry import Registry
from canary.scan import forms, inputs, verify
from canary.scan.runner import Runner
from canary.scan.service import load_patterns, scan


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as registry:
        w = leakgen.World(registry, seed=17)
        w.source("lis")
        w.plant("lis", 30, datetime(2024, 1, 1, tzinfo=timezone.utc))
        yield w


def _file_with_canaries_at_known_lines(world, rng):
    ordinary = leakgen.OrdinaryRows(4, **world.avoid())
    lines = list(ordinary.csv_lines(3000))
    where = {}
    for cid in world.by_source["lis"]:
        at = rng.randint(0, len(lines))
        lines.insert(at, leakgen.to_csv([leakgen.canary_row(world.identity(cid), rng)], header=False))
    for number, line in enumerate(lines, start=1):
        for cid in world.by_source["lis"]:
            if world.identity(cid).email.lower() in line.lower():
                where[cid] = number
    return "".join(lines), where


@pytest.mark.parametrize("container,jobs", [("plain", 2), ("gz", 2), ("plain", 1)])
def test_line_numbers_are_exact_across_small_chunks(world, tmp_path, container, jobs):
    text, where = _file_with_canaries_at_known_lines(world, random.Random(2))
    path = tmp_path / ("leak.csv.gz" if container == "gz" else "leak.csv")
    leakgen.write_text(path, text, container=container)
    ps = load_patterns(world.registry, use_cache=False)
    raw = Runner(ps, jobs=jobs, chunk=16 * 1024).run([str(path)])
    got = {ps.canaries[f.item.canary].id: f.line for f in raw.found if f.item.kind == "email"}
    assert got == where
    assert raw.bytes == len(text.encode())


def test_values_across_hard_cuts_of_a_huge_line_are_found(world, tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_LINE", 4096)
    rng = random.Random(3)
    ordinary = leakgen.ordinary_dicts(leakgen.OrdinaryRows(5, **world.avoid()), 400)
    canaries = [leakgen.canary_row(world.identity(c), rng) for c in world.by_source["lis"]]
    one_line = json.dumps(leakgen.mix(ordinary, canaries, rng), ensure_ascii=False)  # no line end at all
    (tmp_path / "min.json").write_text(one_line, encoding="utf-8")
    leakgen.write_text(tmp_path / "min.json.gz", one_line, container="gz")
    ps = load_patterns(world.registry, use_cache=False)
    for name in ("min.json", "min.json.gz"):
        raw = Runner(ps, jobs=2, chunk=8192).run([str(tmp_path / name)])
        emails = {ps.canaries[f.item.canary].id for f in raw.found if f.item.kind == "email"}
        assert emails == set(world.by_source["lis"]), name
        assert len([f for f in raw.found if f.item.kind == "email"]) == len(canaries)  # no duplicate


def test_cp1252_and_utf16_names_with_accents_match_by_fingerprint(world, tmp_path):
    rng = random.Random(4)
    chosen = [c for c in world.by_source["lis"] if not world.identity(c).first_name.isascii()][:3] or \
        world.by_source["lis"][:3]
    rows = [leakgen.canary_row(world.identity(c), rng, strip_contacts=True, date_style="dd/mm/yyyy")
            for c in chosen]
    for row in rows:
        row["prenom"] = row["prenom"] if not row["prenom"].isupper() else row["prenom"].title()
    leakgen.write_text(tmp_path / "a.csv", leakgen.to_csv(rows), "cp1252")
    leakgen.write_text(tmp_path / "b.csv", leakgen.to_csv(rows, "\t"), "utf-16")
    report = scan(world.registry, [tmp_path], jobs=1, use_cache=False)
    by_file = {}
    for m in report.sources[0].matches:
        by_file.setdefault(m.file.rsplit("/", 1)[-1], set()).add(m.canary_id)
    assert by_file == {"a.csv": set(chosen), "b.csv": set(chosen)}


@pytest.mark.parametrize("style,form", [
    ("national", "0XXXXXXXXX"), ("spaced", "0X XX XX XX XX"), ("dotted", "0X.XX.XX.XX.XX"),
    ("dashed", "0X-XX-XX-XX-XX"), ("intl", "+33XXXXXXXXX"), ("intl_spaced", "+33 X XX XX XX XX"),
    ("intl00", "0033XXXXXXXXX"), ("plain33", "33XXXXXXXXX"), ("intl00_spaced", "0033 X XX XX XX XX"),
    ("intl_0", "+33 (0)X XX XX XX XX"),
])
def test_every_phone_writing_is_read(style, form):
    written = leakgen.write_phone("+33612345678", style).encode()
    for (sep, _grouping), literal in forms.phone_literals("+33612345678").items():
        at = written.find(literal)
        if at >= 0:
            got = forms.phone_form(b";" + written[:at], literal, b";", sep)
            assert got == (form, len(written[:at]))
            return
    raise AssertionError(f"no literal found in {written!r}")


def test_phone_inside_a_longer_number_is_not_read():
    literal = b"612345678"
    assert forms.phone_form(b";10", literal, b";", "") is None
    assert forms.phone_form(b";0", literal, b"9", "") is None
    assert forms.phone_form(b";+0033", literal, b";", "") is None


@pytest.mark.parametrize("written,form", [
    ("284057511512345", "XXXXXXXXXXXXXXX"), ("2840575115123 45", "XXXXXXXXXXXXX XX"),
    ("2 84 05 75 115 123 45", "X XX XX XX XXX XXX XX"), ("2840575115123", "XXXXXXXXXXXXX (no key)"),
])
def test_nir_writings(written, form):
    literals = forms.nir_literals("284057511512345")
    kind = "spaced" if " 84 " in written else "plain"
    literal = literals[kind]
    after = written.encode()[len(literal):] + b";"
    assert forms.nir_form(literal, after, "45")[0] == form
    assert forms.nir_form(literal, b"46;", "45") is None


def test_dates_are_read_in_french_order_first():
    read = forms.dates_in(forms.plain("03/04/1990 ; 25/12/1984 ; 12/25/1984 ; 7 février 2001 ; 19900403"))
    assert (date(1990, 4, 3), "dd/mm/yyyy") in read and (date(1990, 3, 4), "mm/dd/yyyy") not in read
    assert (date(1984, 12, 25), "mm/dd/yyyy") in read and (date(2001, 2, 7), "d mois yyyy") in read
    assert (date(1990, 4, 3), "yyyymmdd") in read


def test_name_folding_ignores_case_accents_and_punctuation():
    assert forms.fold("Le Floc'h-HÉLÈNE") == "le floc h-helene"
    assert forms.folded_names("Jean-Pierre") == (b"jean-pierre", b"jean pierre")
    assert forms.folded_names("Hélène", "HELENE", "") == (b"helene",)
    assert b"H\\u00e9l\\u00e8ne" in forms.name_literals("Hélène")


def test_json_escaped_accents_are_unescaped_in_records():
    assert verify._unescape("H\\u00e9l\\u00e8ne") == "Hélène"


def test_walk_reports_a_missing_path():
    from canary.errors import CanaryError

    with pytest.raises(CanaryError, match="no such file"):
        list(inputs.walk(["/nonexistent/leak.csv"], lambda *a: None))


def test_gzip_truncated_midway_keeps_what_was_read(world, tmp_path):
    text, where = _file_with_canaries_at_known_lines(world, random.Random(6))
    data = gzip.compress(text.encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) * 2 // 3])
    ps = load_patterns(world.registry, use_cache=False)
    raw = Runner(ps, jobs=1, chunk=8192).run([str(tmp_path / "cut.csv.gz")])
    assert len(raw.problems) == 1 and "stopped after" in raw.problems[0][2]
    got = {ps.canaries[f.item.canary].id for f in raw.found if f.item.kind == "email"}
    assert got and got < set(where)


def test_a_part_shared_by_many_canaries_is_not_the_one_looked_for():
    """Each hit on a shared part is tested for every canary holding it: 300 Martins
    born on different days are looked for by their birth dates, not by "Martin"."""
    from canary.scan import prefilter

    parts = [prefilter.Parts((b"martin",), b"jean", date(1950, 1, 1) + timedelta(days=i)) for i in range(300)]
    chosen = prefilter.choose(parts, today=date(2025, 1, 1))
    assert sorted(node for node, _ in chosen) == [("date", p.born) for p in parts]
    assert sorted(members for _, members in chosen) == [[i] for i in range(300)]


@pytest.mark.parametrize("probes", ["python", "compiled"])
@pytest.mark.parametrize("layout", ["csv", "json", "jsonl", "mysqldump", "paste"])
def test_bulk_first_tests_give_the_same_matches_as_the_loop(world, monkeypatch, layout, probes):
    """verify's numpy path (chunks of many hits: 100,000 canaries), its probe tests in Python
    or in C, against the plain loop."""
    rng = random.Random(5)
    ordinary = leakgen.ordinary_dicts(leakgen.OrdinaryRows(6, **world.avoid()), 1500)
    canaries = [leakgen.canary_row(world.identity(c), rng) for c in world.by_source["lis"]]
    rows = leakgen.mix(ordinary, canaries, rng)
    text = {"csv": leakgen.to_csv, "json": leakgen.to_json, "jsonl": leakgen.to_jsonl,
            "mysqldump": leakgen.to_mysqldump, "paste": leakgen.to_paste}[layout](rows)
    data = text.encode("utf-8")
    ps = load_patterns(world.registry, use_cache=False)
    hits = ps.engine.scan(data)
    assert len(hits) > 2
    monkeypatch.setattr(verify, "BULK_HITS", 10 ** 12)
    loop = verify.confirm(data, hits, ps)
    monkeypatch.setattr(verify, "BULK_HITS", 0)
    if probes == "python":
        monkeypatch.setattr(verify, "_compiled_probes", lambda: None)
    elif verify._compiled_probes() is None:
        needs.missing("compiled", "canary/scan/_probes.c was not built (no C compiler at install)")
    bulk = verify.confirm(data, hits, ps)
    assert bulk == loop
    assert {f.canary for f in bulk if f.kind == "fingerprint"}


def test_the_compiled_match_handler_keeps_what_the_python_one_does(world, monkeypatch):
    if verify._compiled_probes() is None:
        needs.missing("compiled", "canary/scan/_probes.c was not built (no C compiler at install)")
    from canary.scan import engines

    rng = random.Random(8)
    ordinary = leakgen.ordinary_dicts(leakgen.OrdinaryRows(9, **world.avoid()), 800)
    rows = leakgen.mix(ordinary, [leakgen.canary_row(world.identity(c), rng) for c in world.by_source["lis"]], rng)
    data = leakgen.to_csv(rows).encode("utf-8")
    ps = load_patterns(world.registry, use_cache=False)
    if ps.engine_name != "hyperscan":
        pytest.skip("the handler is Hyperscan's, a dependency on x86_64 only")
    compiled = ps.engine.scan(data)
    monkeypatch.setattr(engines, "_compiled_hits", lambda: None)
    assert compiled == ps.engine.scan(data) and len(compiled) > 100
    handler = verify._compiled_probes().Hits()
    with pytest.raises(TypeError):
        handler(1, 2, 3)
    with pytest.raises(TypeError):
        handler("1", 0, 3, 0, None)
    assert handler.take() == b""


def _probe_test_in_python(low, literals, begins, stops, slow, table):
    """What ``_probes.passing`` must answer, written as plainly as Python allows."""
    from array import array

    of_literal, starts, ends = (array("i", part) for part in table[:3])
    probes, indexes, owners = table[3:]
    out = []
    for hit, literal in enumerate(literals):
        check = of_literal[literal]
        if slow[hit]:
            out += [hit, owners[check]]
            continue
        line = low[begins[hit]:stops[hit]]
        for group in range(starts[check], starts[check + 1]):
            if probes[ends[group]:ends[group + 1]] in line:
                out += [hit, indexes[group]]
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_compiled_probe_test_answers_what_the_plain_one_does(data):
    """Random chunks over a small alphabet (many partial matches, probes of 0-4 bytes, hits
    going back and forth between lines): the C loop's byte-pair filter may only drop probes
    that are not in the line."""
    compiled = verify._compiled_probes()
    if compiled is None:
        needs.missing("compiled", "canary/scan/_probes.c was not built (no C compiler at install)")
    from array import array

    low = data.draw(st.binary(min_size=1, max_size=200).map(lambda b: bytes(b"ab;\n\x00\xff"[x % 6] for x in b)))
    probe = st.binary(max_size=4).map(lambda b: bytes(b"ab;\x00\xff"[x % 5] for x in b))
    checks = data.draw(st.lists(st.lists(probe, max_size=4), min_size=1, max_size=5))
    of_literal = data.draw(st.lists(st.integers(-1, len(checks) - 1), min_size=1, max_size=8))
    literals = [i for i, check in enumerate(of_literal) if check >= 0]
    if not literals:
        return
    starts, ends, blob, indexes = [0], [0], b"", []
    for check in checks:
        for piece in check:
            blob += piece
            ends.append(len(blob))
            indexes.append((len(indexes),))
        starts.append(len(indexes))
    owners = [(1000 + n,) for n in range(len(checks))]
    table = (array("i", of_literal).tobytes(), array("i", starts).tobytes(), array("i", ends).tobytes(), blob,
             indexes, owners)
    hits = data.draw(st.lists(st.tuples(st.sampled_from(literals), st.integers(0, len(low)), st.integers(0, len(low)),
                                        st.booleans()), max_size=30))
    lits = array("q", [h[0] for h in hits])
    begins = array("q", [min(h[1], h[2]) for h in hits])
    stops = array("q", [max(h[1], h[2]) for h in hits])
    slow = bytes(h[3] for h in hits)
    assert compiled.passing(low, lits, begins, stops, slow, table) == \
        _probe_test_in_python(low, lits, begins, stops, slow, table)


def test_the_compiled_probe_test_refuses_inputs_of_the_wrong_shape():
    """Its table comes from a cache file: a wrong one raises, never reads past a buffer."""
    compiled = verify._compiled_probes()
    if compiled is None:
        needs.missing("compiled", "canary/scan/_probes.c was not built (no C compiler at install)")
    from array import array

    def q(*values):
        return array("q", values)

    def table(of_literal=(-1, 0), starts=(0, 2), ends=(0, 3, 6), probes=b"marzzz", owners=((7, 8),)):
        return (array("i", of_literal).tobytes(), array("i", starts).tobytes(), array("i", ends).tobytes(),
                probes, [(7,), (8,)], list(owners))

    low = b"jean;martin;1950\n"
    every = len(low)
    assert compiled.passing(low, q(1), q(0), q(every), b"\0", table()) == [0, (7,)]
    assert compiled.passing(low, q(1), q(0), q(every), b"\1", table()) == [0, (7, 8)]  # slow: every owner
    assert compiled.passing(low, q(1), q(0), q(4), b"\0", table()) == []  # "mar" not in "jean"
    assert compiled.passing(low, q(1, 1), q(0, 5), q(4, every), b"\0\0", table()) == [1, (7,)]
    wrong = [
        (ValueError, (low, q(1), q(0), q(every + 1), b"\0", table())),  # past the chunk
        (ValueError, (low, q(2), q(0), q(4), b"\0", table())),  # no such literal
        (ValueError, (low, q(1, 1), q(0), q(4), b"\0", table())),  # lengths differ
        (TypeError, (low, q(0), q(0), q(4), b"\0", table())),  # a token literal: no check
        (TypeError, (low, q(1), q(0), q(4), b"\0", table(of_literal=(-1, 5)))),  # no such check
        (ValueError, (low, q(1), q(0), q(4), b"\0", table(starts=(0, 9)))),  # groups past the table
        (ValueError, (low, q(1), q(0), q(4), b"\0", table(ends=(0, 3, 60)))),  # probe past the blob
        (ValueError, (low, q(1), q(0), q(4), b"\0", table(owners=()))),  # parts differ
        (TypeError, (low, q(1), q(0), q(4), b"\0", table()[:4])),
    ]
    for error, args in wrong:
        with pytest.raises(error):
            compiled.passing(*args)
