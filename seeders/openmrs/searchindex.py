"""Make OpenMRS's own patient search return a canary written in SQL, and check that it does.

Since platform 2.1, ``HibernatePatientDAO.findPatients`` answers every
patient search (the search screens, REST ``?q=``, the bulk exports built on
them) from a Hibernate Search (Lucene) index of ``PersonName``,
``PatientIdentifier`` and searchable ``PersonAttribute`` documents.
Hibernate updates that index when it commits its own transactions; rows
written in SQL are not in it until the whole index is rebuilt. So after the
insert commits, each indexed row of the canary is re-indexed by its uuid
through REST ``searchindexupdate`` (one call per row, the only form it
takes; ``{"resource": "patient", ...}`` itself is not an indexed entity and
fails with HTTP 500 on 2.1-2.7), then a search by the canary's identifier
and by its name must return the patient.

A failure is not a failed plant: the rows are in, only the index lags. It is
counted, told in one line after the plant, and ``verify`` keeps reporting
the canary as unsearchable until an index rebuild catches up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from canary.errors import SourceError
from canary.model import Placement
from seeders.openmrs.rest import OpenMrsRest
from seeders.openmrs.version import PlatformVersion
from seeders.sql.target import SqlTarget

# REST resource and sub-resource of each indexed table (webservices.rest PersonNameResource1_8,
# PatientIdentifierResource1_8, PersonAttributeResource1_8, named "v1/person/name" ...).
INDEXED_ROWS = {
    "person_name": ("person", "name"),
    "patient_identifier": ("patient", "identifier"),
    "person_attribute": ("person", "attribute"),
}
REBUILD_HINT = ("rebuild it in OpenMRS (Administration > Maintenance > Search Index), or blank the global "
                "property search.indexVersion and restart OpenMRS")
PAGE = 50  # REST's default page size (webservices.rest.maxResultsDefault)


def searchable_attribute_types(target: SqlTarget) -> frozenset[int]:
    """Attribute types whose values the patient search reads (``searchable = 1``)."""
    types = target.table("person_attribute_type")
    if types is None or "searchable" not in types.c:
        return frozenset()
    with target.engine.connect() as conn:
        return frozenset(row[0] for row in conn.execute(
            sa.select(types.c.person_attribute_type_id).where(types.c.searchable == 1)))


@dataclass
class SearchIndex:
    source_name: str
    version: PlatformVersion
    rest: OpenMrsRest | None
    searchable_types: frozenset[int] = frozenset()
    planted: int = 0
    failures: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.rest is not None:
            self.rest.close()

    # -- after plant -----------------------------------------------------
    def after_plant(self, placement: Placement) -> None:
        """Index the canary's rows and check the search returns it; a failure is kept for ``notices``."""
        if not self.version.searches_an_index:
            return
        self.planted += 1
        if self.rest is None:
            return
        try:
            self._index(placement)
            why = self.missing_from_search(placement)
        except SourceError as err:
            self.failures.append(str(err))
            return
        if why is not None:
            self.failures.append(f"source '{self.source_name}': indexed, yet {why}")

    def _index(self, placement: Placement) -> None:
        for row in placement.rows:
            kind = INDEXED_ROWS.get(row["table"])
            values = row["values"]
            if kind is None or (row["table"] == "person_attribute"
                                and values.get("person_attribute_type_id") not in self.searchable_types):
                continue
            self.rest.reindex(*kind, values["uuid"])

    def notices(self) -> list[str]:
        """One line for the user after planting, if the canaries are not all searchable."""
        if not self.planted:
            return []
        where = f"source '{self.source_name}'"
        if self.rest is None:
            planted = "1 canary" if self.planted == 1 else f"{self.planted} canaries"
            return [f"{where}: {planted} will not be returned by OpenMRS {self.version} patient "
                    f"search until its search index is rebuilt: {REBUILD_HINT} (or set rest_url and rest_user "
                    "to have each canary indexed as it is planted)"]
        if not self.failures:
            return []
        return [f"{len(self.failures)} of {self.planted} canaries planted but not searchable in OpenMRS "
                f"({self.failures[0]}); they stay planted, `canary verify` reports them as unsearchable until "
                f"the index catches up: {REBUILD_HINT}"]

    # -- verify ----------------------------------------------------------
    def missing_from_search(self, placement: Placement) -> str | None:
        """Why OpenMRS's patient search does not return this canary, or None when it does (or cannot tell)."""
        if self.rest is None or not self.version.searches_an_index:
            return None
        person, name, identifier = _rows(placement)
        if person is None:
            return None
        queries = []
        if identifier is not None:
            queries.append(("identifier", identifier["identifier"]))
        if name is not None:
            queries.append(("name", f"{name['given_name']} {name['family_name']}"))
        for what, query in queries:
            results = self.rest.search_patients(query)
            if person["uuid"] in {r.get("uuid") for r in results}:
                continue
            if what == "name" and len(results) >= PAGE:
                continue  # a common name fills the first page: cannot tell, the identifier was checked
            return f"not returned by OpenMRS patient search for its {what} {query!r}"
        return None


def _rows(placement: Placement) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    person = name = identifier = None
    for row in placement.rows:
        values = row["values"]
        if row["table"] == "person" and person is None:
            person = values
        elif row["table"] == "person_name" and name is None:
            name = values
        elif row["table"] == "patient_identifier" and values.get("preferred") and identifier is None:
            identifier = values
    return person, name, identifier
