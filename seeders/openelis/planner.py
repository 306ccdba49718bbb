"""How one OpenELIS row and its audit row are described as ``RowPlan`` values.

Every table of the patient and sample path takes its id from its own
sequence (Hibernate ``SequenceStyleGenerator``); an insert the application
audits is followed by its ``history`` row (``AuditTrailServiceImpl.saveNewHistory``:
activity ``I``, ``changes`` NULL, ``timestamp`` = the entity's ``lastupdated``
just seeded), for the tables whose ``reference_tables`` row keeps history
(``setup.history_tables``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seeders.sql.rows import SEQUENCE, Generated, Ref, RowPlan
from seeders.sql.target import SqlTarget

SEQUENCES = {
    "person": "person_seq", "patient": "patient_seq", "patient_identity": "patient_identity_seq",
    "patient_contact": "patient_contact_seq", "history": "history_seq", "sample": "sample_seq",
    "sample_human": "sample_human_seq", "sample_item": "sample_item_seq", "analysis": "analysis_seq",
    "result": "result_seq",
}
# Columns verify does not compare: the application rewrites them on every save.
REWRITTEN = ("lastupdated",)


class Planner:
    def __init__(self, target: SqlTarget, history_tables: dict[str, int], sys_user_id: int) -> None:
        self.target, self.history_tables, self.sys_user_id = target, history_tables, sys_user_id

    def present(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """The values whose column exists in this version of the table."""
        columns = self.target.table(table).c
        return {name: value for name, value in values.items() if name in columns}

    def row(self, table: str, alias: str, values: dict[str, Any], refs: dict[str, Ref] | None = None) -> RowPlan:
        return RowPlan(table=table, key=("id",), alias=alias, values=self.present(table, values),
                       generated={"id": Generated(SEQUENCE, SEQUENCES[table])}, refs=refs or {},
                       unchecked=frozenset(REWRITTEN))

    def audited(self, table: str, alias: str, when: datetime, user: int | None = None) -> list[RowPlan]:
        """The ``history`` row of an insert into ``table`` (none when the host does not audit it)."""
        reference_table = self.history_tables.get(table)
        if reference_table is None:
            return []
        return [self.row("history", f"history_{alias}", {
            "sys_user_id": self.sys_user_id if user is None else user, "reference_table": reference_table,
            "timestamp": when, "activity": "I", "changes": None}, refs={"reference_id": Ref(alias, "id")})]

    def updated(self, table: str, alias: str, when: datetime, user: int, changes: bytes) -> list[RowPlan]:
        """The ``history`` ``U`` row of a later save of the row ``alias`` (none when the host does not audit it)."""
        reference_table = self.history_tables.get(table)
        if reference_table is None:
            return []
        return [self.row("history", f"history_u_{alias}_{when.isoformat()}", {
            "sys_user_id": user, "reference_table": reference_table, "timestamp": when, "activity": "U",
            "changes": changes}, refs={"reference_id": Ref(alias, "id")})]

    def inserted(self, table: str, alias: str, values: dict[str, Any], refs: dict[str, Ref] | None = None,
                 user: int | None = None, at: datetime | None = None) -> list[RowPlan]:
        """The row and, when audited, its history row stamped with the insert's ``lastupdated``.

        ``at`` is the insert's reading when the row is written in a later state (an analysis
        inserted at order entry and finalized at validation keeps the later ``lastupdated``).
        """
        when = values["lastupdated"] if at is None else at
        return [self.row(table, alias, values, refs), *self.audited(table, alias, when, user)]
