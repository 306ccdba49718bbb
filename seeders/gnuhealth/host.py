"""How one GNU Health database writes its patients, learned from its latest ones.

A canary must look like the patients around it, and GNU Health leaves a lot
to the people typing: upper-case surnames or not, phone numbers as Tryton
formats them or as typed, NIR kept as an alternative ID of one type or
another, which optional fields the front desk fills. ``sample_conventions``
reads the most recent patients (never writes) and returns ``Conventions``;
with too few patients to learn from, it returns the stock behaviour.

"Constant" columns generalise the rest: a column the seeder does not set
itself, that is not personal (no unique value, no link to a person, no
date), and that holds the same non-NULL value in nine rows out of ten (a
boolean the client always sends as false, the country of residence) is
written with that value.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from canary.identity import nir as nirs
from canary.phones import to_e164
from seeders.common.writings import phone_style

# Latest patients read to learn the conventions; fewer than MIN_SAMPLE: stock behaviour.
SAMPLE = 200
MIN_SAMPLE = 20
# Share of rows that must agree for a column to be copied as a constant.
CONSTANT_SHARE = 0.9
# Share of rows that must fill an optional field for the canary to fill it.
FILL_SHARE = 0.5

# Links to these tables point at one person or one of its rows: never copied.
PERSONAL_TABLES = frozenset({
    "party_party", "party_address", "party_contact_mechanism", "res_user", "gnuhealth_patient",
    "gnuhealth_du", "gnuhealth_family", "gnuhealth_insurance", "gnuhealth_birth_certificate",
    "gnuhealth_death_certificate", "gnuhealth_healthprofessional", "gnuhealth_person_name",
})
_AUDIT = frozenset({"id", "create_uid", "create_date", "write_uid", "write_date"})
# Longer text is free text typed for one person, not a convention.
_MAX_CONSTANT_TEXT = 32

PUID = re.compile(r"^[A-Z]{3}[0-9]{3}[A-Z]{3}$")  # GNU Health's generate_puid(): XXXNNNXXX
_UUID_CODE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:-(.+))?$")


@dataclass
class Conventions:
    """What the seeder writes, and how, to match this database's patients."""

    sample_size: int = 0
    upper_lastname: bool = True  # "MARTIN" rather than "Martin"
    plain_lastname: bool = False  # accents dropped ("LEFEVRE")
    upper_given: bool = False
    code_style: str = "uuid-suffix"  # "uuid-suffix" | "uuid" | "sequence"
    code_suffix: str = ""  # after the uuid: learned constant; "" = the company name, else the given name
    puid_style: str = "gnuhealth"  # "gnuhealth" (XXXNNNXXX) | "nir"
    nir_spaced: bool = False  # "2 84 05 75 115 123 45"
    # A key of canary.phones.formats. Stock GNU Health stores phones as typed: trytond_party formats
    # them only when the phonenumbers package is installed (contact_mechanism.py format_value).
    phone_style: str = "spaced"
    compact_e164: bool = False  # value_compact in E.164 (phonenumbers installed), else = value
    mobile_type: str = "mobile"  # Tryton contact type used for 06/07 numbers
    upper_city: bool = False
    # Optional field -> filled by the host. Blood group and sex are never filled by the party form.
    fill: dict[str, bool] = field(default_factory=lambda: {"blood_type": False, "biological_sex": False})
    # (table, column) of Char columns the host leaves NULL where the GTK client would send ''.
    null_text: frozenset[tuple[str, str]] = frozenset()
    alt_id_type: str | None = None
    alt_id_comment: str | None = None
    create_uid: int | None = None
    doctors: tuple[int, ...] = ()  # primary care doctors, as often as the host assigns each
    constants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fills(self, what: str) -> bool:
        return self.fill.get(what, True)

    def pick_doctor(self, rnd: random.Random) -> int | None:
        return rnd.choice(self.doctors) if self.doctors else None


