"""Per source database: what a leaked file says about it.

Pure functions of the canaries found and the source's timeline (when each
canary was planted and retired) and usage hits; no I/O.

* Planting events: canaries are planted in events, a batch written within
  seconds or one drip moment. The canaries of one event are one moment for
  dating: a file holding 10 of a batch's 40 canaries was taken after that
  batch, not between two of its canaries milliseconds apart.
* Leak window: the file was taken AFTER the newest planted canary it holds
  (that row did not exist before); it was probably taken BEFORE the next
  planting event, none of whose canaries it holds, unless the export left
  those rows out (a filtered or partial export: see completeness). A found
  canary that was retired since bounds it too: its row was removed then.
* Completeness: of the canaries the database held at the window start (every
  canary of every event up to and including the newest one the file holds,
  less those retired before), the share in the file, with a Wilson 95 %
  interval. Canaries are placed at random, so this estimates the share of the
  database's patients the file holds.
* Holds more: canaries of the source absent from the file whose contact
  points were used (hits): whoever uses them holds rows not published here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from canary.registry.scanstore import Timeline, UseSummary

Z95 = 1.959963984540054
# Two plantings of one batch this close in time are one event (a batch is
# written within seconds; drip moments are hours apart).
EVENT_GAP = timedelta(minutes=10)

CAVEAT = ("absence of a canary planted later suggests the file was taken before it was planted, "
          "unless the export left that row out (filtered or partial export: see completeness)")


@dataclass(frozen=True, slots=True)
class PlantingEvent:
    """Canaries of one batch planted together (a batch at once, or one drip moment)."""

    batch: str
    start: datetime
    end: datetime
    canary_ids: tuple[int, ...]
    found: int = 0  # how many of them the file holds


@dataclass(frozen=True, slots=True)
class Window:
    after: datetime | None  # taken after: the newest planted canary it holds
    after_canary: int | None
    before: datetime | None  # probably before: the next planting event, none of whose canaries it holds
    before_canary: int | None
    removed_before: datetime | None = None  # surely before: a canary it holds was retired then
    removed_canary: int | None = None
    caveat: str = CAVEAT
    after_event: PlantingEvent | None = None  # the newest event the file holds canaries of
    before_event: PlantingEvent | None = None  # the next event, absent from the file


@dataclass(frozen=True, slots=True)
class Completeness:
    found: int
    expected: int  # canaries in the database at the window start
    share: float | None
    low: float | None
    high: float | None
    events: int = 0  # planting events up to the window start


@dataclass(frozen=True, slots=True)
class BatchCount:
    label: str
    found: int
    planted: int


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    canary_id: int
    batch: str
    planted_at: datetime | None
    hits: int
    channels: tuple[str, ...]
    last_hit_at: datetime


@dataclass
class SourceAnalysis:
    source: str
    found: list[int]  # canary ids, confirmed in the file
    planted: int  # canaries ever planted in the source
    batches: list[BatchCount]
    window: Window
    completeness: Completeness
    holds_more: list[HeldElsewhere]
    retired_found: list[int] = field(default_factory=list)


def wilson(found: int, total: int, z: float = Z95) -> tuple[float, float, float] | None:
    """(share, low, high) of a proportion with its Wilson score interval."""
    if total <= 0:
        return None
    p = found / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return p, max(0.0, centre - half), min(1.0, centre + half)


def analyse(source: str, found_ids: Iterable[int], timeline: Sequence[Timeline],
            use: Mapping[int, UseSummary]) -> SourceAnalysis:
    """``timeline``: every canary of ``source``; ``use``: usage hits by canary id."""
    found = set(found_ids)
    planted = [t for t in timeline if t.planted_at is not None]
    held = [t for t in planted if t.canary_id in found]
    events = planting_events(planted, found)
    window = _window(held, events)
    return SourceAnalysis(
        source=source,
        found=sorted(found),
        planted=len(planted),
        batches=_batches(planted, found),
        window=window,
        completeness=_completeness(planted, found, events, window),
        holds_more=_holds_more(timeline, found, use),
        retired_found=sorted(t.canary_id for t in held if t.retired_at is not None),
    )


def planting_events(planted: Sequence[Timeline], found: set[int] = frozenset()) -> list[PlantingEvent]:
    """Plantings grouped into events: one batch's canaries each within EVENT_GAP of the previous one."""
    by_batch: dict[str, list[Timeline]] = {}
    for t in sorted(planted, key=lambda t: (t.planted_at, t.canary_id)):
        by_batch.setdefault(t.batch, []).append(t)
    events = []
    for batch, rows in by_batch.items():
        group = [rows[0]]
        for row in rows[1:]:
            if row.planted_at - group[-1].planted_at > EVENT_GAP:
                events.append(_event(batch, group, found))
                group = []
            group.append(row)
        events.append(_event(batch, group, found))
    return sorted(events, key=lambda e: (e.start, e.canary_ids[0]))


