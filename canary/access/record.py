"""From audit events to hits: match canaries, decide single or bulk access, store through the hit sink.

``AccessBook`` is the listener's (and the poller's) in-memory view of which
application identifiers belong to which canary (an ``AccessIndex``), built
from the registry's planted canaries and rebuilt every few seconds like the
TokenIndex, so canaries planted while the listener runs are known soon.

``AccessRecorder`` turns each canary an event names into one hit on channel
``access``, matched by the canary's NIR token; its classification comes from
``BurstPolicy`` (unjustified or bulk access), decided at receipt, not from the
network rules of ``classify``. In the listener (``submit``) the hit goes
through the hit journal like every other front end's (canary/hits/journal.py:
on disk before the receiver moves on, stored by the journal's writer, replayed
after a crash); ``canary access poll`` (``record``) stores at once through the
same sink (one registry transaction with its incident and alert). The event
itself (account, workstation, address, action, time, audit source, the
identifier that matched) is the hit's evidence.

The burst policy's memory is primed from the registry's recent access hits
(``prime``), so a poll run by a timer, or a restarted listener, still counts
the reads made before it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable

from canary.access.config import AccessConfig
from canary.access.event import AccessEvent, Action
from canary.access.match import AccessIndex, BurstPolicy, Match, Severity, identifiers_of
from canary.errors import error_text
from canary.hits.hit import Channel, Classification, Hit, HitSink, Observation
from canary.model import CanaryStatus, TokenKind
from canary.periodic import PeriodicRefresh, RefreshedInBackground

if TYPE_CHECKING:
    from canary.hits.sink import RegistryHitSink
    from canary.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 10.0
# An event dated more than this after now is dated on receipt (a day: time zone slips of a few
# hours are common in audit trails and keep their date).
MAX_CLOCK_SKEW = timedelta(days=1)
WATCHED = (CanaryStatus.PLANTED, CanaryStatus.MISSING)  # retired canaries' numbers may be reused


class AccessBook(RefreshedInBackground):
    """The AccessIndex of the registry's canaries, and each canary's NIR (the token hits match by)."""

    refresh_seconds = DEFAULT_REFRESH_SECONDS

    def __init__(self, registry: "Registry", sources: dict[str, str] | None = None) -> None:
        self.registry = registry
        self.sources = dict(sources or {})
        self.index = AccessIndex(sources=self.sources)
        self.nirs: dict[int, str] = {}
        self._refresher = PeriodicRefresh(self.reload, name="canary-access-index", on_error=self._refresh_failed)

    def reload(self) -> int:
        """Rebuild from the registry; returns how many canaries are watched."""
        index, nirs = AccessIndex(sources=self.sources), {}
        for canary in self.registry.list_canaries(status=WATCHED):
            if canary.placement is None:
                continue
            index.add(canary.id, canary.source, identifiers_of(canary.placement, canary.identity.nir))
            nirs[canary.id] = canary.identity.nir
        self.index, self.nirs = index, nirs  # swapped whole: readers see the old or the new
        return len(nirs)

    def _refresh_failed(self, err: Exception) -> None:  # registry briefly unreachable: keep the old index
        log.warning("access index refresh failed, keeping %d canaries: %s", len(self.nirs), error_text(err))


class AccessRecorder:
    """Audit events -> access hits through the hit sink (thread-safe)."""

    def __init__(self, sink: "RegistryHitSink | HitSink", book: AccessBook, config: AccessConfig | None = None) -> None:
        config = config or AccessConfig()
        self.sink = sink
        self.book = book
        self.policy = BurstPolicy(config.burst_canaries, config.burst_window)
        self._lock = threading.Lock()  # the burst policy's memory is shared by the receivers

    def prime(self, now: datetime | None = None) -> int:
        """Feed the policy the registry's access hits of the last window; returns how many."""
        now = now or datetime.now(timezone.utc)
        since = now - self.policy.burst_window
        hits = [h for h in self.book.registry.list_hits(since=since) if h.channel is Channel.ACCESS
                and h.canary_id is not None and h.source]
        with self._lock:
            for hit in hits:
                action = _action(hit.evidence.get("action"))
                self.policy.severity(hit.source, _text(hit.evidence.get("account")), hit.canary_id,
                                     action, hit.at)
        return len(hits)

    def observations(self, event: AccessEvent, *, at: datetime | None = None) -> list[Observation]:
        """One classified observation per canary ``event`` names (none for ordinary patients).

        The burst policy decides at receipt, in memory; the classification travels with the
        observation (and through the hit journal), so storing it later changes nothing.
        """
        matches = self.book.index.match(event)
        out = []
        for match in matches:
            nir = self.book.nirs.get(match.canary_id)
            if nir is None:
                continue
            now = datetime.now(timezone.utc)
            when = event.at or at or now
            if when > now + MAX_CLOCK_SKEW:  # a sender's wrong clock must not open incidents in the future
                when = now
            with self._lock:
                severity = self.policy.severity(match.source, event.user, match.canary_id, event.action, when)
                distinct = self.policy.distinct(match.source, event.user)
            classification = (Classification.BULK_ACCESS if severity is Severity.BULK
                              else Classification.UNJUSTIFIED_ACCESS)
            out.append(Observation(channel=Channel.ACCESS, kind=TokenKind.NIR, value=nir, remote=event.address,
                                   evidence=evidence(event, match, distinct), at=when,
                                   classification=classification))
        return out

    def record(self, event: AccessEvent, *, at: datetime | None = None) -> list[Hit]:
        """Store at once (``canary access poll``): the stored hits, one per canary ``event`` names."""
        return [self.sink.record(observation) for observation in self.observations(event, at=at)]

    def submit(self, event: AccessEvent) -> int:
        """Hand the hits to the sink's ``observe`` (the listener's: the hit journal, which stores
        them in its own thread and replays them after a crash); returns how many."""
        found = self.observations(event)
        for observation in found:
            self.sink.observe(observation)
        return len(found)

    def record_all(self, events: Iterable[AccessEvent]) -> list[Hit]:
        return [hit for event in events for hit in self.record(event)]


def evidence(event: AccessEvent, match: Match, distinct: int) -> dict[str, Any]:
    """What an alert and `canary hits` show of the access (never the canary's identity)."""
    out = {
        "account": event.user, "account_name": event.user_name, "workstation": event.workstation,
        "address": event.address, "action": event.action.value, "audit_source": event.audit_source,
        "event_code": event.event_code, "outcome": event.outcome, "format": event.format,
        "identifier": match.ref.value, "authority": match.ref.authority,
        "canaries_by_account": distinct,
        "event_at": event.at.isoformat() if event.at else None,  # as the trail dated it
    }
    return {k: v for k, v in out.items() if v not in (None, "")}


def _action(value: Any) -> Action:
    try:
        return Action(value)
    except ValueError:
        return Action.OTHER


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
