"""A test seeder that writes later events: the generic SQL seeder plus one ``analyses`` row per event.

Registered under the name ``sql-events`` by the drip tests (monkeypatched
catalog), on the test LIS schema. It shows what a per-system footprint
plugs into: ``add_event`` returns the placement with the new rows.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from canary.model import Identity, Placement
from seeders.sql.seeder import SqlSeeder


class EventSeeder(SqlSeeder):
    name = "sql-events"

    def add_event(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        patient = next(row for row in placement.rows if row["table"] == "patients")
        table = self._ready()[1].table("analyses")
        values = {"patient_id": patient["key"]["id"], "code": "CRP", "resultat": "3.1",
                  "prelevement": when.date()}
        with self._ready()[1].engine.begin() as conn:
            new_id = conn.execute(table.insert().values(**values)).inserted_primary_key[0]
        row = {"table": "analyses", "key": {"id": new_id},
               "values": {**values, "prelevement": values["prelevement"].isoformat()}}
        return Placement(rows=(*placement.rows, row), extra=dict(placement.extra))
