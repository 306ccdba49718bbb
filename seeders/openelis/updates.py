"""The ``history`` ``U`` rows of the result entry and validation saves.

``AuditableBaseObjectServiceImpl.update`` reloads the row (``getBaseObjectDAO().get``),
and ``AuditTrailServiceImpl.saveHistory`` writes, when anything changed, a
``U`` row: the user of the save, ``timestamp`` = ``new Timestamp(System.currentTimeMillis())``,
``changes`` = ``getXMLFormat`` of one ``<field>previous value</field>`` line per
changed field (a field whose previous value was blank gives an empty line),
fields in the entity's declaration order (``getChanges``). The validation
controller loads each analysis in its own read-only transaction
(``AccessionValidationRestController.createUpdateList`` -> ``analysisService.get``),
so the reloaded one is a fresh instance and the ``U`` rows are written.

The changes of these status transitions hold only status ids and blank
lines, nothing of the row itself, so the site's own most frequent ``changes``
for each step is reused as it is, with the users who wrote them (the site's
biologists for validation). On a site with none, the text read from the
source: result entry on an analysis changes ``completedDate``,
``completedDateForDisplay`` (blank before) and ``statusId`` (Not Tested),
validation ``releasedDate``, ``releasedDateForDisplay`` (blank) and
``statusId`` (Technical Acceptance); the sample changes its ``statusId``
(Test Entered, then Testing Started).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from seeders.sql.target import SqlTarget

STEPS = ("result", "validation")
_SHARED = 0.5  # a changes text held by at least half the rows of a step is a habit, not a row's own data


@dataclass(frozen=True, slots=True)
class UpdateHabit:
    changes: bytes
    users: Counter  # system_user id -> U rows of this step


def source_changes(statuses: dict[tuple[str, str], int]) -> dict[tuple[str, str], bytes]:
    """(table, step) -> the changes text read from OpenELIS's source, with this site's status ids."""
    def status(kind: str, name: str) -> str:
        return str(statuses.get((kind, name), ""))
    return {
        ("analysis", "result"): f"\n\n<statusId>{status('ANALYSIS', 'Not Tested')}</statusId>\n".encode(),
        ("analysis", "validation"): f"\n\n<statusId>{status('ANALYSIS', 'Technical Acceptance')}</statusId>\n".encode(),
        ("sample", "result"): f"<statusId>{status('ORDER', 'Test Entered')}</statusId>\n".encode(),
        ("sample", "validation"): f"<statusId>{status('ORDER', 'Testing Started')}</statusId>\n".encode(),
    }


def read_update_habits(conn: sa.Connection, target: SqlTarget, history_tables: dict[str, int],
                       ids: dict[str, list[Any]]) -> dict[tuple[str, str], UpdateHabit]:
    """(table, step) -> the site's habit, from the U rows of its recent analyses and samples.

    The last U row of a row is its validation, the one before its result entry.
    """
    history = target.table("history")
    out: dict[tuple[str, str], UpdateHabit] = {}
    if history is None:
        return out
    for table in ("analysis", "sample"):
        if table not in history_tables or not ids.get(table):
            continue
        by_row: dict[Any, list[tuple[bytes, int]]] = defaultdict(list)
        for row in conn.execute(sa.select(history.c.reference_id, history.c.changes, history.c.sys_user_id).where(
                history.c.reference_table == history_tables[table], history.c.activity == "U",
                history.c.reference_id.in_(ids[table])).order_by(history.c.id)):
            by_row[row.reference_id].append((bytes(row.changes or b""), int(row.sys_user_id)))
        for step, position in (("validation", -1), ("result", -2)):
            picked = [updates[position] for updates in by_row.values() if len(updates) >= -position]
            if not picked:
                continue
            text, count = Counter(changes for changes, _ in picked).most_common(1)[0]
            if count >= _SHARED * len(picked):
                out[(table, step)] = UpdateHabit(text, Counter(user for changes, user in picked if changes == text))
    return out
