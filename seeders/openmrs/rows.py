"""The rows of one OpenMRS patient, as the application's save writes them.

``PatientService.savePatient`` (Hibernate, Patient a joined subclass of
Person) inserts ``person`` then ``patient`` (same id), then the cascaded
collections: ``person_name``, ``person_address``, ``person_attribute``,
``patient_identifier``. Every row carries the creator, its own
``date_created`` (one stamp per row from ``seeders.openmrs.clock``, as
``AuditableInterceptor`` stamps each entity), ``voided = 0`` and a random UUID4 as
``UUID.randomUUID().toString()`` writes it. With idgen the identifier was
generated just before, which logs it in ``idgen_log_entry``.

Optional columns follow the host's own rows (``Neighbours``): a name column
in capitals if the host writes names in capitals, an unused column left as
empty as its neighbours ('' or NULL).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

import sqlalchemy as sa

from canary.model import Identity
from seeders.sql.neighbours import Neighbours
from seeders.openmrs.setup import OpenMrsSetup
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.sql.target import SqlTarget
from seeders.common.transforms import format_phone

# Columns written per table: (key, always written, written when the schema has them).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "person": ("person_id", ("gender", "birthdate", "birthdate_estimated", "dead", "creator", "date_created",
                             "voided", "uuid"), ("deathdate_estimated",)),
    "patient": ("patient_id", ("creator", "date_created", "voided"), ("allergy_status",)),
    "person_name": ("person_name_id", ("person_id", "preferred", "given_name", "family_name", "creator",
                                       "date_created", "voided", "uuid"), ("middle_name", "family_name2", "prefix")),
    "person_address": ("person_address_id", ("person_id", "preferred", "address1", "city_village", "postal_code",
                                             "country", "creator", "date_created", "voided", "uuid"), ("address2",)),
    "person_attribute": ("person_attribute_id", ("person_id", "value", "person_attribute_type_id", "creator",
                                                 "date_created", "voided", "uuid"), ()),
    "patient_identifier": ("patient_identifier_id", ("patient_id", "identifier", "identifier_type", "preferred",
                                                     "location_id", "creator", "date_created", "voided", "uuid"), ()),
    "idgen_log_entry": ("id", ("source", "identifier", "date_generated", "generated_by", "comment"), ()),
}
# Columns the seeder has nothing for: left as empty as the neighbours leave them ('' or NULL).
BLANKS: dict[str, tuple[str, ...]] = {
    "person_name": ("family_name_prefix", "family_name_suffix", "degree"),
    "person_address": ("state_province", "county_district", "latitude", "longitude",
                       *(f"address{n}" for n in range(3, 16))),
}
SAMPLE_SIZE = 200
DEFAULT_PHONE_STYLE = "spaced"  # how French users type a number: "06 12 34 56 78"
_FRANCE = frozenset({"france", "fr", "fra"})


@dataclass(frozen=True, slots=True)
class Habits:
    """The host's writing habits, sampled from its newest patients."""

    names: Neighbours
    addresses: Neighbours
    phones: Neighbours


def sample_habits(target: SqlTarget, setup: OpenMrsSetup) -> Habits:
    patient = target.table("patient")

    def newest(table_name: str, id_column: str, *where: sa.ColumnElement[bool]) -> Neighbours:
        table = target.table(table_name)
        query = (sa.select(table).join(patient, patient.c.patient_id == table.c.person_id)
                 .where(table.c.voided == 0, *where).order_by(table.c[id_column].desc()).limit(SAMPLE_SIZE))
        with target.engine.connect() as conn:
            return Neighbours(row._mapping for row in conn.execute(query))

    attributes = target.table("person_attribute")
    phone_type = setup.phone_attribute_type
    return Habits(
        names=newest("person_name", "person_name_id"),
        addresses=newest("person_address", "person_address_id"),
        phones=newest("person_attribute", "person_attribute_id",
                      attributes.c.person_attribute_type_id == (phone_type if phone_type is not None else -1)),
    )


def new_uuid() -> str:
    return str(uuid.uuid4())


def country_writing(addresses: Neighbours) -> str:
    """How the host writes France in addresses: its own most common writing, else "France"."""
    common = addresses.most_common("country")
    if isinstance(common, str) and common.strip().casefold() in _FRANCE:
        return common
    return addresses.name_writing("country", "France")


def phone_writing(e164: str, phones: Neighbours) -> str:
    if not e164.startswith("+33"):
        return e164
    return format_phone(e164, phones.phone_style("value", DEFAULT_PHONE_STYLE))


