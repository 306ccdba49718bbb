"""How this OpenEMR site is set up: its version, the globals and the layout the new-patient form follows.

* ``version``: one row (v_major, v_minor, v_patch, v_realpatch, v_tag,
  v_database, v_acl) written by the installer and by each upgrade
  (sql_upgrade.php); the seeder refuses the versions it was not built for.
* ``globals``: the Administration > Config settings. Those that change what
  the new-patient form writes are read here (library/globals.inc.php gives
  their defaults when the row is absent).
* ``layout_options``: the DEM layout. interface/new/new_comprehensive_save.php
  posts every DEM field with ``uor > 0`` (and ``pubpid``) and
  PatientService::databaseInsert writes it through
  BaseService::buildInsertColumns, which turns an empty (null/false) value
  into ``''``: these columns hold ``''``, not NULL, on a new patient.

Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from canary.errors import SourceError
from seeders.sql.target import SqlTarget

# (major, minor) -> the v_database the seeder was checked against; see docs/seeders/openemr.md.
SUPPORTED = {
    (7, 0): "7.0.x: tables and columns checked at open",
    (8, 0): "8.0.x: tables and columns checked at open",
    (8, 1): "8.1.x: tables and columns checked at open",
    (8, 2): "8.2.x (v_database 541): the reference, tested against OpenEMR's sql/database.sql",
    (8, 3): "8.3.0-dev (v_database 541): same schema as 8.2.0",
}

# Globals that change the rows of a new patient, with OpenEMR's defaults (library/globals.inc.php).
GLOBAL_DEFAULTS = {
    "simplified_demographics": "0",  # no insurance rows at all
    "insurance_only_one": "0",  # only the primary insurance row
    "omit_employers": "0",  # no employer_data row
    "enable_auditlog": "1",  # EventAuditLogger::auditSQLEvent logs the SQL of patient records
    "audit_events_patient-record": "1",
    "audit_events_scheduling": "1",
    "enable_auditlog_encryption": "0",  # comments encrypted with the site's key: no log rows written
    "erx_enable": "0",  # NewCrop eRx: medications pending upload would be sent out: none written
}

# Data types whose value is not a patient_data column (address list, name history, related persons...).
_NOT_COLUMNS = {52, 54, 55, 56}


@dataclass(frozen=True, slots=True)
class OpenEmrVersion:
    major: int
    minor: int
    patch: int
    realpatch: int
    tag: str
    database: int
    acl: int

    def __str__(self) -> str:
        real = f"({self.realpatch})" if self.realpatch else ""
        return f"{self.major}.{self.minor}.{self.patch}{real}{self.tag} (v_database {self.database})"


@dataclass(frozen=True, slots=True)
class OpenEmrSetup:
    version: OpenEmrVersion
    globals: dict[str, str]
    posted_columns: tuple[str, ...]  # patient_data columns the new-patient form posts (DEM, uor > 0)

    def on(self, name: str) -> bool:
        return self.globals.get(name, GLOBAL_DEFAULTS.get(name, "0")) not in ("", "0")

    @property
    def insurance_types(self) -> tuple[str, ...]:
        """The insurance_data rows new_comprehensive_save.php inserts for a new patient."""
        if self.on("simplified_demographics"):
            return ()
        return ("primary",) if self.on("insurance_only_one") else ("primary", "secondary", "tertiary")


def read_setup(target: SqlTarget, source_name: str) -> OpenEmrSetup:
    version = read_version(target, source_name)
    globals_table, layout = target.table("globals"), target.table("layout_options")
    patient_data = target.table("patient_data")
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(globals_table.c.gl_name, globals_table.c.gl_value)
                            .where(globals_table.c.gl_name.in_(list(GLOBAL_DEFAULTS)))
                            .where(globals_table.c.gl_index == 0)).all()
        fields = conn.execute(sa.select(layout.c.field_id, layout.c.data_type)
                              .where(layout.c.form_id == "DEM", layout.c.uor > 0, layout.c.field_id != "")
                              .order_by(layout.c.group_id, layout.c.seq)).all()
    settings = {name: str(value) for name, value in rows}
    posted = tuple(f.field_id for f in fields
                   if f.data_type not in _NOT_COLUMNS and not f.field_id.startswith("em_")
                   and f.field_id in patient_data.c)
    return OpenEmrSetup(version=version, globals=settings, posted_columns=posted)


def read_version(target: SqlTarget, source_name: str) -> OpenEmrVersion:
    table = target.table("version")
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(table)).all()
    if len(rows) != 1:
        raise SourceError(f"source '{source_name}': OpenEMR's version table holds {len(rows)} rows, "
                          "not one: is this an OpenEMR database?")
    row = rows[0]._mapping
    version = OpenEmrVersion(int(row["v_major"]), int(row["v_minor"]), int(row["v_patch"]),
                             int(row.get("v_realpatch") or 0), str(row.get("v_tag") or ""),
                             int(row["v_database"]), int(row.get("v_acl") or 0))
    if version.major == 0 and version.database == 0:
        raise SourceError(f"source '{source_name}': OpenEMR's version table says 0.0.0: the OpenEMR "
                          "installer has not finished on this database")
    if (version.major, version.minor) not in SUPPORTED:
        known = ", ".join(f"{a}.{b}" for a, b in SUPPORTED)
        raise SourceError(f"source '{source_name}': OpenEMR {version} is not supported by this seeder "
                          f"(supported: {known}; see docs/seeders/openemr.md)")
    return version
