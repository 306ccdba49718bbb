"""When a hit becomes a message: incidents, immediate alerts, digests, flood control.

* An incident gathers the hits of one canary during ``alerts.window`` from
  its first hit; a later hit opens a new incident.
* Immediate: the first hit of an incident at least AUTOMATED (automated,
  human, credential use) sends the "new" message at once; a later hit more
  serious than anything already told (e.g. a portal login after a DNS lookup)
  sends a "follow-up" at once.
* Everything else (more hits of the same seriousness, internal traffic,
  resolver re-checks) waits for the incident's digest, sent at most every
  ``alerts.digest_interval`` and carrying every hit not yet told.
* Flood control: at most ``alerts.max_emails_per_hour`` messages per source in
  any hour. A message over the cap is recorded as held (never dropped); when
  the hour has room again one summary carries everything held and every hit
  not yet told for that source. While a source has held messages, new ones are
  held too, so the summary keeps the order. The source's held count and its
  messages of the hour are read once per transaction and kept up to date in
  memory while it lasts (a batch of journaled hits is one transaction).

``on_hit`` runs inside the hit's transaction (storage and alert enqueue are
atomic); ``tick`` runs in the delivery worker for digests and summaries.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

from canary.alerts.compose import Composer
from canary.alerts.config import AlertsConfig
from canary.alerts.message import IMMEDIATE, severity
from canary.hits.hit import Classification, Hit
from canary.registry.hitrecords import AlertKind, AlertStatus, Incident, TokenMatch
from canary.registry.hitstore import AlertTx

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Alerter:
    """Decides and enqueues messages; the outbox worker delivers them."""

    def __init__(self, config: AlertsConfig, composer: Composer, sinks: Sequence[str]) -> None:
        self.config = config
        self.composer = composer
        self.sinks = tuple(sinks)

    # -- in the hit's transaction ------------------------------------------------------
    def on_hit(self, tx: AlertTx, hit: Hit, match: TokenMatch) -> bool:
        """Attach the hit to its incident; True when an immediate alert was enqueued."""
        if hit.classification is Classification.UNMATCHED:
            return False
        now = _now()
        incident = tx.open_incident(match.canary.id, hit.at)
        if incident is None:
            incident = tx.new_incident(match, hit.at, hit.at + self.config.window)
        incident = tx.attach(incident, hit)
        rank = severity(hit.classification)
        if rank >= IMMEDIATE and rank > incident.alerted_severity:
            kind = AlertKind.NEW if incident.alert_count == 0 else AlertKind.FOLLOW_UP
            self._emit(tx, incident, kind, now)
            return True
        if hit.classification is Classification.INTERNAL and not self.config.notify_internal:
            return False  # recorded; shown in the incident's next message
        if incident.next_digest_at is None:
            due = (incident.last_alert_at + self.config.digest_interval
                   if incident.last_alert_at else now + self.config.digest_interval)
            tx.update_incident(incident.id, next_digest_at=max(due, now))
        return False

    # -- in the delivery worker -------------------------------------------------------
    def tick(self, tx: AlertTx, now: datetime | None = None) -> int:
        """Send due digests and summaries; returns how many messages were made or held."""
        now = now or _now()
        made = 0
        for incident_id, source_id in tx.due_digests(now):
            if not tx.lock_source(source_id, skip_locked=True):
                continue  # another process works on this source now; next tick
            incident = tx.lock_incident(incident_id)
            if incident is None or incident.next_digest_at is None or incident.next_digest_at > now:
                continue  # done meanwhile
            view = tx.incident_view(incident)
            if not view.new_hits:
                tx.update_incident(incident.id, next_digest_at=None)
                continue
            self._emit(tx, incident, AlertKind.DIGEST, now)
            made += 1
        for source_name, source_id in tx.sources_with_held():
            if not tx.lock_source(source_id, skip_locked=True):
                continue
            if tx.queued_since(source_name, now - HOUR) >= self.config.max_per_hour:
                continue  # still no room this hour
            made += self._summarise(tx, source_name, now)
        return made

    # -- pieces -----------------------------------------------------------------------
    def _flooded(self, tx: AlertTx, source: str, now: datetime) -> bool:
        flood = self._flood(tx, source, now)
        while flood.queued and flood.queued[0] <= now - HOUR:  # out of the hour (queued_since: ">")
            flood.queued.popleft()
        return flood.held > 0 or len(flood.queued) >= self.config.max_per_hour

    @staticmethod
    def _flood(tx: AlertTx, source: str, now: datetime) -> "_Flood":
        """The source's flood-control state for this transaction: read from the registry once
        (its held messages, the times of its messages of the last hour), then kept up to date
        by ``_emit`` as it holds or queues messages, instead of read again for every hit of a
        batch. It dies with the transaction: the next one reads what other processes wrote."""
        flood = tx.memo.get((_Flood, source))
        if flood is None:
            flood = tx.memo[(_Flood, source)] = _Flood(
                held=tx.held_count(source), queued=deque(tx.queued_times_since(source, now - HOUR)))
        return flood

    def _emit(self, tx: AlertTx, incident: Incident, kind: AlertKind, now: datetime) -> None:
        view = tx.incident_view(incident)
        told = max((severity(h.classification) for h in view.hits), default=-1)
        if self._flooded(tx, incident.source, now):
            subject = f"[held] {kind.value}: canary #{incident.canary_id}, incident #{incident.id}, " \
                      f"{len(view.new_hits)} new hit(s)"
            tx.add_alert(kind=kind, status=AlertStatus.HELD, subject=subject, now=now, payload=None,
                         sinks=(), incident_id=incident.id, source=incident.source)
            flood = self._flood(tx, incident.source, now)
            flood.held += 1
            # Hits stay untold (alerted_hit_id unchanged): the summary carries them.
            tx.update_incident(incident.id, alert_count=incident.alert_count + 1,
                               alerted_severity=max(incident.alerted_severity, told),
                               next_digest_at=None)
            # One warning when a source starts being held, not one per held message: a flood of
            # thousands of hits would otherwise bury the log (the summary counts them all).
            if flood.held == 1:
                log.warning("alerts for source %s held: over %d messages this hour; the next ones "
                            "wait for the summary", incident.source, self.config.max_per_hour)
            else:
                log.debug("alert for source %s held (%d waiting)", incident.source, flood.held)
            return
        try:
            alert = self.composer.incident(kind, view, now)
        except Exception:  # a content bug must not cost the hit (the front end would fail)
            log.exception("composing alert for incident %d failed: sending a plain one", incident.id)
            alert = self.composer.plain(kind, view, now)
        tx.add_alert(kind=kind, status=AlertStatus.QUEUED, subject=alert.subject, now=now,
                     payload=alert.to_payload(), sinks=self.sinks, incident_id=incident.id,
                     source=incident.source)
        self._flood(tx, incident.source, now).queued.append(now)
        tx.update_incident(
            incident.id, alert_count=incident.alert_count + 1, last_alert_at=now,
            alerted_severity=max(incident.alerted_severity, told),
            alerted_hit_id=max((h.id for h in view.hits), default=incident.alerted_hit_id),
            next_digest_at=None,
        )

    def _summarise(self, tx: AlertTx, source_name: str, now: datetime) -> int:
        held = tx.held(source_name)
        if not held:
            return 0
        incidents = tx.incidents_with_pending(source_name)
        views = [tx.incident_view(incident) for incident in incidents]
        spec = tx.source_spec(source_name)
        alert = self.composer.summary(source_name, spec, held, views, now, self.config.max_per_hour)
        summary_id = tx.add_alert(kind=AlertKind.SUMMARY, status=AlertStatus.QUEUED,
                                  subject=alert.subject, now=now, payload=alert.to_payload(),
                                  sinks=self.sinks, source=source_name)
        tx.mark_summarised([a.id for a in held], summary_id)
        tx.memo.pop((_Flood, source_name), None)  # read again if needed: the held are summarised
        for view in views:
            incident = view.incident
            tx.update_incident(
                incident.id, last_alert_at=now, next_digest_at=None,
                alerted_hit_id=max((h.id for h in view.hits), default=incident.alerted_hit_id),
                alerted_severity=max([incident.alerted_severity,
                                      *(severity(h.classification) for h in view.hits)]),
            )
        return 1


@dataclass
class _Flood:
    """Flood control of one source within one transaction (``Alerter._flood``)."""

    held: int  # messages held, waiting for the summary
    queued: deque[datetime]  # creation times of the messages counted against the hourly cap, oldest first
