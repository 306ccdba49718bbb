"""A later visit of a planted canary, for ``canary drip`` (``Seeder.add_event``).

Weeks or months after registering, a patient comes back: an encounter by one
of the site's clinicians (form_encounter + its forms row, a number from
``sequences``), with vitals at the site's rate, written the way the
registration day's are (seeders/openemr/footprint.py). Everything is dated
just before ``when``, nothing after it.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from seeders.openemr.clinic import ClinicHabits
from seeders.openemr.footprint import Schedule, footprint_rows
from seeders.openemr.rows import UNCHECKED
from seeders.openemr.values import comb_uuid
from seeders.sql.rows import RowPlan


def later_visit(clinic: ClinicHabits, rnd: random.Random, when: datetime, sex: str) -> Schedule | None:
    """The visit's schedule, or None when the site has no clinician's encounter to learn from."""
    if not clinic.clinicians or not clinic.encounters:
        return None
    seen = when - timedelta(seconds=rnd.randint(1200, 3600))
    plan = Schedule(registered=seen, clinician=rnd.choice(clinic.clinicians), encounter=seen,
                    encounter_template=rnd.choice(clinic.encounters))
    same_sex = [v for v in clinic.vitals if v.get("patient_sex") == sex] or clinic.vitals
    if same_sex and rnd.random() < clinic.vitals_share:
        plan.vitals = seen + timedelta(seconds=rnd.randint(120, 600))
        plan.vitals_template = rnd.choice(same_sex)
    return plan


def visit_rows(plan: Schedule, pid: int, number: int, clinic: ClinicHabits, tables: dict[str, sa.Table],
               rnd: random.Random, clock: datetime, *, log_views: bool = True) -> list[RowPlan]:
    def registry(alias: str, table_name: str, at: datetime, into: list[RowPlan]) -> bytes:
        raw = comb_uuid(time.time() - (clock - at).total_seconds())
        values: dict[str, Any] = {"uuid": raw, "table_name": table_name, "table_id": "id", "table_vertical": "",
                                  "couchdb": "", "document_drive": 0, "mapped": 0, "created": at}
        into.append(RowPlan("uuid_registry", ("uuid",),
                            {k: v for k, v in values.items() if k in tables["uuid_registry"].c},
                            alias=alias, unchecked=UNCHECKED["uuid_registry"]))
        return raw

    return footprint_rows(plan, pid, number, clinic, tables, registry, rnd, appointment_status="site",
                          log_views=log_views)
