"""Drip planting: one canary at a time, at random working-hour moments.

Planting 20 canaries at once gives them consecutive ids and one creation
minute: an attacker sorting a dump sees which rows are new. ``canary plant
SOURCE --count N --over 30d`` instead schedules N single plantings at random
working-hour times over the period (``schedule_drip``); the listener's
``DripWorker`` (or ``canary drip run`` from cron or a systemd timer) carries
out the due ones (``run_due``). Each planting is its own batch (kind
``drip``, label ``SOURCE-drip-YYYYMMDD-HHMM`` naming its scheduled minute,
Europe/Paris time), so a leaked canary tells when the leak happened.

Catching up: a run outside working hours plants nothing (a canary created at
3 a.m. would stand out); the next run inside working hours plants every slot
that is due, however late. After a long outage that is a burst: ``canary
drip list`` shows it coming, and ``drip cancel`` + a new ``--over`` spreads
the rest again.

Pace (``canary/planting/pace.py``): canaries stay within ``drip.max_share``
of the site's new patients; a due slot that would exceed it waits for later
runs (``DripReport.paced``).

A life over time: each run also adds the later events that are due to
planted canaries (``canary/planting/events.py``), through seeders that
write them.

Spread over the timer slot: a run started every ``drip.timer_slot`` by a
timer takes the slots due before the next run and plants each at its own
moment: a future one at its due moment, an overdue one at a random moment of
the slot. Creation times then carry no minute-of-slot fingerprint (all
canaries created a few seconds after :00, :10, :20...).

Safe to run concurrently and again: slots are claimed (see
``canary/registry/dripstore.py``), and a slot whose batch already holds a
live canary (a runner died after planting, before marking the slot) is
marked done without planting twice.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from canary.config import Config
from canary.planting.pace import DripSettings, drip_settings, may_plant
from canary.planting.schedule import TIMEZONE, WORKING_HOURS, Growth, draw_due_times, in_working_hours
from canary.errors import CanaryError
from canary.model import CanaryStatus
from canary.registry.dripstore import DripSlot

log = logging.getLogger(__name__)

DRIP_KIND = "drip"
MAX_COUNT = 10_000
MAX_ATTEMPTS = 5  # then the slot is marked failed; `canary drip list` shows why
DEFAULT_LEASE = timedelta(minutes=10)  # longer than any single planting
DEFAULT_INTERVAL = 60.0  # seconds between the listener's runs


@dataclass(frozen=True, slots=True)
class DripOutcome:
    slot_id: int
    source: str
    batch: str | None = None
    canary_id: int | None = None
    error: str | None = None


@dataclass
class DripReport:
    planted: list[DripOutcome] = field(default_factory=list)
    failed: list[DripOutcome] = field(default_factory=list)
    deferred: int = 0  # due slots left for a run inside working hours
    paced: int = 0  # due slots held back: one more canary would exceed drip.max_share of new patients
    unpaced: list[str] = field(default_factory=list)  # sources whose seeder cannot count admissions
    events: list = field(default_factory=list)  # EventOutcome: later events added to planted canaries


def schedule_drip(registry, source: str, count: int, over: timedelta, now: datetime,
                  rng: random.Random | None = None, *, working_hours: tuple[int, int] = WORKING_HOURS,
                  tz: str = TIMEZONE, operator: str = "unknown",
                  hour_weights: dict[int, float] | None = None, growth: Growth | None = None) -> list[datetime]:
    """Schedule ``count`` single plantings into ``source`` over ``over``; their due times (UTC).

    ``hour_weights``: the site's registrations per local hour (schedule.site_hour_weights), so the
    plantings come at the hours the site registers its patients; None: working minutes evenly.
    ``growth``: the trend of the site's registrations (schedule.site_growth), so more come on the days
    more of the site's patients are expected to (with ``hour_weights`` only)."""
    if not 1 <= count <= MAX_COUNT:
        raise CanaryError(f"--count must be between 1 and {MAX_COUNT}")
    registry.get_source(source)  # unknown source -> one clear error
    due = draw_due_times(count, now, over, rng or random.SystemRandom(), working_hours, tz, hour_weights,
                         growth)
    registry.add_drip_slots(source, due, operator, now)
    return due


