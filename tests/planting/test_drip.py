"""Drip planting: schedule in working hours, plant exactly the due slots, once each.

Real planting into the SQLite test LIS (tests/fixtures/lis_*), real registry.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from canary.cli.main import CanaryGroup, Env
from canary.cli.drip import drip, plant_over
from canary.planting.drip import batch_label, run_due, schedule_drip
from canary.planting.schedule import (draw_due_times, french_holidays, parse_duration, site_growth,
                                      site_hour_weights)
from canary.errors import CanaryError, ConfigError
from canary.registry import Registry
from canary.registry.dripstore import DripStatus
from support.plant_helpers import POOL, add_source, new_registry, production_config
from support.sql_seeder_helpers import MAPPING, count_rows, create_schema, populate_real

PARIS = ZoneInfo("Europe/Paris")
WEDNESDAY = datetime(2025, 3, 26, 10, 30, tzinfo=PARIS)  # the period spans the switch to summer time


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.fixture
def lis(tmp_path):
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 40)
    return url


@pytest.fixture
def setup(tmp_path, lis):
    registry, config = new_registry(tmp_path)
    # This LIS registers nobody any more (its patients date from 2019): pacing would hold every slot.
    # Pacing has its own tests (tests/planting/test_drip_pace.py) on a site with recent admissions.
    config = dataclasses.replace(config, raw={"drip": {"max_share": 0}})
    add_source(registry, "lis", "sql", url=lis, mapping=str(MAPPING))
    yield registry, config, lis
    registry.close()


# -- the schedule -------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2)),
    ("90m", timedelta(minutes=90)), ("1w 3d", timedelta(days=10)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "3x", "d", "0d", "-2d", "1.5d"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(ConfigError, match="--over"):
        parse_duration(text)


def test_french_holidays():
    days = french_holidays(2025)
    assert {date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9), date(2025, 7, 14),
            date(2025, 12, 25), date(2025, 5, 8)} <= days
    assert len(days) == 11


def test_twenty_over_ten_days_fall_in_paris_working_hours(setup):
    registry, _config, _url = setup
    with freeze_time(WEDNESDAY):
        now = datetime.now(timezone.utc)
        due = schedule_drip(registry, "lis", 20, timedelta(days=10), now, random.Random(7), operator="tester")
    assert len(due) == 20 and due == sorted(due)
    local = [d.astimezone(PARIS) for d in due]
    assert all(8 <= moment.hour < 18 for moment in local)
    assert all(moment.weekday() < 5 for moment in local)
    assert all(now < d < now + timedelta(days=10) for d in due)
    assert len({moment.replace(second=0) for moment in local}) == 20  # distinct minutes
    assert any(moment.date() > date(2025, 3, 30) for moment in local)  # after the clock change
    slots = registry.list_drip_slots("lis")
    assert [s.due_at for s in slots] == due and {s.status for s in slots} == {DripStatus.PENDING}


def test_public_holidays_are_skipped():
    start = paris(2025, 7, 14, 7, 0)  # Bastille Day, a Monday
    due = draw_due_times(30, start, timedelta(days=2), random.Random(1))
    assert {d.astimezone(PARIS).date() for d in due} == {date(2025, 7, 15)}


def test_too_many_for_the_period_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"cannot fit 1000 plantings in the \d+ working minutes"):
        draw_due_times(1000, paris(2025, 3, 26, 17, 0), timedelta(hours=12), random.Random(1))


def test_plantings_come_at_the_hours_the_site_registers_its_patients():
    from collections import Counter

    # A desk that registers four in five patients between 9:00 and 11:00, the rest in the afternoon.
    registrations = [datetime(2025, 3, 3 + n % 20, 9 + n % 2, n % 60) for n in range(400)] + \
        [datetime(2025, 3, 3 + n % 20, 14 + n % 3, n % 60) for n in range(100)]
    weights = site_hour_weights(registrations)
    # Each hour's count smoothed with its neighbours' (1-2-1, among the hours the site registers at).
    assert weights == {9: 200.0, 10: 200.0, 14: 101 / 3, 15: 33.25, 16: 33.0}
    assert site_hour_weights(registrations[:49]) is None  # too few: evenly, as before
    due = draw_due_times(300, paris(2025, 3, 3, 7, 0), timedelta(days=20), random.Random(3), hour_weights=weights)
    hours = Counter(d.astimezone(PARIS).hour for d in due)
    assert set(hours) <= {9, 10, 14, 15, 16}  # never at an hour the site registers nobody
    assert 0.7 < (hours[9] + hours[10]) / 300 < 0.9  # four in five, as the site
    assert len({d.replace(second=0) for d in due}) == 300 and due == sorted(due)
    with pytest.raises(ConfigError, match="working minutes of the hours this site registers patients"):
        draw_due_times(200, paris(2025, 3, 3, 7, 0), timedelta(hours=12), random.Random(3), hour_weights={9: 1.0})


def test_weighted_plantings_cover_the_period_and_the_day_evenly():
    """Stratified: ten plantings over ten working days of one profile land one a day, and thirty land
    around the site's median hour, not a quarter of an hour off as independent draws do by chance."""
    import statistics

    weights = {8: 1.0, 9: 3.0, 10: 4.0, 11: 4.0, 12: 2.0, 13: 2.0, 14: 2.0, 15: 1.0, 16: 1.0, 17: 1.0}
    for seed in range(5):
        due = draw_due_times(10, paris(2025, 3, 3, 7, 0), timedelta(days=14), random.Random(seed), hour_weights=weights)
        assert len({d.astimezone(PARIS).date() for d in due}) == 10
    weighted = sorted(h + m / 60 for h, n in weights.items() for m in range(60) for _ in range(int(n)))
    median = weighted[len(weighted) // 2]
    for seed in range(5):
        due = draw_due_times(30, paris(2025, 3, 3, 7, 0), timedelta(days=60), random.Random(seed), hour_weights=weights)
        local = [d.astimezone(PARIS) for d in due]
        assert abs(statistics.median(t.hour + t.minute / 60 for t in local) - median) < 0.3
        assert len({d.replace(second=0) for d in due}) == 30 and due == sorted(due)


def test_plantings_follow_the_sites_growth():
    """A practice whose registrations grew over the year gets more of its plantings late in the period."""
    until = paris(2025, 1, 6, 9, 0)
    rng = random.Random(5)
    # Registrations over the year before, their pace doubling from its start to its end.
    growing = [until - timedelta(days=365) + timedelta(days=365 * (((1 + 3 * rng.random()) ** 0.5 - 1)))
               for _ in range(800)]
    growth = site_growth(growing, until)
    assert growth is not None and 0.4 < growth.slope < 0.8  # doubling over the year: +50 % a year at its end
    # A steady pace: no trend beyond the noise of its count (3,000 a year: a few percent).
    flat = site_growth([until - timedelta(days=365 * rng.random()) for _ in range(3000)], until)
    assert flat is not None and abs(flat.slope) < 0.1
    assert site_growth(growing[:49], until) is None  # too few: evenly
    weights = {h: 1.0 for h in range(8, 18)}
    due = draw_due_times(100, until, timedelta(days=365), random.Random(1), hour_weights=weights, growth=growth)
    middle = until + timedelta(days=182)
    assert sum(d >= middle for d in due) >= 53  # the pace 1.0 to 1.5 over the year: 55 in its second half


# -- running --------------------------------------------------------------------


def test_successive_runs_plant_exactly_the_due_ones_each_in_its_own_batch(setup):
    registry, config, url = setup
    with freeze_time(WEDNESDAY):
        due = schedule_drip(registry, "lis", 5, timedelta(days=3), datetime.now(timezone.utc),
                            random.Random(3), operator="tester")
    before = count_rows(url, "patients")
    for n, moment in enumerate(due, start=1):
        with freeze_time(moment + timedelta(seconds=20)):
            now = datetime.now(timezone.utc)
            report = run_due(registry, config, now)
            assert len(report.planted) == 1 and not report.failed
            assert run_due(registry, config, now).planted == []  # a rerun is a no-op
        assert count_rows(url, "patients") == before + n
    batches = [b for b in registry.list_batches("lis") if b.kind == "drip"]
    assert [b.label for b in batches] == [batch_label("lis", d) for d in due]
    assert all(b.planted == 1 for b in batches)
    assert batches[0].label == f"lis-drip-{due[0].astimezone(PARIS):%Y%m%d-%H%M}"
    slots = registry.list_drip_slots("lis")
    assert {s.status for s in slots} == {DripStatus.DONE}
    assert [s.batch for s in slots] == [b.label for b in batches]
    assert len({s.canary_id for s in slots}) == 5


def test_one_run_opens_each_source_once_and_closes_it(setup, monkeypatch):
    """Opening a seeder reads the site's habits (seconds on a real site): not once per slot and pace check."""
    import canary.planting.planter as planter

    registry, config, url = setup
    opened, closed = [], []
    real_open = planter.open_seeder

    def counting_open(spec, environ):
        seeder = real_open(spec, environ)
        opened.append(spec.name)
        real_close = seeder.close
        seeder.close = lambda: (closed.append(spec.name), real_close())[1]
        return seeder

    monkeypatch.setattr(planter, "open_seeder", counting_open)
    config = dataclasses.replace(config, raw={**config.raw, "drip": {"max_share": 0.5}})
    with freeze_time(WEDNESDAY):
        due = schedule_drip(registry, "lis", 3, timedelta(hours=1), datetime.now(timezone.utc),
                            random.Random(3), operator="tester")
    before = count_rows(url, "patients")
    with freeze_time(max(due) + timedelta(seconds=20)):
        report = run_due(registry, config, datetime.now(timezone.utc))
    assert len(report.planted) + report.paced == 3 and not report.failed
    assert count_rows(url, "patients") == before + len(report.planted)
    assert opened == ["lis"]  # pace checks, plantings and the later events' pass share one seeder
    assert sorted(closed) == sorted(opened)  # nothing left open


def test_a_seeder_kept_open_for_the_run_learns_the_site_again_once_it_changed(setup, monkeypatch):
    """Each planting of a run draws from the site as a seeder opened for it would: the canaries before it included."""
    import seeders.sql.seeder as sql_seeder

    registry, config, url = setup
    learnt = []
    real_learn = sql_seeder.learn_site

    def counting_learn(target, mapping, rnd, today=None):
        learnt.append(count_rows(url, "patients"))
        return real_learn(target, mapping, rnd, today)

    monkeypatch.setattr(sql_seeder, "learn_site", counting_learn)
    config = dataclasses.replace(config, raw={**config.raw, "drip": {"max_share": 0, "event_every": "0d"}})
    with freeze_time(WEDNESDAY):
        due = schedule_drip(registry, "lis", 3, timedelta(hours=1), datetime.now(timezone.utc),
                            random.Random(3), operator="tester")
    before = count_rows(url, "patients")
    with freeze_time(max(due) + timedelta(seconds=20)):
        report = run_due(registry, config, datetime.now(timezone.utc))
    assert len(report.planted) == 3 and not report.failed
    # Learnt once per planting, each time from the site as it then was (not once for the whole run).
    assert learnt == [before, before + 1, before + 2]


def test_runs_outside_working_hours_wait_then_catch_up(setup):
    registry, config, url = setup
    with freeze_time(paris(2025, 3, 28, 16, 0)):  # a Friday afternoon
        due = schedule_drip(registry, "lis", 3, timedelta(hours=2), datetime.now(timezone.utc),
                            random.Random(5), operator="tester")
    saturday = paris(2025, 3, 29, 11, 0).astimezone(timezone.utc)
    with freeze_time(saturday):
        report = run_due(registry, config, saturday)
    assert report.planted == [] and report.deferred == 3
    monday = paris(2025, 3, 31, 8, 5).astimezone(timezone.utc)
    with freeze_time(monday):
        report = run_due(registry, config, monday)
    assert len(report.planted) == 3 and all(d < monday for d in due)


def test_concurrent_runners_plant_each_slot_once(setup, tmp_path):
    registry, config, url = setup
    now = paris(2025, 3, 26, 15, 0).astimezone(timezone.utc)
    due = [now - timedelta(minutes=m) for m in range(1, 7)]
    registry.add_drip_slots("lis", due, "tester", now - timedelta(hours=1))
    before = count_rows(url, "patients")
    reports, errors = [], []

    def runner(name):
        try:
            with Registry.open(config.registry_url) as own:
                reports.append(run_due(own, config, now, worker=name))
        except Exception as err:  # pragma: no cover - shown by the assert below
            errors.append(err)

    threads = [threading.Thread(target=runner, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    planted = [o.slot_id for r in reports for o in r.planted]
    assert sorted(planted) == sorted(s.id for s in registry.list_drip_slots("lis"))
    assert count_rows(url, "patients") == before + 6


def test_a_runner_dying_after_planting_does_not_plant_twice(setup, monkeypatch):
    registry, config, url = setup
    now = paris(2025, 3, 26, 15, 0).astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now - timedelta(minutes=5)], "tester", now - timedelta(hours=1))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between the plant and the slot update

    with monkeypatch.context() as patch:
        patch.setattr(type(registry), "finish_drip_slot", crash)
        with pytest.raises(KeyboardInterrupt):
            run_due(registry, config, now, worker="dead")
    assert count_rows(url, "patients") == 41
    later = now + timedelta(minutes=11)  # the dead runner's claim has expired
    report = run_due(registry, config, later, worker="next")
    assert len(report.planted) == 1 and count_rows(url, "patients") == 41
    (slot,) = registry.list_drip_slots("lis")
    assert slot.status is DripStatus.DONE and slot.batch == report.planted[0].batch
    assert len(registry.list_canaries(source="lis")) == 1


def test_failures_are_retried_then_given_up(setup, tmp_path):
    registry, config, url = setup
    (tmp_path / "lis.db").unlink()  # the target is gone
    now = paris(2025, 3, 26, 15, 0).astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now - timedelta(minutes=5)], "tester", now - timedelta(hours=1))
    for attempt in range(1, 6):
        report = run_due(registry, config, now + timedelta(minutes=attempt))
        assert len(report.failed) == 1 and "no such file" in report.failed[0].error
        (slot,) = registry.list_drip_slots("lis")
        assert slot.attempts == attempt
    assert slot.status is DripStatus.FAILED and "no such file" in slot.last_error
    assert run_due(registry, config, now + timedelta(hours=1)).failed == []


