"""The rows of one OpenELIS patient, as the "Add patient" form's save writes them.

``PatientManagementRestController.savepatient`` -> ``PatientServiceImpl.persistPatientData``
inserts, in one transaction and in this flush order: the patient's ``person``
(``person_seq``), ``patient`` (``patient_seq``, with ``fhir_uuid`` where the
column exists), the contact ``person`` and ``patient_contact`` row of
``persistContact`` (``seeders.openelis.contact``, where the table exists),
one ``patient_identity`` per identity filled in (``patient_identity_seq``,
the ``GUID`` one = ``fhir_uuid``), then the ``commune`` and ``village``
``person_address`` rows the form inserts even when empty (type ``T``).
Audited inserts are followed by their ``history`` row (``seeders.openelis.planner``).

What a form field left blank holds is what the React form sends: ``''``
for ``street_address``, ``city``, ``primary_phone``, ``national_id`` and the
commune; NULL for every column no form writes (``zip_code``, ``country``,
``multiple_unit``, ``state``, phones other than the primary one, and the
e-mail of the patient's own person), unless the site's own newest patients
have them (``Neighbours``). Every ``lastupdated`` is its own millisecond
reading (``seeders.openelis.clock``).
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canary.model import Identity
from canary.phones import kind as phone_kind
from seeders.common.transforms import format_phone
from seeders.openelis.clock import SaveClock
from seeders.openelis.contact import ContactBuilder, contact_persons
from seeders.openelis.planner import Planner
from seeders.openelis.setup import AKA, GUID, SAMPLE_SIZE, ST, SUBJECT, OpenElisSetup
from seeders.sql.idnumbers import Series
from seeders.sql.neighbours import Neighbours
from seeders.sql.rows import Ref, RowPlan
from seeders.sql.target import SqlTarget

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
    contacts: Neighbours  # the contact persons of the newest patients (patient_contact)


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
        contacts = contact_persons(target, conn, [row["id"] for row in patients])
    return Habits(Neighbours(persons), Neighbours(patients), addresses, series, Neighbours(contacts))


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
        self.rnd = random.SystemRandom()
        self.planner = Planner(target, setup.history_tables, setup.sys_user_id)
        self.contact = ContactBuilder(target, self.planner, habits.contacts) if setup.version.has_contact else None

    def rows(self, identity: Identity, identities: dict[str, str], clock: SaveClock) -> list[RowPlan]:
        """The rows for ``identity``; ``identities`` maps identity type names to the values to write."""
        plan = self.planner
        email_on_person = self.habits.persons.fills("email", default=False)
        rows = plan.inserted("person", "person", self._person(identity, email_on_person, clock.reading()))
        rows += plan.inserted("patient", "patient", self._patient(identity, identities.get(GUID), clock.reading()),
                              refs={"person_id": Ref("person", "id")})
        if self.contact is not None:
            rows += self.contact.rows(identity, None if email_on_person else identity.email, clock)
        for name, type_id in self.setup.identity_types.items():
            if not identities.get(name):
                continue  # the form inserts no row for an empty field
            alias = f"identity_{name}"
            rows += plan.inserted("patient_identity", alias, {
                "identity_type_id": type_id, "identity_data": identities[name], "lastupdated": clock.reading()},
                refs={"patient_id": Ref("patient", "id")})
        for part, value in self._address_parts(identity).items():
            rows.append(RowPlan(table="person_address", key=("person_id", "address_part_id"), alias=f"address_{part}",
                                values={"address_part_id": self.setup.address_parts[part], "type": "T", "value": value},
                                refs={"person_id": Ref("person", "id")}))
        return rows

    def identity_values(self, identity: Identity, fhir_uuid: str) -> dict[str, str | None]:
        """Values of the supported identity types, except the numbered ones (ST, SUBJECT)."""
        return {AKA: identity.birth_name if identity.married_name_used else None, GUID: fhir_uuid}

    def _person(self, identity: Identity, email_on_person: bool, now: datetime) -> dict[str, Any]:
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
            # Fields of the form: '' when blank (CreatePatientFormValues.js), as often as the site leaves it so.
            "street_address": self._drawn(persons, "street_address", address.line1, default_fill=True) or "",
            "city": persons.name_writing("city", address.city) or "",
            # The phone is the contact point we watch: always written, in the host's writing.
            "primary_phone": _phone(identity.phone, style),
            # No form field (PatientManagementInfo has none): NULL, unless the site's patients have them.
            "middle_name": self._drawn(persons, "middle_name", persons.name_writing("first_name", middle), default_fill=False),
            "multiple_unit": self._drawn(persons, "multiple_unit", address.line2, default_fill=False),
            "state": self._drawn(persons, "state", self._fits("person", "state", address.departement), default_fill=False),
            "zip_code": self._drawn(persons, "zip_code", address.postcode, default_fill=False),
            "country": self._drawn(persons, "country", self._country(), default_fill=False),
            "email": identity.email if email_on_person else persons.empty_value("email"),
            "cell_phone": self._drawn(persons, "cell_phone", mobile and _phone(mobile, style), default_fill=False),
            "home_phone": self._drawn(persons, "home_phone", landline and _phone(landline, style), default_fill=False),
            "lastupdated": now,
        })
        return values

    def _drawn(self, rows: Neighbours, column: str, value: Any, *, default_fill: bool) -> Any:
        """``value`` as often as the site's rows fill ``column`` (its distribution, not its mode), else the
        site's empty value ('' or NULL)."""
        share = rows.filled_share(column)
        fill = default_fill if share is None else self.rnd.random() < share
        return value if fill and value not in (None, "") else rows.empty_value(column, "" if default_fill else None)

    def _fits(self, table: str, column: str, value: str | None) -> str | None:
        """``value`` if the column is long enough (``person.state`` was char(2) before 2.7), else None."""
        length = getattr(self.target.table(table).c[column].type, "length", None)
        return value if value is None or length is None or len(value) <= length else None

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
            "national_id": identity.nir or "",
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
            blank = neighbours.empty_value("value", "")  # the React form sends '' for a blank commune
            values[part] = city if part == "village" else (city if neighbours.fills("value", False) else blank)
        return values


def _phone(e164: str, style: str) -> str:
    return format_phone(e164, style) if e164.startswith("+33") else e164


def new_fhir_uuid() -> str:
    return str(uuid.uuid4())

