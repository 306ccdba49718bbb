"""The contact person OpenELIS writes with every patient created from the patient form.

``PatientServiceImpl.persistContact`` (called by ``persistPatientData``, OpenELIS
Global 2.0 and later, table from ``liquibase/2.0.x.x/patient_contact.xml``):
when the form's ``patientContact.id`` is blank, which it always is for a new
patient, it inserts the contact ``person`` (``personService.insert``: first
name, last name, primary phone and e-mail as typed, ``''`` when left blank, as
``CreatePatientFormValues.js`` initialises them; every other column NULL; a
``history`` PERSON ``I`` row) and then ``patient_contact`` (``patient_contact_seq``,
``patient_id``, ``person_id``, ``lastupdated`` a DATE: the millisecond reading
cut to the day). ``PatientContactServiceImpl`` does not audit.

What the canary's contact holds follows the site's newest contacts: a field
most of them fill is filled (the canary's e-mail when its own person does not
carry it, its second phone, its family name, a first name taken from the
site's contacts), a field they leave blank stays ``''``.
"""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa

from canary.model import Identity
from seeders.openelis.clock import SaveClock
from seeders.openelis.planner import Planner
from seeders.sql.neighbours import Neighbours
from seeders.sql.rows import Ref, RowPlan
from seeders.sql.target import SqlTarget
from seeders.common.transforms import format_phone

FIELDS = ("first_name", "last_name", "primary_phone", "email")


def contact_persons(target: SqlTarget, conn: sa.Connection, patient_ids: list[Any]) -> list[dict[str, Any]]:
    """The contact ``person`` rows of these patients (none before OpenELIS Global 2.0)."""
    contact, person = target.table("patient_contact"), target.table("person")
    if contact is None or not patient_ids:
        return []
    query = sa.select(*(person.c[name] for name in FIELDS)).join(
        contact, contact.c.person_id == person.c.id).where(contact.c.patient_id.in_(patient_ids))
    return [dict(row._mapping) for row in conn.execute(query)]


class ContactBuilder:
    def __init__(self, target: SqlTarget, planner: Planner, contacts: Neighbours,
                 rnd: random.Random | None = None) -> None:
        self.target, self.planner, self.contacts = target, planner, contacts
        self.rnd = rnd or random.SystemRandom()

    def values(self, identity: Identity, email: str | None) -> dict[str, str]:
        """The four form fields: '' unless the site's contacts usually fill them."""
        contacts = self.contacts
        filled = {name: contacts.fills(name, default=False) for name in FIELDS}
        first_names = [str(row["first_name"]).strip() for row in contacts.rows if (row.get("first_name") or "").strip()]
        phone = identity.phone2 or identity.phone
        return {
            "first_name": self.rnd.choice(first_names) if filled["first_name"] and first_names else "",
            "last_name": contacts.name_writing("last_name", identity.last_name) if filled["last_name"] else "",
            "primary_phone": _written(phone, contacts.phone_style("primary_phone", "spaced"))
            if filled["primary_phone"] and phone else "",
            "email": email if filled["email"] and email else "",
        }

    def rows(self, identity: Identity, email: str | None, clock: SaveClock) -> list[RowPlan]:
        person = dict(self.values(identity, email), lastupdated=clock.reading())
        rows = self.planner.inserted("person", "contact_person", person)
        rows.append(self.planner.row("patient_contact", "patient_contact", {
            "lastupdated": clock.reading().date()},
            refs={"patient_id": Ref("patient", "id"), "person_id": Ref("contact_person", "id")}))
        return rows


def _written(e164: str, style: str) -> str:
    return format_phone(e164, style) if e164.startswith("+33") else e164
