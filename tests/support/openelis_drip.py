"""30 canaries drip-planted into the OpenELIS test site over its life, as `canary drip run` would have.

The site (``support.openelis_site``) is written save by save in time order;
between two saves, at each moment a drip timer run falls, the real drip code
runs with the clock frozen at that moment (``canary.planting.drip.run_due``:
pace check against the site's admissions, one planting per due slot, then the
later events due to planted canaries through ``OpenElisSeeder.add_event``).
Canaries thus get the ids, accession numbers and times of their moment among
the real patients, as on a site where the drip ran all along.

``naive``: the 30 canaries planted in one batch at the end instead (what a
first install did), for the "before" figure of docs/concealment.md.

Used by tests/seeders/openelis/test_openelis_concealment.py and
bench/bench_openelis_separability.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from freezegun import freeze_time

from canary.audit.site import audit_separability
from canary.planting.drip import run_due, schedule_drip
from canary.planting.planter import plant
from canary.planting.schedule import in_working_hours
from canary.registry.dripstore import DripStatus
from support.openelis_site import SiteWriter, create_current_schema, make_lab
from support.plant_helpers import add_source, new_registry, production_config

PARIS = ZoneInfo("Europe/Paris")
# A pool as a careful operator buys it (docs/setup.md): mobiles of several operators spread over 48 blocks,
# so that with contacts.max_per_phone_block = 1 no two canaries share a 10,000-number block.
SPREAD_POOL = tuple(f"+33{prefix}{n:02d}{tail:04d}" for prefix in ("607", "650", "651", "601", "766", "782")
                    for n in range(10, 18) for tail in (1123, 4756))
CANARIES = 30
SOURCE = "lis"
RUN_EVERY = timedelta(days=7)  # after the last slot: runs replayed until every held-back slot is planted


@dataclass
class Planted:
    registry: object
    config: object
    url: str
    planted: int
    events: int  # later requests written by drip runs
    runs: int
    errors: tuple[str, ...] = ()  # plantings that failed (the slot is tried again by a later run)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def local(moment: datetime) -> datetime:
    """A UTC moment on the lab server's clock (Europe/Paris, naive), as the application stamps it."""
    return moment.astimezone(PARIS).replace(tzinfo=None)


def _frozen(moment: datetime):
    """The clock at ``moment``, the server's local time in Europe/Paris (what datetime.now() returns there)."""
    offset = moment.astimezone(PARIS).utcoffset()
    return freeze_time(moment.astimezone(timezone.utc).replace(tzinfo=None), tz_offset=offset)


def plant_site(url: str, work: Path, *, patients: int, days: int, over: int, now: datetime, seed: int = 3,
               naive: bool = False, max_share: float = 0.02, progress=None  # noqa: ANN001 (a print-like callable)
               ) -> Planted:
    """Build the site at ``url`` (an empty database) with 30 canaries drip-planted over its last ``over`` days,
    at most ``max_share`` of the admissions of any 30 days (``drip.max_share``)."""
    create_current_schema(url)
    saves = make_lab(patients, now=local(now), seed=seed, days=days)
    writer = SiteWriter(url)
    registry, config = new_registry(work)
    config = production_config(config.registry_url, pool=SPREAD_POOL)
    config = replace(config, raw={**config.raw, "drip": {"max_share": max_share}},
                     contacts=replace(config.contacts, max_per_phone_block=1))
    add_source(registry, SOURCE, "openelis", url=url)
    runs = events = 0
    errors: list[str] = []
    try:
        if naive:
            writer.write(saves)
            with _frozen(now):
                plant(registry, config, SOURCE, CANARIES, seed=seed, batch_label="naive")
        else:
            start = now - timedelta(days=over)
            # Slots over all but the last five months: a slot the pace holds back waits for a later run.
            schedule_drip(registry, SOURCE, CANARIES, timedelta(days=over - 150), start, random.Random(seed))
            done = 0
            last_due = max(slot.due_at for slot in registry.list_drip_slots())
            for moment in _run_moments(registry, start, now):
                if _naive_utc(moment) > _naive_utc(last_due) and not registry.list_drip_slots(
                        status=DripStatus.PENDING):
                    break  # every slot planted: the rest of the site's life needs no replay
                cut = local(moment)
                upto = next((i for i in range(done, len(saves)) if saves[i].moment >= cut), len(saves))
                writer.write(saves[done:upto])
                done = upto
                with _frozen(moment):
                    report = run_due(registry, config, moment, rng=random.Random(runs))
                runs += 1
                events += sum(1 for e in report.events if e.rows)
                errors += [o.error for o in report.failed]
                if progress:
                    progress(f"run {runs} at {local(moment):%Y-%m-%d %H:%M}: {len(report.planted)} planted, "
                             f"{report.paced} paced, {len(report.events)} events due")
            writer.write(saves[done:])
    finally:
        writer.close()
    planted = len(registry.list_canaries(source=SOURCE))
    return Planted(registry, config, url, planted, events, runs, tuple(errors))


def _run_moments(registry, start: datetime, end: datetime) -> list[datetime]:
    """The drip timer's runs worth replaying: each slot's due moment, then a run every ``RUN_EVERY`` after
    the last one until ``end`` (slots held back by the pace are planted by a later run)."""
    due = [slot.due_at if slot.due_at.tzinfo else slot.due_at.replace(tzinfo=timezone.utc)
           for slot in registry.list_drip_slots()]
    later, moment = [], max(due, default=start) + RUN_EVERY
    rnd = random.Random(11)
    while moment < end - timedelta(hours=2):
        candidate = moment.astimezone(PARIS).replace(hour=rnd.randint(9, 16), minute=rnd.randint(0, 59))
        candidate = candidate.astimezone(timezone.utc)
        if in_working_hours(candidate) and candidate < end:
            later.append(candidate)
        moment += RUN_EVERY
    return sorted(set(due + later))


def audit(planted: Planted):
    """`canary audit lis --separability`, through the library the command calls."""
    return audit_separability(planted.registry, planted.config, SOURCE)


# What an attacker holding a copy of clinlims runs: every patient with a validated result in the last 12 months.
RESULT_EXPORT = """
SELECT DISTINCT p.id
FROM clinlims.patient p JOIN clinlims.person pr ON pr.id = p.person_id
JOIN clinlims.sample_human sh ON sh.patient_id = p.id JOIN clinlims.sample s ON s.id = sh.samp_id
JOIN clinlims.sample_item si ON si.samp_id = s.id JOIN clinlims.analysis a ON a.sampitem_id = si.id
JOIN clinlims.result r ON r.analysis_id = a.id
JOIN clinlims.status_of_sample st ON st.id = a.status_id AND st.name = 'Finalized'
WHERE a.released_date >= :since AND r.value <> ''
"""


def exported_canaries(planted: Planted, now: datetime) -> tuple[int, int]:
    """(canaries planted a month to a year before ``now``, how many of them the 12-month export holds).

    Older canaries are in it when they came back within the year, as the site's own patients are.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(planted.url)
    try:
        with engine.connect() as conn:
            exported = {int(row[0]) for row in conn.execute(
                sa.text(RESULT_EXPORT), {"since": local(now) - timedelta(days=365)})}
    finally:
        engine.dispose()
    month_old = [c for c in planted.registry.list_canaries(source=SOURCE)
                 if c.planted_at is not None
                 and now - timedelta(days=365) <= _aware(c.planted_at) <= now - timedelta(days=30)]
    ids = [next(int(r["key"]["id"]) for r in c.placement.rows if r["table"] == "patient") for c in month_old]
    return len(ids), sum(1 for i in ids if i in exported)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
