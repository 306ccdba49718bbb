"""From raw literal hits in a chunk to confirmed matches.

The matcher reports every place a literal occurs; most fingerprint hits are
ordinary people sharing a canary's surname or birth date. Here each hit is
checked where it sits:

* tokens: not inside a longer value (``x0612345678``, ``ab@mel.fr.com``),
  and phones/NIRs read with their prefix or key to name the writing;
* fingerprint part: the record (``records.bounds``) must hold the canary's
  surname (used or birth), a first name AND its birth date, in any writing,
  case and accents ignored. A name alone is never a match;
* weak tokens: a NIR may belong to a real person (the identity generator
  draws plausible ones) and portal logins look like anyone's ("jdupont58",
  8-10 digit numbers), so they count only when the same record also holds
  another sign of the same canary (a name or its birth date for a NIR; its
  password, birth date or another token for a login). Unconfirmed ones are
  kept apart and reported as such.
"""

from __future__ import annotations

import array
import re
from datetime import date
from typing import NamedTuple, Sequence

from canary.scan import forms, patterns, records
from canary.scan.engines import compiled_helper
from canary.scan.patterns import (
    DNS_LABEL, EMAIL, EMAIL_DOMAIN, LOGIN, NIR_KIND, PHONE_SEP, SURNAME, URL_CODE,
)

MAX_TEXT = 120  # matched text kept per match
MAX_RECORD_TEXT = 600  # record kept per match, for the export shape
NAMES_APART = 80  # most bytes between a surname and the first name of one person
DATE_APART = 100  # most bytes between those names and the birth date
# From this many hits in a chunk, their first tests are made in bulk (numpy): with fewer,
# numpy's fixed costs (the chunk's line ends: 10 ms per 16 MB) are more than they save.
BULK_HITS = 20_000

_WORD = forms.WORD
_EMAIL_CHARS = _WORD | frozenset(b"._%+-")
_CODE_CHARS = _WORD | frozenset(b"-_")
_LOGIN_CHARS = _WORD | frozenset(b"._-+")
_DIGITS = forms.DIGITS
# A name inside an email, a host name or a compound ("Jean" in "Jean-Pierre") is not that name.
_NAME_EDGE = _WORD | frozenset(b".@-")
_LABEL = re.compile(rb'"[^"\n]{1,40}"\s*:|(?:^|\n)[^:\n;,|\t]{1,30}:')
# Canaries are patients: a name introduced by a practitioner's title is someone else.
_PRACTITIONER = re.compile(rb"(?:^|[^a-z])(?:dr|docteur|pr|professeur|medecin)\.?\s+(?:[a-z-]+\s+)?$")
_DELIMITER_RUN = re.compile(rb"[\s\"']*[;,|\t\n][\s;,|\t\n\"']*")


class Found(NamedTuple):
    """One match in a chunk (offsets relative to the chunk)."""

    canary: int  # index in PatternSet.canaries
    kind: str  # email, phone, url_code, dns_label, portal_login, nir, fingerprint
    form: str  # the writing: "0X XX XX XX XX", "dd/mm/yyyy"...
    start: int
    text: str
    confirmed: bool
    record: str  # the record around it (capped), for the export shape


