"""Find an OpenELIS canary that was planted but never recorded in the registry.

Anchored on a contact point only a canary carries (its e-mail or its phone on
``person``, both ours; never the NIR, which a real patient could share),
confirmed by the identity's birth date and names, then each row the seeder writes is read back through the
patient's keys: its contact person and ``patient_contact`` row, its
identities, its address parts and the audit rows of its inserts.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from canary.model import Identity, Placement
from canary.phones import formats
from seeders.sql.identity_match import name_spellings
from seeders.sql.located import placement_row
from seeders.sql.rows import RowPlan
from seeders.sql.target import SqlTarget


def _phone_writings(e164: str) -> list[str]:
    try:
        return sorted(set(formats(e164).values()))
    except ValueError:
        return [e164]


def _person_of_canary(conn: sa.Connection, target: SqlTarget, identity: Identity) -> int | None:
    person, patient = target.table("person"), target.table("patient")
    searches = [
        sa.select(person.c.id).where(sa.func.lower(person.c.email) == identity.email.lower()),
        sa.select(person.c.id).where(person.c.primary_phone.in_(_phone_writings(identity.phone))),
    ]
    for query in searches:
        found = set(conn.execute(query.limit(3)).scalars())
        if len(found) == 1:
            person_id = found.pop()
            confirmed = conn.execute(
                sa.select(patient.c.id).join(person, person.c.id == patient.c.person_id).where(
                    person.c.id == person_id,
                    sa.cast(patient.c.birth_date, sa.Date) == identity.birth_date,
                    sa.func.lower(person.c.last_name).in_(name_spellings(identity.last_name, identity.birth_name)),
                    sa.func.lower(person.c.first_name).in_(name_spellings(identity.first_name)))).first()
            if confirmed is not None:
                return person_id
    return None


def _find(conn: sa.Connection, target: SqlTarget, plan: RowPlan, found: dict[str, dict[str, Any]],
          person_id: Any) -> dict[str, Any] | None:
    table = target.table(plan.table)
    c = table.c
    if plan.name == "contact_person":  # the patient's contact: through patient_contact
        if "patient" not in found:
            return None
        contact = target.table("patient_contact")
        where = [c.id.in_(sa.select(contact.c.person_id).where(contact.c.patient_id == found["patient"]["id"]))]
    elif plan.table == "patient_contact":
        if "patient" not in found:
            return None
        where = [c.patient_id == found["patient"]["id"]]
    elif plan.table == "person":
        where = [c.id == person_id]
    elif plan.table == "patient":
        where = [c.person_id == person_id]
    elif plan.table == "patient_identity":
        if "patient" not in found:
            return None
        where = [c.patient_id == found["patient"]["id"], c.identity_type_id == plan.values["identity_type_id"]]
    elif plan.table == "person_address":
        where = [c.person_id == person_id, c.address_part_id == plan.values["address_part_id"]]
    else:  # history: the insert row of an object found above
        subject = plan.refs["reference_id"].alias
        if subject not in found:
            return None
        where = [c.reference_id == found[subject]["id"], c.reference_table == plan.values["reference_table"],
                 c.activity == "I"]
    row = conn.execute(sa.select(table).where(*where).order_by(*table.primary_key.columns).limit(1)).first()
    return None if row is None else dict(row._mapping)


def locate_patient(target: SqlTarget, plans: list[RowPlan], identity: Identity,
                   history_tables: dict[str, int]) -> Placement | None:
    with target.engine.connect() as conn:
        person_id = _person_of_canary(conn, target, identity)
        if person_id is None:
            return None
        found: dict[str, dict[str, Any]] = {}
        for plan in plans:  # in insertion order: every row's subject is found before it
            row = _find(conn, target, plan, found, person_id)
            if row is not None:
                found[plan.name] = row
        rows = [placement_row(plan, found[plan.name]) for plan in plans if plan.name in found]
        if "patient" in found:
            rows += footprint_rows(conn, target, found["patient"]["id"], history_tables)
    return Placement(rows=tuple(rows))


def footprint_rows(conn: sa.Connection, target: SqlTarget, patient_id: Any,
                   history_tables: dict[str, int]) -> list[dict[str, Any]]:
    """The requests of the canary's patient, walked down from ``sample_human`` (nobody else's rows)."""
    human = target.table("sample_human")
    if human is None:
        return []
    out: list[dict[str, Any]] = []

    def take(table_name: str, where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        table = target.table(table_name)
        found = [dict(r._mapping) for r in conn.execute(sa.select(table).where(where).order_by(table.c.id))]
        for row in found:
            out.append(_placed(table_name, row))
            if table_name in history_tables:
                history = target.table("history")
                for audit in conn.execute(sa.select(history).where(
                        history.c.reference_table == history_tables[table_name],
                        history.c.activity.in_(("I", "U")), history.c.reference_id == row["id"]).order_by(history.c.id)):
                    out.append(_placed("history", dict(audit._mapping)))
        return found

    humans = [dict(r._mapping) for r in conn.execute(sa.select(human).where(human.c.patient_id == patient_id))]
    for link in humans:
        take("sample", target.table("sample").c.id == link["samp_id"])
        items = take("sample_item", target.table("sample_item").c.samp_id == link["samp_id"])
        analyses = take("analysis", target.table("analysis").c.sampitem_id.in_([i["id"] for i in items]))
        out.append(_placed("sample_human", link))
        take("result", target.table("result").c.analysis_id.in_([a["id"] for a in analyses]))
    return out


def _placed(table: str, row: dict[str, Any]) -> dict[str, Any]:
    plan = RowPlan(table=table, key=("id",), values={name: None for name in row if name != "id"},
                   unchecked=frozenset({"lastupdated"}))
    return placement_row(plan, row)