def test_cancel_and_source_removal(setup):
    registry, config, _url = setup
    now = paris(2025, 3, 26, 15, 0).astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now + timedelta(hours=h) for h in (1, 2)], "tester", now)
    assert registry.cancel_drip_slots("lis", now) == 2
    assert run_due(registry, config, now + timedelta(hours=3)).planted == []
    assert {s.status for s in registry.list_drip_slots("lis")} == {DripStatus.CANCELLED}
    registry.remove_source("lis")
    assert registry.list_drip_slots() == []


def test_scheduling_an_unknown_source_fails(setup):
    registry, _config, _url = setup
    with pytest.raises(CanaryError, match="unknown source 'nope'"):
        schedule_drip(registry, "nope", 3, timedelta(days=3), datetime.now(timezone.utc))


# -- the commands -------------------------------------------------------------------

CONFIG = """
[registry]
url = "sqlite:///registry.db"

[contacts]
email_domains = ["mel-famille.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
max_per_email_domain = 0

[drip]
max_share = 0      # the test LIS registers nobody any more (test_drip_pace.py tests pacing)
timer_slot = "0m"  # plant at once (the spread over the slot is tested with a fake clock)
"""


@click.group(cls=CanaryGroup)
@click.option("--config", "config_path")
@click.pass_context
def root(ctx, config_path):
    ctx.obj = Env(config_path)
    ctx.call_on_close(ctx.obj.close)