def sample_conventions(engine: sa.Engine, tables: Callable[[str], sa.Table | None], link: str,
                       empty_text: dict[str, tuple[str, ...]] | None = None) -> Conventions:
    """Read the latest patients through ``tables(name)`` (reflected tables) and learn from them.

    ``link`` is the column of gnuhealth_patient and of the alternative IDs that
    points at the party (``party`` in GNU Health 5.0, ``name`` in 4.4);
    ``empty_text`` the Char columns the client sends as ''.
    """
    party = tables("party_party")
    with engine.connect() as conn:
        persons = _rows(conn, sa.select(party).where(party.c.is_person.is_(True), party.c.is_patient.is_(True))
                        .order_by(party.c.id.desc()).limit(SAMPLE))
        ids = [row["id"] for row in persons]
        children = {name: _children(conn, tables(name), column, ids) for name, column in (
            ("gnuhealth_person_name", "party"), ("party_contact_mechanism", "party"),
            ("gnuhealth_person_alternative_identification", link), ("party_address", "party"),
            ("gnuhealth_patient", link))}
    conv = Conventions(sample_size=len(persons))
    if len(persons) < MIN_SAMPLE:
        return conv
    _learn_party(conv, persons)
    _learn_contacts(conv, children["party_contact_mechanism"])
    _learn_alt_ids(conv, children["gnuhealth_person_alternative_identification"])
    _learn_addresses(conv, children["party_address"])
    _learn_patients(conv, children["gnuhealth_patient"])
    conv.null_text = _null_text({"party_party": persons, **children}, empty_text or {})
    conv.constants = {name: constant_columns(tables(name), rows)
                      for name, rows in [("party_party", persons), *children.items()] if tables(name) is not None}
    return conv


def _rows(conn: sa.Connection, query: sa.Select) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def _children(conn: sa.Connection, table: sa.Table | None, column: str, ids: list[int]) -> list[dict[str, Any]]:
    if table is None or column not in table.c or not ids:
        return []
    return _rows(conn, sa.select(table).where(table.c[column].in_(ids)))


def _share(rows: Iterable[Any], test: Callable[[Any], bool]) -> float:
    rows = list(rows)
    return sum(1 for r in rows if test(r)) / len(rows) if rows else 0.0


def _modal(values: Iterable[Any]) -> tuple[Any, float]:
    counts = Counter(values)
    if not counts:
        return None, 0.0
    value, n = counts.most_common(1)[0]
    return value, n / sum(counts.values())


def _has_letters(text: Any) -> bool:
    return isinstance(text, str) and any(ch.isalpha() for ch in text)


def _learn_party(conv: Conventions, persons: list[dict[str, Any]]) -> None:
    lastnames = [p.get("lastname") for p in persons if _has_letters(p.get("lastname"))]
    conv.upper_lastname = _share(lastnames, lambda s: s == s.upper()) >= 0.5
    conv.plain_lastname = conv.upper_lastname and not any(not s.isascii() for s in lastnames)
    givens = [p.get("name") for p in persons if _has_letters(p.get("name"))]
    conv.upper_given = _share(givens, lambda s: s == s.upper()) >= 0.5
    codes = [p.get("code") or "" for p in persons]
    uuid_codes = [m for m in (_UUID_CODE.match(c) for c in codes) if m]
    if len(uuid_codes) >= len(codes) / 2:
        # Party.create: uuid + '-' + the company's name, or the given name on a site without company.
        suffix, share = _modal(m.group(1) or "" for m in uuid_codes)
        suffixed = _share(uuid_codes, lambda m: bool(m.group(1))) >= 0.5
        conv.code_style = "uuid-suffix" if suffixed else "uuid"
        conv.code_suffix = suffix if suffixed and suffix and share >= 0.5 else ""
    elif _share(codes, lambda c: c.isdigit()) >= 0.5:
        conv.code_style = "sequence"
    else:
        conv.code_style = "uuid"
    refs = [p.get("ref") or "" for p in persons]
    nir_refs = [r for r in refs if nirs.is_valid(r)]
    if len(nir_refs) >= len(refs) / 2:
        conv.puid_style = "nir"
        conv.nir_spaced = _share(nir_refs, lambda r: " " in r) >= 0.5
    conv.fill["federation_account"] = _share(persons, lambda p: bool(p.get("federation_account"))) >= FILL_SHARE
    conv.fill["activation_date"] = _share(persons, lambda p: p.get("activation_date") is not None) >= FILL_SHARE
    uid, _ = _modal(p.get("create_uid") for p in persons if p.get("create_uid") is not None)
    conv.create_uid = uid


def _learn_contacts(conv: Conventions, contacts: list[dict[str, Any]]) -> None:
    phones = [c for c in contacts if c.get("type") in ("phone", "mobile") and c.get("value")]
    style, share = _modal(s for s in (phone_style(c["value"]) for c in phones) if s)
    if style and share >= 0.5:
        conv.phone_style = style
    compact = [c for c in phones if c.get("value_compact")]
    conv.compact_e164 = _share(compact, lambda c: c["value_compact"] != c["value"]
                               and c["value_compact"] == to_e164(c["value"])) >= 0.5
    mobiles = [c for c in phones if (to_e164(c["value"]) or "")[3:4] in ("6", "7")]
    if mobiles:
        conv.mobile_type = "mobile" if _share(mobiles, lambda c: c["type"] == "mobile") >= 0.5 else "phone"


