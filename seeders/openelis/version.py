"""Which OpenELIS schema the database holds, read from the schema itself.

OpenELIS Global 2 starts from a pg_dump of schema ``clinlims`` (the "base"
dump) and, at every webapp start, runs its Liquibase changelogs
(``LiquibaseConfig.liquibase()``, ``liquibase/base-changelog.xml``), which
record each changeset in ``databasechangelog``; the ``filename`` column names
the release folder (``liquibase/2.3.x.x/uuid_columns.xml``). The newest
folder is the release line of the schema. Each line must then have the
structures the seeder writes the way that line's application writes them:

* ``2.0.x.x/patient_contact.xml``: table ``patient_contact`` (+ sequence),
  filled by ``PatientServiceImpl.persistContact`` for every new patient;
* ``2.3.x.x/uuid_columns.xml``: ``patient.fhir_uuid`` (and on sample,
  sample_item, analysis, result), set by ``PatientServiceImpl.persistPatientData``;
* ``2.3.x.x/accession_sequencing.xml``: ``accession_number_info``, the
  accession counters of ``AccessionDAOImpl.getNextNumberIncrement``.

A schema whose changelog names a release this module does not know, or that
lacks what its release must have, is refused in one line naming what is
missing: guessing would write rows the application never writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from canary.errors import MappingError
from seeders.sql.target import SqlTarget

# Release lines this seeder knows, oldest first (the folders of base-changelog.xml up to develop 2024-12).
KNOWN_RELEASES = ("2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.1")
CONTACT_SINCE, FHIR_UUID_SINCE = "2.0", "2.3"
BASE = "base"
_FOLDER = re.compile(r"liquibase/(\d+)\.(\d+)\.x\.x/")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    release: str  # "base" (no Liquibase run) or the newest changelog folder, "2.8"
    has_contact: bool  # patient_contact written with every new patient
    has_fhir_uuid: bool  # patient.fhir_uuid (+ GUID identity of the same value)
    has_accession_counter: bool  # accession_number_info

    @property
    def label(self) -> str:
        return "OpenELIS Global 2 base dump (Liquibase never run)" if self.release == BASE else \
            f"OpenELIS Global {self.release}.x"


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


def changelog_releases(target: SqlTarget) -> list[str] | None:
    """Release folders named in ``databasechangelog`` (oldest first), or None without that table."""
    inspector = sa.inspect(target.engine)
    for schema in (target.schema, "public"):
        if "databasechangelog" in inspector.get_table_names(schema=schema):
            table = sa.Table("databasechangelog", sa.MetaData(schema=schema), autoload_with=target.engine)
            with target.engine.connect() as conn:
                names = conn.execute(sa.select(table.c.filename).distinct()).scalars().all()
            found = {f"{m.group(1)}.{m.group(2)}" for name in names if name and (m := _FOLDER.search(name))}
            return sorted(found, key=_key)
    return None


def detect_version(target: SqlTarget, source_name: str) -> SchemaVersion:
    """The schema's release and features; MappingError (one line) when it is not one the seeder knows."""
    patient = target.table("patient")
    if patient is None:
        raise _refused(source_name, "no table clinlims.patient: this database is not OpenELIS")
    has_contact = target.table("patient_contact") is not None
    has_fhir_uuid = "fhir_uuid" in patient.c
    has_counter = target.table("accession_number_info") is not None
    releases = changelog_releases(target)
    if releases is None or not releases:
        # The base dump as shipped: no Liquibase table, none of its structures.
        if has_contact or has_fhir_uuid:
            raise _refused(source_name, "clinlims has Liquibase-era structures (patient_contact or "
                           "patient.fhir_uuid) but no databasechangelog to tell its release")
        return SchemaVersion(BASE, False, False, False)
    newest = releases[-1]
    if newest not in KNOWN_RELEASES:
        raise _refused(source_name, f"databasechangelog names release {newest}.x.x, which this seeder does not "
                       f"know (known: {KNOWN_RELEASES[0]} to {KNOWN_RELEASES[-1]})")
    missing = []
    if _key(newest) >= _key(CONTACT_SINCE) and not has_contact:
        missing.append("table clinlims.patient_contact")
    if _key(newest) >= _key(FHIR_UUID_SINCE):
        if not has_fhir_uuid:
            missing.append("column clinlims.patient.fhir_uuid")
        if not has_counter:
            missing.append("table clinlims.accession_number_info")
    if missing:
        raise _refused(source_name, f"databasechangelog says release {newest}.x.x but {' and '.join(missing)} "
                       "is missing")
    return SchemaVersion(newest, has_contact, has_fhir_uuid, has_counter)


def _refused(source_name: str, reason: str) -> MappingError:
    return MappingError(f"source '{source_name}': {reason}; nothing was written (supported versions: "
                        "docs/seeders/openelis.md)")