class _Record:
    __slots__ = ("start", "end", "raw", "_lower", "_folded", "_plain", "_dates")

    def __init__(self, chunk: bytes, pos: int) -> None:
        self.start, self.end = records.bounds(chunk, pos)
        self.raw = chunk[self.start:self.end]
        self._lower: bytes | None = None
        self._folded: bytes | None = None
        self._dates: dict[int, list[str]] | None = None

    def holds(self, probes: tuple[bytes, ...]) -> bool:
        """Cheap first test: a lower-case ASCII piece of a name is in the raw bytes
        (a name without one, all accents or another script, is not tested here)."""
        if self._lower is None:
            self._lower = self.raw.lower()
        return not probes or any(p in self._lower for p in probes)

    @property
    def folded(self) -> bytes:
        if self._folded is None:
            text = self.raw.decode("utf-8", "replace")
            if "\\u" in text:
                text = _unescape(text)
            self._plain = forms.plain_bytes(text)
            self._folded = self._plain.translate(forms.SPACES)
        return self._folded

    def dates(self) -> dict[int, list[tuple[str, int, int]]]:
        if self._dates is None:
            self._dates = {}
            self.folded  # noqa: B018 (computes _plain)
            for day, fmt, start, end in forms.dates_at(self._plain.decode("ascii")):
                self._dates.setdefault(day.toordinal(), []).append((fmt, start, end))
        return self._dates

    def places(self, word: bytes) -> list[tuple[int, int]]:
        """(start, end) of each whole-word occurrence of a folded word."""
        text, size, out = self.folded, len(word), []
        at = text.find(word)
        while at >= 0:
            if (at == 0 or text[at - 1] not in _NAME_EDGE) and \
                    (at + size >= len(text) or text[at + size] not in _NAME_EDGE):
                out.append((at, at + size))
            at = text.find(word, at + 1)
        return out

    def has_any(self, words: tuple[bytes, ...]) -> bool:
        return any(self.places(w) for w in words)

    def named(self, surnames: tuple[bytes, ...], first_names: tuple[bytes, ...]) -> tuple[int, int] | None:
        """(start, end) of a surname and first name written as one person's: two different
        words, close, with at most one other field between them (a birth or middle name);
        "Marion" as someone's first name and "Jean" in their doctor's or street's name is
        no "Jean Marion"."""
        firsts = [place for name in first_names for place in self.places(name)]
        if not firsts:
            return None
        shared = set(surnames) & set(first_names)
        if shared and not self._twice_named(shared, surnames):
            return None
        for surname in surnames:
            for s_start, s_end in self.places(surname):
                for f_start, f_end in firsts:
                    if not (s_end <= f_start or f_end <= s_start):
                        continue
                    low, high = min(s_end, f_end), max(s_start, f_start)
                    if high - low <= NAMES_APART and _one_field_apart(self.folded[low:high]) \
                            and not self._practitioner(s_start) and not self._practitioner(f_start):
                        return min(s_start, f_start), max(s_end, f_end)
        return None

    def _twice_named(self, shared: set[bytes], surnames: tuple[bytes, ...]) -> bool:
        """For a canary whose first name is also its surname ("Bertrand Bertrand"): the word
        written three times (surname, birth name, first name), or its other surname there too.
        Twice is what every "Bertrand;Bertrand;Sylvie" row (surname and birth name) holds: with
        100,000 canaries, four such ordinary rows of 2.8 million matched by their birth date."""
        if any(len(self.places(word)) >= 3 for word in shared):
            return True
        return any(self.places(other) for other in surnames if other not in shared)

    def _practitioner(self, start: int) -> bool:
        return bool(_PRACTITIONER.search(self.folded[max(0, start - 32):start]))

    def born_near(self, ordinal: int, span: tuple[int, int]) -> str | None:
        """The writing of the birth date ``ordinal`` near ``span`` (the names), or None.

        In a JSON object (one patient) anywhere in it: a second name entry or an
        address may stand between the names and "birthDate"."""
        anywhere = records.is_object(self.raw)
        for fmt, start, end in self.dates().get(ordinal, ()):
            if anywhere or (start - span[1] <= DATE_APART and span[0] - end <= DATE_APART):
                return fmt
        return None


def _one_field_apart(gap: bytes) -> bool:
    gap = _LABEL.sub(b";", gap)  # JSON keys and "Label:" of pastes separate fields
    runs = _DELIMITER_RUN.findall(gap)
    return len(runs) <= 2 and len(_DELIMITER_RUN.sub(b"", gap)) <= 40


_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(text: str) -> str:
    """JSON ``\\u00e9`` escapes decoded (ensure_ascii dumps write accents so)."""
    return _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _boundary(chunk: bytes, start: int, end: int, chars: frozenset) -> bool:
    return (start == 0 or chunk[start - 1] not in chars) and (end >= len(chunk) or chunk[end] not in chars)


