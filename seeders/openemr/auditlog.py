"""The audit ``log`` rows OpenEMR writes when its new-patient form creates a patient.

src/Common/Logging/EventAuditLogger.php:

* ``auditSQLEvent`` logs every INSERT run through ``sqlInsert`` on a patient
  table (LOG_TABLES: patient_data, employer_data, history_data,
  insurance_data... -> event ``patient-record-insert``) when the globals
  ``enable_auditlog`` and ``audit_events_patient-record`` are on (both are by
  default). ``comments`` is the statement, then `` (`` + each bind as
  ``'value',`` + ``)`` (its ``rtrim`` result is discarded, so the last comma
  stays); the category comes from ``eventCategoryFinder``; ``patient_id`` is
  the session's pid: the previously opened patient for the patient_data
  insert (``setpid`` runs after it), the new one afterwards.
* ``PatientSessionUtil::setPid`` (``setpid``) logs ``newEvent('view', ...)``
  for the new pid, whatever the globals say; so does
  ``PatientAccessOnsiteService::saveCredentials`` with
  ``newEvent('patient-access', ..., 'updated credentials', $pid)`` when staff
  create portal credentials.
* ``recordLogItem`` stores ``comments`` base64-encoded, then a
  ``log_comment_encrypt`` row (log_id, encrypt 'No', checksum, checksum_api '',
  version 4) whose checksum is ``hash('sha3-512', implode($logEntry))``: the
  13 values of the log row, in insert order, concatenated with no separator
  and no key. Anyone can recompute it, so the seeder writes it as OpenEMR does.

Not written: the SELECT and http-request rows (``audit_events_query``,
``audit_events_http-request``) of the screens staff go through, the
``patient-record-update`` of ``updateDupScore``, and the SQL-audit rows of the
day's footprint (encounter, vitals, issues, appointment).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan

CATEGORIES = {
    "patient_data": "Patient Demographics",
    "employer_data": "Patient Demographics",
    "history_data": "Social and Family History",
    "insurance_data": "Patient Insurance",
}
CREDENTIALS = b"updated credentials"  # the comment saveCredentials logs
# mysqli_real_escape_string, which add_escape_custom calls on each bind.
_ESCAPES = {0: b"\\0", 10: b"\\n", 13: b"\\r", 92: b"\\\\", 39: b"\\'", 34: b'\\"', 26: b"\\Z"}


@dataclass(frozen=True, slots=True)
class LogContext:
    """Who is logged in while the patient is created."""

    user: str  # users.username ($_SESSION['authUser'])
    group: str  # $_SESSION['authProvider']
    previous_pid: int  # the patient open in the session before (patient_id of the patient_data insert)


def php_text(value: Any) -> bytes:
    """A value as PHP turns it into a string (implode, string binds): NULL and false are ''."""
    if value is None or value is False:
        return b""
    if value is True:
        return b"1"
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S").encode()
    return str(value).encode("utf-8")


def sql_comment(statement: str, binds: list[Any] | None) -> bytes:
    """What auditSQLEvent logs for a statement and its binds."""
    text = statement.strip().encode("utf-8")
    if binds:
        text += b" (" + b"".join(b"'" + escape(php_text(v)) + b"'," for v in binds) + b")"
    return text


def checksum(entry: list[Any]) -> str:
    """hash('sha3-512', implode($logEntry)) of recordLogItem."""
    return hashlib.sha3_512(b"".join(php_text(v) for v in entry)).hexdigest()


def log_rows(n: int | str, when: datetime, event: str, category: str, context: LogContext, comment: bytes,
             patient_id: int) -> list[RowPlan]:
    """One ``log`` row and its ``log_comment_encrypt`` row, as recordLogItem inserts them."""
    date = when.strftime("%Y-%m-%d %H:%M:%S")
    comments = base64.b64encode(comment).decode("ascii")
    entry = [date, event, category, context.user, context.group, comments, "", patient_id, 1, "", "open-emr",
             None, None]
    names = ("date", "event", "category", "user", "groupname", "comments", "user_notes", "patient_id", "success",
             "crt_user", "log_from", "menu_item_id", "ccda_doc_id")
    alias = f"log_{n}"
    values = {**dict(zip(names, entry)), "date": when}
    return [
        RowPlan("log", ("id",), values, generated={"id": Generated(AUTOINCREMENT)}, alias=alias),
        RowPlan("log_comment_encrypt", ("id",),
                {"encrypt": "No", "checksum": checksum(entry), "checksum_api": "", "version": 4},
                generated={"id": Generated(AUTOINCREMENT)}, refs={"log_id": Ref(alias, "id")},
                alias=f"log_checksum_{n}"),
    ]


def audited(rows: list[RowPlan], context: LogContext, pid: int, when: datetime,
            insert_text: dict[str, Any]) -> list[RowPlan]:
    """``rows`` with the log rows OpenEMR adds after each audited insert, and the ``view`` of setpid.

    ``insert_text`` maps a table to a function(row values) -> (statement, binds or None).
    """
    out: list[RowPlan] = []
    for row in rows:
        out.append(row)
        build = insert_text.get(row.table)
        if build is None:
            continue
        statement, binds = build(row.values)
        first = row.table == "patient_data"
        out += log_rows(len(out), when, "patient-record-insert", CATEGORIES[row.table], context,
                        sql_comment(statement, binds), context.previous_pid if first else pid)
        if first:  # new_comprehensive_save.php: setpid($pid) right after the patient insert
            out += log_rows(len(out), when, "view", "view", context, b"", pid)
    return out


def view_only(rows: list[RowPlan], context: LogContext, pid: int, when: datetime) -> list[RowPlan]:
    """``rows`` with only the ungated ``view`` row of setpid (a site that does not audit SQL)."""
    at = next(i for i, row in enumerate(rows) if row.table == "patient_data") + 1
    return rows[:at] + log_rows(at, when, "view", "view", context, b"", pid) + rows[at:]


def credentials_logged(rows: list[RowPlan], context: LogContext, pid: int) -> list[RowPlan]:
    """``rows`` with the row PatientAccessOnsiteService::saveCredentials logs after the portal account:
    ``newEvent('patient-access', ..., 'updated credentials', $pid)``, ungated, at the account's time."""
    out: list[RowPlan] = []
    for row in rows:
        out.append(row)
        if row.table == "patient_access_onsite" and row.values.get("date_created") is not None:
            out += log_rows(len(out), row.values["date_created"], "patient-access", "patient-access", context,
                            CREDENTIALS, pid)
    return out


def service_insert(table: str, values: dict[str, Any], order: list[str]) -> tuple[str, list[Any]]:
    """PatientService/BaseService insert: " INSERT INTO t SET " + buildInsertColumns ("`a` = ? , `b` = ? ")."""
    names = [n for n in order if n in values] + [n for n in values if n not in order]
    keyset = ", ".join(f"`{name}` = ? " for name in names)
    return f" INSERT INTO {table} SET " + keyset, ["" if values[n] is None else values[n] for n in names]


def employer_insert(values: dict[str, Any]) -> tuple[str, None]:
    """updateEmployerData($pid, $new, true): the values inlined, no binds."""
    sets = f"pid = '{values.get('pid')}', date = NOW()"
    for name, value in values.items():
        if name not in ("pid", "date", "created_by"):
            sets += f", `{name}` = '" + escape(php_text(value)).decode("utf-8") + "'"
    return "INSERT INTO employer_data SET " + sets, None


def escape(raw: bytes) -> bytes:
    return b"".join(_ESCAPES.get(b, bytes((b,))) for b in raw)