def _learn_alt_ids(conv: Conventions, alt_ids: list[dict[str, Any]]) -> None:
    nir_ids = [a for a in alt_ids if nirs.is_valid(a.get("code") or "")]
    if not nir_ids:
        return
    conv.alt_id_type, _ = _modal(a.get("alternative_id_type") for a in nir_ids)
    comment, share = _modal(a.get("comments") for a in nir_ids)
    conv.alt_id_comment = comment if share >= CONSTANT_SHARE else None
    conv.nir_spaced = _share(nir_ids, lambda a: " " in a["code"]) >= 0.5


def _learn_addresses(conv: Conventions, addresses: list[dict[str, Any]]) -> None:
    cities = [a.get("city") for a in addresses if _has_letters(a.get("city"))]
    conv.upper_city = _share(cities, lambda s: s == s.upper()) >= 0.5
    conv.fill["subdivision"] = _share(addresses, lambda a: a.get("subdivision") is not None) >= FILL_SHARE


def _learn_patients(conv: Conventions, patients: list[dict[str, Any]]) -> None:
    conv.fill["blood_type"] = _share(patients, lambda p: p.get("blood_type") is not None) >= FILL_SHARE
    conv.fill["biological_sex"] = _share(patients, lambda p: p.get("biological_sex") is not None) >= FILL_SHARE
    doctors = [p["primary_care_doctor"] for p in patients if p.get("primary_care_doctor") is not None]
    if patients and len(doctors) / len(patients) >= FILL_SHARE:
        conv.doctors = tuple(sorted(doctors))


def _null_text(rows: dict[str, list[dict[str, Any]]], empty_text: dict[str, tuple[str, ...]]
               ) -> frozenset[tuple[str, str]]:
    """Columns the client would send as '' but the host's rows mostly leave NULL (another client, an import)."""
    found = set()
    for table, columns in empty_text.items():
        for column in columns:
            values = [row[column] for row in rows.get(table, ()) if column in row]
            if values and _share(values, lambda v: v is None) >= 0.5:
                found.add((table, column))
    return frozenset(found)


def constant_columns(table: sa.Table, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Non-personal columns holding one non-NULL value in nine rows out of ten."""
    if len(rows) < MIN_SAMPLE:
        return {}
    unique = {c.name for con in table.constraints if isinstance(con, sa.UniqueConstraint) for c in con.columns}
    unique |= {c.name for index in table.indexes if index.unique for c in index.columns}
    found = {}
    for column in table.c:
        if column.name in _AUDIT or column.name in unique or column.primary_key:
            continue
        if any(fk.column.table.name in PERSONAL_TABLES for fk in column.foreign_keys):
            continue
        if not isinstance(column.type, (sa.Boolean, sa.Integer, sa.String)) or isinstance(column.type, sa.Text):
            continue
        value, share = _modal(row.get(column.name) for row in rows)
        if value is None or share < CONSTANT_SHARE:
            continue
        if isinstance(value, str) and len(value) > _MAX_CONSTANT_TEXT:
            continue
        found[column.name] = value
    return found


@dataclass(frozen=True)
class CodeSequence:
    """The Tryton sequence numbering party codes: a PostgreSQL sequence plus ir_sequence's format."""

    sequence: str  # ir_sequence_<id>, the database sequence Tryton draws from
    prefix: str
    suffix: str
    padding: int

    def format(self, number: int, today: Any) -> str:
        # Tryton substitutes ${year}, ${month}, ${day} in prefix and suffix.
        from string import Template

        words = {"year": f"{today:%Y}", "month": f"{today:%m}", "day": f"{today:%d}"}
        prefix = Template(self.prefix).safe_substitute(words)
        suffix = Template(self.suffix).safe_substitute(words)
        return f"{prefix}{str(number).zfill(self.padding)}{suffix}"


def party_code_sequence(engine: sa.Engine, tables: Callable[[str], sa.Table | None]) -> CodeSequence | None:
    """The sequence party.configuration names for party codes, or None if there is none to use."""
    sequence_id = None
    for name in ("party_configuration_party_sequence", "party_configuration"):
        config = tables(name)
        if config is not None and "party_sequence" in config.c:
            with engine.connect() as conn:
                sequence_id = conn.execute(sa.select(config.c.party_sequence).where(
                    config.c.party_sequence.is_not(None)).order_by(config.c.id).limit(1)).scalar()
            if sequence_id is not None:
                break
    ir_sequence = tables("ir_sequence")
    if sequence_id is None or ir_sequence is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(ir_sequence).where(ir_sequence.c.id == sequence_id)).first()
    name = f"ir_sequence_{sequence_id}"
    if row is None or not sa.inspect(engine).has_sequence(name):
        return None
    row = row._mapping
    return CodeSequence(name, row.get("prefix") or "", row.get("suffix") or "", int(row.get("padding") or 0))
