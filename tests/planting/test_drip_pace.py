"""Drip at the site's pace: admission-rate pacing, plantings spread over the timer slot, learned catchment."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from canary.errors import ConfigError
from canary.model import Identity
from canary.planting.drip import planting_moments, run_due, schedule_drip
from canary.planting.pace import canaries_allowed, check_schedule, drip_settings, may_plant
from canary.planting.planter import open_seeder, plant
from canary.registry.dripstore import DripSlot, DripStatus
from support.lis_site import CATCHMENT, build_site
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import MAPPING

PARIS = ZoneInfo("Europe/Paris")
WEDNESDAY = datetime(2025, 6, 11, 10, 30, tzinfo=PARIS)


@pytest.fixture
def site(tmp_path):
    """A LIS that registered 600 patients over the last year (more of them lately)."""
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    build_site(url, 600, now=WEDNESDAY.replace(tzinfo=None) - timedelta(hours=1), years=1, seed=8)
    registry, config = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    yield registry, config, url
    registry.close()


def registered_since(url: str, since: datetime) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM patients WHERE cree_le >= :s"), {"s": since}).scalar_one()
    engine.dispose()
    return n


# -- the arithmetic --------------------------------------------------------------------


def test_two_percent_means_one_canary_per_forty_nine_real_patients():
    assert canaries_allowed(48, 0.02) == 0 and canaries_allowed(49, 0.02) == 1 and canaries_allowed(98, 0.02) == 2
    assert may_plant(admissions=50, canaries=0, share=0.02)  # 49 real + this one
    assert not may_plant(admissions=50, canaries=1, share=0.02)  # 49 real, 1 canary already
    assert may_plant(admissions=0, canaries=5, share=0)  # pacing off


def test_a_schedule_the_site_cannot_hide_names_the_period_it_needs():
    now = datetime(2025, 6, 11, 10, 0)
    two_a_day = [now - timedelta(hours=12 * n) for n in range(1, 731)]  # a year at 2 a day
    with pytest.raises(ConfigError, match=r"30 canaries stay within 2% of new patients only over 735 days "
                                          r"or more: use --over 735d"):
        check_schedule(30, timedelta(weeks=6), two_a_day, now, 0.02, "lis")
    assert check_schedule(1, timedelta(weeks=6), two_a_day, now, 0.02, "lis") == pytest.approx(2.0, rel=0.01)
    assert check_schedule(30, timedelta(weeks=6), None, now, 0.02, "lis") is None  # cannot count: not paced
    with pytest.raises(ConfigError, match="no patient registered in the target over the last year"):
        check_schedule(1, timedelta(weeks=6), [], now, 0.02, "lis")


def test_settings_are_checked():
    assert drip_settings({}).timer_slot == timedelta(minutes=10)
    assert drip_settings({"drip": {"timer_slot": "0m", "max_share": 0}}).timer_slot == timedelta()
    with pytest.raises(ConfigError, match="drip.max_share must be a number from 0 to 1"):
        drip_settings({"drip": {"max_share": 2}})
    with pytest.raises(ConfigError, match="drip.timer_slot must be a duration like 10m"):
        drip_settings({"drip": {"timer_slot": "often"}})
    with pytest.raises(ConfigError, match="drip.pace_window must be a duration"):
        drip_settings({"drip": {"pace_window": "-3"}})


# -- against a site ---------------------------------------------------------------------


def test_the_seeder_reports_admissions_and_postcodes(site):
    registry, _config, url = site
    seeder = open_seeder(registry.get_source("lis"))
    try:
        since = WEDNESDAY - timedelta(days=30)
        admissions = seeder.admissions_since(since)
        postcodes = seeder.site_postcodes()
    finally:
        seeder.close()
    assert len(admissions) == registered_since(url, since.replace(tzinfo=None)) > 20
    assert set(postcodes) <= {p for p, _c, _w in CATCHMENT} and sum(postcodes.values()) == 600


def test_run_due_holds_back_what_the_window_s_admissions_cannot_hide(site):
    registry, config, url = site
    real = registered_since(url, (WEDNESDAY - timedelta(days=30)).replace(tzinfo=None))
    allowed = canaries_allowed(real, 0.02)
    assert allowed >= 1
    now = WEDNESDAY.astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now - timedelta(minutes=n) for n in range(1, allowed + 3)], "t", now)
    with freeze_time(now):
        report = run_due(registry, config, now)
    assert len(report.planted) == allowed and report.paced == 2 and not report.failed
    pending = [s for s in registry.list_drip_slots(source="lis") if s.status is DripStatus.PENDING]
    assert len(pending) == 2  # they wait for later runs


def test_plantings_follow_the_site_s_postcodes_unless_a_catchment_is_given(site):
    registry, config, _url = site
    with freeze_time(WEDNESDAY):
        result = plant(registry, config, "lis", 6, seed=3, batch_label="b")
    postcodes = {registry.get_canary(i).identity.address.postcode for i in result.canary_ids}
    assert postcodes <= {p for p, _c, _w in CATCHMENT}
    add_source(registry, "other", "sql", url=registry.get_source("lis").url, mapping=str(MAPPING),
               catchment=("13",))
    with freeze_time(WEDNESDAY):
        result = plant(registry, config, "other", 3, seed=4, batch_label="c")
    assert all(registry.get_canary(i).identity.address.postcode.startswith("13") for i in result.canary_ids)


def test_scheduling_refuses_a_pace_the_site_cannot_hide(site, tmp_path):
    from canary.cli.drip import plant_over
    from canary.cli.options import Env

    registry, config, _url = site
    env = Env(None)
    env.config, env._registry = config, registry
    with freeze_time(WEDNESDAY):
        with pytest.raises(ConfigError, match=r"use --over \d+d"):
            plant_over(env, "lis", 30, "6w")
        assert len(plant_over(env, "lis", 1, "6w")) == 1


# -- spread over the timer slot ------------------------------------------------------


def _slot(n: int, due: datetime) -> DripSlot:
    return DripSlot(id=n, source="lis", due_at=due, status=DripStatus.PENDING, attempts=1, batch=None, operator="t",
                    canary_id=None, created_at=due, finished_at=None, last_error=None)


def test_overdue_slots_are_spread_over_the_whole_slot_and_future_ones_keep_their_moment():
    now = datetime(2025, 6, 11, 8, 10, 2, tzinfo=timezone.utc)
    slot = timedelta(minutes=10)
    overdue = [_slot(n, now - timedelta(minutes=n)) for n in range(1, 201)]
    future = _slot(999, now + timedelta(minutes=4, seconds=7))
    moments = dict((s.id, m) for s, m in planting_moments(overdue + [future], now, slot, random.Random(2)))
    assert moments[999] == now + timedelta(minutes=4, seconds=7)
    offsets = [(moments[s.id] - now).total_seconds() for s in overdue]
    assert 0 <= min(offsets) < 30 and 570 < max(offsets) < 600
    minutes = Counter(int(o // 60) for o in offsets)
    assert len(minutes) == 10 and max(minutes.values()) < 40  # every minute of the slot, none crowded
    assert all(m == now for _s, m in planting_moments(overdue[:3], now, timedelta(), random.Random(1)))


def test_run_due_waits_for_each_moment_and_a_stop_releases_the_rest(site):
    registry, config, _url = site
    config = dataclasses.replace(config, raw={"drip": {"max_share": 0}})
    now = WEDNESDAY.astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now + timedelta(minutes=3), now + timedelta(minutes=7),
                                    now + timedelta(minutes=25)], "t", now)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        return len(waits) == 2  # asked to stop during the second wait

    with freeze_time(now):
        report = run_due(registry, config, now, spread=timedelta(minutes=10), sleep=sleep)
    assert waits == [180.0, 240.0] and len(report.planted) == 1
    statuses = sorted(s.status.value for s in registry.list_drip_slots(source="lis"))
    assert statuses == ["done", "pending", "pending"]
    assert isinstance(registry.get_canary(report.planted[0].canary_id).identity, Identity)