root.add_command(drip)


def test_commands_schedule_list_run_and_cancel(tmp_path, lis):
    (tmp_path / "canary.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL), encoding="utf-8")
    env = Env(str(tmp_path / "canary.toml"))
    Registry.open(env.config.registry_url, create=True).close()
    add_source(env.registry, "lis", "sql", url=lis, mapping=str(MAPPING))
    with freeze_time(WEDNESDAY):
        due = plant_over(env, "lis", 4, "2d")
    env.close()
    assert len(due) == 4
    run = CliRunner().invoke
    args = ["--config", str(tmp_path / "canary.toml")]
    listed = json.loads(run(root, args + ["drip", "list", "--json"]).output)
    assert [s["status"] for s in listed] == ["pending"] * 4
    assert set(listed[0]) >= {"id", "source", "due_at", "status", "batch", "canary_id", "error"}
    with freeze_time(due[1] + timedelta(seconds=1)):
        result = run(root, args + ["drip", "run", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["planted"]) == 2
    result = run(root, args + ["drip", "cancel", "lis"])
    assert result.output.strip() == "cancelled 2 scheduled plantings of lis"
    text = run(root, args + ["drip", "list"]).output
    assert text.count("cancelled") == 2 and "lis-drip-" in text
    result = run(root, args + ["drip", "cancel", "nope"])
    assert result.exit_code == 2 and "unknown source 'nope'" in result.output


def test_plant_over_refuses_demo_contacts(tmp_path):
    config = production_config(f"sqlite:///{tmp_path / 'r.db'}")
    env = Env(None)
    env.config = dataclasses.replace(config, contacts=dataclasses.replace(config.contacts, demo=True))
    with pytest.raises(ConfigError, match="demo ones"):
        plant_over(env, "lis", 2, "2d")


def test_the_listener_worker_runs_due_slots_and_stops(setup):
    from canary.planting.drip import DripWorker

    registry, config, url = setup
    now = paris(2025, 3, 26, 15, 0).astimezone(timezone.utc)
    registry.add_drip_slots("lis", [now - timedelta(minutes=1)], "tester", now - timedelta(hours=1))
    worker = DripWorker(registry, config, interval=0.05)
    assert len(worker.run_once(now).planted) == 1
    worker.start()  # whatever the real time, a round on an empty schedule plants nothing
    worker.stop(timeout=5)
    assert worker._thread is None
    assert count_rows(url, "patients") == 41
