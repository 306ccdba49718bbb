"""How our values are written in leaked files: literal variants, folding, dates.

Pure functions, no I/O. ``patterns`` uses the ``*_literals`` functions to
build the byte strings the matcher looks for; ``verify`` uses the folding and
the date reader to confirm a candidate inside its record.

Folding (``fold``) is what makes name comparisons case- and accent-blind:
lower case, Latin diacritics removed, hyphens, apostrophes and underscores
turned into spaces.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date

MONTHS = ("janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
          "octobre", "novembre", "decembre")
MONTHS_ACCENTED = {"fevrier": "février", "aout": "août", "decembre": "décembre"}
# Usual abbreviations (with or without their full stop), folded: "3 janv. 1953", "12 fevr 1961".
MONTH_ABBREVIATIONS = (("janv",), ("fevr", "fev"), (), ("avr",), (), (), ("juil",), (), ("sept",), ("oct",),
                       ("nov",), ("dec",))
_MONTH_NUMBER = {name: i + 1 for i, name in enumerate(MONTHS)}
_MONTH_NUMBER.update({short: i + 1 for i, shorts in enumerate(MONTH_ABBREVIATIONS) for short in shorts})


# -- folding ------------------------------------------------------------------------------

_PRE = (("’", "'"), ("‘", "'"), ("œ", "oe"), ("æ", "ae"), ("ß", "ss"), ("ø", "o"), ("ł", "l"), ("đ", "d"),
        ("Œ", "OE"), ("Æ", "AE"))
SPACES = bytes.maketrans(b"'`_", b"   ")
# Bytes that continue a word (letters, digits, any UTF-8 byte of an accented letter) or a number.
WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") | frozenset(range(0x80, 0x100))
DIGITS = frozenset(b"0123456789")


def plain_bytes(text: str) -> bytes:
    """ASCII lower case without diacritics, punctuation kept: what ``dates_in`` reads.

    All C-level calls (NFKD then drop the combining marks): this runs on every
    candidate record.
    """
    if not text.isascii():
        for old, new in _PRE:  # str.replace is C-fast; a translate table is not
            if old in text:
                text = text.replace(old, new)
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return text.lower().encode("ascii", "ignore")


def fold_bytes(text: str) -> bytes:
    """``plain_bytes`` with "'_`" as spaces: b"le floc h-helene" for "Le Floc'h-Hélène".

    Hyphens stay: "Jean" is not "Jean-Pierre" (``folded_names`` adds the spaced
    writing of hyphenated names, "Jean Pierre")."""
    return plain_bytes(text).translate(SPACES)


def fold(text: str) -> str:
    return fold_bytes(text).decode("ascii")


def plain(text: str) -> str:
    return plain_bytes(text).decode("ascii")


def strip_accents(text: str) -> str:
    """Diacritics removed, case and punctuation kept: "Hélène" -> "Helene"."""
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


# -- names -------------------------------------------------------------------------------


def name_literals(name: str) -> set[bytes]:
    """Writings of a surname or first name a file may hold (ASCII case is left to the matcher).

    Hyphen/space swaps, apostrophe writings (typographic, SQL-escaped),
    accented and plain, upper-case accented, and JSON ``\\u00e9`` escapes.
    """
    name = " ".join(name.split())
    if not name:
        return set()
    forms = {name, name.replace("-", " "), name.replace(" ", "-")}
    for form in list(forms):
        if "'" in form:
            forms |= {form.replace("'", q) for q in ("’", "\\'", "''", " ", "")}
    for form in list(forms):
        plain = strip_accents(form)
        forms |= {plain, form.upper()}
    for form in list(forms):
        if not form.isascii():
            forms.add(json.dumps(form)[1:-1])
    return {form.encode("utf-8") for form in forms if form}


def folded_names(*names: str) -> tuple[bytes, ...]:
    """Folded, distinct, non-empty names (bytes), as ``verify`` compares them."""
    out: dict[bytes, None] = {}
    for name in names:
        if name and name.strip():
            folded = b" ".join(fold_bytes(name).split())
            out[folded] = None
            out[folded.replace(b"-", b" ")] = None
    return tuple(n for n in out if n)


def probes(*names: str) -> tuple[bytes, ...]:
    """The longest lower-case ASCII letter run of each name: "Le Floc'h" -> b"floc"."""
    out = []
    for name in names:
        runs = re.findall(rb"[a-z]+", name.lower().encode("utf-8", "ignore"))
        if runs:
            out.append(max(runs, key=len))
    return tuple(dict.fromkeys(out))


# -- dates -------------------------------------------------------------------------------


def date_literals(day: date) -> set[bytes]:
    """What the matcher looks for to find a birth date: its numeric writings (ISO, French,
    compact, two-digit year, US) and, for the writings with the month's name, the month and
    year only ("janvier 1953", "janv. 53"): the day before it, padded, plain or "1er", is read
    by ``verify`` in the record (``dates_at``), like every other part of the fingerprint. One
    literal then serves every canary born that month, and a date needs 4 to 10 literals for
    its month's name instead of 12 to 30 (they were 18 % of all literals at 1,000 canaries:
    fewer literals, a smaller database and a shorter compile)."""
    y, m, d = day.year, day.month, day.day
    Y, YY, M, D = f"{y:04d}", f"{y % 100:02d}", f"{m:02d}", f"{d:02d}"
    month = MONTHS[m - 1]
    forms = {
        f"{Y}-{M}-{D}", f"{Y}/{M}/{D}", f"{Y}.{M}.{D}", f"{Y}{M}{D}",
        f"{D}/{M}/{Y}", f"{D}-{M}-{Y}", f"{D}.{M}.{Y}", f"{D}{M}{Y}",
        f"{D}/{M}/{YY}", f"{D}-{M}-{YY}", f"{D}.{M}.{YY}",
        f"{d}/{m}/{Y}", f"{D}\\/{M}\\/{Y}", f"{Y}\\/{M}\\/{D}",
        f"{M}/{D}/{Y}",
    }
    # The month's name, full or abbreviated, accented or not, and the 4- or 2-digit year (the day is read around).
    names = {month, MONTHS_ACCENTED.get(month, month)}
    for short in MONTH_ABBREVIATIONS[m - 1]:
        names |= {short, short + "."}
    names |= {MONTHS_ACCENTED[month][:4] + "." for _ in (0,) if month == "fevrier"}  # "févr."
    forms |= {f"{name} {year}" for name in names for year in (Y, YY)}
    return {form.encode("utf-8") for form in forms}



_DATE_RE = re.compile(
    r"(?<![\d])(?:"
    r"(?P<y1>\d{4})(?P<s1>\\/|[-/.])(?P<m1>\d{2})(?P=s1)(?P<d1>\d{2})"
    r"|(?P<a2>\d{1,2})(?P<s2>\\/|[-/.])(?P<b2>\d{1,2})(?P=s2)(?P<y2>\d{4}|\d{2})"
    r"|(?P<c3>\d{8})"
    r"|(?P<d4>\d{1,2}|1er) (?P<m4>" + "|".join(sorted(_MONTH_NUMBER, key=len, reverse=True)) + r")\.? (?P<y4>\d{4}|\d{2})"
    r")(?![\d])"
)


def dates_in(folded: str) -> list[tuple[date, str]]:
    return [(day, fmt) for day, fmt, _start, _end in dates_at(folded)]


def dates_at(folded: str) -> list[tuple[date, str, int, int]]:
    """Every date written in a text (through ``plain``), with its format ("dd/mm/yyyy"...).

    03/04/1990 is read the French way (3 April); the US order (mm/dd/yyyy) only
    when the French reading is impossible (05/25/1990). 19900403 gives both
    yyyymmdd and ddmmyyyy readings, a two-digit year both 19yy and 20yy.
    """
    found: list[tuple[date, str, int, int]] = []
    for m in _DATE_RE.finditer(folded):
        where = (m.start(), m.end())
        if m.group("y1"):
            sep = m.group("s1")
            _add(found, m.group("y1"), m.group("m1"), m.group("d1"), f"yyyy{sep}mm{sep}dd", where)
        elif m.group("a2"):
            a, b, y, sep = m.group("a2"), m.group("b2"), m.group("y2"), m.group("s2")
            years = [y] if len(y) == 4 else ["19" + y, "20" + y]
            yfmt = "yyyy" if len(y) == 4 else "yy"
            first, second = ("dd", "mm") if len(a) == 2 else ("d", "m"), \
                ("mm", "dd") if len(b) == 2 else ("m", "d")
            for year in years:  # French order; US order only when it cannot be French
                _add(found, year, b, a, f"{first[0]}{sep}{second[0]}{sep}{yfmt}", where)
                if int(b) > 12:
                    _add(found, year, a, b, f"{first[1]}{sep}{second[1]}{sep}{yfmt}", where)
        elif m.group("c3"):
            c = m.group("c3")
            _add(found, c[:4], c[4:6], c[6:], "yyyymmdd", where)
            _add(found, c[4:], c[2:4], c[:2], "ddmmyyyy", where)
        else:
            day = "1" if m.group("d4") == "1er" else m.group("d4")
            y = m.group("y4")
            month = m.group("m4")
            fmt = ("dd" if len(day) == 2 else "d") + (" mois " if month in MONTHS else " mois. ") + \
                ("yyyy" if len(y) == 4 else "yy")
            for year in ([y] if len(y) == 4 else ["19" + y, "20" + y]):
                _add(found, year, str(_MONTH_NUMBER[month]), day, fmt, where)
    return found


def _add(found: list, year: str, month: str, day: str, fmt: str, where: tuple[int, int]) -> None:
    try:
        found.append((date(int(year), int(month), int(day)), fmt, *where))
    except ValueError:
        pass


# -- phones ------------------------------------------------------------------------------

# A phone literal is the national significant number (9 digits) or its tail
# written with one separator; the prefix before it ("0", "+33", "0033",
# "33", "+33 (0)") is read back by ``phone_form``. Groupings, for
# 06 44 12 34 56: pairs ("6 44 12 34 56", any separator), 2-3-3
# ("06 44 123 456"), 4-2-2-2 ("0644 12 34 56"), 2-4-4 ("06 4412 3456").
PHONE_SEPARATORS = ("", " ", ".", "-", "/")


def phone_literals(e164: str) -> dict[tuple[str, str], bytes]:
    """{(separator, grouping): literal} for a French E.164 number: "612345678", "6 12 34 56 78"..."""
    if not (e164.startswith("+33") and len(e164) == 12 and e164[1:].isdigit()):
        return {}
    nsn = e164[3:]
    pairs = [nsn[i:i + 2] for i in range(1, 9, 2)]
    out = {(sep, "pairs"): (nsn if not sep else nsn[0] + sep + sep.join(pairs)).encode()
           for sep in PHONE_SEPARATORS}
    out[(" ", "2-3-3")] = f"{nsn[0]} {nsn[1:3]} {nsn[3:6]} {nsn[6:]}".encode()
    out[(" ", "4-2-2-2")] = f"{nsn[:3]} {nsn[3:5]} {nsn[5:7]} {nsn[7:]}".encode()
    out[(" ", "2-4-4")] = f"{nsn[0]} {nsn[1:5]} {nsn[5:]}".encode()
    return out


_PHONE_PREFIXES = (b"+33 (0)", b"+33(0)", b"+33 (0) ", b"0033 ", b"0033", b"+33 ", b"+33", b"33 ", b"33", b"0")


def phone_form(before: bytes, literal: bytes, after: bytes, sep: str) -> tuple[str, int] | None:
    """(writing as a pattern like "0X XX XX XX XX", length of the prefix read in
    ``before``) for a phone found as ``literal`` between ``before`` and ``after``
    (a few bytes each); None if it is part of a longer number."""
    if after[:1].isdigit() or (sep and after[:1] == sep.encode() and after[1:2].isdigit()):
        return None
    prefix = b""
    for candidate in _PHONE_PREFIXES:
        if before.endswith(candidate):
            if sep == "" and candidate.endswith(b" "):
                continue
            prefix = candidate
            break
    rest = before[:len(before) - len(prefix)]
    if rest[-1:].isdigit() or (prefix in (b"33", b"33 ", b"0033", b"0033 ") and rest.endswith(b"+")):
        return None
    if not prefix and not sep and rest[-1:] == b"+":
        return None
    shape = re.sub(rb"\d", b"X", literal).decode()
    return prefix.decode() + shape, len(prefix)


# -- NIR ---------------------------------------------------------------------------------


def nir_literals(nir: str) -> dict[str, bytes]:
    """The 13-character body of a NIR in each writing: "plain", "spaced" ("1 84 05 75 115 123"),
    "dotted", "dashed" and "grouped" ("1 8405 75115 123", the card's grouping)."""
    b = nir[:13].upper()
    parts = (b[0], b[1:3], b[3:5], b[5:7], b[7:10], b[10:13])
    return {"plain": b.encode(), "spaced": " ".join(parts).encode(), "dotted": ".".join(parts).encode(),
            "dashed": "-".join(parts).encode(), "grouped": f"{b[0]} {b[1:5]} {b[5:10]} {b[10:13]}".encode()}


_NIR_KEY_AFTER = re.compile(rb"^(?:\s?[-/.]?\s?)(\d{2})(?!\d)")


def nir_form(literal: bytes, after: bytes, key: str) -> tuple[str, int] | None:
    """(writing, length of the key part read in ``after``) for a NIR whose
    13-character body ``literal`` ends where ``after`` starts; None if the digits go on."""
    base = re.sub(r"[0-9AB]", "X", literal.decode("ascii", "replace").upper())
    if after[:2].isdigit():
        if after[:2].decode() != key or after[2:3].isdigit():
            return None
        return base + "XX", 2
    found = _NIR_KEY_AFTER.match(after)
    if found:
        if found.group(1).decode() != key:
            return None
        return base + after[:found.start(1)].decode() + "XX", found.end()
    if after[:1].isdigit() or after[:1].isalpha():
        return None
    return base + " (no key)", 0
