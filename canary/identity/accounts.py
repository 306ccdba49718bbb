"""Online traces of a fake patient: email, portal account, access code, DNS label.

Emails, logins and passwords follow the patterns people choose; the access
code and DNS label come from the secret stream (canary/identity/sampling.py) so they
can't be guessed from the rest of a leaked file.

Each pattern is a small function of a ``Person`` (names already reduced to
ASCII), so a draw computes only what its pattern needs: this is on the
per-identity hot path.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from dataclasses import dataclass

from canary.identity.sampling import SecretStream, choice, pick, randint, weighted

# Readable prefixes of DNS labels (half the labels have none); the secret part
# of labels and access codes is 80 bits: 16 lowercase base32 characters.
_DNS_PREFIXES = ("", "", "", "dossier-", "patient-", "acces-", "rdv-", "espace-")

_LOCAL_PART = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


@functools.cache
def _slug_tables() -> tuple[dict[int, str], dict[int, None], dict[int, None]]:
    """(Latin letters with diacritics -> base letters, ASCII to drop, same plus "-")."""
    to_ascii = {}
    for code in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(code)).encode("ascii", "ignore").decode("ascii")
        if base:
            to_ascii[code] = base
    to_ascii.update({ord("œ"): "oe", ord("Œ"): "Oe", ord("æ"): "ae", ord("Æ"): "Ae", ord("ß"): "ss",
                     ord("ø"): "o", ord("Ø"): "O", ord("ł"): "l", ord("Ł"): "L", ord("đ"): "d", ord("Đ"): "D"})
    keep = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    drop: dict[int, None] = {code: None for code in range(128) if chr(code) not in keep}
    return to_ascii, drop, {**drop, ord("-"): None}


def slug(name: str, keep_hyphen: bool = False) -> str:
    """ASCII lower-case form for emails and logins: "Le Goff" -> "legoff",
    "N'Diaye" -> "ndiaye", "Hélène" -> "helene", "Jean-Pierre" -> "jeanpierre"
    (or "jean-pierre" with keep_hyphen; spaces always go)."""
    return _slug_hyphen(name) if keep_hyphen else _slug(name)


# One cache per variant, unbounded: a run meets a few tens of thousands of names.
@functools.cache
def _slug(name: str) -> str:
    return _make_slug(name, False)


@functools.cache
def _slug_hyphen(name: str) -> str:
    return _make_slug(name, True) if "-" in name else _slug(name)


def _make_slug(name: str, keep_hyphen: bool) -> str:
    to_ascii, drop, drop_hyphens = _slug_tables()
    text = name.lower() if name.isascii() else name.translate(to_ascii).lower()
    if not text.isascii():  # a letter outside Latin: decompose, drop the rest
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.translate(drop if keep_hyphen else drop_hyphens)
    if "--" in text:
        text = re.sub("-+", "-", text)
    return text.strip("-")


@dataclass(slots=True)
class Person:
    """The account holder as patterns see it (ASCII, lower case)."""

    first: str  # "jeanpierre"
    first_h: str  # "jean-pierre" (hyphen kept when the name has one)
    last: str  # "legoff"
    last_h: str  # "martin-durand"
    middle: str  # initial of the second given name, or ""
    year: int  # birth year

    @classmethod
    def of(cls, first_names: tuple[str, ...], surname: str, birth_year: int) -> "Person":
        first = first_names[0]
        return cls(_slug(first), _slug_hyphen(first), _slug(surname), _slug_hyphen(surname),
                   _slug(first_names[1])[:1] if len(first_names) > 1 else "", birth_year)


def _yy(p: Person) -> str:
    return f"{p.year % 100:02d}"


def _f(p: Person, rng: random.Random) -> str:
    # About half the people with a compound first name keep its hyphen.
    return p.first_h if rng.random() < 0.5 else p.first


def _l(p: Person, rng: random.Random) -> str:
    return p.last_h if rng.random() < 0.5 else p.last


# Email local parts, as people write them, with their weights.
_EMAIL_STYLES = weighted([
    (lambda p, r: f"{_f(p, r)}.{_l(p, r)}", 34),
    (lambda p, r: f"{p.first}{p.last}", 9),
    (lambda p, r: f"{p.first[:1]}.{_l(p, r)}", 6),
    (lambda p, r: f"{p.first[:1]}{p.last}", 5),
    (lambda p, r: f"{_l(p, r)}.{_f(p, r)}", 5),
    (lambda p, r: f"{_f(p, r)}.{_l(p, r)}{_yy(p)}", 10),  # jean.dupont58
    (lambda p, r: f"{p.first}{p.last}{_yy(p)}", 4),
    (lambda p, r: f"{_f(p, r)}_{_l(p, r)}", 4),
    (lambda p, r: f"{p.first}-{p.last}", 2),
    (lambda p, r: f"{_f(p, r)}.{_l(p, r)}{p.year}", 3),
    (lambda p, r: f"{_f(p, r)}{_yy(p)}", 3),
    (lambda p, r: f"{p.last}{p.first[:1]}", 3),
    (lambda p, r: f"{_f(p, r)}.{_l(p, r)}{randint(r, 1, 99):02d}", 4),
    (lambda p, r: f"{_f(p, r)}.{p.middle}.{_l(p, r)}" if p.middle else f"{_f(p, r)}.{_l(p, r)}", 2),
    (lambda p, r: f"{p.last}{p.first}", 2),
])

# Portal logins: initial+surname+year ("jdupont58"), the email itself, a
# numeric patient number, or a name.
_EMAIL_LOGIN = object()
_LOGIN_STYLES = weighted([
    (lambda p, r: f"{p.first[:1]}{p.last}{_yy(p)}", 30),
    (_EMAIL_LOGIN, 25),
    (lambda p, r: numeric_login(r), 20),
    (lambda p, r: f"{p.first}.{p.last}", 15),
    (lambda p, r: f"{p.first}{p.last}{randint(r, 1, 99):02d}", 10),
])

# Bases of the passwords people choose (no accents: keyboards and old portals).
_WORDS = (
    "soleil", "doudou", "loulou", "chouchou", "nounours", "bisounours", "marseille", "bretagne", "liberte",
    "bonheur", "amour", "princesse", "chocolat", "papillon", "coquelicot", "tournesol", "caramel", "vanille",
    "azerty", "football", "olympique", "minette", "chaton", "titou", "filou", "milou", "pupuce", "choupette",
    "tigrou", "pompon", "vacances", "famille", "jardin", "printemps", "etoile", "dauphin", "cerise", "maison",
)
_SYMBOLS = "!*.$#@?"
_STRONG_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#$%&*+-=?@_"


@dataclass(slots=True)
class PasswordHints:
    """What people build passwords from."""

    first: str  # their own first name, ASCII lower case
    child: str  # a child's first name (or their own), ASCII lower case
    birth_year: int
    departement: str  # département number, a favourite pair of digits
    this_year: int


def _word(r: random.Random) -> str:
    return choice(r, _WORDS)


def _memorable_year(h: PasswordHints, r: random.Random) -> int:
    # A child's birth, a wedding, the year the account was made... or one's own.
    if r.random() < 0.4:
        return h.birth_year
    low = min(max(h.birth_year + 18, 1990), h.this_year)
    return randint(r, low, h.this_year)


def _dd(h: PasswordHints, r: random.Random) -> str:
    if r.random() < 0.6 and len(h.departement) == 2 and h.departement.isdigit():
        return h.departement
    return f"{randint(r, 0, 99):02d}"


def _strong(h: PasswordHints, r: random.Random) -> str:
    # A password manager's: 12-16 random characters.
    return "".join(r.choices(_STRONG_CHARS, k=randint(r, 12, 16)))


def _base_name(h: PasswordHints, r: random.Random) -> str:
    return h.child if r.random() < 0.4 else h.first


_PASSWORD_STYLES = weighted([
    (lambda h, r: f"{_word(r).capitalize()}{_memorable_year(h, r)}!", 18),  # Soleil2019!
    (lambda h, r: f"{_word(r)}{_dd(h, r)}", 15),  # doudou35
    (lambda h, r: f"{_base_name(h, r).capitalize()}{_memorable_year(h, r)}", 12),  # Marie1958
    (lambda h, r: f"{_word(r).capitalize()}{_dd(h, r)}{choice(r, _SYMBOLS)}", 10),
    (lambda h, r: f"{_base_name(h, r)}{h.birth_year % 100:02d}", 8),
    (lambda h, r: f"{_word(r).capitalize()}{_word(r).capitalize()}{randint(r, 0, 9)}", 7),
    (lambda h, r: f"{_word(r).capitalize()}{randint(r, 0, 9999):04d}", 5),
    (lambda h, r: f"{_base_name(h, r).capitalize()}.{h.birth_year % 100:02d}{choice(r, _SYMBOLS)}", 10),
    (_strong, 15),
])


def email_local_part(rng: random.Random, person: Person) -> str:
    local = pick(rng, _EMAIL_STYLES)(person, rng)
    if not _LOCAL_PART.fullmatch(local):  # e.g. a name with no ASCII letter left
        local = f"{person.first or 'contact'}{_yy(person)}"
    return local


def with_suffix(rng: random.Random, local: str, attempt: int) -> str:
    """A taken local part made unique the way webmails suggest: digits."""
    digits = 2 if attempt < 20 else 3 if attempt < 40 else 4
    return f"{local}{randint(rng, 10 ** (digits - 1), 10 ** digits - 1)}"


def portal_login(rng: random.Random, person: Person, email: str) -> str:
    style = pick(rng, _LOGIN_STYLES)
    return email if style is _EMAIL_LOGIN else style(person, rng)


def numeric_login(rng: random.Random) -> str:
    """A patient number as portals use for logins: 8 to 10 digits."""
    digits = 8 + int(rng.random() * 3)
    return str(randint(rng, 10 ** (digits - 1), 10 ** digits - 1))


# Patient portals ask for at least 8 characters; shorter picks are redrawn.
PASSWORD_MIN_LENGTH = 8


def portal_password(rng: random.Random, hints: PasswordHints) -> str:
    """A password like real users pick: mostly weak patterns, some strong."""
    for _ in range(10):
        password = pick(rng, _PASSWORD_STYLES)(hints, rng)
        if len(password) >= PASSWORD_MIN_LENGTH:
            return password
    return _strong(hints, rng)


def url_code(secret: SecretStream) -> str:
    """80-bit access code, lowercase base32 (lookups are case-insensitive)."""
    return secret.code80()


def dns_label(secret: SecretStream, rng: random.Random) -> str:
    """A DNS label (<= 63 chars, a-z0-9-) carrying 80 secret bits."""
    return choice(rng, _DNS_PREFIXES) + secret.code80()


def portal_url(base: str, code: str) -> str:
    return (base if base.endswith("/") else base + "/") + code