class RowBuilder:
    """Builds the RowPlans of one patient for a given identifier and clock."""

    def __init__(self, target: SqlTarget, setup: OpenMrsSetup, habits: Habits, log_comment: str | None) -> None:
        self.target, self.setup, self.habits, self.log_comment = target, setup, habits, log_comment

    def _columns(self, table: str) -> set[str]:
        _key, always, optional = TABLES[table]
        present = set(self.target.table(table).c.keys())
        return set(always) | ((set(optional) | set(BLANKS.get(table, ()))) & present)

    def _blanks(self, table: str, neighbours: Neighbours) -> dict[str, Any]:
        present = self.target.table(table).c
        return {column: neighbours.empty_value(column) for column in BLANKS[table] if column in present}

    def _plan(self, table: str, values: dict[str, Any], *, refs: dict[str, Ref] | None = None,
              alias: str = "", autoincrement: bool = True) -> RowPlan:
        key = TABLES[table][0]
        written = self._columns(table)
        return RowPlan(
            table=table, key=(key,), alias=alias,
            values={name: value for name, value in values.items() if name in written},
            generated={key: Generated(AUTOINCREMENT)} if autoincrement else {},
            refs=refs or {},
        )

    def rows(self, identity: Identity, identifier: str, stamps: Iterator[datetime]) -> list[RowPlan]:
        """The rows of one patient; ``stamps`` gives each row its creation time, in flush order."""
        setup = self.setup

        def audit() -> dict[str, Any]:  # each row its own stamp, taken in the order Hibernate flushes them
            return {"creator": setup.creator, "date_created": next(stamps), "voided": 0}

        person_ref = {"person_id": Ref("person", "person_id")}
        rows = []
        if setup.idgen is not None:  # idgen logs the identifier when it hands it out, just before the save
            rows.append(self._plan("idgen_log_entry", {
                "source": setup.idgen.id, "identifier": identifier, "date_generated": next(stamps),
                "generated_by": setup.creator, "comment": self.log_comment}))
        rows.append(self._plan("person", {
            "gender": identity.sex.value, "birthdate": identity.birth_date, "birthdate_estimated": 0,
            "dead": 0, "deathdate_estimated": 0, **audit(), "uuid": new_uuid()}))
        rows.append(self._plan("patient", {**audit(), "allergy_status": "Unknown"},
                               refs={"patient_id": Ref("person", "person_id")}, autoincrement=False))
        rows.append(self._plan("person_name", {"preferred": 1, **self._blanks("person_name", self.habits.names),
                                               **self._name(identity), **audit(),
                                               "uuid": new_uuid()}, refs=person_ref))
        rows.append(self._plan("person_address", {"preferred": 1,
                                                  **self._blanks("person_address", self.habits.addresses),
                                                  **self._address(identity), **audit(),
                                                  "uuid": new_uuid()}, refs=person_ref))
        for alias, type_id, value in self._attributes(identity):
            rows.append(self._plan("person_attribute", {
                "value": value, "person_attribute_type_id": type_id, **audit(), "uuid": new_uuid()},
                refs=person_ref, alias=alias))
        patient_ref = {"patient_id": Ref("person", "person_id")}
        rows.append(self._plan("patient_identifier", {
            "identifier": identifier, "identifier_type": setup.identifier_type.id, "preferred": 1,
            "location_id": setup.location_id, **audit(), "uuid": new_uuid()}, refs=patient_ref))
        if setup.nir_identifier_type is not None:
            rows.append(self._plan("patient_identifier", {
                "identifier": identity.nir, "identifier_type": setup.nir_identifier_type, "preferred": 0,
                "location_id": setup.location_id, **audit(), "uuid": new_uuid()}, refs=patient_ref, alias="nir"))
        return rows

    def _name(self, identity: Identity) -> dict[str, Any]:
        names = self.habits.names
        middle = " ".join(identity.first_names[1:]) or None
        return {
            "prefix": names.optional("prefix", identity.civility, default_fill=False),
            "given_name": names.name_writing("given_name", identity.first_name),
            # Middle and second family names are written like the given and family names.
            "middle_name": names.optional("middle_name", names.name_writing("given_name", middle), default_fill=False),
            "family_name": names.name_writing("family_name", identity.last_name),
            # The birth name of a woman using her married name, as OpenMRS's second family name.
            "family_name2": (names.name_writing("family_name", identity.birth_name) if identity.married_name_used
                             else names.empty_value("family_name2")),
        }

    def _address(self, identity: Identity) -> dict[str, Any]:
        addresses = self.habits.addresses
        address = identity.address
        return {
            "address1": addresses.optional("address1", address.line1, default_fill=True),
            # A complement is typed when there is one, however rare among neighbours.
            "address2": address.line2 or addresses.empty_value("address2"),
            "city_village": addresses.optional(
                "city_village", addresses.name_writing("city_village", address.city), default_fill=True),
            "postal_code": addresses.optional("postal_code", address.postcode, default_fill=True),
            "country": addresses.optional("country", country_writing(addresses), default_fill=True),
        }

    def _attributes(self, identity: Identity) -> list[tuple[str, int, str]]:
        found = []
        if self.setup.phone_attribute_type is not None:
            found.append(("phone", self.setup.phone_attribute_type, phone_writing(identity.phone, self.habits.phones)))
        if self.setup.email_attribute_type is not None:
            found.append(("email", self.setup.email_attribute_type, identity.email))
        return found
