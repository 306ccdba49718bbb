"""Hits and incidents in the registry: storage, and the transaction alerting runs in.

A hit is stored in one write transaction together with its incident update
and the alert it causes (``Registry.alert_transaction`` yields an ``AlertTx``
holding that transaction). The decisions (open an incident? alert now, in a
digest, or hold for flood control?) are made by ``canary.alerts.policy``; the
SQL lives here, so only this package talks to the registry database.

Locking, for two listener processes on one PostgreSQL registry: work on a
matched hit, a digest or a summary locks the source row first, then incident
rows (always in that order, so they cannot deadlock). Hits of one source are
thus serialised, and the decision to alert is made once. SQLite write
transactions are serialised anyway (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Sequence

import sqlalchemy as sa

from canary.hits.hit import Channel, Classification, Hit
from canary.model import SourceSpec, TokenKind
from canary.registry.hitrecords import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    DeliveryStatus,
    Incident,
    IncidentView,
    TokenEntry,
    TokenMatch,
    alert_from_row,
    hit_from_row,
    incident_from_row,
)
from canary.registry.queries import canary_query
from canary.registry.records import canary_from_row, fold, source_from_row, token_kind
from canary.registry.schema import alerts, canaries, deliveries, hits, incidents, sources
from canary.registry.schema import tokens as token_table

MAX_REMOTE = 64
MAX_RECEIPT = 80  # hits.receipt: unique when set (migration 0005)
RECENT_HITS_LIMIT = 500  # context for classification: the latest hits are enough
RECEIPTS_PER_QUERY = 500  # receipts looked up per statement (SQLite allows 999 parameters before 3.32)


# The statements run for every hit, built once: SQLAlchemy then neither builds them nor
# computes their cache key again (that was about half the CPU time of storing a hit), and
# the values travel as parameters. Bound names differ from column names (SQLAlchemy
# reserves those for the SET clause).
_TOKEN = sa.select(token_table.c.id, token_table.c.canary_id).where(
    token_table.c.kind == sa.bindparam("b_kind"), token_table.c.value == sa.bindparam("b_value"))
_CANARY_SOURCE = sa.select(canaries.c.source_id).where(canaries.c.id == sa.bindparam("b_id"))
_CANARY = canary_query().where(canaries.c.id == sa.bindparam("b_id"))
_SOURCE = sources.select().where(sources.c.id == sa.bindparam("b_id"))
_LOCK_SOURCE = {skip: sa.select(sources.c.id).where(sources.c.id == sa.bindparam("b_id")).with_for_update(skip_locked=skip)
                for skip in (False, True)}
_INSERT_HIT = hits.insert()
_OPEN_INCIDENT = (incidents.select()
                  .where(incidents.c.canary_id == sa.bindparam("b_canary"), incidents.c.closes_at > sa.bindparam("b_at"))
                  .order_by(incidents.c.id.desc()).limit(1).with_for_update())
_INSERT_INCIDENT = incidents.insert()
_ATTACH = hits.update().where(hits.c.id == sa.bindparam("b_hit")).values(incident_id=sa.bindparam("b_incident"))
_UPDATE_INCIDENT = incidents.update().where(incidents.c.id == sa.bindparam("b_id"))
_INCIDENT = incidents.select().where(incidents.c.id == sa.bindparam("b_id"))
_INCIDENT_HITS = hits.select().where(hits.c.incident_id == sa.bindparam("b_id")).order_by(hits.c.at, hits.c.id)


class AlertTx:
    """One write transaction of the hit -> incident -> alert pipeline.

    A transaction may store many hits (the hit journal's writer stores a batch in one). What it
    has read once it keeps for its own life, as the database would give the same answer until
    it commits: the canary and source rows (only read here), the source locks it holds, the
    incidents it has read or written (it holds their rows: ``open_incident``/``lock_incident``
    lock them, and only this transaction changes them until it commits). ``memo`` is the same
    for the alerting policy's own reads (flood control, canary/alerts/policy.py). Nothing is
    kept past the transaction: another process's writes are seen by the next one.
    """

    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection
        self._locked: set[int] = set()  # source ids locked FOR UPDATE by this transaction
        self._canaries: dict[int, tuple[int, Any]] = {}  # canary id -> (source id, CanaryRecord)
        self._sources: dict[int, SourceSpec] = {}
        self._tokens: dict[tuple[str, str], tuple[int, int] | None] = {}  # (kind, folded value) -> ids
        self._incidents: dict[int, Incident] = {}  # as this transaction last read or wrote them
        self.memo: dict[Any, Any] = {}  # the policy's state for this transaction (flood control)

    # -- hits --------------------------------------------------------------
    def match(self, kind: TokenKind | str, value: str) -> TokenMatch | None:
        """The canary owning a token, with its source row locked; None if no canary has it."""
        kind = token_kind(kind)
        key = (kind.value, fold(kind, value))
        if key in self._tokens:
            ids = self._tokens[key]
        else:
            row = self._c.execute(_TOKEN, {"b_kind": key[0], "b_value": key[1]}).first()
            ids = self._tokens[key] = (row[0], row[1]) if row is not None else None
        if ids is None:
            return None
        token_id, canary_id = ids
        known = self._canaries.get(canary_id)
        if known is None:
            source_id = self._c.execute(_CANARY_SOURCE, {"b_id": canary_id}).scalar_one()
            self.lock_source(source_id)  # before the canary row is read, as always
            canary_row = self._c.execute(_CANARY, {"b_id": canary_id}).mappings().one()
            known = self._canaries[canary_id] = (source_id, canary_from_row(canary_row))
        source_id, canary = known
        self.lock_source(source_id)  # held already: no statement
        return TokenMatch(token_id=token_id, source_id=source_id, canary=canary,
                          source=self._source(source_id))

    def _source(self, source_id: int) -> SourceSpec:
        spec = self._sources.get(source_id)
        if spec is None:
            row = self._c.execute(_SOURCE, {"b_id": source_id}).mappings().one()
            spec = self._sources[source_id] = source_from_row(row)
        return spec

    def recent_hits(self, canary_id: int, since: datetime) -> list[Hit]:
        """Hits of a canary at or after ``since``, oldest first (the latest few hundred)."""
        rows = self._c.execute(
            hits.select().where(hits.c.canary_id == canary_id, hits.c.at >= since)
            .order_by(hits.c.at.desc(), hits.c.id.desc()).limit(RECENT_HITS_LIMIT)
        ).mappings().all()
        return [hit_from_row(row) for row in reversed(rows)]

    def hit_by_receipt(self, receipt: str) -> Hit | None:
        """The hit already stored under a receipt (a replayed journal entry, a retried webhook)."""
        row = self._c.execute(hits.select().where(hits.c.receipt == receipt[:MAX_RECEIPT])).mappings().first()
        return hit_from_row(row) if row is not None else None

    def hits_by_receipts(self, receipts: Sequence[str]) -> dict[str, Hit]:
        """``hit_by_receipt`` for many receipts in one statement per RECEIPTS_PER_QUERY: the
        receipts given (as given) that are stored, with their hit."""
        wanted: dict[str, list[str]] = {}
        for receipt in receipts:
            wanted.setdefault(receipt[:MAX_RECEIPT], []).append(receipt)
        found: dict[str, Hit] = {}
        keys = list(wanted)
        for start in range(0, len(keys), RECEIPTS_PER_QUERY):
            rows = self._c.execute(
                hits.select().where(hits.c.receipt.in_(keys[start:start + RECEIPTS_PER_QUERY]))
            ).mappings().all()
            for row in rows:
                hit = hit_from_row(row)
                for receipt in wanted.get(row["receipt"], ()):
                    found[receipt] = hit
        return found

    def insert_hit(self, *, channel: Channel, kind: TokenKind, value: str, remote: str | None,
                   at: datetime, recorded_at: datetime, classification: Classification,
                   evidence: Mapping[str, Any], match: TokenMatch | None, receipt: str | None = None) -> Hit:
        values = dict(
            at=at, recorded_at=recorded_at, channel=Channel(channel).value,
            kind=token_kind(kind).value, value=value[:320],
            remote=remote[:MAX_REMOTE] if remote else None,
            classification=Classification(classification).value, evidence=dict(evidence),
            token_id=match.token_id if match else None,
            canary_id=match.canary.id if match else None,
            source_id=match.source_id if match else None,
            source_name=match.source.name if match else None,
            receipt=receipt[:MAX_RECEIPT] if receipt else None,
        )
        hit_id = self._c.execute(_INSERT_HIT, values).inserted_primary_key[0]
        return hit_from_row({**values, "id": hit_id})

    # -- incidents ---------------------------------------------------------
    def open_incident(self, canary_id: int, at: datetime) -> Incident | None:
        """The newest incident of a canary still open at ``at``, locked."""
        row = self._c.execute(_OPEN_INCIDENT, {"b_canary": canary_id, "b_at": at}).mappings().first()
        return self._keep(incident_from_row(row)) if row is not None else None

    def _keep(self, incident: Incident) -> Incident:
        self._incidents[incident.id] = incident
        return incident

    def new_incident(self, match: TokenMatch, at: datetime, closes_at: datetime) -> Incident:
        values = dict(
            canary_id=match.canary.id, source_id=match.source_id, source_name=match.source.name,
            opened_at=at, closes_at=closes_at, last_hit_at=at, hit_count=0, alert_count=0,
            alerted_severity=-1, alerted_hit_id=None, last_alert_at=None, next_digest_at=None,
        )
        incident_id = self._c.execute(_INSERT_INCIDENT, values).inserted_primary_key[0]
        return self._keep(incident_from_row({**values, "id": incident_id}))

    def attach(self, incident: Incident, hit: Hit) -> Incident:
        """Count a hit in its incident; returns the incident as it now is."""
        self._c.execute(_ATTACH, {"b_hit": hit.id, "b_incident": incident.id})
        return self.update_incident(
            incident.id, hit_count=incident.hit_count + 1,
            last_hit_at=max(incident.last_hit_at, hit.at),
        )

    def update_incident(self, incident_id: int, **values: Any) -> Incident:
        self._c.execute(_UPDATE_INCIDENT, {**values, "b_id": incident_id})
        known = self._incidents.get(incident_id)
        if known is not None and values.keys() <= _INCIDENT_FIELDS:
            # Read or written by this transaction, which holds the row: the new values are what
            # the database now holds (timestamps as UtcDateTime gives them back: UTC).
            return self._keep(replace(known, **{k: _utc(v) for k, v in values.items()}))
        row = self._c.execute(_INCIDENT, {"b_id": incident_id}).mappings().one()
        return self._keep(incident_from_row(row))

    def lock_incident(self, incident_id: int) -> Incident | None:
        row = self._c.execute(
            incidents.select().where(incidents.c.id == incident_id).with_for_update()
        ).mappings().first()
        return self._keep(incident_from_row(row)) if row is not None else None

    def lock_source(self, source_id: int | None, *, skip_locked: bool = False) -> bool:
        """Lock a source row (PostgreSQL); False if another transaction holds it (skip_locked)."""
        if source_id is None or source_id in self._locked:  # held until this transaction ends
            return True
        found = self._c.execute(_LOCK_SOURCE[skip_locked], {"b_id": source_id}).first()
        if found is not None:
            self._locked.add(source_id)
        return found is not None

    def incident_view(self, incident: Incident) -> IncidentView:
        rows = self._c.execute(_INCIDENT_HITS, {"b_id": incident.id}).mappings().all()
        canary = source = None
        if incident.canary_id is not None:
            known = self._canaries.get(incident.canary_id)
            if known is not None:
                canary = known[1]
            else:
                row = self._c.execute(_CANARY, {"b_id": incident.canary_id}).mappings().first()
                canary = canary_from_row(row) if row is not None else None
        if incident.source_id is not None:
            source = self._sources.get(incident.source_id)
            if source is None:
                row = self._c.execute(_SOURCE, {"b_id": incident.source_id}).mappings().first()
                source = source_from_row(row) if row is not None else None
        return IncidentView(incident=incident, source=source, canary=canary,
                            hits=tuple(hit_from_row(r) for r in rows))

    def source_spec(self, name: str) -> SourceSpec | None:
        row = self._c.execute(sources.select().where(sources.c.name == name)).mappings().first()
        return source_from_row(row) if row is not None else None

    def due_digests(self, now: datetime) -> list[tuple[int, int | None]]:
        """(incident id, source id) of incidents whose digest is due."""
        return [tuple(r) for r in self._c.execute(
            sa.select(incidents.c.id, incidents.c.source_id)
            .where(incidents.c.next_digest_at.is_not(None), incidents.c.next_digest_at <= now)
            .order_by(incidents.c.id)
        ).all()]

    def incidents_with_pending(self, source_name: str) -> list[Incident]:
        """Incidents of a source holding hits not yet in any message, locked, oldest first."""
        pending = sa.exists().where(
            hits.c.incident_id == incidents.c.id,
            hits.c.id > sa.func.coalesce(incidents.c.alerted_hit_id, 0),
        )
        rows = self._c.execute(
            incidents.select().where(incidents.c.source_name == source_name, pending)
            .order_by(incidents.c.id).with_for_update()
        ).mappings().all()
        return [incident_from_row(row) for row in rows]

    # -- alerts ------------------------------------------------------------
    def add_alert(self, *, kind: AlertKind, status: AlertStatus, subject: str, now: datetime,
                  payload: Mapping[str, Any] | None, sinks: Sequence[str],
                  incident_id: int | None = None, source: str | None = None) -> int:
        """A message, with one pending delivery per sink unless it is held."""
        alert_id = self._c.execute(alerts.insert().values(
            kind=AlertKind(kind).value, status=AlertStatus(status).value, incident_id=incident_id,
            source_name=source, created_at=now, subject=subject[:1000],
            payload=dict(payload) if payload is not None else None, summary_id=None,
        )).inserted_primary_key[0]
        if status is AlertStatus.QUEUED and sinks:
            self._c.execute(deliveries.insert(), [
                {"alert_id": alert_id, "sink": sink, "status": DeliveryStatus.PENDING.value,
                 "attempts": 0, "next_attempt_at": now}
                for sink in dict.fromkeys(sinks)
            ])
        return alert_id

    def queued_since(self, source: str, since: datetime) -> int:
        """Messages about a source made after ``since`` (held ones not counted)."""
        return self._c.execute(
            sa.select(sa.func.count()).select_from(alerts).where(
                alerts.c.source_name == source, alerts.c.created_at > since,
                alerts.c.status == AlertStatus.QUEUED.value,
                alerts.c.kind.not_in([AlertKind.NOTICE.value, AlertKind.TEST.value]),
            )
        ).scalar_one()

    def queued_times_since(self, source: str, since: datetime) -> list[datetime]:
        """When the messages ``queued_since`` counts were made, oldest first."""
        return list(self._c.execute(
            sa.select(alerts.c.created_at).where(
                alerts.c.source_name == source, alerts.c.created_at > since,
                alerts.c.status == AlertStatus.QUEUED.value,
                alerts.c.kind.not_in([AlertKind.NOTICE.value, AlertKind.TEST.value]),
            ).order_by(alerts.c.created_at)
        ).scalars())

    def held_count(self, source: str) -> int:
        """How many messages about a source are held (``held`` without reading them)."""
        return self._c.execute(
            sa.select(sa.func.count()).select_from(alerts).where(
                alerts.c.source_name == source, alerts.c.status == AlertStatus.HELD.value)
        ).scalar_one()

    def held(self, source: str) -> list[AlertRecord]:
        rows = self._c.execute(
            alerts.select().where(alerts.c.source_name == source,
                                  alerts.c.status == AlertStatus.HELD.value)
            .order_by(alerts.c.id)
        ).mappings().all()
        return [alert_from_row(row) for row in rows]

    def sources_with_held(self) -> list[tuple[str, int | None]]:
        """(source name, source id or None if removed) of sources with held messages."""
        rows = self._c.execute(
            sa.select(alerts.c.source_name, sources.c.id).distinct()
            .select_from(alerts.outerjoin(sources, sources.c.name == alerts.c.source_name))
            .where(alerts.c.status == AlertStatus.HELD.value, alerts.c.source_name.is_not(None))
            .order_by(alerts.c.source_name)
        ).all()
        return [(name, source_id) for name, source_id in rows]

    def mark_summarised(self, alert_ids: Sequence[int], summary_id: int) -> None:
        if alert_ids:
            self._c.execute(alerts.update().where(alerts.c.id.in_(list(alert_ids))).values(
                status=AlertStatus.SUMMARISED.value, summary_id=summary_id,
            ))


_INCIDENT_FIELDS = frozenset(f.name for f in fields(Incident)) - {"id", "source"}


def _utc(value: Any) -> Any:
    return value.astimezone(timezone.utc) if isinstance(value, datetime) else value


class HitStore:
    """Registry methods for hits and incidents (mixed into ``Registry``)."""

    @contextmanager
    def alert_transaction(self) -> Iterator[AlertTx]:
        """A write transaction for storing a hit and what it causes; commits on success."""
        with self._tx(write=True) as connection:  # type: ignore[attr-defined]
            yield AlertTx(connection)

    def tokens_since(self, after_id: int = 0, limit: int | None = None) -> list[TokenEntry]:
        """Tokens with an id above ``after_id``, in id order (the listener's index feed)."""
        query = (
            sa.select(token_table.c.id, token_table.c.kind, token_table.c.value,
                      token_table.c.canary_id, sources.c.name)
            .select_from(token_table.join(canaries, canaries.c.id == token_table.c.canary_id)
                         .join(sources, sources.c.id == canaries.c.source_id))
            .where(token_table.c.id > after_id).order_by(token_table.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            rows = connection.execute(query).all()
        return [TokenEntry(token_id=r[0], kind=TokenKind(r[1]), value=r[2], canary_id=r[3],
                           source=r[4]) for r in rows]

    def portal_passwords_since(self, after_id: int = 0, limit: int | None = None) -> list[tuple[int, str, str]]:
        """(token id, portal login, the canary's portal password) of the portal-login tokens with an
        id above ``after_id``, in id order: what the listener checks a POSTed login against, loaded
        ahead so that no login waits for the registry (listener/credentials.py)."""
        query = (
            sa.select(token_table.c.id, token_table.c.value, canaries.c.identity)
            .select_from(token_table.join(canaries, canaries.c.id == token_table.c.canary_id))
            .where(token_table.c.id > after_id, token_table.c.kind == TokenKind.PORTAL_LOGIN.value)
            .order_by(token_table.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            rows = connection.execute(query).all()
        return [(r[0], r[1], str((r[2] or {}).get("portal_password") or "")) for r in rows]

    def list_hits(self, *, source: str | None = None, since: datetime | None = None,
                  canary_id: int | None = None, incident_id: int | None = None,
                  limit: int | None = None, channel: Channel | str | None = None) -> list[Hit]:
        """Stored hits, oldest first; with ``limit``, the newest ``limit`` of them."""
        query = hits.select()
        if channel is not None:
            query = query.where(hits.c.channel == Channel(channel).value)
        if source is not None:
            query = query.where(hits.c.source_name == source)
        if since is not None:
            query = query.where(hits.c.at >= since)
        if canary_id is not None:
            query = query.where(hits.c.canary_id == canary_id)
        if incident_id is not None:
            query = query.where(hits.c.incident_id == incident_id)
        query = query.order_by(hits.c.at.desc(), hits.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            rows = connection.execute(query).mappings().all()
        return [hit_from_row(row) for row in reversed(rows)]

    def list_incidents(self, *, source: str | None = None, since: datetime | None = None,
                       limit: int | None = None) -> list[Incident]:
        """Incidents, oldest first; with ``limit``, the newest ``limit`` of them."""
        query = incidents.select()
        if source is not None:
            query = query.where(incidents.c.source_name == source)
        if since is not None:
            query = query.where(incidents.c.last_hit_at >= since)
        query = query.order_by(incidents.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            rows = connection.execute(query).mappings().all()
        return [incident_from_row(row) for row in reversed(rows)]

    def get_incident(self, incident_id: int) -> IncidentView | None:
        with self._tx(write=False) as connection:  # type: ignore[attr-defined]
            row = connection.execute(
                incidents.select().where(incidents.c.id == incident_id)
            ).mappings().first()
            if row is None:
                return None
            return AlertTx(connection).incident_view(incident_from_row(row))


def detach_source(connection: sa.Connection, source_id: int) -> None:
    """Before a source is removed: keep its hits and incidents, without references to it.

    Hits keep their token kind/value and the source name; incidents keep the
    source name. Called by ``Registry.remove_source`` inside its transaction.
    """
    connection.execute(hits.update().where(hits.c.source_id == source_id).values(
        token_id=None, canary_id=None, source_id=None,
    ))
    connection.execute(incidents.update().where(incidents.c.source_id == source_id).values(
        canary_id=None, source_id=None,
    ))
