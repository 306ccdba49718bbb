"""A life over time: drip runs add later events to planted canaries through the seeder hook."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from canary.model import Placement, VerifyState
from canary.planting import catalog
from canary.planting.drip import report_to_dict, run_due
from canary.planting.events import DEFAULT_EVERY, EVENTS_KEY, MIN_GAP, PACE_KEY, next_event_at
from canary.planting.pace import drip_settings
from canary.planting.planter import open_seeder, plant
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import MAPPING, count_rows, create_schema, mapping_without_related, populate_real

PARIS = ZoneInfo("Europe/Paris")
PLANTED = datetime(2025, 3, 26, 10, 30, tzinfo=PARIS)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setitem(catalog.BUILTIN_SEEDERS, "sql-events", "support.event_seeder:EventSeeder")
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 40)
    registry, config = new_registry(tmp_path)
    config = dataclasses.replace(config, raw={"drip": {"max_share": 0, "event_every": "30d"}})
    add_source(registry, "lis", "sql-events", url=url, mapping=str(MAPPING))
    add_source(registry, "plain", "sql", url=url, mapping=str(mapping_without_related(tmp_path)))  # no event table
    with freeze_time(PLANTED):
        ids = plant(registry, config, "lis", 2, seed=1).canary_ids
        plant(registry, config, "plain", 1, seed=2)
    yield registry, config, url, ids
    registry.close()


def test_the_next_event_is_drawn_per_canary_and_never_within_a_week():
    planted = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
    empty = Placement()
    gaps = [next_event_at(i, empty, planted, timedelta(days=60)) - planted for i in range(400)]
    assert min(gaps) >= MIN_GAP and len(set(gaps)) > 390
    mean = sum(g.total_seconds() for g in gaps) / len(gaps) / 86400
    assert 45 < mean < 75
    assert next_event_at(3, empty, planted, timedelta(days=60)) == planted + gaps[3]  # every run agrees
    later = Placement(extra={EVENTS_KEY: [(planted + timedelta(days=90)).isoformat()]})
    assert next_event_at(3, later, planted, timedelta(days=60)) >= planted + timedelta(days=97)


def test_the_default_pace_is_the_one_the_seeder_learned_from_the_site():
    """drip.event_every = "site" (the default): the revisit pace the seeder stored at planting, else 60 days;
    a duration set in canary.toml wins over it."""
    assert drip_settings({}).event_every is None and drip_settings({"drip": {"event_every": "site"}}).event_every is None
    assert drip_settings({"drip": {"event_every": "30d"}}).event_every == timedelta(days=30)
    planted = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
    paced = Placement(extra={PACE_KEY: 150 * 86400})

    def mean_gap(placement, every):
        gaps = [next_event_at(i, placement, planted, every) - planted for i in range(400)]
        return sum(g.total_seconds() for g in gaps) / len(gaps) / 86400

    assert 125 < mean_gap(paced, None) < 175
    assert DEFAULT_EVERY == timedelta(days=60) and 45 < mean_gap(Placement(), None) < 75
    assert 20 < mean_gap(paced, timedelta(days=30)) < 40


def test_due_events_grow_the_placement_then_verify_and_retire_cover_them(setup):
    registry, config, url, ids = setup
    analyses = count_rows(url, "analyses")
    soon = (PLANTED + timedelta(days=1)).astimezone(timezone.utc)
    with freeze_time(soon):
        assert run_due(registry, config, soon).events == []
    later = datetime(2026, 3, 25, 10, 0, tzinfo=PARIS).astimezone(timezone.utc)  # a year on, a Wednesday
    with freeze_time(later):
        report = run_due(registry, config, later)
    assert sorted(e.canary_id for e in report.events) == sorted(ids)  # not the plain sql source's canary
    assert all(e.rows == 1 and e.error is None for e in report.events)
    assert report_to_dict(report)["events"][0]["rows"] == 1
    assert count_rows(url, "analyses") == analyses + 2
    record = registry.get_canary(ids[0])
    assert record.placement.rows[-1]["table"] == "analyses" and len(record.placement.extra[EVENTS_KEY]) == 1
    seeder = open_seeder(registry.get_source("lis"))
    try:
        assert seeder.verify(record.identity, record.placement).state is VerifyState.OK
        for canary_id in ids:
            seeder.retire(registry.get_canary(canary_id).placement)
    finally:
        seeder.close()
    assert count_rows(url, "analyses") == 40  # the real patients' results only: the canaries' first ones went too