def confirm(chunk: bytes, hits: Sequence[int], ps: patterns.PatternSet) -> list[Found]:
    """Confirmed (and unconfirmed weak) matches for a chunk's raw hits."""
    lengths, infos = ps.lengths, ps.canaries
    recs: dict[int, _Record] = {}
    strong: list[Found] = []
    weak: list[tuple[int, int, int, int, str, str]] = []  # (canary, role, start, end, form, text)

    def record_at(pos: int) -> _Record:
        line = chunk.rfind(b"\n", 0, pos) + 1
        rec = recs.get(line)
        if rec is None or not rec.start <= pos < rec.end:
            rec = recs[line] = _Record(chunk, pos)
        return rec

    tokens = _fingerprint_hits(chunk, hits, ps, record_at, strong)
    roles, owners, multi = ps.roles, ps.owners, ps.multi
    for i in range(0, len(tokens), 2):
        literal, end = tokens[i], tokens[i + 1]
        start = end - lengths[literal]
        owner = owners[literal]
        groups = ((roles[literal], (owner,)),) if owner >= 0 else multi[-owner - 1]
        for role, indexes in groups:
            if role >= SURNAME:  # done by _fingerprint_hits
                continue
            if role == EMAIL_DOMAIN:  # one test for every canary of the domain
                strong.extend(_obfuscated(chunk, start, end, ps.email_locals_of(literal, indexes)))
                continue
            for index in indexes:
                if role in PHONE_SEP:
                    sep = PHONE_SEP[role]
                    read = forms.phone_form(chunk[max(0, start - 8):start], chunk[start:end],
                                            chunk[end:end + 2], sep)
                    if read is not None:
                        form, prefix = read
                        strong.append(Found(index, "phone", form, start - prefix,
                                            _text(chunk, start - prefix, end), True, ""))
                elif role in NIR_KIND:
                    if start and chunk[start - 1] in _WORD:
                        continue
                    read = forms.nir_form(chunk[start:end], chunk[end:end + 6], infos[index].nir_key)
                    if read is not None:
                        form, extra = read
                        weak.append((index, role, start, end + extra, form, _text(chunk, start, end + extra)))
                elif role == EMAIL:
                    if _email_edges(chunk, start, end):
                        strong.append(Found(index, "email", "email", start, _text(chunk, start, end), True, ""))
                elif role == URL_CODE or role == DNS_LABEL:
                    if _boundary(chunk, start, end, _CODE_CHARS):
                        kind = "url_code" if role == URL_CODE else "dns_label"
                        strong.append(Found(index, kind, kind, start, _text(chunk, start, end), True, ""))
                elif role == LOGIN:
                    if _boundary(chunk, start, end, _LOGIN_CHARS) and chunk[end:end + 1] != b"@" \
                            and not _dotted_on(chunk, end):
                        weak.append((index, role, start, end, "portal login", _text(chunk, start, end)))
    out = [f if f.record else f._replace(record=_cap(record_at(f.start).raw)) for f in strong]
    strong_at = {(f.canary, record_at(f.start).start) for f in out if f.kind != "fingerprint"}
    strong_at |= {(f.canary, f.start) for f in out if f.kind == "fingerprint"}
    for index, role, start, end, form, text in weak:
        rec = record_at(start)
        info = infos[index]
        kind = "portal_login" if role == LOGIN else "nir"
        if (index, rec.start) in strong_at:
            ok = True
        elif role == LOGIN:
            ok = bool(info.password) and info.password.encode() in rec.raw \
                or info.born in rec.dates() or (info.numeric_login and rec.has_any(info.names)
                                                and rec.has_any(info.first_names))
        else:
            ok = rec.has_any(info.names) or rec.has_any(info.first_names) or info.born in rec.dates()
        out.append(Found(index, kind, form, start, text, ok, _cap(rec.raw)))
    return out


def _fingerprint_hits(chunk: bytes, hits: Sequence[int], ps: patterns.PatternSet, record_at,
                      strong: list[Found]) -> list[int]:
    """Check the fingerprint hits (most of them, by far); return the token hits, flat.

    The hot loop of the scan: with 100,000 canaries almost every ordinary row
    holds some canary's birth date or surname (about 3 hits a row). A hit is
    dropped when it sits inside a longer word or number, or when none of its
    canaries' probes is in its line (``PatternSet.checks``: a letter run of
    the other name); only the rest build a record. Lines that may be part of
    a longer record (short, indented or quoted: pretty JSON, "Label: value"
    pastes) and very long ones skip the probe test: each canary is tried.
    """
    if len(hits) >= 2 * BULK_HITS and _numpy() is not None:
        return _fingerprint_hits_bulk(chunk, hits, ps, record_at, strong)
    checks, lengths, infos = ps.checks, ps.lengths, ps.canaries
    tokens: list[int] = []
    keep = tokens.append
    done: set[tuple[int, int]] = set()
    size = len(chunk)
    line_start = line_end = -1
    low = b""
    slow = False
    it = iter(hits)
    for literal, end in zip(it, it):
        check = checks[literal]
        if check is None:
            keep(literal)
            keep(end)
            continue
        edge, probes, owners, also_token = check
        if also_token:
            keep(literal)
            keep(end)
        start = end - lengths[literal]
        if (start and chunk[start - 1] in edge) or (end < size and chunk[end] in edge):
            continue
        if not line_start <= start < line_end:  # hits come in order (per database): a new line
            line_start = chunk.rfind(b"\n", 0, start) + 1
            line_end = chunk.find(b"\n", end)
            if line_end < 0:
                line_end = size
            first = chunk[line_start:line_start + 1]
            slow = line_end - line_start < 100 or first in (b" ", b"\t", b'"') \
                or line_end - line_start > records.LONG_LINE
            if not slow:
                low = chunk[line_start:line_end].lower()
        if slow:
            _try_canaries(owners, record_at(start), infos, done, strong)
            continue
        for probe, indexes in probes:
            if probe in low:
                _try_canaries(indexes, record_at(start), infos, done, strong)
    return tokens


