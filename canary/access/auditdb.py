"""Applications' own audit tables: which columns say who opened which patient, and reading them.

An ``AuditTable`` names an audit table and its columns: a row id that only
grows (the poll position), the time, the user, the patient, the columns whose
text says what was done, and optionally the client address. Built in:

* openemr: ``log`` (``EventAuditLogger``: ``event`` such as
  ``patient-record-select``, ``category``, ``user`` the login, ``patient_id``
  the pid) and ``api_log`` (REST/FHIR API calls: ``method``, ``request``,
  ``user_id``, ``patient_id``, ``ip_address``), the latter only where present;
* mediboard, per version (whichever of these exist; every one is optional):
  its access log of medical records, ``log_access_medical_data`` (admin
  module 1.0.77 on, ``CLogAccessMedicalData::logForObject``: one row per user,
  object and rounded time each time a patient's record, stay, consultation or
  operation is opened, when ``enable_log_access`` is on) or its predecessor
  ``log_access_medical_object`` (admin 1.0.35-1.0.76, the same columns
  without ``context``); and its user log of changes, ``user_log``
  (``CStoredObject::doLog``: ``type`` create, store, merge, delete) or
  ``user_action`` (system 1.2.66 on, with ``activer_user_action``; the class
  is an ``object_class`` id). Rows are about an object (``object_class``,
  ``object_id``): a ``CPatient``, ``CSejour``, ``CConsultation`` or
  ``COperation`` row names a canary only when that object is one of the rows
  its seeder wrote (see canary/access/poll.py);
* any source of the generic ``sql`` seeder whose mapping file has an
  ``[audit]`` table (``table``, ``id``, ``time``, ``user``, ``patient``,
  ``action`` and optional ``address``, ``schema``).

Only the named columns are read (never OpenEMR's ``comments``, which can
hold query text with patient data). Rows without a patient are skipped by the
query itself.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Mapping

import sqlalchemy as sa

from canary.access.event import AccessEvent, Action, PatientRef, clean_text
from canary.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,63}$")
# Words of an action column -> Action; the first listed kind found wins (an "export" that
# also says "select" is an export).
_WORDS: tuple[tuple[Action, tuple[str, ...]], ...] = (
    (Action.PRINT, ("print", "pdf", "imprim")),
    (Action.EXPORT, ("export", "download", "ccda", "ccr", "qrda", "disclos", "bulk")),
    (Action.QUERY, ("search", "query", "find", "recherche")),
    (Action.DELETE, ("delete", "suppr")),
    (Action.CREATE, ("insert", "create", "post", "new", "ajout")),
    (Action.UPDATE, ("update", "put", "patch", "edit", "modif", "store", "merge")),
    (Action.READ, ("select", "view", "read", "get", "open", "consult", "lecture", "patient-record")),
)


@dataclass(frozen=True, slots=True)
class AuditTable:
    name: str
    id: str  # a row id that only grows: the poll position
    time: str
    user: str
    patient: str
    action: tuple[str, ...]  # columns whose words say what was done
    address: str | None = None
    schema: str | None = None
    optional: bool = False  # polled only when the table exists (api_log: newer OpenEMR)
    # Mediboard: the column naming the class of the object the row is about; only MEDIBOARD_CLASSES
    # are read, and ``patient`` holds that object's id.
    object_class: str | None = None
    class_ids: bool = False  # object_class holds an id of the ``object_class`` table (user_action)
    every_row: Action | None = None  # what every row records when no column says it (access logs: reads)
    rounding: timedelta = timedelta(0)  # the application rounds its times down by up to this

    def columns(self) -> list[str]:
        return [c for c in (self.id, self.time, self.user, self.patient, *self.action, self.address,
                            self.object_class) if c]


# Mediboard classes whose rows are about one patient -> the table of that object (a canary's rows).
MEDIBOARD_CLASSES = {"CPatient": "patients", "CSejour": "sejour", "CConsultation": "consultation",
                     "COperation": "operations"}
_MEDIBOARD_ACCESS = dict(id="access_id", time="datetime", user="user_id", patient="object_id",
                         action=("context",), object_class="object_class", every_row=Action.READ,
                         rounding=timedelta(days=1), optional=True)  # round_datetime: 1m, 10m, 1h or 1d


BUILTIN: dict[str, tuple[AuditTable, ...]] = {
    "openemr": (
        AuditTable("log", "id", "date", "user", "patient_id", ("event", "category")),
        AuditTable("api_log", "id", "created_time", "user_id", "patient_id", ("method", "request"),
                   address="ip_address", optional=True),
    ),
    "mediboard": (
        AuditTable("log_access_medical_data", **_MEDIBOARD_ACCESS),
        AuditTable("log_access_medical_object", **{**_MEDIBOARD_ACCESS, "action": ()}),
        AuditTable("user_log", "user_log_id", "date", "user_id", "object_id", ("type",), address="ip_address",
                   object_class="object_class", optional=True),
        AuditTable("user_action", "user_action_id", "date", "user_id", "object_id", ("type",),
                   address="ip_address", object_class="object_class_id", class_ids=True, optional=True),
    ),
}


def audit_tables(seeder: str, mapping: str | None, base_dir: Path | None = None) -> tuple[AuditTable, ...]:
    """The audit tables of a source: built in for its seeder, or from its mapping file's [audit]."""
    if seeder in BUILTIN:
        return BUILTIN[seeder]
    if not mapping:
        return ()
    path = Path(mapping)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"mapping file {path} cannot be read: {err}") from None
    raw = data.get("audit")
    return () if raw is None else (parse_audit(raw, f"{path} [audit]"),)


