"""Multi-literal matchers: Hyperscan when installed, pyahocorasick otherwise.

Both find every occurrence of a set of byte literals, ASCII case ignored, and
return hits as a flat list ``[literal id, end offset, literal id, end offset...]``.
Hyperscan (Intel's SIMD regex engine) runs at GB/s and its compiled database
can be saved; pyahocorasick is the portable fallback (about 10x slower).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from canary.errors import CanaryError


class Engine(Protocol):
    name: str

    def scan(self, data: bytes) -> list[int]: ...

    def dumps(self) -> bytes | None: ...


class HyperscanEngine:
    name = "hyperscan"

    def __init__(self, database) -> None:
        self._db = database

    @classmethod
    def compile(cls, literals: Sequence[bytes]) -> "HyperscanEngine":
        import hyperscan

        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        if literals:
            db.compile(expressions=list(literals), ids=list(range(len(literals))), elements=len(literals),
                       flags=hyperscan.HS_FLAG_CASELESS, literal=True)
        return cls(db if literals else None)

    @classmethod
    def loads(cls, blob: bytes) -> "HyperscanEngine":
        import hyperscan

        if not blob:
            return cls(None)
        database = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
        database.scratch = hyperscan.Scratch(database)
        return cls(database)

    def dumps(self) -> bytes:
        import hyperscan

        return hyperscan.dumpb(self._db) if self._db is not None else b""

    def scan(self, data: bytes) -> list[int]:
        out: list[int] = []
        if self._db is None or not data:
            return out
        append = out.append

        def on_match(literal: int, _start: int, end: int, _flags: int, _context) -> None:
            append(literal)
            append(end)

        self._db.scan(data, match_event_handler=on_match)
        return out


class AhoEngine:
    """pyahocorasick on the bytes seen as Latin-1 (one character per byte, so
    offsets are byte offsets), ASCII-lower-cased like Hyperscan's caseless mode."""

    name = "pyahocorasick"

    def __init__(self, automaton) -> None:
        self._automaton = automaton

    @classmethod
    def compile(cls, literals: Sequence[bytes]) -> "AhoEngine":
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