def _event(batch: str, rows: list[Timeline], found: set[int]) -> PlantingEvent:
    ids = tuple(t.canary_id for t in rows)
    return PlantingEvent(batch, rows[0].planted_at, rows[-1].planted_at, ids, sum(1 for i in ids if i in found))


def _window(held: list[Timeline], events: list[PlantingEvent]) -> Window:
    if not held:
        return Window(None, None, None, None)
    newest = max(held, key=lambda t: (t.planted_at, t.canary_id))
    newest_event = next(e for e in events if newest.canary_id in e.canary_ids)
    later = [e for e in events if e.start > newest_event.end and not e.found]
    next_event = min(later, key=lambda e: (e.start, e.canary_ids[0])) if later else None
    retired = [t for t in held if t.retired_at is not None]
    gone = min(retired, key=lambda t: (t.retired_at, t.canary_id)) if retired else None
    return Window(
        after=newest.planted_at, after_canary=newest.canary_id,
        before=next_event.start if next_event else None,
        before_canary=next_event.canary_ids[0] if next_event else None,
        removed_before=gone.retired_at if gone else None,
        removed_canary=gone.canary_id if gone else None,
        after_event=newest_event, before_event=next_event,
    )


def _completeness(planted: list[Timeline], found: set[int], events: list[PlantingEvent],
                  window: Window) -> Completeness:
    """Every canary of the events up to the newest one held counts, even one planted a moment after."""
    if window.after_event is None:
        return Completeness(0, 0, None, None, None)
    start = window.after_event.end
    before = [e for e in events if e.end <= start]
    ids = {i for e in before for i in e.canary_ids}
    present = [t for t in planted if t.canary_id in ids and (t.retired_at is None or t.retired_at > window.after)]
    count = sum(1 for t in present if t.canary_id in found)
    interval = wilson(count, len(present))
    if interval is None:
        return Completeness(count, 0, None, None, None, len(before))
    return Completeness(count, len(present), *interval, events=len(before))


def _batches(planted: list[Timeline], found: set[int]) -> list[BatchCount]:
    planted_per = Counter(t.batch for t in planted)
    found_per = Counter(t.batch for t in planted if t.canary_id in found)
    order = list(dict.fromkeys(t.batch for t in sorted(planted, key=lambda t: (t.planted_at, t.canary_id))))
    return [BatchCount(label, found_per.get(label, 0), planted_per[label]) for label in order]


def _holds_more(timeline: Sequence[Timeline], found: set[int], use: Mapping[int, UseSummary]
                ) -> list[HeldElsewhere]:
    out = []
    for t in timeline:
        summary = use.get(t.canary_id)
        if summary is None or t.canary_id in found:
            continue
        out.append(HeldElsewhere(t.canary_id, t.batch, t.planted_at, summary.count, summary.channels,
                                 summary.last_at))
    return sorted(out, key=lambda h: h.canary_id)
