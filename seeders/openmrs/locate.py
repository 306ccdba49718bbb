"""Find an OpenMRS canary that was planted but never recorded in the registry.

A crash between the insert and the registry update leaves a patient nobody
knows about. It is found from a contact point only a canary carries (its
phone or e-mail attribute, both ours; never the NIR, which a real patient
could share), then confirmed by the identity's birth date and names; only then are its rows claimed, one per row the seeder
writes, so the placement can be verified and retired like any other. Its
footprint (visit, vitals encounter, provider, obs) is the patient's own
clinical rows: only the seeder wrote any for a canary.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canary.model import Identity, Placement
from canary.phones import formats
from seeders.sql.identity_match import name_spellings
from seeders.sql.located import placement_row
from seeders.openmrs.clock import local_stamps
from seeders.openmrs.footprint import KEYS, VitalsHabit, footprint_rows
from seeders.openmrs.rows import RowBuilder
from seeders.openmrs.setup import OpenMrsSetup
from seeders.sql.rows import RowPlan
from seeders.sql.target import SqlTarget


def _phone_writings(e164: str) -> list[str]:
    try:
        return sorted(set(formats(e164).values()))
    except ValueError:  # not a French number: written as is
        return [e164]


class _Finder:
    def __init__(self, target: SqlTarget, conn: sa.Connection) -> None:
        self.target, self.conn = target, conn

    def rows(self, table_name: str, *where: sa.ColumnElement[bool], order: str | None = None) -> list[dict[str, Any]]:
        table = self.target.table(table_name)
        query = sa.select(table).where(*where)
        if order:
            query = query.order_by(table.c[order])
        return [dict(row._mapping) for row in self.conn.execute(query.limit(100))]

    def c(self, table_name: str) -> sa.ColumnCollection:
        return self.target.table(table_name).c


def _anchor(finder: _Finder, setup: OpenMrsSetup, identity: Identity) -> int | None:
    """The one person carrying a contact point of this identity, or None."""
    attr = finder.c("person_attribute")
    searches = []
    if setup.phone_attribute_type is not None:
        searches.append(("person_attribute", "person_id", (
            attr.person_attribute_type_id == setup.phone_attribute_type,
            attr.value.in_(_phone_writings(identity.phone)))))
    if setup.email_attribute_type is not None:
        searches.append(("person_attribute", "person_id", (
            attr.person_attribute_type_id == setup.email_attribute_type,
            sa.func.lower(attr.value) == identity.email.lower())))
    for table, column, where in searches:
        people = {row[column] for row in finder.rows(table, *where)}
        if len(people) == 1:
            return people.pop()
    return None


def _is_this_identity(finder: _Finder, person_id: int, identity: Identity) -> bool:
    person, name = finder.c("person"), finder.c("person_name")
    if not finder.rows("person", person.person_id == person_id, person.birthdate == identity.birth_date):
        return False
    return bool(finder.rows(
        "person_name", name.person_id == person_id,
        sa.func.lower(name.family_name).in_(name_spellings(identity.last_name, identity.birth_name)),
        sa.func.lower(name.given_name).in_(name_spellings(identity.first_name))))


def _row_for(finder: _Finder, plan: RowPlan, person_id: int, found: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    c = finder.c(plan.table)
    key = plan.key[0]
    if plan.table in ("person", "patient"):
        where = [c[key] == person_id]
    elif plan.table == "patient_identifier":
        where = [c.patient_id == person_id, c.identifier_type == plan.values["identifier_type"]]
    elif plan.table == "person_attribute":
        where = [c.person_id == person_id, c.person_attribute_type_id == plan.values["person_attribute_type_id"]]
    elif plan.table == "idgen_log_entry":
        ours = found.get("patient_identifier")
        if ours is None:
            return None
        where = [c.source == plan.values["source"], c.identifier == ours["identifier"]]
    else:  # person_name, person_address: the first one, the one the registration wrote
        where = [c.person_id == person_id]
    rows = finder.rows(plan.table, *where, order=key)
    return rows[0] if rows else None


def _footprint(finder: _Finder, target: SqlTarget, vitals: VitalsHabit, identity: Identity,
               person_id: int) -> list[dict[str, Any]]:
    """The canary's visit, encounter, encounter_provider and obs rows, as Placement rows, in insertion order."""
    plans = {plan.table: plan for plan in footprint_rows(target, vitals, identity, local_stamps(), datetime.now(),
                                                         random.Random(0))}
    found = []
    visits = finder.rows("visit", finder.c("visit").patient_id == person_id, order="visit_id")
    encounters = finder.rows("encounter", finder.c("encounter").patient_id == person_id, order="encounter_id")
    ids = [row["encounter_id"] for row in encounters]
    providers = finder.rows("encounter_provider", finder.c("encounter_provider").encounter_id.in_(ids),
                            order="encounter_provider_id") if ids else []
    observations = finder.rows("obs", finder.c("obs").encounter_id.in_(ids), order="obs_id") if ids else []
    for table, rows in (("visit", visits), ("encounter", encounters), ("encounter_provider", providers),
                        ("obs", observations)):
        if table in plans:
            found += [placement_row(plans[table], row) for row in rows]
        elif rows:  # e.g. a visit where the plan has none: claimed all the same, retire needs it gone first
            found += [{"table": table, "key": {KEYS[table]: row[KEYS[table]]}, "values": {}} for row in rows]
    return found


def locate_patient(target: SqlTarget, setup: OpenMrsSetup, builder: RowBuilder,
                   identity: Identity, vitals: VitalsHabit | None = None) -> Placement | None:
    plans = builder.rows(identity, "", local_stamps())
    with target.engine.connect() as conn:
        finder = _Finder(target, conn)
        person_id = _anchor(finder, setup, identity)
        if person_id is None or not _is_this_identity(finder, person_id, identity):
            return None
        found: dict[str, dict[str, Any]] = {}
        # The identifier first: the idgen log entry is found through it.
        for plan in sorted(plans, key=lambda p: p.table == "idgen_log_entry"):
            row = _row_for(finder, plan, person_id, found)
            if row is not None:
                found[plan.name] = row
        footprint = _footprint(finder, target, vitals, identity, person_id) if vitals is not None else []
    return Placement(rows=(*(placement_row(plan, found[plan.name]) for plan in plans if plan.name in found),
                           *footprint))
