"""The rows of one OpenELIS patient, as the patient form's save writes them.

``PatientManagementUpdate`` / ``PatientService.persistPatientData`` inserts,
in one transaction: ``person`` (id from ``person_seq``), ``patient``
(``patient_seq``, same clock in ``lastupdated``), one ``patient_identity``
row per identity field filled in (``patient_identity_seq``), then the
``person_address`` rows of the ``commune`` and ``village`` address parts,
which the form inserts even when empty (type ``T``). Where the host's version
audits an insert, an ``I`` row follows it in ``history`` (``history_seq``,
the system user, ``changes`` NULL).

Optional columns follow the host's newest patients (``Neighbours``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canary.model import Identity
from canary.phones import kind as phone_kind
from seeders.sql.idnumbers import Series
from seeders.sql.neighbours import Neighbours
from seeders.openelis.setup import AKA, GUID, SAMPLE_SIZE, ST, SUBJECT, OpenElisSetup
from seeders.sql.rows import SEQUENCE, Generated, Ref, RowPlan
from seeders.sql.target import SqlTarget
from seeders.common.transforms import format_phone

SEQUENCES = {"person": "person_seq", "patient": "patient_seq", "patient_identity": "patient_identity_seq",
             "history": "history_seq"}
DEFAULT_PHONE_STYLE = "spaced"
DEFAULT_BIRTH_FORMAT = "%d/%m/%Y"  # the French locale's date format, as the form sends it
_FRANCE = frozenset({"france", "fr", "fra"})
# Person and patient columns the seeder has nothing for: as empty as the neighbours leave them.
PERSON_BLANKS = ("fax", "work_phone")
PATIENT_BLANKS = ("race", "ethnicity", "school_attend", "medicare_id", "medicaid_id", "external_id", "chart_number",
                  "epi_first_name", "epi_middle_name", "epi_last_name")


@dataclass
class Habits:
    persons: Neighbours
    patients: Neighbours
    addresses: dict[str, Neighbours]  # address part name -> its person_address rows
    series: dict[str, Series]  # ST / SUBJECT numbers in use


def sample_habits(target: SqlTarget, setup: OpenElisSetup) -> Habits:
    person, patient = target.table("person"), target.table("patient")
    address, identity = target.table("person_address"), target.table("patient_identity")
    with target.engine.connect() as conn:
        def rows(query: sa.Select) -> list[dict[str, Any]]:
            return [dict(row._mapping) for row in conn.execute(query)]

        patients = rows(sa.select(patient).order_by(patient.c.id.desc()).limit(SAMPLE_SIZE))
        person_ids = [row["person_id"] for row in patients]
        persons = rows(sa.select(person).where(person.c.id.in_(person_ids)))
        addresses = {name: Neighbours(rows(sa.select(address).where(
            address.c.person_id.in_(person_ids), address.c.address_part_id == part_id)))
            for name, part_id in setup.address_parts.items()}
        series = {}
        for name in (ST, SUBJECT):
            if name in setup.identity_types:
                values = conn.execute(sa.select(identity.c.identity_data).where(
                    identity.c.identity_type_id == setup.identity_types[name]).order_by(identity.c.id)).scalars()
                series[name] = Series([v.strip() for v in values if v and v.strip()])
    return Habits(Neighbours(persons), Neighbours(patients), addresses, series)


def birth_date_format(patients: Neighbours) -> str:
    """The date format of ``entered_birth_date`` in the host's rows (day or month first, or ISO)."""
    values = [str(row.get("entered_birth_date") or "") for row in patients.rows]
    if any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in values):
        return "%Y-%m-%d"
    pairs = [m.groups() for v in values if (m := re.fullmatch(r"(\d{2})/(\d{2})/\d{4}", v))]
    if any(int(second) > 12 for _first, second in pairs) and not any(int(first) > 12 for first, _ in pairs):
        return "%m/%d/%Y"
    return DEFAULT_BIRTH_FORMAT


