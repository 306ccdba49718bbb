"""Per source database: what a leaked file says about it.

Pure functions of the canaries found and the source's timeline (when each
canary was planted and retired) and usage hits; no I/O.

* Leak window: the file was taken AFTER the newest planted canary it holds
  (that row did not exist before); it was probably taken BEFORE the first
  canary planted later that it lacks, unless the export left that row out
  (a filtered or partial export: see completeness). A found canary that was
  retired since bounds it too: its row was removed then.
* Completeness: of the canaries the database held at the window start, the
  share in the file, with a Wilson 95 % interval. Canaries are placed at
  random, so this estimates the share of the database's patients the file
  holds.
* Holds more: canaries of the source absent from the file whose contact
  points were used (hits): whoever uses them holds rows not published here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from canary.registry.scanstore import Timeline, UseSummary

Z95 = 1.959963984540054

CAVEAT = ("absence of a canary planted later suggests the file was taken before it was planted, "
          "unless the export left that row out (filtered or partial export: see completeness)")


@dataclass(frozen=True, slots=True)
class Window:
    after: datetime | None  # taken after: the newest planted canary it holds
    after_canary: int | None
    before: datetime | None  # probably before: first canary planted later that it lacks
    before_canary: int | None
    removed_before: datetime | None = None  # surely before: a canary it holds was retired then
    removed_canary: int | None = None
    caveat: str = CAVEAT


@dataclass(frozen=True, slots=True)
class Completeness:
    found: int
    expected: int  # canaries in the database at the window start
    share: float | None
    low: float | None
    high: float | None


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
    window = _window(held, planted, found)
    return SourceAnalysis(
        source=source,
        found=sorted(found),
        planted=len(planted),
        batches=_batches(planted, found),
        window=window,
        completeness=_completeness(held, planted, window.after),
        holds_more=_holds_more(timeline, found, use),
        retired_found=sorted(t.canary_id for t in held if t.retired_at is not None),
    )


def _window(held: list[Timeline], planted: list[Timeline], found: set[int]) -> Window:
    if not held:
        return Window(None, None, None, None)
    newest = max(held, key=lambda t: (t.planted_at, t.canary_id))
    later = [t for t in planted if t.planted_at > newest.planted_at and t.canary_id not in found]
    first_absent = min(later, key=lambda t: (t.planted_at, t.canary_id)) if later else None
    retired = [t for t in held if t.retired_at is not None]
    gone = min(retired, key=lambda t: (t.retired_at, t.canary_id)) if retired else None
    return Window(
        after=newest.planted_at, after_canary=newest.canary_id,
        before=first_absent.planted_at if first_absent else None,
        before_canary=first_absent.canary_id if first_absent else None,
        removed_before=gone.retired_at if gone else None,
        removed_canary=gone.canary_id if gone else None,
    )


def _completeness(held: list[Timeline], planted: list[Timeline], at: datetime | None) -> Completeness:
    if at is None:
        return Completeness(0, 0, None, None, None)
    present = [t for t in planted if t.planted_at <= at and (t.retired_at is None or t.retired_at > at)]
    present_ids = {t.canary_id for t in present}
    count = sum(1 for t in held if t.canary_id in present_ids)
    interval = wilson(count, len(present))
    if interval is None:
        return Completeness(count, 0, None, None, None)
    return Completeness(count, len(present), *interval)


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
