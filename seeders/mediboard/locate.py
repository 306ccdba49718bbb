"""A planted patient's rows read back from the database, in the order the seeder inserted them.

``canary locate`` needs this when a canary was written but its placement was
never recorded (a crash between the insert and the registry): the patient is
found by NIR or e-mail, then each row it owns through its links, in the order
of rows.build_rows, so that retire deletes them last first.
"""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa

from seeders.mediboard.host import MediboardHost
from seeders.mediboard.rows import UNCHECKED
from seeders.sql.values import to_json

Read = Callable[[sa.Select], list[dict[str, Any]]]


def placement_rows(read: Read, tables: dict[str, sa.Table], host: MediboardHost, patient: dict[str, Any],
                   class_ids: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """``class_ids``: object_class ids of the footprint's classes; footprint rows are read when tables has them."""
    out: list[dict[str, Any]] = []
    schema = host.schema

    def add(table: str, row: dict[str, Any]) -> None:
        key = next(c.name for c in tables[table].primary_key.columns)
        placed: dict[str, Any] = {"table": table, "key": {key: to_json(row[key])},
                                  "values": {k: to_json(v) for k, v in row.items() if k != key}}
        if table in UNCHECKED:
            placed["unchecked"] = sorted(UNCHECKED[table])
        out.append(placed)

    def add_entries(entries: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> None:
        for table, entry, data in entries:
            add(table, entry)
            for row in data:
                add("user_action_data", row)

    def with_log(table: str, row: dict[str, Any], object_class: str, user_id: int | None = None) -> None:
        add(table, row)
        entries = _entries(read, tables, host, object_class, row[next(iter(tables[table].primary_key)).name],
                           user_id, class_ids)
        add_entries([e for e in entries if e[1]["type"] == "create"][:1])

    pid = patient["patient_id"]
    add("patients", patient)
    entries = _entries(read, tables, host, "CPatient", pid)
    add_entries([e for e in entries if e[1]["type"] == "create"][:1])
    if schema.signatures:
        sign = tables["patient_signature"]
        for row in read(sa.select(sign).where(sign.c.patient_id == pid).order_by(sign.c.patient_signature_id)):
            add("patient_signature", row)
    if schema.sources:
        source = tables["source_identite"]
        for row in read(sa.select(source).where(source.c.patient_id == pid).order_by(source.c.source_identite_id)):
            with_log("source_identite", row, "CSourceIdentite")
        # The two stores of the creation (status, source), in the same second as the create.
        created = entries[0][1]["date"] if entries else None
        add_entries([e for e in entries[1:3] if e[1]["type"] == "store" and e[1]["date"] == created])
    idex = tables["id_sante400"]
    for row in read(sa.select(idex).where(idex.c.object_class == "CPatient", idex.c.object_id == pid,
                                          idex.c.tag == (host.ipp_tag or ""))):
        if schema.idex_logged:
            with_log("id_sante400", row, "CIdSante400")
        else:
            add("id_sante400", row)
    dossier, antecedent = tables["dossier_medical"], tables["antecedent"]
    for record in read(sa.select(dossier).where(dossier.c.object_class == "CPatient", dossier.c.object_id == pid)):
        with_log("dossier_medical", record, "CDossierMedical")
        for row in read(sa.select(antecedent).where(antecedent.c.dossier_medical_id == record["dossier_medical_id"])
                        .order_by(antecedent.c.antecedent_id)):
            with_log("antecedent", row, "CAntecedent")
    if "consultation" in tables and "constantes_medicales" in tables:
        # The footprint (footprint.py): each consultation, then its vital signs, by their creators.
        consult, measures = tables["consultation"], tables["constantes_medicales"]
        for row in read(sa.select(consult).where(consult.c.patient_id == pid).order_by(consult.c.consultation_id)):
            with_log("consultation", row, "CConsultation", row["owner_id"])
            for taken in read(sa.select(measures).where(
                    measures.c.context_class == "CConsultation", measures.c.context_id == row["consultation_id"])
                    .order_by(measures.c.constantes_medicales_id)):
                with_log("constantes_medicales", taken, "CConstantesMedicales", taken["user_id"])
    return out


def _entries(read: Read, tables: dict[str, sa.Table], host: MediboardHost, object_class: str, object_id: int,
             user_id: int | None = None, class_ids: dict[str, int] | None = None,
             ) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """The creating user's log entries of one object, oldest first (create first), with their data rows."""
    user = host.user_id if user_id is None else user_id
    if host.log_table == "user_action":
        actions, data = tables["user_action"], tables["user_action_data"]
        rows = read(sa.select(actions).where(
            actions.c.object_class_id == {**host.class_ids, **(class_ids or {})}[object_class],
            actions.c.object_id == object_id, actions.c.user_id == user).order_by(actions.c.user_action_id))
        return [("user_action", row, read(sa.select(data).where(data.c.user_action_id == row["user_action_id"])
                                          .order_by(data.c.user_action_data_id))) for row in rows]
    log = tables["user_log"]
    rows = read(sa.select(log).where(log.c.object_class == object_class, log.c.object_id == object_id,
                                     log.c.user_id == user).order_by(log.c.user_log_id))
    return [("user_log", row, []) for row in rows]
