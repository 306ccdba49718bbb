"""The OpenMRS platform version of a database, read from its schema.

OpenMRS records every Liquibase changeset it ran in ``liquibasechangelog``,
with the changelog file it came from (``FILENAME``). Since 2.4 the files
carry the version they bring the schema to
(``org/openmrs/liquibase/updates/liquibase-update-to-latest-2.6.x.xml``,
``snapshots/schema-only/liquibase-schema-only-2.5.x.xml``); 2.1-2.3 include
``liquibase-update-to-2.1.xml``... from ``liquibase-update-to-latest.xml``
(openmrs-core ``api/src/main/resources``, branches 2.0.x-2.8.x). The highest
version named is the one the database was last updated by. 2.0 runs one
unversioned file; it is told from 1.x by ``patient.allergy_status``, which
2.0 adds (``liquibase-update-to-latest.xml`` of 2.0.x, "Add allergy_status
field to the patient table").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from canary.errors import MappingError
from seeders.sql.target import SqlTarget

OLDEST, NEWEST = (2, 0), (2, 8)  # the platform versions the seeder is written and tested for
# HibernatePatientDAO.findPatients queries the Hibernate Search (Lucene) index from 2.1 on (TRUNK-425).
INDEXED_SEARCH_FROM = (2, 1)
_VERSIONED_FILE = re.compile(r"-(\d+)\.(\d+)(?:\.x)?\.xml$")


@dataclass(frozen=True, slots=True)
class PlatformVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def searches_an_index(self) -> bool:
        """Patient search reads a Lucene index that rows written in SQL never reach."""
        return (self.major, self.minor) >= INDEXED_SEARCH_FROM


def read_version(target: SqlTarget) -> PlatformVersion:
    """The platform version; MappingError in one line when it is unknown or not supported."""
    where = f"source '{target.source_name}'"
    changelog = target.table("liquibasechangelog")
    if changelog is None:
        raise MappingError(f"{where}: no table liquibasechangelog, so no OpenMRS version to read "
                           "(this database was not created by OpenMRS 2.x)")
    files_column = changelog.c.get("FILENAME")
    if files_column is None:
        files_column = changelog.c.get("filename")
    if files_column is None:
        raise MappingError(f"{where}: liquibasechangelog has no FILENAME column: not an OpenMRS changelog")
    with target.engine.connect() as conn:
        files = [row[0] for row in conn.execute(sa.select(files_column).distinct())]
    versions = [(int(m.group(1)), int(m.group(2))) for f in files if (m := _VERSIONED_FILE.search(f or ""))]
    if versions:
        found = max(versions)
    elif files and "allergy_status" in target.table("patient").c:
        found = (2, 0)
    elif files:
        found = (1, 9)  # 1.9-1.12: the same unversioned file, no allergy_status yet
    else:
        raise MappingError(f"{where}: liquibasechangelog is empty, so no OpenMRS version to read")
    version = PlatformVersion(*found)
    if not OLDEST <= found <= NEWEST:
        older = "older" if found < OLDEST else "newer"
        raise MappingError(f"{where}: OpenMRS {version}{'.x or older' if found == (1, 9) else ''} is {older} than "
                           f"the versions this seeder supports ({OLDEST[0]}.{OLDEST[1]} to "
                           f"{NEWEST[0]}.{NEWEST[1]}, see docs/seeders/openmrs.md)")
    return version
