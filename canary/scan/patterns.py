"""The compiled pattern set: every literal the matcher looks for, and whose it is.

Built from the registry (``scanstore.pattern_rows``: every canary, retired
ones included) and cached on disk (``cache.py``). Per canary:

* tokens, written every way ``forms`` knows: the email, access code, DNS
  label and portal login as they are, and the longest label of the email's
  domain (an anchor for obfuscated addresses, "nom [at] domaine.fr": shared
  by every canary of that domain, ``verify`` reads the writing and the local
  part around it); each phone as its 9
  national digits, in pairs with " ", ".", "-" or "/" and in the other
  usual groupings (the prefix, "0", "+33", "0033"... is read back around the
  hit); the NIR's 13-character body, plain, spaced, dotted, dashed, grouped;
* one part of its identity fingerprint (surname, first name or birth date:
  ``prefilter.choose``), for files whose contact columns were stripped.

Each literal has a role (what kind of value it is) and owners (canary
indexes). Most have one role and one owner, stored in flat arrays; the others
(a date or surname shared by several canaries) in ``multi``. For the hot loop,
each fingerprint literal also gets its ``Check`` (cached with the databases).
"""

from __future__ import annotations

import array
import marshal
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from canary.model import TokenKind
from canary.scan import forms, prefilter
from canary.scan.engines import ENGINES, Engine

# Bump when literals, roles or the payload layout change: old caches are then ignored.
PATTERN_VERSION = 16

# Token roles are below SURNAME, fingerprint roles from it on (verify and the checks test ``>= SURNAME``).
EMAIL, URL_CODE, DNS_LABEL, LOGIN = 1, 2, 3, 4
# The email domain's longest label, for addresses written "nom [at] domaine.fr": verify reads the rest.
# One literal per domain instead of one local part per canary: the short letter literals of 1,000
# local parts cost 13 % of the Hyperscan pass.
EMAIL_DOMAIN = 5
# Phone literals: (separator, grouping) -> role; the grouping is what ``forms.phone_literals`` names.
PHONE_ROLES = {("", "pairs"): 6, (" ", "pairs"): 7, (".", "pairs"): 8, ("-", "pairs"): 9, ("/", "pairs"): 10,
               (" ", "2-3-3"): 11, (" ", "4-2-2-2"): 12, (" ", "2-4-4"): 13}
PHONE_SEP = {role: sep for (sep, _grouping), role in PHONE_ROLES.items()}
NIR_ROLES = {"plain": 14, "spaced": 15, "dotted": 16, "dashed": 17, "grouped": 18}
NIR_KIND = {role: kind for kind, role in NIR_ROLES.items()}
NIR_PLAIN, NIR_SPACED = NIR_ROLES["plain"], NIR_ROLES["spaced"]
SURNAME, FIRST_NAME, BIRTH_DATE = 31, 32, 33
FINGERPRINT_ROLES = (SURNAME, FIRST_NAME, BIRTH_DATE)
ROLE_KIND = {EMAIL: "email", EMAIL_DOMAIN: "email", URL_CODE: "url_code", DNS_LABEL: "dns_label",
             LOGIN: "portal_login", **{r: "phone" for r in PHONE_ROLES.values()},
             **{r: "nir" for r in NIR_ROLES.values()},
             SURNAME: "fingerprint", FIRST_NAME: "fingerprint", BIRTH_DATE: "fingerprint"}
# Literals compiled together (engines.HyperscanEngine): alike ones, so each database scans fast.
FAMILY = {EMAIL: 0, EMAIL_DOMAIN: 0, URL_CODE: 1, DNS_LABEL: 1, LOGIN: 2, SURNAME: 2, FIRST_NAME: 2,
          **{r: 3 for r in PHONE_ROLES.values()}, **{r: 4 for r in NIR_ROLES.values()}, BIRTH_DATE: 5}


class CanaryInfo(NamedTuple):
    """What verification needs of one canary (folded names, no full identity).

    A named tuple: the cache holds it as a plain tuple, made back into one in 0.05 s
    for 100,000 canaries (a frozen dataclass took 0.125 s, before the workers start)."""

    id: int
    names: tuple[bytes, ...]  # folded used and birth surnames
    first_names: tuple[bytes, ...]  # the usual first name, folded ("jean-pierre", "jean pierre")
    born: int  # birth date ordinal
    nir_key: str  # the NIR's 2-digit key
    password: str  # portal password: corroborates a portal login
    numeric_login: bool
    probes: tuple[bytes, ...] = ()  # longest lower-case ASCII piece of each surname
    first_probes: tuple[bytes, ...] = ()  # and of the usual first name
    email_domain: bytes = b""  # lower case: an obfuscated address must end with it
    email_local: bytes = b""  # lower case: and start with it

    def to_tuple(self) -> tuple:
        return tuple(self)