def _try_canaries(indexes, rec: "_Record", infos, done: set, strong: list[Found]) -> None:
    """The fingerprint test of each of these canaries in ``rec`` (the hit's record)."""
    for index in indexes:
        found = _fingerprint(rec, infos[index], index, done)
        if found is not None:
            strong.append(found)


def _numpy():
    """numpy (installed with scikit-learn, a dependency), or None: the plain loop then runs."""
    try:
        import numpy
    except ImportError:  # pragma: no cover
        return None
    return numpy


def _compiled_probes():
    """The probe test in C (``engines.compiled_helper``), or None: the Python loop then runs,
    same results, about twice the CPU at 100,000 canaries."""
    return compiled_helper()


def _fingerprint_hits_bulk(chunk: bytes, hits: Sequence[int], ps: patterns.PatternSet, record_at,
                           strong: list[Found]) -> list[int]:
    """``_fingerprint_hits`` for many hits (100,000 canaries: 320,000 per 16 MB), the same
    tests in the same order, the first ones in bulk with numpy: which hits are tokens,
    which fingerprint hits sit inside a longer word or number (half of them), the line of
    each other one and whether it is a "slow" line. The probe tests of the hits left run
    in C when the helper is built (``_compiled_probes``), else in Python line by line;
    Python builds the records of the hits that pass."""
    np = _numpy()
    kinds, edges = ps.hit_table
    flat = np.frombuffer(hits, dtype=np.int64) if isinstance(hits, array.array) and hits.typecode == "q" \
        else np.array(hits, dtype=np.int64)
    literal, end = flat[0::2], flat[1::2]
    kind = np.frombuffer(kinds, dtype=np.uint8)[literal]
    token = (kind == 0) | (kind >= 128)
    tokens = flat.reshape(-1, 2)[token].ravel().tolist()
    fp = np.flatnonzero(kind)
    literal, end, kind = literal[fp], end[fp], kind[fp] & 127
    start = end - np.frombuffer(ps.lengths, dtype=np.uint16)[literal]
    data = np.frombuffer(chunk, dtype=np.uint8)
    size = len(chunk)
    table = np.zeros((len(edges) + 1, 257), dtype=bool)  # column 256: no byte (chunk edge)
    for i, edge in enumerate(edges, 1):
        table[i, list(edge)] = True
    before = np.where(start > 0, data[np.maximum(start - 1, 0)], 256)
    after = np.where(end < size, data[np.minimum(end, size - 1)], 256)
    kept = ~(table[kind, before] | table[kind, after])
    literal, start, end = literal[kept], start[kept], end[kept]
    if not len(literal):
        return tokens
    newlines = np.flatnonzero(data == 10)
    bounds = np.concatenate(([-1], newlines, [size]))  # around every line, whether or not it ends
    line_start = bounds[np.searchsorted(newlines, start)] + 1  # after the last line end before the hit
    line_end = bounds[np.searchsorted(newlines, end) + 1]  # the first one from its end on
    length = line_end - line_start
    first = data[np.minimum(line_start, size - 1)]
    slow = (length < 100) | (length > records.LONG_LINE) | (first == 32) | (first == 9) | (first == 34)
    checks, infos = ps.checks, ps.canaries
    done: set[tuple[int, int]] = set()
    compiled = _compiled_probes()
    if compiled is not None:
        passed = compiled.passing(chunk.lower(), np.ascontiguousarray(literal), np.ascontiguousarray(line_start),
                                  np.ascontiguousarray(line_end), slow.view(np.uint8), ps.probe_table)
        starts = start.tolist()
        it = iter(passed)
        for hit, indexes in zip(it, it):
            _try_canaries(indexes, record_at(starts[hit]), infos, done, strong)
        return tokens
    current = -1
    low = b""
    for lit, at, begin, stop, is_slow in zip(literal.tolist(), start.tolist(), line_start.tolist(),
                                             line_end.tolist(), slow.tolist()):
        if is_slow:
            _try_canaries(checks[lit][2], record_at(at), infos, done, strong)
            continue
        if begin != current:
            current = begin
            low = chunk[begin:stop].lower()
        for probe, indexes in checks[lit][1]:
            if probe in low:
                _try_canaries(indexes, record_at(at), infos, done, strong)
    return tokens