class RowBuilder:
    def __init__(self, target: SqlTarget, setup: OpenElisSetup, habits: Habits) -> None:
        self.target, self.setup, self.habits = target, setup, habits

    def _present(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        columns = self.target.table(table).c
        return {name: value for name, value in values.items() if name in columns}

    def _plan(self, table: str, alias: str, values: dict[str, Any], refs: dict[str, Ref] | None = None,
              unchecked: tuple[str, ...] = ()) -> RowPlan:
        return RowPlan(table=table, key=("id",), alias=alias, values=self._present(table, values),
                       generated={"id": Generated(SEQUENCE, SEQUENCES[table])}, refs=refs or {},
                       unchecked=frozenset(unchecked))

    def _audited(self, table: str, alias: str, now: datetime) -> list[RowPlan]:
        reference_table = self.setup.history_tables.get(table)
        if reference_table is None:
            return []
        return [self._plan("history", f"history_{alias}", {
            "sys_user_id": self.setup.sys_user_id, "reference_table": reference_table, "timestamp": now,
            "activity": "I", "changes": None}, refs={"reference_id": Ref(alias, "id")})]

    def rows(self, identity: Identity, identities: dict[str, str], now: datetime) -> list[RowPlan]:
        """The rows for ``identity``; ``identities`` maps identity type names to the values to write."""
        rows = [self._plan("person", "person", self._person(identity, now), unchecked=("lastupdated",))]
        rows += self._audited("person", "person", now)
        rows.append(self._plan("patient", "patient", self._patient(identity, identities.get(GUID), now),
                               refs={"person_id": Ref("person", "id")}, unchecked=("lastupdated",)))
        rows += self._audited("patient", "patient", now)
        for name, type_id in self.setup.identity_types.items():
            if not identities.get(name):
                continue  # the form inserts no row for an empty field
            alias = f"identity_{name}"
            rows.append(self._plan("patient_identity", alias, {
                "identity_type_id": type_id, "identity_data": identities[name], "lastupdated": now},
                refs={"patient_id": Ref("patient", "id")}, unchecked=("lastupdated",)))
            rows += self._audited("patient_identity", alias, now)
        for part, value in self._address_parts(identity).items():
            rows.append(RowPlan(table="person_address", key=("person_id", "address_part_id"), alias=f"address_{part}",
                                values={"address_part_id": self.setup.address_parts[part], "type": "T", "value": value},
                                refs={"person_id": Ref("person", "id")}))
        return rows

    def identity_values(self, identity: Identity, fhir_uuid: str) -> dict[str, str | None]:
        """Values of the supported identity types, except the numbered ones (ST, SUBJECT)."""
        return {
            self.setup.national_type: identity.nir,
            AKA: identity.birth_name if identity.married_name_used else None,
            GUID: fhir_uuid,
        }

    def _person(self, identity: Identity, now: datetime) -> dict[str, Any]:
        persons = self.habits.persons
        address = identity.address
        style = persons.phone_style("primary_phone", DEFAULT_PHONE_STYLE)
        phones = [p for p in (identity.phone, identity.phone2) if p]
        mobile = next((p for p in phones if phone_kind(p) == "mobile"), None)
        landline = next((p for p in phones if phone_kind(p) in ("landline", "voip")), None)
        middle = " ".join(identity.first_names[1:]) or None
        values = {name: persons.empty_value(name) for name in PERSON_BLANKS}
        values.update({
            "last_name": persons.name_writing("last_name", identity.last_name),
            "first_name": persons.name_writing("first_name", identity.first_name),
            "middle_name": persons.optional("middle_name", persons.name_writing("first_name", middle), default_fill=False),
            "street_address": persons.optional("street_address", address.line1, default_fill=True),
            # The building or flat, when there is one, however rare among neighbours.
            "multiple_unit": address.line2 or persons.empty_value("multiple_unit"),
            "city": persons.optional("city", persons.name_writing("city", address.city), default_fill=True),
            "state": persons.optional("state", address.departement if len(address.departement) <= 2 else None,
                                      default_fill=False),
            "zip_code": persons.optional("zip_code", address.postcode, default_fill=True),
            "country": persons.optional("country", self._country(), default_fill=True),
            # Contact points we watch: always written, in the host's phone writing.
            "primary_phone": _phone(identity.phone, style),
            "email": identity.email,
            "cell_phone": persons.optional("cell_phone", mobile and _phone(mobile, style), default_fill=False),
            "home_phone": persons.optional("home_phone", landline and _phone(landline, style), default_fill=False),
            "lastupdated": now,
        })
        return values

    def _country(self) -> str:
        common = self.habits.persons.most_common("country")
        if isinstance(common, str) and common.strip().casefold() in _FRANCE:
            return common
        return self.habits.persons.name_writing("country", "France")

    def _patient(self, identity: Identity, fhir_uuid: str | None, now: datetime) -> dict[str, Any]:
        patients = self.habits.patients
        values = {name: patients.empty_value(name) for name in PATIENT_BLANKS}
        values.update({
            "gender": identity.sex.value,
            "birth_date": datetime(identity.birth_date.year, identity.birth_date.month, identity.birth_date.day),
            "entered_birth_date": identity.birth_date.strftime(birth_date_format(patients)),
            "national_id": identity.nir,
            "birth_place": patients.optional("birth_place", identity.birthplace.name, default_fill=False),
            "lastupdated": now,
        })
        if self.setup.has_fhir_uuid:
            values["fhir_uuid"] = fhir_uuid
        return values

    def _address_parts(self, identity: Identity) -> dict[str, Any]:
        """Commune and village part values: the form puts the city in "village", "commune" is its own field."""
        values = {}
        for part in self.setup.address_parts:
            neighbours = self.habits.addresses.get(part, Neighbours(()))
            city = neighbours.name_writing("value", identity.address.city)
            values[part] = city if part == "village" else neighbours.optional("value", city, default_fill=False)
        return values


def _phone(e164: str, style: str) -> str:
    return format_phone(e164, style) if e164.startswith("+33") else e164


def new_fhir_uuid() -> str:
    return str(uuid.uuid4())

