"""The OpenMRS metadata a canary patient refers to, read once at ``open()``.

Options name metadata the way an administrator sees it (an identifier type
or a location by name, or by id); this module turns them into ids, checks
they exist and are not retired, and finds how the host numbers identifiers
of the chosen type: through an idgen sequential source (Reference
Application), or by hand (the next number after the existing ones).
Nothing here writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canary.errors import SourceError
from seeders.openmrs.checkdigits import CORE_LUHN_NAME, Validator, known_validators, validator_for
from seeders.sql.target import SqlTarget

# Stock identifier types: the Reference Application's (idgen, Luhn mod 30),
# then the one a bare core install ships (core Luhn).
STOCK_IDENTIFIER_TYPES = ("OpenMRS ID", "OpenMRS Identification Number")
STOCK_LOCATION = "Unknown Location"
NONE = "none"
# Tables read (never written) to resolve the options.
METADATA_TABLES = ("users", "location", "patient_identifier_type", "person_attribute_type", "idgen_identifier_source",
                   "idgen_seq_id_gen", "idgen_auto_generation_option", "idgen_reserved_identifier")


@dataclass(frozen=True, slots=True)
class IdentifierType:
    id: int
    name: str
    validator: Validator
    format: str | None  # a Java regular expression identifiers must match, if set


@dataclass(frozen=True, slots=True)
class IdgenSource:
    """An idgen SequentialIdentifierGenerator (table idgen_seq_id_gen)."""

    id: int
    prefix: str
    suffix: str
    first_identifier_base: str
    base_character_set: str
    min_length: int | None
    max_length: int | None


@dataclass(frozen=True, slots=True)
class OpenMrsSetup:
    identifier_type: IdentifierType
    location_id: int
    creator: int
    phone_attribute_type: int | None
    email_attribute_type: int | None
    nir_identifier_type: int | None
    idgen: IdgenSource | None


AUTO = "auto"  # option value: take what the host's newest rows show


class _Reader:
    def __init__(self, target: SqlTarget, conn: sa.Connection) -> None:
        self.target, self.conn = target, conn

    def error(self, message: str) -> SourceError:
        return SourceError(f"source '{self.target.source_name}': {message}")

    def table(self, name: str) -> sa.Table:
        table = self.target.table(name)
        if table is None:
            raise self.error(f"no table {name}: this database does not look like OpenMRS")
        return table

    def rows(self, query: sa.Select) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in self.conn.execute(query)]

    def named(self, table_name: str, id_column: str, value: str, what: str, option: str,
              retired_column: str | None = "retired") -> dict[str, Any]:
        """The row of ``table_name`` whose name (or id) is ``value``; an error listing the choices."""
        table = self.table(table_name)
        condition = table.c.name == value
        if value.strip().isdigit():
            condition = sa.or_(condition, table.c[id_column] == int(value))
        found = self.rows(sa.select(table).where(condition).order_by(table.c[id_column]))
        active = [row for row in found if not retired_column or not row[retired_column]]
        if active:
            return active[0]
        if found:
            raise self.error(f"{what} {value!r} is retired: choose another with --set {option}=NAME")
        names = self.rows(sa.select(table.c.name).order_by(table.c[id_column]).limit(15))
        choices = ", ".join(repr(row["name"]) for row in names) or "none"
        raise self.error(f"no {what} {value!r} (found: {choices}): choose one with --set {option}=NAME")


def read_setup(target: SqlTarget, options: dict[str, str | None]) -> OpenMrsSetup:
    with target.engine.connect() as conn:
        reader = _Reader(target, conn)
        id_type = _identifier_type(reader, options.get("identifier_type"))
        return OpenMrsSetup(
            identifier_type=id_type,
            location_id=_location(reader, options.get("location"), id_type.id),
            creator=_creator(reader, options.get("creator")),
            phone_attribute_type=_attribute_type(reader, options.get("phone_attribute_type"), "phone_attribute_type"),
            email_attribute_type=_attribute_type(reader, options.get("email_attribute_type"), "email_attribute_type"),
            nir_identifier_type=_other_identifier_type(reader, options.get("nir_identifier_type"), id_type.id),
            idgen=_idgen_source(reader, id_type.id),
        )


def _identifier_type(reader: _Reader, wanted: str | None) -> IdentifierType:
    if wanted:
        row = reader.named("patient_identifier_type", "patient_identifier_type_id", wanted,
                           "patient identifier type", "identifier_type")
    else:
        row = None
        for name in STOCK_IDENTIFIER_TYPES:
            try:
                row = reader.named("patient_identifier_type", "patient_identifier_type_id", name,
                                   "patient identifier type", "identifier_type")
                break
            except SourceError:
                continue
        if row is None:
            reader.named("patient_identifier_type", "patient_identifier_type_id", STOCK_IDENTIFIER_TYPES[0],
                         "patient identifier type", "identifier_type")  # raises, listing the types
    validator_name = row.get("validator")
    if not validator_name and row.get("check_digit"):
        # A type with the old check_digit flag and no validator: core falls back to Luhn.
        validator_name = CORE_LUHN_NAME
    validator = validator_for(validator_name)
    if validator is None:
        raise reader.error(
            f"identifier type {row['name']!r} uses validator {validator_name}, which this seeder cannot "
            f"compute (known: {', '.join(known_validators())}); choose another with --set identifier_type=NAME")
    return IdentifierType(row["patient_identifier_type_id"], row["name"], validator, row.get("format") or None)


def _location(reader: _Reader, wanted: str | None, identifier_type: int) -> int:
    if wanted:
        return reader.named("location", "location_id", wanted, "location", "location")["location_id"]
    # Where the host's recent identifiers of this type were issued, else the stock location.
    ids = reader.table("patient_identifier")
    locations = reader.table("location")
    recent = reader.rows(
        sa.select(ids.c.location_id)
        .join(locations, locations.c.location_id == ids.c.location_id)
        .where(ids.c.identifier_type == identifier_type, locations.c.retired == 0)
        .order_by(ids.c.patient_identifier_id.desc()).limit(200))
    if recent:
        return Counter(row["location_id"] for row in recent).most_common(1)[0][0]
    try:
        return reader.named("location", "location_id", STOCK_LOCATION, "location", "location")["location_id"]
    except SourceError:
        first = reader.rows(sa.select(locations.c.location_id).where(locations.c.retired == 0)
                            .order_by(locations.c.location_id).limit(1))
        if not first:
            raise reader.error("the database has no location: create one in OpenMRS first") from None
        return first[0]["location_id"]


def _creator(reader: _Reader, wanted: str | None) -> int:
    text = (wanted or AUTO).strip()
    if text.lower() == AUTO:
        # Whoever registers most of the newest patients (a clerk's account, usually): a constant
        # "admin" on canaries alone would set them apart where clerks register patients.
        users = reader.table("users")
        patient = reader.table("patient")
        newest = sa.select(patient.c.creator).order_by(patient.c.patient_id.desc()).limit(200).subquery()
        rows = reader.rows(sa.select(newest.c.creator, sa.func.count().label("n"))
                           .join(users, users.c.user_id == newest.c.creator).where(users.c.retired == 0)
                           .group_by(newest.c.creator).order_by(sa.text("n DESC"), newest.c.creator).limit(1))
        text = str(rows[0]["creator"]) if rows else "1"
    if not text.isdigit():
        raise reader.error(f"creator must be a user id (a number), not {text!r}")
    users = reader.table("users")
    found = reader.rows(sa.select(users).where(users.c.user_id == int(text)))
    if not found:
        raise reader.error(f"no user with user_id {text}: set --set creator=USER_ID")
    if found[0].get("retired"):
        raise reader.error(f"user {text} is retired: set --set creator=USER_ID of an active user")
    return int(text)


def _attribute_type(reader: _Reader, wanted: str | None, option: str) -> int | None:
    if not wanted or wanted.strip().lower() == NONE:
        return None
    return reader.named("person_attribute_type", "person_attribute_type_id", wanted,
                        "person attribute type", option)["person_attribute_type_id"]


def _other_identifier_type(reader: _Reader, wanted: str | None, main_type: int) -> int | None:
    if not wanted or wanted.strip().lower() == NONE:
        return None
    row = reader.named("patient_identifier_type", "patient_identifier_type_id", wanted,
                       "patient identifier type", "nir_identifier_type")
    if row["patient_identifier_type_id"] == main_type:
        raise reader.error("nir_identifier_type must differ from identifier_type")
    return row["patient_identifier_type_id"]


def _idgen_source(reader: _Reader, identifier_type: int) -> IdgenSource | None:
    """The idgen sequential source that numbers this type, if the idgen module is installed."""
    target = reader.target
    sources, sequences = target.table("idgen_identifier_source"), target.table("idgen_seq_id_gen")
    if sources is None or sequences is None:
        return None
    query = (sa.select(sequences, sources.c.identifier_type)
             .join(sources, sources.c.id == sequences.c.id)
             .where(sources.c.identifier_type == identifier_type, sources.c.retired == 0)
             .order_by(sources.c.id))
    options = target.table("idgen_auto_generation_option")
    rows = reader.rows(query)
    if options is not None and len(rows) > 1:
        chosen = {row["source"] for row in reader.rows(
            sa.select(options.c.source).where(options.c.identifier_type == identifier_type))}
        rows = [row for row in rows if row["id"] in chosen] or rows
    if not rows:
        return None
    row = rows[0]
    return IdgenSource(
        id=row["id"], prefix=row.get("prefix") or "", suffix=row.get("suffix") or "",
        first_identifier_base=row["first_identifier_base"], base_character_set=row["base_character_set"],
        # Older idgen versions name the minimum length "length".
        min_length=row.get("min_length") or row.get("length") or None, max_length=row.get("max_length") or None,
    )
