"""Drip slots in the registry: scheduled single plantings, claimed by runners.

A runner (the listener's drip worker, or ``canary drip run`` from cron)
claims due pending slots for a lease in a short transaction, plants one
canary per slot outside any transaction, then marks the slot done with its
batch and canary. As for the alert outbox (``outboxstore.py``): on
PostgreSQL the claim selects ``FOR UPDATE SKIP LOCKED`` so concurrent
runners take disjoint rows; on SQLite write transactions are serialised and
the ``UPDATE ... WHERE`` re-check does the same. A runner that dies mid-plant
leaves its claim to expire; the next claim finds the slot's batch by its
label and does not plant twice (see ``canary/planting/drip.py``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from canary.registry.schema import batches, drip_slots, sources

MAX_ERROR = 500


class DripStatus(str, enum.Enum):
    PENDING = "pending"  # waiting for its time (or for a retry)
    DONE = "done"  # planted: batch and canary are set
    FAILED = "failed"  # given up after repeated errors
    CANCELLED = "cancelled"  # `canary drip cancel`


@dataclass(frozen=True, slots=True)
class DripSlot:
    id: int
    source: str
    due_at: datetime
    status: DripStatus
    created_at: datetime
    operator: str
    attempts: int = 0
    batch: str | None = None  # label of the batch it planted
    canary_id: int | None = None
    finished_at: datetime | None = None
    last_error: str | None = None


def _slot_query() -> sa.Select:
    return sa.select(drip_slots, sources.c.name.label("source"), batches.c.label.label("batch")).select_from(
        drip_slots.join(sources, drip_slots.c.source_id == sources.c.id)
        .outerjoin(batches, drip_slots.c.batch_id == batches.c.id)
    )


def _slot(row: Mapping[str, Any]) -> DripSlot:
    return DripSlot(
        id=row["id"], source=row["source"], due_at=row["due_at"], status=DripStatus(row["status"]),
        created_at=row["created_at"], operator=row["operator"], attempts=row["attempts"],
        batch=row["batch"], canary_id=row["canary_id"], finished_at=row["finished_at"],
        last_error=row["last_error"],
    )


def _claimable(now: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        drip_slots.c.status == DripStatus.PENDING.value,
        drip_slots.c.due_at <= now,
        sa.or_(drip_slots.c.claimed_until.is_(None), drip_slots.c.claimed_until < now),
    ]


def delete_drip_slots(connection: sa.Connection, source_id: int) -> None:
    """Forget a source's slots (``Registry.remove_source``)."""
    connection.execute(drip_slots.delete().where(drip_slots.c.source_id == source_id))


class DripStore:
    """Registry methods for drip slots (mixed into ``Registry``)."""

    def add_drip_slots(self, source: str, due: Sequence[datetime], operator: str,
                       now: datetime) -> list[DripSlot]:
        if not due:
            return []
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
            ids = []
            for due_at in sorted(due):
                ids.append(connection.execute(drip_slots.insert().values(
                    source_id=source_id, due_at=due_at, status=DripStatus.PENDING.value,
                    created_at=now, operator=operator, attempts=0,
                )).inserted_primary_key[0])
            rows = connection.execute(_slot_query().where(drip_slots.c.id.in_(ids))
                                      .order_by(drip_slots.c.due_at)).mappings().all()
        return [_slot(row) for row in rows]

    def claim_drip_slots(self, worker: str, now: datetime, lease: timedelta,
                         limit: int = 100) -> list[DripSlot]:
        """Due pending slots, oldest first, claimed by ``worker`` until now + lease."""
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            ids = list(connection.execute(
                sa.select(drip_slots.c.id).where(*_claimable(now))
                .order_by(drip_slots.c.due_at, drip_slots.c.id).limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars())
            if not ids:
                return []
            connection.execute(
                drip_slots.update().where(drip_slots.c.id.in_(ids), *_claimable(now))
                .values(claimed_by=worker, claimed_until=now + lease, attempts=drip_slots.c.attempts + 1)
            )
            rows = connection.execute(
                _slot_query().where(drip_slots.c.id.in_(ids), drip_slots.c.claimed_by == worker,
                                    drip_slots.c.claimed_until == now + lease)
                .order_by(drip_slots.c.due_at, drip_slots.c.id)
            ).mappings().all()
        return [_slot(row) for row in rows]

    def release_drip_slots(self, slot_ids: Iterable[int], worker: str) -> None:
        """Give back claimed slots not tried (the attempt does not count)."""
        slot_ids = list(slot_ids)
        if not slot_ids:
            return
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            connection.execute(drip_slots.update().where(
                drip_slots.c.id.in_(slot_ids), drip_slots.c.claimed_by == worker,
                drip_slots.c.status == DripStatus.PENDING.value,
            ).values(claimed_by=None, claimed_until=None, attempts=drip_slots.c.attempts - 1))

    def finish_drip_slot(self, slot_id: int, now: datetime, batch_label: str,
                         canary_id: int | None) -> None:
        """The slot's canary is planted (whoever holds the claim: it must not be planted again)."""
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            batch_id = connection.execute(
                sa.select(batches.c.id).where(batches.c.label == batch_label)
            ).scalar_one()
            connection.execute(drip_slots.update().where(drip_slots.c.id == slot_id).values(
                status=DripStatus.DONE.value, batch_id=batch_id, canary_id=canary_id,
                finished_at=now, claimed_by=None, claimed_until=None, last_error=None,
            ))

    def fail_drip_slot(self, slot_id: int, worker: str, now: datetime, error: str,
                       give_up: bool) -> None:
        """Record a failed try: retried at the next run, or given up."""
        error = " ".join(error.split())[:MAX_ERROR] or "unknown error"
        values: dict[str, Any] = {"claimed_by": None, "claimed_until": None, "last_error": error}
        if give_up:
            values.update(status=DripStatus.FAILED.value, finished_at=now)
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            connection.execute(drip_slots.update().where(
                drip_slots.c.id == slot_id, drip_slots.c.claimed_by == worker,
                drip_slots.c.status == DripStatus.PENDING.value,
            ).values(**values))

    def list_drip_slots(self, source: str | None = None,
                        status: DripStatus | Iterable[DripStatus] | None = None) -> list[DripSlot]:
        query = _slot_query().order_by(drip_slots.c.due_at, drip_slots.c.id)
        if isinstance(status, (DripStatus, str)):
            status = [status]
        if status is not None:
            query = query.where(drip_slots.c.status.in_([DripStatus(s).value for s in status]))
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            if source is not None:
                source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
                query = query.where(drip_slots.c.source_id == source_id)
            rows = connection.execute(query).mappings().all()
        return [_slot(row) for row in rows]

    def count_due_drip_slots(self, now: datetime) -> int:
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            return connection.execute(
                sa.select(sa.func.count()).select_from(drip_slots).where(*_claimable(now))
            ).scalar_one()

    def cancel_drip_slots(self, source: str, now: datetime) -> int:
        """Cancel a source's pending slots not being planted right now; how many."""
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            source_id = self._source_id(connection, source)  # type: ignore[attr-defined]
            result = connection.execute(drip_slots.update().where(
                drip_slots.c.source_id == source_id,
                drip_slots.c.status == DripStatus.PENDING.value,
                sa.or_(drip_slots.c.claimed_until.is_(None), drip_slots.c.claimed_until < now),
            ).values(status=DripStatus.CANCELLED.value, finished_at=now))
            return result.rowcount
