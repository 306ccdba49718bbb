"""Placement rows for rows found in the database (``locate``), not just inserted.

``SqlTarget.insert`` returns Placement rows for what it wrote; a seeder that
finds an unrecorded canary builds the same shape from the rows it read back,
listing exactly the columns it writes, so verify and retire treat both alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from seeders.sql.rows import RowPlan
from seeders.sql.values import to_json


def placement_row(plan: RowPlan, row: dict[str, Any]) -> dict[str, Any]:
    """The Placement row of ``row`` (read from the database) for the row ``plan`` describes."""
    written = [*plan.values, *plan.refs, *plan.generated]
    placed: dict[str, Any] = {
        "table": plan.table,
        "key": {k: _json(row[k]) for k in plan.key},
        "values": {c: _json(row[c]) for c in dict.fromkeys(written) if c in row and c not in plan.key},
    }
    if plan.unchecked:
        placed["unchecked"] = sorted(plan.unchecked)
    return placed


def _json(value: Any) -> Any:
    # NUMERIC(10,0) keys come back as Decimal: keep them integers, as inserted.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return to_json(value)