def batch_label(source: str, due_at: datetime, tz: str = TIMEZONE) -> str:
    return f"{source}-drip-{due_at.astimezone(ZoneInfo(tz)):%Y%m%d-%H%M}"


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_due(registry, config: Config, now: datetime, *, working_hours: tuple[int, int] = WORKING_HOURS,
            tz: str = TIMEZONE, worker: str | None = None, lease: timedelta = DEFAULT_LEASE,
            environ=os.environ, spread: timedelta = timedelta(), sleep=time.sleep,
            rng: random.Random | None = None) -> DripReport:
    """Plant one canary per due slot, each in its own batch; a no-op outside working hours.

    With ``spread`` (the timer's period), slots due before ``now + spread`` are
    taken too and each is planted at its own moment of the slot (``sleep``
    waits for it); the canary's creation time is then that moment.
    """
    if not in_working_hours(now, working_hours, tz):
        return DripReport(deferred=registry.count_due_drip_slots(now))
    settings = drip_settings(config.raw)
    worker = worker or default_worker_id()
    slots = registry.claim_drip_slots(worker, now + spread, lease + spread)
    moments = planting_moments(slots, now, spread, rng or random.SystemRandom())
    report = DripReport()
    clock = now
    seeders = _OpenSeeders(registry, environ)  # one connection per source for the whole run
    try:
        clock = _plant_moments(registry, config, moments, worker, settings, report, seeders, clock, tz, sleep)
        if in_working_hours(clock, working_hours, tz):
            from canary.planting.events import add_due_events

            report.events = add_due_events(registry, clock, settings.event_every, environ, seeders=seeders)
    finally:
        seeders.close()
    return report


def _plant_moments(registry, config: Config, moments, worker: str, settings: DripSettings, report: DripReport,
                   seeders: "_OpenSeeders", clock: datetime, tz: str, sleep) -> datetime:
    for index, (slot, moment) in enumerate(moments):
        try:
            if moment > clock:
                if sleep((moment - clock).total_seconds()):  # True: asked to stop while waiting
                    registry.release_drip_slots([s.id for s, _ in moments[index:]], worker)
                    break
                clock = moment
            if not _pace_allows(registry, slot.source, clock, settings, report, seeders):
                registry.release_drip_slots([slot.id], worker)
                report.paced += 1
                continue
            label, canary_id = _plant_slot(registry, config, slot, tz, seeders)
        except CanaryError as err:
            seeders.drop(slot.source)  # a failed insert may leave it in a state not worth reusing
            give_up = slot.attempts >= MAX_ATTEMPTS
            registry.fail_drip_slot(slot.id, worker, clock, str(err), give_up)
            report.failed.append(DripOutcome(slot.id, slot.source, error=str(err)))
            log.warning("drip planting into %s failed (try %d%s): %s", slot.source, slot.attempts,
                        ", given up" if give_up else "", err)
            continue
        except BaseException:
            registry.release_drip_slots([s.id for s, _ in moments[index:]], worker)
            raise
        registry.finish_drip_slot(slot.id, clock, label, canary_id)
        report.planted.append(DripOutcome(slot.id, slot.source, label, canary_id))
        log.info("drip: planted canary #%s into %s (batch %s)", canary_id, slot.source, label)
    return clock


class _OpenSeeders:
    """The sources' seeders opened once per drip run: opening one reflects the tables and reads the site's
    habits (seconds on a real site); each later use only re-reads the habits when the site changed."""

    def __init__(self, registry, environ) -> None:
        self.registry = registry
        self.environ = environ
        self._open: dict[str, Any] = {}

    def get(self, source: str):
        """The source's seeder, opened at the first call; at the next ones refreshed (``Seeder.refresh``):
        what it learnt from the site is read again if the site changed, our own plantings included."""
        if source not in self._open:
            from canary.planting.planter import open_seeder

            self._open[source] = open_seeder(self.registry.get_source(source), self.environ)
        else:
            self._open[source].refresh()
        return self._open[source]

    def drop(self, source: str) -> None:
        seeder = self._open.pop(source, None)
        if seeder is not None:
            seeder.close()

    def close(self) -> None:
        for source in list(self._open):
            self.drop(source)


