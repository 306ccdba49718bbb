"""The OpenELIS metadata a canary patient refers to, read once at ``open()``.

Turns the options into ids and decisions, from the host's own data:

* the schema's release and features (``seeders.openelis.version``);
* identity types (``patient_identity_type``) the canary gets rows of: by
  default those most of the host's newest patients have, and always ``GUID``
  where ``patient.fhir_uuid`` exists (``PatientServiceImpl.persistPatientData``
  writes it for every new patient); never ``NATIONAL``: the forms keep the
  national id in ``patient.national_id`` only;
* address parts (``address_part``): the ``commune`` and ``village`` rows the
  patient form always inserts;
* audit trail: which inserts the host's OpenELIS version records in
  ``history`` (activity ``I``), seen from its newest rows;
* the system user recorded in that history.

Nothing here writes.
"""

from __future__ import annotations

from collections import Counter

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canary.errors import SourceError
from seeders.openelis.version import SchemaVersion
from seeders.sql.target import SqlTarget

SCHEMA = "clinlims"
AUTO, NONE = "auto", "none"
# Identity types the seeder has a value for, in the order PatientServiceImpl.persistIdentityTypes inserts them.
GUID, ST, AKA, SUBJECT = "GUID", "ST", "AKA", "SUBJECT"
FORM_ORDER = (ST, AKA, SUBJECT, GUID)
# Tables whose inserts the application may log, under their reference_tables names: the services
# that set auditTrailLog (PersonServiceImpl, PatientServiceImpl, SampleServiceImpl, SampleItemServiceImpl,
# AnalysisServiceImpl, ResultServiceImpl; identities only before OpenELIS Global 2).
AUDITED = {"person": "PERSON", "patient": "PATIENT", "patient_identity": "PATIENT_IDENTITY", "sample": "SAMPLE",
           "sample_item": "SAMPLE_ITEM", "analysis": "ANALYSIS", "result": "RESULT"}
SAMPLE_SIZE = 200


@dataclass(frozen=True, slots=True)
class OpenElisSetup:
    sys_user_id: int
    identity_types: dict[str, int]  # name -> id, in insertion order
    address_parts: dict[str, int]  # "commune"/"village" -> address_part.id
    history_tables: dict[str, int]  # table -> reference_tables.id, for inserts the host logs
    version: SchemaVersion

    @property
    def has_fhir_uuid(self) -> bool:
        return self.version.has_fhir_uuid


class _Reader:
    def __init__(self, target: SqlTarget, conn: sa.Connection) -> None:
        self.target, self.conn = target, conn

    def error(self, message: str) -> SourceError:
        return SourceError(f"source '{self.target.source_name}': {message}")

    def table(self, name: str) -> sa.Table:
        table = self.target.table(name)
        if table is None:
            raise self.error(f"no table {SCHEMA}.{name}: this database does not look like OpenELIS")
        return table

    def rows(self, query: sa.Select) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in self.conn.execute(query)]


def names_option(value: str | None) -> list[str] | str:
    """AUTO, NONE, or the listed names (comma-separated, upper case as OpenELIS names them)."""
    text = (value or AUTO).strip()
    if text.lower() in (AUTO, NONE):
        return text.lower()
    return [name.strip().upper() for name in text.split(",") if name.strip()]


def read_setup(target: SqlTarget, options: dict[str, str | None], version: SchemaVersion) -> OpenElisSetup:
    with target.engine.connect() as conn:
        reader = _Reader(target, conn)
        has_fhir_uuid = version.has_fhir_uuid
        return OpenElisSetup(
            sys_user_id=_sys_user(reader, options.get("sys_user_id")),
            identity_types=_identity_types(reader, names_option(options.get("identity_types")), has_fhir_uuid),
            address_parts=_address_parts(reader),
            history_tables=_history_tables(reader, names_option(options.get("history")), has_fhir_uuid),
            version=version,
        )


def _sys_user(reader: _Reader, wanted: str | None) -> int:
    text = (wanted or "auto").strip()
    if text.lower() == "auto":
        # Whoever the newest audit entries name (a clerk, usually): a constant admin on the
        # canaries' history rows alone would set them apart.
        # Patient creations when the audit trail tells them apart (lab staff result and validate too).
        history, refs = reader.target.table("history"), reader.target.table("reference_tables")
        rows = []
        if history is not None:
            query = sa.select(history.c.sys_user_id).order_by(history.c.id.desc()).limit(SAMPLE_SIZE)
            patient_ref = None if refs is None else reader.conn.execute(sa.select(refs.c.id).where(
                sa.func.upper(sa.func.trim(refs.c.name)) == "PATIENT")).scalar()
            if patient_ref is not None:
                rows = reader.rows(query.where(history.c.reference_table == patient_ref, history.c.activity == "I"))
            rows = rows or reader.rows(query)
        counts = Counter(row["sys_user_id"] for row in rows if row["sys_user_id"] is not None)
        text = str(max(counts, key=lambda user: (counts[user], -user))) if counts else "1"
    if not text.isdigit():
        raise reader.error(f"sys_user_id must be a system_user id (a number), not {text!r}")
    users = reader.table("system_user")
    if not reader.rows(sa.select(users.c.id).where(users.c.id == int(text))):
        raise reader.error(f"no system_user with id {text}: set --set sys_user_id=ID")
    return int(text)


