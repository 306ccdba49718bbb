"""`canary drip run|list|cancel`, and `plant_over` behind `canary plant --over`.

Register with ``cli.add_command(drip)`` in canary/cli/main.py. The commands take
the ``Env`` of canary.cli.main through ``click.pass_obj`` (no import of canary.cli.main,
so no import cycle); user errors are CanaryError, turned into one line by the
top-level group.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click

from canary.cli.options import json_option
from canary.planting.schedule import TIMEZONE


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(TIMEZONE)):%Y-%m-%d %H:%M}"


def plant_over(env, source_name: str, count: int, over: str | timedelta, *, as_json: bool = False
               ) -> list[datetime]:
    """`canary plant SOURCE --count N --over 30d`: schedule instead of planting now."""
    from canary.planting.drip import schedule_drip
    from canary.planting.pace import HOURS_HISTORY, RATE_HISTORY, check_schedule, drip_settings
    from canary.planting.planter import open_seeder
    from canary.planting.schedule import parse_duration, site_growth, site_hour_weights

    period = parse_duration(over) if isinstance(over, str) else over
    env.config.contacts.require_production()  # fail now, not at the first drip
    settings = drip_settings(env.config.raw)
    now = datetime.now(timezone.utc)
    seeder = open_seeder(env.registry.get_source(source_name))  # the target answers today
    try:
        local_now = now.astimezone(ZoneInfo(TIMEZONE))
        # two years' registrations: the hours the site registers at (one year's leave each hour's count
        # 10-15 % off); the last year's: the pace (drip.max_share) and the site's trend
        admissions = seeder.admissions_since(local_now - HOURS_HISTORY)
    finally:
        seeder.close()
    since = local_now - RATE_HISTORY
    last_year = None if admissions is None else \
        [a for a in admissions if (a if a.tzinfo else a.replace(tzinfo=since.tzinfo)) >= since]
    check_schedule(count, period, last_year if settings.max_share else None, local_now, settings.max_share,
                   source_name)
    due = schedule_drip(env.registry, source_name, count, period, now, operator=env.config.operator,
                        hour_weights=site_hour_weights(admissions), growth=site_growth(admissions, now))
    if as_json:
        click.echo(json.dumps({"source": source_name, "scheduled": len(due),
                               "due": [d.isoformat() for d in due]}, indent=2))
    else:
        click.echo(f"scheduled {len(due)} single plantings into {source_name}, "
                   f"from {_local(due[0])} to {_local(due[-1])} ({TIMEZONE}, working hours)")
        click.echo("the listener plants them when due (or run `canary drip run` from cron); "
                   "see `canary drip list`")
        if settings.max_share and admissions is None:
            click.echo(f"{source_name}: its seeder cannot count admissions, so this pace is not checked "
                       "against the site's (docs/drip.md)")
    return due


@click.group("drip")
def drip() -> None:
    """Drip planting: single canaries at random working-hour times."""


@drip.command("run")
@json_option
@click.pass_obj
def drip_run(env, as_json: bool) -> None:
    """Plant the canaries whose time has come (exit 1 if one failed)."""
    from canary.planting.drip import report_to_dict, run_due
    from canary.planting.pace import drip_settings

    spread = drip_settings(env.config.raw).timer_slot
    report = run_due(env.registry, env.config, datetime.now(timezone.utc), spread=spread)
    if as_json:
        click.echo(json.dumps(report_to_dict(report), indent=2))
    else:
        for outcome in report.planted:
            click.echo(f"planted canary #{outcome.canary_id} into {outcome.source} (batch {outcome.batch})")
        for outcome in report.failed:
            click.echo(f"failed planting into {outcome.source}: {outcome.error}", err=True)
        if report.deferred:
            click.echo(f"{report.deferred} due plantings wait for working hours")
        if report.paced:
            click.echo(f"{report.paced} due plantings wait for more real admissions (drip.max_share)")
        for event in report.events:
            if event.error:
                click.echo(f"no event for canary #{event.canary_id} in {event.source}: {event.error}", err=True)
            else:
                click.echo(f"added an event ({event.rows} rows) to canary #{event.canary_id} in {event.source}")
        for source in report.unpaced:
            click.echo(f"{source}: its seeder cannot count admissions, planted without pacing", err=True)
        if not (report.planted or report.failed or report.deferred or report.paced or report.events):
            click.echo("nothing due")
    if report.failed:
        sys.exit(1)


@drip.command("list")
@click.option("--source", "source_name", help="Only this source.")
@json_option
@click.pass_obj
def drip_list(env, source_name: str | None, as_json: bool) -> None:
    """Scheduled plantings: due time, status, batch."""
    from canary.planting.drip import slot_to_dict

    slots = env.registry.list_drip_slots(source=source_name)
    if as_json:
        click.echo(json.dumps([slot_to_dict(s) for s in slots], indent=2))
        return
    if not slots:
        click.echo("no scheduled plantings")
        return
    for slot in slots:
        where = slot.batch or (slot.last_error and f"last error: {slot.last_error}") or ""
        click.echo(f"{slot.id:>6}  {slot.source:<20} {_local(slot.due_at)}  {slot.status.value:<9} {where}")


@drip.command("cancel")
@click.argument("source_name", metavar="SOURCE")
@click.pass_obj
def drip_cancel(env, source_name: str) -> None:
    """Cancel SOURCE's plantings that have not happened yet."""
    from canary.planting.drip import cancel_drip

    cancelled = cancel_drip(env.registry, source_name, datetime.now(timezone.utc))
    click.echo(f"cancelled {cancelled} scheduled plantings of {source_name}")
