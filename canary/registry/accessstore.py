"""Registry methods for `canary access poll`: the position reached in each audit table, and what is ours.

Mixed into ``Registry`` like DripStore. A position is the last audit row id
read (as text), per source and audit table. The poller moves it only after
the hits of the rows up to it are stored: a crash between the two makes the
next poll read those rows again rather than miss one.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from canary.registry.schema import access_positions, canaries, sources


def delete_access_positions(connection: sa.Connection, source_id: int) -> None:
    """Forget a source's positions (``Registry.remove_source``)."""
    connection.execute(access_positions.delete().where(access_positions.c.source_id == source_id))


class AccessStore:
    """Registry methods for audit-table positions (mixed into ``Registry``)."""

    def access_position(self, source: str, audit_table: str) -> str | None:
        """The last row read in ``audit_table`` of ``source``, None before the first poll."""
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
            return connection.execute(
                sa.select(access_positions.c.position).where(
                    access_positions.c.source_id == source_id,
                    access_positions.c.audit_table == audit_table)
            ).scalar_one_or_none()

    def set_access_position(self, source: str, audit_table: str, position: str) -> None:
        now = datetime.now(timezone.utc)
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
            where = (access_positions.c.source_id == source_id) & (access_positions.c.audit_table == audit_table)
            done = connection.execute(
                access_positions.update().where(where).values(position=position, updated_at=now)).rowcount
            if not done:
                connection.execute(access_positions.insert().values(
                    source_id=source_id, audit_table=audit_table, position=position, updated_at=now))

    def own_moments(self, source: str) -> list[datetime]:
        """When canary itself touched ``source``'s rows: plantings, latest verifies, retirements."""
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
            rows = connection.execute(
                sa.select(canaries.c.created_at, canaries.c.planted_at, canaries.c.verified_at,
                          canaries.c.retired_at).where(canaries.c.source_id == source_id)
            ).all()
        return sorted({moment for row in rows for moment in row if moment is not None})

    def first_planted(self, source: str) -> datetime | None:
        """When the source's first canary was planted (a first poll starts there)."""
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            return connection.execute(
                sa.select(sa.func.min(canaries.c.planted_at)).join(sources, sources.c.id == canaries.c.source_id)
                .where(sources.c.name == source)
            ).scalar_one_or_none()
