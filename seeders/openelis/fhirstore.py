"""Whether OpenELIS's local FHIR store holds the canary's Patient resource.

After every patient save, ``FhirTransformServiceImpl.transformPersistPatient``
(asynchronous, after commit) builds a FHIR R4 Patient whose id is
``patient.fhir_uuid`` and ``FhirPersistanceServiceImpl`` sends it as
``PUT Patient/{fhir_uuid}`` to ``org.openelisglobal.fhirstore.uri``, the HAPI
FHIR JPA server of the stack. In the docker deployment that server keeps its
tables (``hfj_resource``...) in the same ``clinlims`` database. A canary
written in SQL has no such resource: whoever compares ``patient.fhir_uuid``
with ``hfj_resource`` finds it. The seeder does not write HAPI's tables (their
versions, indexes and search parameters are HAPI's business); ``verify``
says when the store is visible in the database and lacks the canary.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from seeders.sql.target import SqlTarget


def fhir_store_note(target: SqlTarget, rows: list[dict[str, Any]]) -> str | None:
    """One line when the HAPI tables are in this database and the canary's Patient is not in them."""
    patient = next((row for row in rows if row.get("table") == "patient"), None)
    fhir_uuid = None if patient is None else patient.get("values", {}).get("fhir_uuid")
    resource = target.table("hfj_resource")
    if not fhir_uuid or resource is None:
        return None  # no fhir_uuid (before 2.3), or HAPI keeps its tables elsewhere: nothing to compare
    with target.engine.connect() as conn:
        if "fhir_id" in resource.c:  # HAPI 6.8 and later keep the client id on the resource
            query = sa.select(resource.c.res_id).where(resource.c.res_type == "Patient",
                                                       resource.c.fhir_id == str(fhir_uuid))
        else:
            forced = target.table("hfj_forced_id")
            if forced is None:
                return None
            query = sa.select(forced.c.resource_pid).where(forced.c.resource_type == "Patient",
                                                           forced.c.forced_id == str(fhir_uuid))
        if conn.execute(query.limit(1)).first() is not None:
            return None
    return (f"fhir store: Patient/{fhir_uuid} is not in OpenELIS's local FHIR store (hfj_resource), "
            "where the application would have PUT it; see docs/seeders/openelis.md")
