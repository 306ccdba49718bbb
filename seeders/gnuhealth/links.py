"""Rows of the hospital that refer to a canary's rows, found before retire deletes anything.

GNU Health's foreign keys mostly say ``ON DELETE SET NULL`` or ``CASCADE``
(an appointment's ``patient``, an address or contact added later to the
party): deleting a canary the hospital attached something to would quietly
blank or delete the hospital's own row. So retire first asks PostgreSQL's
catalogue which columns point at the canary's tables, and refuses when a row
outside the placement uses one of the canary's ids.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import sqlalchemy as sa

# Every single-column foreign key pointing at one of the given tables (public schema or search_path).
_REFERENCING = sa.text("""
    SELECT src.relname AS source, att.attname AS column, dst.relname AS target
    FROM pg_constraint con
    JOIN pg_class src ON src.oid = con.conrelid
    JOIN pg_class dst ON dst.oid = con.confrelid
    JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
    WHERE con.contype = 'f' AND array_length(con.conkey, 1) = 1
      AND dst.relname = ANY(:targets) AND pg_table_is_visible(dst.oid)
""")


def attached_rows(engine: sa.Engine, rows: Iterable[dict[str, Any]]) -> list[str]:
    """Descriptions of rows outside ``rows`` (placement rows keyed by id) that refer to one of them."""
    ids: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        if "id" in row["key"]:
            ids[row["table"]].add(int(row["key"]["id"]))
    found = []
    with engine.connect() as conn:
        references = conn.execute(_REFERENCING, {"targets": list(ids)}).all()
        for source, column, target in references:
            prep = conn.dialect.identifier_preparer
            ours = sorted(ids.get(source, ()))
            query = (f"SELECT id, {prep.quote(column)} FROM {prep.quote(source)} "
                     f"WHERE {prep.quote(column)} = ANY(:targets)" + (" AND NOT id = ANY(:ours)" if ours else "")
                     + " LIMIT 1")
            hit = conn.execute(sa.text(query), {"targets": sorted(ids[target]), "ours": ours}).first()
            if hit is not None:
                found.append(f"{source} row id={hit[0]} refers to {target} id={hit[1]}")
    return found
