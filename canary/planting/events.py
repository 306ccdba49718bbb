"""A life over time: `canary drip run` adds later events (a visit, a result) to planted canaries.

Real patients come back; a canary that never does is a "new patients only"
record. Every ``drip.event_every`` on average (a week plus an exponential
draw, so the gaps look like a patient's and not a timer's; ``site``, the
default: the gap between two visits of a patient that the seeder learned
from the site when it planted the canary, kept in its placement as
``extra["revisit_every"]`` in seconds, else 60 days), a planted
canary is due an event; the drip run asks its seeder to write one
(``Seeder.add_event(identity, placement, when)``) and stores the grown
placement, so ``verify`` checks the new rows and ``retire`` removes them.

Which event, and in which tables, is each seeder's business (its footprint);
a seeder that writes none keeps the default ``add_event`` returning None,
and its sources are skipped without opening a connection. When a canary had
its events is kept in its placement (``extra["drip_events"]``, ISO times).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from canary.errors import CanaryError
from canary.model import CanaryStatus, Placement

log = logging.getLogger(__name__)

EVENTS_KEY = "drip_events"
PACE_KEY = "revisit_every"  # seconds: the site's mean gap between two visits, stored by the seeder at planting
# ISO time (UTC) a seeder sets in a placement's extra: when the canary has something of its own due (the rest of
# its registration day, credentials handed out days after, a record saved again): the drip run then calls
# ``Seeder.add_due``, which writes what is due and sets the next such time (or removes it). Not a later event.
DUE_KEY = "seeder_due_at"
DEFAULT_EVERY = timedelta(days=60)  # drip.event_every = "site" with a seeder that learned no pace
MIN_GAP = timedelta(days=7)
MAX_PER_RUN = 20  # events written per run and source: a backlog is caught up over several runs


@dataclass(frozen=True, slots=True)
class EventOutcome:
    canary_id: int
    source: str
    rows: int = 0  # rows the event added
    error: str | None = None


def next_event_at(canary_id: int, placement: Placement, planted_at: datetime,
                  every: timedelta | None) -> datetime:
    """When the canary's next event is due: the last one (or planting) plus a gap drawn for it.

    ``every`` None: the site's pace stored in the placement (``PACE_KEY``), else ``DEFAULT_EVERY``.
    The draw is a hash of the canary and its event count, so every run agrees
    on it without storing anything more.
    """
    if every is None:
        every = site_pace(placement) or DEFAULT_EVERY
    events = [datetime.fromisoformat(t) for t in placement.extra.get(EVENTS_KEY, ())]
    last = max([_aware(planted_at), *map(_aware, events)])
    digest = hashlib.sha256(f"{canary_id}:{len(events)}".encode()).digest()
    uniform = (int.from_bytes(digest[:8], "big") + 0.5) / 2 ** 64
    # A week plus an exponential: the mean stays ``every``, and no gap is clamped to exactly a week.
    gap = MIN_GAP + max(every - MIN_GAP, timedelta()) * -math.log(uniform)
    return last + gap


def site_pace(placement: Placement) -> timedelta | None:
    """The site's revisit pace the seeder stored in the placement at planting, if any."""
    seconds = placement.extra.get(PACE_KEY)
    return timedelta(seconds=float(seconds)) if isinstance(seconds, (int, float)) and seconds > 0 else None


def seeder_due_at(placement: Placement) -> datetime | None:
    """When the placement's seeder has something of its own due (``DUE_KEY``), if anything."""
    value = placement.extra.get(DUE_KEY)
    try:
        return _aware(datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def add_due_events(registry, now: datetime, every: timedelta | None, environ=os.environ, *,
                   seeders=None) -> list[EventOutcome]:
    """Write the events that are due, source by source; one outcome per canary tried.

    What a seeder set due in a placement (``DUE_KEY``) comes first, whatever ``every`` (it completes the
    planting, it is not a later event); then the later event if that is due too.

    ``seeders``: the drip run's sources already open (``get(source)``), used
    and left open; otherwise each source's seeder is opened and closed here.
    """
    from canary.planting.catalog import get_seeder_class
    from canary.planting.planter import open_seeder
    from canary.planting.seeder import Seeder

    events_off = every is not None and every <= timedelta()
    due: dict[str, list] = {}
    for record in registry.list_canaries(status=CanaryStatus.PLANTED):
        if record.placement is None or record.planted_at is None:
            continue
        owed = seeder_due_at(record.placement)
        if (owed is not None and owed <= now) or (
                not events_off and next_event_at(record.id, record.placement, record.planted_at, every) <= now):
            due.setdefault(record.source, []).append(record)
    outcomes: list[EventOutcome] = []
    for source, records in sorted(due.items()):
        spec = registry.get_source(source)
        if get_seeder_class(spec.seeder).add_event is Seeder.add_event:
            continue  # this seeder writes no events: do not even connect
        try:
            seeder = seeders.get(source) if seeders is not None else open_seeder(spec, environ)
        except CanaryError as err:
            outcomes += [EventOutcome(r.id, source, error=str(err)) for r in records[:MAX_PER_RUN]]
            continue
        try:
            if not seeder.writes_events():
                continue  # e.g. a sql mapping without [[related]] event tables
            for record in records[:MAX_PER_RUN]:
                owed = seeder_due_at(record.placement)
                if owed is not None and owed <= now:
                    record = _one_due(registry, seeder, record, now)
                if not events_off and record.placement is not None and \
                        next_event_at(record.id, record.placement, record.planted_at, every) <= now:
                    outcomes.append(_one_event(registry, seeder, record, now))
        finally:
            if seeders is None:
                seeder.close()
    return outcomes


def _one_due(registry, seeder, record, now: datetime):
    """What the seeder set due for this canary (``Seeder.add_due``); the record with its grown placement."""
    try:
        grown = seeder.add_due(record.identity, record.placement, now)
    except CanaryError as err:
        log.warning("drip: what was due for canary #%s in %s failed: %s", record.id, record.source, err)
        return record
    if grown is None:  # nothing the seeder can do: not asked again
        grown = replace(record.placement, extra={k: v for k, v in record.placement.extra.items() if k != DUE_KEY})
    registry.replace_placement(record.id, grown)
    return replace(record, placement=grown)


def _one_event(registry, seeder, record, now: datetime) -> EventOutcome:
    try:
        grown = seeder.add_event(record.identity, record.placement, now)
    except CanaryError as err:
        log.warning("drip: event for canary #%s in %s failed: %s", record.id, record.source, err)
        return EventOutcome(record.id, record.source, error=str(err))
    if grown is None:
        return EventOutcome(record.id, record.source, error="the seeder wrote no event")
    times = [*record.placement.extra.get(EVENTS_KEY, ()), now.astimezone(timezone.utc).isoformat()]
    grown = replace(grown, extra={**grown.extra, EVENTS_KEY: times})
    registry.replace_placement(record.id, grown)
    return EventOutcome(record.id, record.source, rows=len(grown.rows) - len(record.placement.rows))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