def _newest_patients(reader: _Reader) -> list[Any]:
    patient = reader.table("patient")
    return [row["id"] for row in reader.rows(sa.select(patient.c.id).order_by(patient.c.id.desc()).limit(SAMPLE_SIZE))]


def _identity_types(reader: _Reader, wanted: list[str] | str, has_fhir_uuid: bool) -> dict[str, int]:
    types_table = reader.table("patient_identity_type")
    known = {row["identity_type"].strip().upper(): int(row["id"])
             for row in reader.rows(sa.select(types_table.c.id, types_table.c.identity_type))
             if row["identity_type"]}
    supported = FORM_ORDER
    if wanted == NONE:
        chosen: set[str] = set()
    elif wanted == AUTO:
        chosen = _types_most_patients_have(reader, known, supported, has_fhir_uuid)
    else:
        for name in wanted:
            if name not in supported:
                raise reader.error(f"identity type {name!r} cannot be written (the seeder has values for "
                                   f"{', '.join(supported)}): fix --set identity_types=")
            if name not in known:
                raise reader.error(f"no patient_identity_type {name!r} in the database (found: "
                                   f"{', '.join(sorted(known))}): fix --set identity_types=")
        chosen = set(wanted)
    if has_fhir_uuid:
        chosen.add(GUID)  # the GUID identity carries fhir_uuid: OpenELIS Global 2 always writes it
    return {name: known[name] for name in supported if name in chosen and name in known}


def _types_most_patients_have(reader: _Reader, known: dict[str, int], supported: tuple[str, ...],
                              has_fhir_uuid: bool) -> set[str]:
    newest = _newest_patients(reader)
    if not newest:
        # A fresh install: what the stock patient form writes (OpenELIS Global 2 adds a GUID).
        return {GUID} if has_fhir_uuid else set()
    identity = reader.table("patient_identity")
    rows = reader.rows(sa.select(identity.c.patient_id, identity.c.identity_type_id)
                       .where(identity.c.patient_id.in_(newest)).distinct())
    by_type: dict[int, int] = {}
    for row in rows:
        by_type[int(row["identity_type_id"])] = by_type.get(int(row["identity_type_id"]), 0) + 1
    return {name for name in supported if name in known and 2 * by_type.get(known[name], 0) >= len(newest)}


def _address_parts(reader: _Reader) -> dict[str, int]:
    parts = reader.table("address_part")
    found = {row["part_name"]: int(row["id"]) for row in reader.rows(sa.select(parts.c.id, parts.c.part_name))}
    return {name: found[name] for name in ("commune", "village") if name in found}


def _history_tables(reader: _Reader, wanted: list[str] | str, has_fhir_uuid: bool) -> dict[str, int]:
    """Tables whose inserts get an audit row, with their reference_tables id."""
    if wanted == NONE or reader.target.table("history") is None:
        return {}
    refs = reader.table("reference_tables")
    keeping = {row["name"].strip().upper(): int(row["id"]) for row in reader.rows(
        sa.select(refs.c.id, refs.c.name).where(refs.c.keep_history == "Y")) if row["name"]}
    if wanted != AUTO:
        unknown = [name for name in wanted if name not in AUDITED.values()]
        if unknown:
            raise reader.error(f"history {unknown[0]!r} is not one of {', '.join(AUDITED.values())}: fix --set history=")
        return {table: keeping[name] for table, name in AUDITED.items() if name in wanted and name in keeping}
    chosen = {}
    for table, name in AUDITED.items():
        if name in keeping and _host_logs_inserts(reader, table, keeping[name], has_fhir_uuid):
            chosen[table] = keeping[name]
    return chosen


def _host_logs_inserts(reader: _Reader, table_name: str, reference_table: int, has_fhir_uuid: bool) -> bool:
    table, history = reader.table(table_name), reader.table("history")
    newest = [row["id"] for row in reader.rows(sa.select(table.c.id).order_by(table.c.id.desc()).limit(50))]
    if not newest:
        # Fresh install: OpenELIS Global 2 logs person and patient inserts, older versions identities too.
        return table_name != "patient_identity" or not has_fhir_uuid
    logged = reader.rows(sa.select(history.c.id).where(
        history.c.reference_table == reference_table, history.c.activity == "I",
        history.c.reference_id.in_(newest)).limit(1))
    return bool(logged)