def parse_audit(raw: Any, where: str) -> AuditTable:
    """A mapping file's ``[audit]`` table; ConfigError (one line) when unusable."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    known = {"table", "id", "time", "user", "patient", "action", "address", "schema"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    action = raw.get("action", ())
    action = (action,) if isinstance(action, str) else tuple(action) if isinstance(action, list) else None
    values = {k: raw.get(k) for k in ("table", "id", "time", "user", "patient")}
    for key, value in values.items():
        if not isinstance(value, str) or not _NAME.match(value):
            raise ConfigError(f"{where}: {key} must name a column (or the table), e.g. {key} = \"...\"")
    for key in ("address", "schema"):
        if raw.get(key) is not None and not (isinstance(raw[key], str) and _NAME.match(raw[key])):
            raise ConfigError(f"{where}: {key} must be a name")
    if not action or not all(isinstance(a, str) and _NAME.match(a) for a in action):
        raise ConfigError(f"{where}: action must name one or more columns, e.g. action = [\"event\"]")
    return AuditTable(name=values["table"], id=values["id"], time=values["time"], user=values["user"],
                      patient=values["patient"], action=action, address=raw.get("address"),
                      schema=raw.get("schema"))


def exists(connection: sa.Connection, table: AuditTable) -> bool:
    """The table is there and this account sees it (MariaDB answers DESCRIBE of a table the
    read-only account has no grant on with "command denied": to it, the table is not there)."""
    try:
        return sa.inspect(connection).has_table(table.name, schema=table.schema)
    except sa.exc.DBAPIError as err:
        if getattr(err.orig, "args", (None,))[0] in (1142, 1044, 1049):  # table/db access denied, unknown db
            return False
        raise


def _table(table: AuditTable) -> sa.TableClause:
    return sa.table(table.name, *(sa.column(c) for c in table.columns()), schema=table.schema)


def last_id(connection: sa.Connection, table: AuditTable) -> int:
    t = _table(table)
    return int(connection.execute(sa.select(sa.func.max(t.c[table.id]))).scalar() or 0)


def first_id_since(connection: sa.Connection, table: AuditTable, since: datetime) -> int:
    """The position just before the first row at or after ``since`` (naive, the table's time)."""
    t = _table(table)
    first = connection.execute(sa.select(sa.func.min(t.c[table.id])).where(t.c[table.time] >= since)).scalar()
    return int(first) - 1 if first is not None else last_id(connection, table)


def classes(connection: sa.Connection, table: AuditTable) -> dict[Any, str]:
    """What ``table.object_class`` holds for each MEDIBOARD_CLASSES name (itself, or its
    ``object_class`` id on user_action sites); empty for tables without a class column."""
    if table.object_class is None:
        return {}
    if not table.class_ids:
        return {name: name for name in MEDIBOARD_CLASSES}
    known = sa.table("object_class", sa.column("object_class_id"), sa.column("object_class"))
    query = sa.select(known.c.object_class_id, known.c.object_class).where(
        known.c.object_class.in_(list(MEDIBOARD_CLASSES)))
    return {row[0]: row[1] for row in connection.execute(query)}


def read_rows(connection: sa.Connection, table: AuditTable, after: int, limit: int,
              kinds: Mapping[Any, str] | None = None) -> list[Mapping[str, Any]]:
    """Rows with an id above ``after`` that name a patient, in id order, at most ``limit``.

    With ``kinds`` (``classes()``), only rows about those classes; each row's class name is
    put in it under ``"class"``.
    """
    t = _table(table)
    patient = t.c[table.patient]
    query = (sa.select(*(t.c[c] for c in table.columns())).where(t.c[table.id] > after)
             .where(patient.is_not(None)).order_by(t.c[table.id]).limit(limit))
    if table.object_class is not None:
        query = query.where(t.c[table.object_class].in_(list(kinds or {}) or [None]))
    rows = [dict(row) for row in connection.execute(query).mappings()]
    if table.object_class is not None:
        for row in rows:
            row["class"] = (kinds or {}).get(row[table.object_class])
    return rows


def row_event(table: AuditTable, row: Mapping[str, Any], source: str, zone: tzinfo) -> AccessEvent | None:
    """The access a row records; None when it names no patient (0, empty)."""
    value = row.get(table.patient)
    text = str(value).strip() if value is not None else ""
    if text in ("", "0"):
        return None
    words = " ".join(str(row.get(c) or "") for c in table.action)
    action = action_of(words)
    if action is Action.OTHER and table.every_row is not None:
        action = table.every_row
    kind = row.get("class")  # Mediboard: the class of the object; not a patient: resolved by the poll
    described = " ".join(w for w in (kind, words.strip()) if w)
    return AccessEvent(
        action=action, at=row_time(row.get(table.time), zone),
        user=clean_text(str(row[table.user])) if row.get(table.user) not in (None, "") else None,
        user_name=None, workstation=None,
        address=address_text(row.get(table.address)) if table.address else None,
        audit_source=source, event_code=clean_text(f"{table.name}: {described}", 200), outcome=None,
        patients=(PatientRef(text[:128], authority=OBJECT + kind if kind else None),),
        format=table.name,
    )


# Authority of a PatientRef that is the id of a Mediboard object (a CPatient's too): resolved by the poll
# through the rows canary's seeder wrote, so that a number names nothing else (another canary's IPP...).
OBJECT = "mediboard-object:"


def address_text(value: Any) -> str | None:
    """An address column as text: Mediboard keeps ``inet_pton`` bytes (4 or 16), others text."""
    if value in (None, b"", ""):
        return None
    if isinstance(value, (bytes, bytearray)):
        if len(value) in (4, 16):
            return str(ipaddress.ip_address(bytes(value)))
        value = bytes(value).decode("utf-8", "replace")
    return clean_text(str(value))


def action_of(words: str) -> Action:
    words = words.lower()
    for action, markers in _WORDS:
        if any(marker in words for marker in markers):
            return action
    return Action.OTHER


def row_time(value: Any, zone: tzinfo) -> datetime | None:
    """A table's time as UTC: naive times are the application's local time (``zone``)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(timezone.utc)


def naive_local(moment: datetime, zone: tzinfo) -> datetime:
    """A UTC moment as the application writes its times (naive local)."""
    return moment.astimezone(zone).replace(tzinfo=None)


