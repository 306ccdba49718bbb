"""Multi-literal matchers: Hyperscan when installed, pyahocorasick otherwise.

Both find every occurrence of a set of byte literals, ASCII case ignored, and
return hits as a flat sequence of ints ``[literal id, end offset, literal id, end offset...]``
(in offset order per database: Hyperscan's several databases each add theirs).
Hyperscan (Intel's SIMD regex engine) runs at GB/s and its compiled database
can be saved; pyahocorasick is the portable fallback (about 10x slower).
"""

from __future__ import annotations

import array
from typing import Protocol, Sequence

from canary.errors import CanaryError


class Engine(Protocol):
    name: str

    def scan(self, data: bytes) -> Sequence[int]: ...

    def dumps(self) -> list[bytes] | None: ...


class HyperscanEngine:
    """Hyperscan databases of at most ``MAX_LITERALS`` literals, each holding whole families.

    Each database costs one pass over the data, and a pass costs more than
    its literals do: with 1,000 canaries (38,000 literals) six databases, one
    per family, took 0.163 s of CPU per 33 MB, all literals in one 0.128 s.
    So small families (emails, phones, dates...: ``patterns.FAMILY``) are
    packed together, in order, up to ``PACK_LITERALS``. Big ones stay apart:
    with hundreds of thousands of literals, unlike ones slow a database down
    (emails and random codes together scanned 5x slower than apart; packing
    families up to 200,000 literals made the 100,000-canary scan 8x slower).
    Hyperscan's compiler needs about 2.4 KB per literal and grows faster than
    linearly: 1.46 million literals (100,000 canaries) took 270 s and 4.5 GB
    in one database; so a database holds at most ``MAX_LITERALS`` (a bigger
    family is cut in equal parts). Within one family, a pass costs far less
    than in proportion to its literals (16 MB of the bench's CSV, CPU: 100,000
    phone literals 0.023 s, 200,000 0.031 s, 400,000 0.042 s; the 500,000 NIR
    literals of 100,000 canaries 0.098 s in two databases, 0.053 s in one,
    compiled in 64 s and 93 s): so parts are made as big as the compiler
    bears, 500,000 (13 databases at 100,000 canaries with parts of 200,000,
    7 with 500,000). Hits are reported database after database, each in
    offset order.
    """

    name = "hyperscan"
    MAX_LITERALS = 500_000
    PACK_LITERALS = 50_000  # families packed together up to this many literals

    def __init__(self, databases: list) -> None:
        self._dbs = databases

    @classmethod
    def groups(cls, families: Sequence[int]) -> list[list[int]]:
        """Literal indexes per database: families of at most ``PACK_LITERALS`` packed in
        order while they fit in that many; a bigger family alone, cut in equal parts of at
        most ``MAX_LITERALS``."""
        grouped: dict[int, list[int]] = {}
        for index, family in enumerate(families):
            grouped.setdefault(family, []).append(index)
        out: list[list[int]] = []
        packing: list[int] = []
        pack = min(cls.PACK_LITERALS, cls.MAX_LITERALS)
        for family in sorted(grouped):
            ids = grouped[family]
            if len(ids) > pack:  # big: alone (cut in parts when too big for one)
                parts = -(-len(ids) // cls.MAX_LITERALS)
                step = -(-len(ids) // parts)
                out.extend(ids[at:at + step] for at in range(0, len(ids), step))
                continue
            if len(packing) + len(ids) > pack:
                out.append(packing)
                packing = []
            packing = packing + ids
        if packing:
            out.append(packing)
        return out

    @classmethod
    def compile(cls, literals: Sequence[bytes], families: Sequence[int] | None = None) -> "HyperscanEngine":
        import hyperscan

        databases = []
        for part in cls.groups(families if families is not None else bytes(len(literals))):
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=[literals[i] for i in part], ids=part, elements=len(part),
                       flags=hyperscan.HS_FLAG_CASELESS, literal=True)
            databases.append(db)
        return cls(databases)

    @classmethod
    def loads(cls, parts: list[bytes]) -> "HyperscanEngine":
        """From ``dumps``'s parts, emptying the list: each part is freed once loaded."""
        import hyperscan

        databases = []
        while parts:
            database = hyperscan.loadb(parts.pop(), hyperscan.HS_MODE_BLOCK)
            database.scratch = hyperscan.Scratch(database)
            databases.append(database)
        return cls(databases[::-1])

    def dumps(self) -> list[bytes]:
        import hyperscan

        return [hyperscan.dumpb(db) for db in self._dbs]

    def scan(self, data: bytes) -> array.array:
        """The hits, flat, as a machine array ('q'): numpy reads it without a copy (``verify``)."""
        out = array.array("q")
        if not self._dbs or not data:
            return out
        compiled = _compiled_hits()
        if compiled is not None:  # the same handler in C: 0.03 s less per 16 MB at 100,000 canaries
            for db in self._dbs:
                db.scan(data, match_event_handler=compiled)
            out.frombytes(compiled.take())
            return out
        append = out.append

        def on_match(literal: int, _start: int, end: int, _flags: int, _context) -> None:
            append(literal)
            append(end)

        for db in self._dbs:
            db.scan(data, match_event_handler=on_match)
        return out


def compiled_helper():
    """The scanner's C helper (``canary/scan/_probes.c``: the probe tests, Hyperscan's match handler),
    or None when the install could not build it (no compiler): the Python loops then run, same results."""
    try:
        from canary.scan import _probes
    except ImportError:
        return None
    return _probes


def _compiled_hits():
    """A fresh match handler in C, or None when the helper was not built."""
    helper = compiled_helper()
    return helper.Hits() if helper is not None else None


class AhoEngine:
    """pyahocorasick on the bytes seen as Latin-1 (one character per byte, so
    offsets are byte offsets), ASCII-lower-cased like Hyperscan's caseless mode."""

    name = "pyahocorasick"

    def __init__(self, automaton) -> None:
        self._automaton = automaton

    @classmethod
    def compile(cls, literals: Sequence[bytes], families: Sequence[int] | None = None) -> "AhoEngine":
        import ahocorasick

        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for index, literal in enumerate(literals):
            automaton.add_word(literal.lower().decode("latin-1"), index)
        if literals:
            automaton.make_automaton()
        return cls(automaton if literals else None)

    def dumps(self) -> None:
        return None  # rebuilt each time: the fallback does not cache

    def scan(self, data: bytes) -> list[int]:
        out: list[int] = []
        if self._automaton is None or not data:
            return out
        append = out.append
        for end, literal in self._automaton.iter(data.lower().decode("latin-1")):
            append(literal)
            append(end + 1)
        return out


ENGINES = {"hyperscan": HyperscanEngine, "pyahocorasick": AhoEngine}


def available() -> list[str]:
    names = []
    for name, module in (("hyperscan", "hyperscan"), ("pyahocorasick", "ahocorasick")):
        try:
            __import__(module)
        except ImportError:
            continue
        names.append(name)
    return names


def pick(requested: str | None = None) -> str:
    """The engine to use: ``requested`` if given, else the fastest installed."""
    names = available()
    if requested:
        if requested not in ENGINES:
            raise CanaryError(f"unknown matching engine {requested!r}: use hyperscan or pyahocorasick")
        if requested not in names:
            raise CanaryError(f"matching engine {requested} is not installed: pip install "
                              f"{'hyperscan' if requested == 'hyperscan' else 'pyahocorasick'}")
        return requested
    if not names:
        raise CanaryError("canary scan needs hyperscan (fast) or pyahocorasick: pip install hyperscan")
    return names[0]