def _fingerprint(rec: _Record, info, index: int, done: set) -> Found | None:
    """A fingerprint match of canary ``index`` in ``rec``, or None."""
    if (index, rec.start) in done or not info.first_names or not rec.holds(info.probes) \
            or not rec.holds(info.first_probes):
        return None
    span = rec.named(info.names, info.first_names)
    if span is None:
        return None
    form = rec.born_near(info.born, span)
    if form is None:
        return None
    done.add((index, rec.start))
    text = b" ".join((info.names[0], info.first_names[0])).decode("ascii", "replace")
    return Found(index, "fingerprint", form, rec.start, f"{text} {date.fromordinal(info.born).isoformat()}",
                 True, _cap(rec.raw))


def _email_edges(chunk: bytes, start: int, end: int) -> bool:
    """Not inside a longer address; a full stop ending a sentence is not part of it."""
    if start and chunk[start - 1] in _EMAIL_CHARS or chunk[end:end + 1] == b"@" or _dotted_on(chunk, end):
        return False
    after = chunk[end:end + 1]
    return not after or after not in _EMAIL_CHARS or (after == b"." and not _dotted_on(chunk, end))


# "[at]", "(at)", " at ", "@" with spaces, "%40", "&#64;": between the local part and the domain;
# the domain's dots may be written "[dot]", "(dot)", " dot " or spaced.
_AT = rb"(?:\s*(?:\[at\]|\(at\)|\{at\}|\[@\]|\(@\)|@)\s*|\s+at\s+|%40|&#64;|&#x40;)"
_DOT = rb"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|\[\.\]|\.)\s*|\s+dot\s+)"
# A local part not inside a longer address or word.
_LOCAL = rb"(?<![A-Za-z0-9._%+\-\x80-\xff])([A-Za-z0-9._%+\-]{1,64})"
_DOMAIN_PATTERNS: dict[bytes, tuple[re.Pattern, int, tuple[int, ...]]] = {}


def _domain_pattern(domain: bytes) -> tuple[re.Pattern, int, tuple[int, ...]]:
    """(regex of an address at ``domain`` in any writing, group number of its anchor label,
    group numbers of its dots); group 1 is the local part, group 2 the "at"."""
    found = _DOMAIN_PATTERNS.get(domain)
    if found is None:
        labels = domain.split(b".")
        anchor = labels.index(patterns.email_anchor(domain.decode("ascii", "replace")).encode())
        pieces, group, anchor_group, dots = [_LOCAL, b"(" + _AT + b")"], 3, 0, []
        for i, label in enumerate(labels):
            if i:
                pieces.append(b"(" + _DOT + b")")
                dots.append(group)
                group += 1
            if i == anchor:
                pieces.append(b"(" + re.escape(label) + b")")
                anchor_group = group
                group += 1
            else:
                pieces.append(re.escape(label))
        found = _DOMAIN_PATTERNS[domain] = (re.compile(b"".join(pieces), re.I), anchor_group, tuple(dots))
    return found


def _obfuscated(chunk: bytes, start: int, end: int, domains: dict[bytes, dict[bytes, list[int]]]) -> list[Found]:
    """Obfuscated addresses ("nom [at] domaine.fr", "nom%40domaine.fr"...) whose domain's anchor
    label was found at ``start:end``, for the canaries whose local part it holds. The plain
    address is left to the email literal."""
    out = []
    for domain, locals_ in domains.items():
        pattern, anchor, dots = _domain_pattern(domain)
        for m in pattern.finditer(chunk, max(0, start - 160), min(len(chunk), end + 160)):
            if m.start(anchor) != start:
                continue
            stop = m.end()
            if stop < len(chunk) and chunk[stop] in _EMAIL_CHARS and \
                    not (chunk[stop:stop + 1] == b"." and not _dotted_on(chunk, stop)):
                continue  # a longer domain
            if m.group(2) == b"@" and all(m.group(d) == b"." for d in dots):
                continue  # the plain address: the email literal finds it
            for index in locals_.get(m.group(1).lower(), ()):
                out.append(Found(index, "email", "obfuscated email", m.start(1), _text(chunk, m.start(1), stop),
                                 True, ""))
    return out


def _dotted_on(chunk: bytes, end: int) -> bool:
    """``value.more`` where more is a word: the value is part of a longer name."""
    return chunk[end:end + 1] == b"." and end + 1 < len(chunk) and chunk[end + 1] in _WORD


def _text(chunk: bytes, start: int, end: int) -> str:
    return chunk[max(0, start):end][:MAX_TEXT].decode("utf-8", "replace")


def _cap(raw: bytes) -> str:
    return raw[:MAX_RECORD_TEXT].decode("utf-8", "replace")


