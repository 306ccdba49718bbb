"""What the registry hands back about hits, incidents, alerts and their delivery.

Plain frozen values, detached from the database, like ``records.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from canary.hits.hit import Channel, Classification, Hit
from canary.model import SourceSpec, TokenKind
from canary.registry.records import CanaryRecord


class AlertKind(str, enum.Enum):
    NEW = "new"  # first message of an incident
    FOLLOW_UP = "follow-up"  # a more serious hit on an incident already told
    DIGEST = "digest"  # the hits gathered since the last message of an incident
    SUMMARY = "summary"  # what flood control held back for one source
    NOTICE = "notice"  # about the system itself (a failing sink)
    TEST = "test"  # `canary alerts test`


class AlertStatus(str, enum.Enum):
    QUEUED = "queued"  # composed, one delivery per sink
    HELD = "held"  # over the source's hourly cap: waits for a summary
    SUMMARISED = "summarised"  # was held; its content went out in a summary


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"
    SENT = "sent"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One token as the listener's in-memory index keeps it."""

    token_id: int
    kind: TokenKind
    value: str  # stored form (see records.fold)
    canary_id: int
    source: str


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """The canary and source owning a token, read in the hit's transaction."""

    token_id: int
    source_id: int
    canary: CanaryRecord
    source: SourceSpec


@dataclass(frozen=True, slots=True)
class Incident:
    """The hits of one canary within one alerting window."""

    id: int
    canary_id: int | None  # None once its source was removed
    source: str
    opened_at: datetime
    closes_at: datetime
    last_hit_at: datetime
    hit_count: int
    alert_count: int
    alerted_severity: int  # highest severity already told (-1: nothing told yet)
    alerted_hit_id: int | None  # hits up to this id went into a message
    last_alert_at: datetime | None
    next_digest_at: datetime | None
    source_id: int | None = None

    def is_open(self, at: datetime) -> bool:
        return at < self.closes_at


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident with everything a message about it shows."""

    incident: Incident
    source: SourceSpec | None  # None once the source was removed
    canary: CanaryRecord | None
    hits: tuple[Hit, ...]  # every hit of the incident, oldest first

    @property
    def new_hits(self) -> tuple[Hit, ...]:
        """Hits not yet in any message."""
        done = self.incident.alerted_hit_id or 0
        return tuple(hit for hit in self.hits if hit.id > done)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    alert_id: int
    sink: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    payload: Mapping[str, Any] | None = None  # the alert's message, on claimed rows only


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A message as ``canary alerts`` lists it."""

    id: int
    kind: AlertKind
    status: AlertStatus
    incident_id: int | None
    source: str | None
    created_at: datetime
    subject: str
    summary_id: int | None = None
    deliveries: tuple[Delivery, ...] = ()
    payload: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def delivery_state(self) -> str:
        """One word for listings: held, summarised, sent, pending, failing, undelivered."""
        if self.status is AlertStatus.HELD:
            return "held"
        if self.status is AlertStatus.SUMMARISED:
            return "summarised"
        if not self.deliveries:
            return "undelivered"  # no sink was configured when it was made
        if all(d.status is DeliveryStatus.SENT for d in self.deliveries):
            return "sent"
        if any(d.status is DeliveryStatus.PENDING and d.last_error for d in self.deliveries):
            return "failing"
        return "pending"


@dataclass(frozen=True, slots=True)
class SinkHealth:
    sink: str
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_error: str | None = None
    last_failure_at: datetime | None = None
    last_success_at: datetime | None = None
    pending: int = 0  # deliveries waiting for this sink
    oldest_pending_at: datetime | None = None  # when the oldest of them was due

    @property
    def failing(self) -> bool:
        return self.failing_since is not None


def hit_from_row(row: Mapping[str, Any]) -> Hit:
    return Hit(
        id=row["id"],
        canary_id=row["canary_id"],
        source=row["source_name"],
        channel=Channel(row["channel"]),
        kind=TokenKind(row["kind"]),
        value=row["value"],
        remote=row["remote"],
        at=row["at"],
        classification=Classification(row["classification"]),
        evidence=dict(row["evidence"] or {}),
    )


def incident_from_row(row: Mapping[str, Any]) -> Incident:
    return Incident(
        id=row["id"],
        canary_id=row["canary_id"],
        source=row["source_name"],
        opened_at=row["opened_at"],
        closes_at=row["closes_at"],
        last_hit_at=row["last_hit_at"],
        hit_count=row["hit_count"],
        alert_count=row["alert_count"],
        alerted_severity=row["alerted_severity"],
        alerted_hit_id=row["alerted_hit_id"],
        last_alert_at=row["last_alert_at"],
        next_digest_at=row["next_digest_at"],
        source_id=row["source_id"],
    )


def delivery_from_row(row: Mapping[str, Any], payload: Mapping[str, Any] | None = None) -> Delivery:
    return Delivery(
        id=row["id"],
        alert_id=row["alert_id"],
        sink=row["sink"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_attempt_at=row["last_attempt_at"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
        payload=payload,
    )


def alert_from_row(row: Mapping[str, Any], deliveries: tuple[Delivery, ...] = (),
                   *, with_payload: bool = False) -> AlertRecord:
    return AlertRecord(
        id=row["id"],
        kind=AlertKind(row["kind"]),
        status=AlertStatus(row["status"]),
        incident_id=row["incident_id"],
        source=row["source_name"],
        created_at=row["created_at"],
        subject=row["subject"],
        summary_id=row["summary_id"],
        deliveries=deliveries,
        payload=row["payload"] if with_payload else None,
    )