def planting_moments(slots: list[DripSlot], now: datetime, spread: timedelta,
                     rng: random.Random) -> list[tuple[DripSlot, datetime]]:
    """When to plant each claimed slot: its due moment, or a random moment of the slot when overdue."""
    moments = []
    for slot in slots:
        due = slot.due_at if slot.due_at.tzinfo else slot.due_at.replace(tzinfo=timezone.utc)
        if due >= now or not spread:
            moments.append((slot, max(due, now)))
        else:
            moments.append((slot, now + timedelta(seconds=rng.uniform(0, spread.total_seconds()))))
    return sorted(moments, key=lambda pair: pair[1])


def _pace_allows(registry, source: str, now: datetime, settings: DripSettings, report: DripReport,
                 seeders: _OpenSeeders) -> bool:
    """Whether planting into ``source`` now keeps canaries within drip.max_share of new patients."""
    if settings.max_share <= 0 or source in report.unpaced:
        return True
    since = now - settings.pace_window
    # Applications store local wall-clock time: ask in the drip time zone.
    admissions = seeders.get(source).admissions_since(since.astimezone(ZoneInfo(TIMEZONE)))
    if admissions is None:
        report.unpaced.append(source)
        log.warning("drip: seeder of %s cannot count admissions: not paced", source)
        return True
    ours = [c for c in registry.list_canaries(source=source) if c.planted_at is not None
            and _aware(c.planted_at) >= since]
    return may_plant(len(admissions), len(ours), settings.max_share)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _plant_slot(registry, config: Config, slot: DripSlot, tz: str, seeders: _OpenSeeders
                ) -> tuple[str, int | None]:
    from canary.planting.planter import plant

    base = batch_label(slot.source, slot.due_at, tz)
    family = [b.label for b in registry.list_batches(slot.source)
              if b.label == base or b.label.startswith(base + "-")]
    for label in family:
        live = [c for c in registry.list_canaries(batch=label) if c.status is not CanaryStatus.RETIRED]
        if live:  # planted by an earlier run that died before marking the slot
            return label, live[0].id
    label, n = base, 1
    while label in family:  # an earlier try failed after opening its batch
        n += 1
        label = f"{base}-{n}"
    result = plant(registry, config, slot.source, 1, batch_label=label, batch_kind=DRIP_KIND,
                   seeder=seeders.get(slot.source))
    return label, result.canary_ids[0]


def cancel_drip(registry, source: str, now: datetime) -> int:
    return registry.cancel_drip_slots(source, now)


def slot_to_dict(slot: DripSlot) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.astimezone(timezone.utc).isoformat() if moment else None

    return {
        "id": slot.id, "source": slot.source, "due_at": iso(slot.due_at), "status": slot.status.value,
        "attempts": slot.attempts, "batch": slot.batch, "canary_id": slot.canary_id,
        "created_at": iso(slot.created_at), "finished_at": iso(slot.finished_at),
        "error": slot.last_error,
    }


def report_to_dict(report: DripReport) -> dict[str, Any]:
    return {
        "planted": [{"slot": o.slot_id, "source": o.source, "batch": o.batch, "canary_id": o.canary_id}
                    for o in report.planted],
        "failed": [{"slot": o.slot_id, "source": o.source, "error": o.error} for o in report.failed],
        "deferred": report.deferred,
        "paced": report.paced,
        "unpaced": list(report.unpaced),
        "events": [{"canary_id": e.canary_id, "source": e.source, "rows": e.rows, "error": e.error}
                   for e in report.events],
    }


class DripWorker:
    """Runs ``run_due`` every ``interval`` seconds in a thread, for the listener service."""

    def __init__(self, registry, config: Config, *, interval: float = DEFAULT_INTERVAL,
                 environ=os.environ, worker_id: str | None = None) -> None:
        self.registry = registry
        self.config = config
        self.interval = interval
        self.environ = environ
        self.worker_id = worker_id or default_worker_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> DripReport:
        # Runs every ``interval`` seconds: each run spreads its plantings over that interval.
        return run_due(self.registry, self.config, now or datetime.now(timezone.utc),
                       worker=self.worker_id, environ=self.environ,
                       spread=timedelta(seconds=self.interval), sleep=self._stop.wait)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="canary-drip", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bug or a registry outage: log it, try again next round
                log.exception("drip run failed")
            self._stop.wait(self.interval)