# A fingerprint literal's owners, as the hot loop (``verify``) unpacks them, a plain
# tuple so that the cache can hold it: (bytes that may not touch the hit: digits
# around a date, letters around a name; ((probe, canary indexes), ...): a probe
# must be in the line; every canary index; whether the literal is also a token).
Check = tuple[frozenset, tuple[tuple[bytes, tuple[int, ...]], ...], tuple[int, ...], bool]


@dataclass
class PatternSet:
    key: str
    engine_name: str
    roles: bytes  # role per literal; 0 when the literal has several roles
    lengths: array.array  # literal byte lengths ('H')
    owners: array.array  # canary index, or -(1 + i) for multi[i] ('i')
    multi: list[tuple[tuple[int, tuple[int, ...]], ...]]  # ((role, canary indexes), ...) by role
    canaries: list[CanaryInfo]
    literals: list[bytes] | None = None  # kept only until compiled
    engine: Engine | None = None
    _checks: list | None = None
    _hit_table: tuple | None = None
    _probe_table: tuple | None = None
    _email_locals: dict | None = None

    @property
    def email_locals(self) -> dict:
        """Per domain-anchor literal, its canaries by domain and local part (``verify``, lazily)."""
        if self._email_locals is None:
            self._email_locals = {}
        return self._email_locals

    def email_locals_of(self, literal: int, indexes: tuple[int, ...]) -> dict[bytes, dict[bytes, list[int]]]:
        """{domain: {local part: canary indexes}} of a domain anchor's canaries (``indexes``), built once
        per literal (``verify``'s obfuscated addresses)."""
        found = self.email_locals.get(literal)
        if found is None:
            found = self.email_locals[literal] = {}
            for index in indexes:
                info = self.canaries[index]
                found.setdefault(info.email_domain, {}).setdefault(info.email_local, []).append(index)
        return found

    def _every_email_local(self) -> dict:
        """``email_locals`` for every domain-anchor literal, for the cache: built lazily, it
        cost each worker 0.2-0.3 s at its first hit on an anchor (100,000 canaries, two
        domains of 50,000)."""
        for i in range(len(self.roles)):
            for role, indexes in self.entries(i):
                if role == EMAIL_DOMAIN:
                    self.email_locals_of(i, indexes)
        return self.email_locals

    @property
    def checks(self) -> list[Check | None]:
        """Per literal, what a fingerprint hit on it needs (None for token literals).

        Built once before the workers fork: the hot loop (``verify``) reads one
        list item per hit instead of unpacking owners and roles.
        """
        if self._checks is None:
            self._checks = self._build_checks()
        return self._checks

    @property
    def hit_table(self) -> tuple[bytes, tuple[frozenset, ...]]:
        """Per literal, one byte for the bulk first test of the hot loop (``verify``): 0 for a
        token literal, else the 1-based index of its edge set (the bytes that may not touch
        the hit) in the second item, plus 128 when the literal is also a token. Built with
        the checks, cached with them."""
        if self._hit_table is None:
            edges: dict[frozenset, int] = {}
            kinds = bytearray(len(self.checks))
            for i, check in enumerate(self.checks):
                if check is not None:
                    edge = edges.setdefault(check[0], len(edges) + 1)
                    kinds[i] = edge | (128 if check[3] else 0)
            self._hit_table = (bytes(kinds), tuple(edges))
        return self._hit_table

    @property
    def probe_table(self) -> tuple[bytes, bytes, bytes, bytes, list, list]:
        """The checks flattened for the compiled probe test (``_probes.c``), which would
        otherwise chase four Python objects per probe through a heap of gigabytes: per
        literal its check number or -1 (int32), per check where its groups start (int32,
        one more at the end), per group where its probe ends in the next item (int32, a 0
        first), the probes one after the other, per group its canary indexes, per check
        its owners. 100,000 canaries: 2.1 million literals share 44,000 checks of 300,000
        groups. Built with the checks, cached with them."""
        if self._probe_table is None:
            number: dict[int, int] = {}
            distinct: list = []
            of_literal = array.array("i", [-1]) * len(self.checks)
            for i, check in enumerate(self.checks):
                if check is not None:
                    n = number.get(id(check))
                    if n is None:
                        n = number[id(check)] = len(distinct)
                        distinct.append(check)
                    of_literal[i] = n
            starts, ends, probes = array.array("i", [0]), array.array("i", [0]), bytearray()
            indexes: list = []
            for _, groups, _, _ in distinct:
                for probe, canaries in groups:
                    probes += probe
                    ends.append(len(probes))
                    indexes.append(canaries)
                starts.append(len(indexes))
            self._probe_table = (of_literal.tobytes(), starts.tobytes(), ends.tobytes(), bytes(probes), indexes,
                                 [check[2] for check in distinct])
        return self._probe_table

    def _build_checks(self) -> list[Check | None]:
        """A hit on a birth date or first name needs the owner's surname in its line (its
        probe: a letter run of it), a hit on a surname the owner's first name."""
        by_role = {BIRTH_DATE: [c.probes for c in self.canaries], FIRST_NAME: [c.probes for c in self.canaries],
                   SURNAME: [c.first_probes for c in self.canaries]}
        out: list[Check | None] = [None] * len(self.roles)
        shared: dict[tuple, Check] = {}
        owners, multi = self.owners, self.multi
        for i, role in enumerate(self.roles):
            if role:
                if role < SURNAME:
                    continue
                parts: tuple = ((role, (owners[i],)),)
                tokens = False
            else:
                entry = multi[-owners[i] - 1]
                parts = tuple((r, indexes) for r, indexes in entry if r >= SURNAME)
                if not parts:
                    continue
                tokens = len(parts) != len(entry)
            key = (parts, tokens)
            check = shared.get(key)
            if check is None:
                probes: dict[bytes, dict[int, None]] = defaultdict(dict)
                for r, indexes in parts:
                    for x in indexes:
                        for probe in by_role[r][x] or (b"",):  # no probe: always tried
                            probes[probe][x] = None
                every = tuple(dict.fromkeys(x for _, indexes in parts for x in indexes))
                check = shared[key] = (forms.DIGITS if parts[0][0] == BIRTH_DATE else forms.WORD,
                                       tuple((p, tuple(xs)) for p, xs in probes.items()), every, tokens)
            out[i] = check
        return out

    def __len__(self) -> int:
        return len(self.lengths)

    def entries(self, literal: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """((role, canary indexes), ...) of a literal."""
        owner = self.owners[literal]
        if owner >= 0:
            return ((self.roles[literal], (owner,)),)
        return self.multi[-owner - 1]

    def families(self) -> bytes:
        """The family (``FAMILY``) of each literal; a shared literal takes its first role's."""
        return bytes(FAMILY[role or self.multi[-self.owners[i] - 1][0][0]] for i, role in enumerate(self.roles))

    def compile(self) -> None:
        self.engine = ENGINES[self.engine_name].compile(self.literals or [], self.families())

    # -- serialisation (cache) -----------------------------------------------------------
    def dumps(self) -> bytes:
        blob = self.engine.dumps() if self.engine is not None else None  # bytes parts, or None
        return marshal.dumps({
            "key": self.key, "engine": self.engine_name, "db": blob,
            "roles": self.roles, "lengths": self.lengths.tobytes(), "owners": self.owners.tobytes(),
            "multi": self.multi, "canaries": [c.to_tuple() for c in self.canaries],
            "literals": self.literals if blob is None else None,
            "checks": self.checks if blob is not None else None,  # 4x faster to load than to build
            "hit_table": self.hit_table if blob is not None else None,
            "probe_table": self.probe_table if blob is not None else None,
            "email_locals": self._every_email_local() if blob is not None else None,
        })

    @classmethod
    def loads(cls, payload: bytes) -> "PatternSet":
        return cls.from_data(marshal.loads(payload))

    @classmethod
    def from_data(cls, data: dict) -> "PatternSet":
        """From the unmarshalled payload; its compiled databases are taken out of
        ``data`` one by one as they are loaded (``dumps`` wrote them as a list), so
        that their bytes and the loaded databases are not all in memory at once."""
        lengths, owners = array.array("H"), array.array("i")
        lengths.frombytes(data["lengths"])
        owners.frombytes(data["owners"])
        patterns = cls(key=data["key"], engine_name=data["engine"], roles=data["roles"], lengths=lengths,
                       owners=owners, multi=data["multi"],
                       canaries=list(map(CanaryInfo._make, data["canaries"])), literals=data["literals"],
                       _checks=data.get("checks"), _hit_table=data.get("hit_table"),
                       _probe_table=data.get("probe_table"),
                       _email_locals=data.get("email_locals"))
        if data["db"] is not None:
            patterns.engine = ENGINES[patterns.engine_name].loads(data.pop("db"))
        else:
            patterns.compile()
        return patterns


def email_anchor(domain: str) -> str:
    """The label of an email domain looked for to find its obfuscated writings: the longest
    one, the top-level domain last ("mel-famille" in "mel-famille.fr", "chu-rennes" in
    "mail.chu-rennes.fr"); every writing of the domain holds it as it is."""
    labels = domain.lower().split(".")
    return max(labels[:-1] or labels, key=len) if max(map(len, labels[:-1] or labels)) >= 3 \
        else max(labels, key=len)


def build(rows: Iterable, engine_name: str, key: str = "", today: date | None = None) -> PatternSet:
    """Literals, roles and owners for ``rows`` (scanstore.PatternRow), not compiled yet."""
    found: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    infos: list[CanaryInfo] = []
    parts: list[prefilter.Parts] = []
    originals: dict[bytes, set[str]] = defaultdict(set)

    # Names repeat across canaries (hundreds of Martin): one tuple each, not one per canary.
    shared: dict = {}

    def same(value):
        return shared.setdefault(value, value)

    def add(literal: bytes, role: int, index: int) -> None:
        if len(literal) >= 3:
            found[literal.lower()].append((role, index))

    for index, row in enumerate(rows):
        who = row.identity
        email = ""
        numeric_login = False
        for kind, value in row.tokens:
            kind = TokenKind(kind)
            if kind is TokenKind.EMAIL:
                email = value.lower()
                add(value.encode(), EMAIL, index)
                add(email_anchor(email.partition("@")[2]).encode(), EMAIL_DOMAIN, index)
            elif kind is TokenKind.URL_CODE:
                add(value.encode(), URL_CODE, index)
            elif kind is TokenKind.DNS_LABEL:
                add(value.encode(), DNS_LABEL, index)
            elif kind is TokenKind.PHONE:
                for writing, literal in forms.phone_literals(value).items():
                    add(literal, PHONE_ROLES[writing], index)
            elif kind is TokenKind.NIR:
                for writing, literal in forms.nir_literals(value).items():
                    add(literal, NIR_ROLES[writing], index)
        for kind, value in row.tokens:
            if TokenKind(kind) is TokenKind.PORTAL_LOGIN and value.lower() != email:
                numeric_login = value.isdigit()
                add(value.encode(), LOGIN, index)
        surnames = [who.get("last_name") or "", who.get("birth_name") or ""]
        first_names = list(who.get("first_names") or [])
        for name in surnames + first_names[:1]:
            originals[b" ".join(forms.fold_bytes(name).split())].add(name)
        born = date.fromisoformat(who["birth_date"])
        folded_first = forms.folded_names(*first_names[:1])  # the usual first name, as written or spaced
        folded_surnames = same(forms.folded_names(*surnames))
        folded_first = same(folded_first)
        infos.append(CanaryInfo(
            id=row.canary_id, names=folded_surnames, first_names=folded_first,
            born=born.toordinal(), nir_key=same(str(who.get("nir", ""))[13:15]),
            password=str(who.get("portal_password") or ""), numeric_login=numeric_login,
            probes=same(forms.probes(*surnames)), first_probes=same(forms.probes(*first_names[:1])),
            email_domain=same(email.partition("@")[2].encode()), email_local=email.partition("@")[0].encode(),
        ))
        parts.append(prefilter.Parts(surnames=folded_surnames,
                                     first_name=folded_first[0] if folded_first else "", born=born))

    for (kind, value), members in prefilter.choose(parts, today):
        if kind == "date":
            literals, role = forms.date_literals(value), BIRTH_DATE
        else:
            names = value if kind == "surname" else (value,)
            literals = set().union(*(forms.name_literals(o) for n in names
                                     for o in originals[n] or {n.decode()}))
            role = SURNAME if kind == "surname" else FIRST_NAME
        for literal in literals:
            for index in members:
                add(literal, role, index)
    return _finish(found, infos, engine_name, key)


def _finish(found: dict[bytes, list[tuple[int, int]]], infos: list[CanaryInfo], engine_name: str,
            key: str) -> PatternSet:
    literals = list(found)
    roles = bytearray(len(literals))
    lengths = array.array("H", (min(len(lit), 65535) for lit in literals))
    owners = array.array("i", bytes(4 * len(literals)))
    multi: list[tuple[tuple[int, tuple[int, ...]], ...]] = []
    for i, literal in enumerate(literals):
        entries = tuple(dict.fromkeys(found[literal]))
        if len(entries) == 1:
            roles[i], owners[i] = entries[0]
        else:
            grouped: dict[int, list[int]] = defaultdict(list)
            for role, index in entries:
                grouped[role].append(index)
            multi.append(tuple((role, tuple(indexes)) for role, indexes in grouped.items()))
            owners[i] = -len(multi)
    return PatternSet(key=key, engine_name=engine_name, roles=bytes(roles), lengths=lengths, owners=owners,
                      multi=multi, canaries=infos, literals=literals)
