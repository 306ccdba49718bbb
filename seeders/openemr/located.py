"""Rebuild the placement of a canary whose placement was lost, from what is in the database.

``OpenEmrSeeder.locate`` finds the patient (by NIR or e-mail); this module
finds every row planted with it, in the order they were planted: its uuids,
employer, history and insurance rows, allergies, the day's footprint, portal
credentials, and the audit log rows written along (the ``patient_data``
insert is logged under the previous session pid: it is found by the uuid in
its binds).
"""

from __future__ import annotations

import base64
from typing import Any, Callable

import sqlalchemy as sa

from seeders.openemr.auditlog import CREDENTIALS, escape
from seeders.openemr.rows import UNCHECKED
from seeders.sql.values import to_json

ReadRows = Callable[[sa.Select], list[dict[str, Any]]]


def rows_of(patient: dict[str, Any], tables: dict[str, sa.Table], read_rows: ReadRows) -> list[dict[str, Any]]:
    """Placement rows of a planted patient, rebuilt from what is in the database, in planting order."""
    pid = patient["pid"]
    planted: list[dict[str, Any]] = []
    registry = tables["uuid_registry"]

    def add(table_name: str, row: dict[str, Any], key: tuple[str, ...]) -> None:
        if row.get("uuid") is not None and table_name != "uuid_registry":
            for reg in read_rows(sa.select(registry).where(registry.c.uuid == row["uuid"])):
                add("uuid_registry", reg, ("uuid",))
        skip = {"id", "pc_eid", "last_updated", "last_update", "modifydate"}
        placed: dict[str, Any] = {"table": table_name, "key": {k: to_json(row[k]) for k in key},
                                  "values": {k: to_json(v) for k, v in row.items() if k not in skip}}
        if table_name in UNCHECKED:
            placed["unchecked"] = sorted(UNCHECKED[table_name])
        planted.append(placed)

    def of_patient(name: str) -> list[dict[str, Any]]:
        table = tables.get(name)
        if table is None:
            return []
        order = [table.c.id] if "id" in table.c else []
        return read_rows(sa.select(table).where(table.c.pid == pid).order_by(*order))

    logs = _log_rows_of(patient, tables, read_rows)

    def logged(count: int) -> None:
        """The log rows written right after an audited insert, with their checksum rows."""
        for _ in range(count):
            if logs:
                row = logs.pop(0)
                add("log", row, ("id",))
                for check in read_rows(sa.select(tables["log_comment_encrypt"]).where(
                        tables["log_comment_encrypt"].c.log_id == row["id"])):
                    add("log_comment_encrypt", check, ("id",))

    add("patient_data", patient, ("pid",))
    logged(2)  # the insert, then the view of setpid
    for name in ("employer_data", "history_data", "insurance_data"):
        for row in of_patient(name):
            add(name, row, ("id",))
            logged(1)
    touches = of_patient("lists_touch")
    issues = of_patient("lists")
    for n, row in enumerate(r for r in issues if r["type"] == "allergy"):
        add("lists", row, ("id",))
        if n == 0:  # setListTouch runs after the first issue
            for touch in touches:
                add("lists_touch", touch, ("pid", "type"))
    # The day's footprint, in the order footprint_rows writes it.
    forms = {row["formdir"]: row for row in of_patient("forms")}
    views = _visit_views(patient, tables, read_rows)
    for name, formdir in (("form_encounter", "newpatient"), ("form_vitals", "vitals")):
        for row in of_patient(name):
            if name == "form_encounter" and views:  # the chart opened for the visit, logged just before
                logs[:0] = [views.pop(0)]
                logged(1)
            add(name, row, ("id",))
            if formdir in forms:
                add("forms", forms[formdir], ("id",))
    for row in (r for r in issues if r["type"] != "allergy"):
        add("lists", row, ("id",))
    events = tables.get("openemr_postcalendar_events")
    if events is not None:
        for row in read_rows(sa.select(events).where(events.c.pc_pid == str(pid))):
            add("openemr_postcalendar_events", row, ("pc_eid",))
    for row in of_patient("patient_access_onsite"):
        add("patient_access_onsite", row, ("id",))
        log = tables["log"]
        for entry in read_rows(sa.select(log).where(
                log.c.patient_id == pid, log.c.event == "patient-access", log.c.date == row.get("date_created"),
                log.c.comments == base64.b64encode(CREDENTIALS).decode("ascii")).order_by(log.c.id).limit(1)):
            logs[:0] = [entry]
            logged(1)
    return planted


def _log_rows_of(patient: dict[str, Any], tables: dict[str, sa.Table], read_rows: ReadRows) -> list[dict[str, Any]]:
    """The log rows of a patient's registration, in id order: the patient_data insert (logged
    under the previous session pid, found by the uuid in its binds), then those under its pid."""
    log, pid = tables["log"], patient["pid"]
    same_second = sa.select(log).where(log.c.date == patient["regdate"]).order_by(log.c.id)
    mine = read_rows(same_second.where(log.c.patient_id == pid,
                                             log.c.event.in_(["view", "patient-record-insert"])))
    marker = b"'" + escape(patient["uuid"] or b"") + b"',"
    insert = [row for row in read_rows(same_second.where(log.c.event == "patient-record-insert",
                                                               log.c.category == "Patient Demographics"))
              if _decoded(row["comments"]).startswith(b"INSERT INTO patient_data SET") and marker in
              _decoded(row["comments"])]
    return insert[:1] + mine


def _visit_views(patient: dict[str, Any], tables: dict[str, sa.Table], read_rows: ReadRows
                 ) -> list[dict[str, Any]]:
    """The 'view' rows of the chart opened for each visit (after the registration's second), in id order."""
    log = tables["log"]
    return read_rows(sa.select(log).where(log.c.patient_id == patient["pid"], log.c.event == "view",
                                          log.c.date > patient["regdate"]).order_by(log.c.id))


def _decoded(comments: str | None) -> bytes:
    try:
        return base64.b64decode(comments or "", validate=True)
    except ValueError:
        return b""
