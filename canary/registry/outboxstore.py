"""The alert outbox in the registry: claiming deliveries, recording outcomes, listings.

A delivery is claimed by one worker for a lease (``claimed_by`` /
``claimed_until``) in a short transaction, sent outside any transaction (an
SMTP send must not hold the SQLite write lock), then marked sent. On
PostgreSQL the claim selects with ``FOR UPDATE SKIP LOCKED``, so concurrent
workers take disjoint rows without waiting; on SQLite write transactions are
serialised and the ``UPDATE ... WHERE claimed_until`` re-check does the same.
A worker that dies mid-send leaves its claim to expire: the row is then
claimed again (sent twice only if the crash fell between the sink's
acceptance and the commit of "sent").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa

from canary.registry.hitrecords import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    Delivery,
    DeliveryStatus,
    SinkHealth,
    alert_from_row,
    delivery_from_row,
)
from canary.registry.hitstore import AlertTx
from canary.registry.schema import alerts, deliveries, sink_state

MAX_ERROR = 500

# (subject, payload, sinks) of a notice to queue when a sink starts failing.
Notice = tuple[str, Mapping[str, Any], Sequence[str]]


def _claimable(now: datetime, sinks: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    return [
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at <= now,
        deliveries.c.sink.in_(list(sinks)),
        sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < now),
    ]


class OutboxStore:
    """Registry methods for the alert outbox (mixed into ``Registry``)."""

    def claim_deliveries(self, worker: str, sinks: Sequence[str], now: datetime,
                         lease: timedelta, limit: int = 10) -> list[Delivery]:
        """Due pending deliveries for ``sinks``, claimed by ``worker`` until now + lease."""
        if not sinks or limit <= 0:
            return []
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            ids = list(connection.execute(
                sa.select(deliveries.c.id).where(*_claimable(now, sinks))
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars())
            if not ids:
                return []
            connection.execute(
                deliveries.update().where(deliveries.c.id.in_(ids), *_claimable(now, sinks))
                .values(claimed_by=worker, claimed_until=now + lease,
                        attempts=deliveries.c.attempts + 1, last_attempt_at=now)
            )
            rows = connection.execute(
                sa.select(deliveries, alerts.c.payload.label("alert_payload"))
                .select_from(deliveries.join(alerts, alerts.c.id == deliveries.c.alert_id))
                .where(deliveries.c.id.in_(ids), deliveries.c.claimed_by == worker,
                       deliveries.c.claimed_until == now + lease)
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            ).mappings().all()
        return [delivery_from_row(row, dict(row["alert_payload"] or {})) for row in rows]

    def release_deliveries(self, delivery_ids: Sequence[int], worker: str) -> None:
        """Give back claimed rows not tried (stopping, or the lease ran short)."""
        if not delivery_ids:
            return
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            connection.execute(
                deliveries.update().where(
                    deliveries.c.id.in_(list(delivery_ids)), deliveries.c.claimed_by == worker,
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                ).values(claimed_by=None, claimed_until=None, attempts=deliveries.c.attempts - 1)
            )

    def delivery_sent(self, delivery: Delivery, now: datetime) -> None:
        """The sink accepted it: never send it again (whoever holds the claim)."""
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            connection.execute(deliveries.update().where(deliveries.c.id == delivery.id).values(
                status=DeliveryStatus.SENT.value, sent_at=now, claimed_by=None,
                claimed_until=None, last_error=None,
            ))
            _ensure_sink(connection, delivery.sink)
            connection.execute(sink_state.update().where(sink_state.c.sink == delivery.sink).values(
                consecutive_failures=0, failing_since=None, last_success_at=now,
            ))

    def delivery_failed(self, delivery: Delivery, now: datetime, error: str,
                        retry_at: datetime, failing_after: int,
                        notice: Callable[[SinkHealth], Notice | None] | None = None) -> bool:
        """Record a failed try and when to retry; True if the sink just became failing.

        When it does, ``notice(health)`` may return a message to queue (to the
        other sinks) in the same transaction.
        """
        error = " ".join(error.split())[:MAX_ERROR] or "unknown error"
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            connection.execute(deliveries.update().where(
                deliveries.c.id == delivery.id, deliveries.c.status == DeliveryStatus.PENDING.value,
            ).values(next_attempt_at=retry_at, last_error=error, claimed_by=None,
                     claimed_until=None))
            _ensure_sink(connection, delivery.sink)
            row = connection.execute(
                sink_state.select().where(sink_state.c.sink == delivery.sink).with_for_update()
            ).mappings().one()
            streak = row["consecutive_failures"] + 1
            became = row["failing_since"] is None and streak >= failing_after
            values: dict[str, Any] = dict(consecutive_failures=streak, last_error=error,
                                          last_failure_at=now)
            if became:
                values["failing_since"] = now
            connection.execute(
                sink_state.update().where(sink_state.c.sink == delivery.sink).values(**values)
            )
            if became and notice is not None:
                health = SinkHealth(sink=delivery.sink, consecutive_failures=streak,
                                    failing_since=now, last_error=error, last_failure_at=now,
                                    last_success_at=row["last_success_at"])
                made = notice(health)
                if made is not None:
                    subject, payload, sinks = made
                    AlertTx(connection).add_alert(
                        kind=AlertKind.NOTICE, status=AlertStatus.QUEUED, subject=subject,
                        now=now, payload=payload, sinks=sinks,
                    )
        return became

    def list_alerts(self, *, source: str | None = None, since: datetime | None = None,
                    limit: int | None = None, with_payload: bool = False) -> list[AlertRecord]:
        """Messages with their deliveries, oldest first; with ``limit``, the newest ones."""
        query = alerts.select()
        if source is not None:
            query = query.where(alerts.c.source_name == source)
        if since is not None:
            query = query.where(alerts.c.created_at >= since)
        query = query.order_by(alerts.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            rows = connection.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            by_alert: dict[int, list[Delivery]] = {}
            for start in range(0, len(ids), 500):
                for row in connection.execute(
                    deliveries.select().where(deliveries.c.alert_id.in_(ids[start:start + 500]))
                    .order_by(deliveries.c.id)
                ).mappings():
                    by_alert.setdefault(row["alert_id"], []).append(delivery_from_row(row))
        return [alert_from_row(row, tuple(by_alert.get(row["id"], ())), with_payload=with_payload)
                for row in reversed(rows)]

    def pending_delivery_counts(self) -> dict[str, int]:
        """Deliveries not yet sent, per sink (the outbox depth; one indexed count for metrics)."""
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            return {sink: int(count) for sink, count in connection.execute(
                sa.select(deliveries.c.sink, sa.func.count())
                .where(deliveries.c.status == DeliveryStatus.PENDING.value)
                .group_by(deliveries.c.sink)
            ).all()}

    def sink_health(self, sinks: Sequence[str] = ()) -> list[SinkHealth]:
        """Every sink known from its state or its deliveries (plus ``sinks``), by name."""
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            states = {row["sink"]: row for row in connection.execute(sink_state.select()).mappings()}
            pending = {
                sink: (count, oldest) for sink, count, oldest in connection.execute(
                    sa.select(deliveries.c.sink, sa.func.count(), sa.func.min(deliveries.c.next_attempt_at))
                    .where(deliveries.c.status == DeliveryStatus.PENDING.value)
                    .group_by(deliveries.c.sink)
                ).all()
            }
        names = sorted(set(states) | set(pending) | set(sinks))
        result = []
        for name in names:
            state = states.get(name)
            count, oldest = pending.get(name, (0, None))
            result.append(SinkHealth(
                sink=name,
                consecutive_failures=state["consecutive_failures"] if state else 0,
                failing_since=state["failing_since"] if state else None,
                last_error=state["last_error"] if state else None,
                last_failure_at=state["last_failure_at"] if state else None,
                last_success_at=state["last_success_at"] if state else None,
                pending=count,
                oldest_pending_at=oldest,
            ))
        return result


def _ensure_sink(connection: sa.Connection, sink: str) -> None:
    """Create the sink's state row if missing (safe against a concurrent insert)."""
    dialect = connection.dialect.name
    values = {"sink": sink, "consecutive_failures": 0}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported registries
        if connection.execute(sink_state.select().where(sink_state.c.sink == sink)).first() is None:
            connection.execute(sink_state.insert().values(**values))
        return
    connection.execute(insert(sink_state).values(**values).on_conflict_do_nothing())
