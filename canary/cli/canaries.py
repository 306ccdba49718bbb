"""`canary generate|plant|list|show|verify|retire`: canaries from drawing to retiring."""

from __future__ import annotations

import sys

import click

from canary.cli import render
from canary.cli.options import Env, json_option, pass_env, progress_bar
from canary.errors import CanaryError


@click.command()
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--seed", type=int, help="Seed for a reproducible draw.")
@json_option
@click.pass_context
def generate(ctx: click.Context, count: int, seed: int | None, as_json: bool) -> None:
    """Print fake patients (preview; nothing is stored or reserved)."""
    from canary.config import default_config, find_config_path, load_config
    from canary.identity.generator import IdentityGenerator

    path = find_config_path(ctx.obj.config_path)
    config = load_config(path) if path else default_config()
    generator = IdentityGenerator(config.contacts, seed=seed, age_profile=config.age_profile,
                                  reserve_phones=False)
    render.identities(generator.generate_many(count), as_json)


@click.command("plant")
@click.argument("source_name", metavar="SOURCE")
@click.option("--count", required=True, type=click.IntRange(1, 100_000))
@click.option("--batch", "batch_label", help="Label of this planting batch (default: SOURCE-date-time).")
@click.option("--dry-run", is_flag=True, help="Show the rows that would be written; write nothing.")
@click.option("--over", metavar="DURATION",
              help="Spread the canaries over DURATION (e.g. 30d): single plantings at random "
                   "working-hour times, run by `canary drip run` (see docs/drip.md).")
@click.option("--seed", type=int, hidden=True)
@json_option
@pass_env
def plant_cmd(env: Env, source_name, count, batch_label, dry_run, over, seed, as_json) -> None:
    """Plant COUNT canaries into SOURCE."""
    if over:
        if dry_run or batch_label:
            raise CanaryError("--over plants later, one batch per canary: it cannot be combined "
                              "with --batch or --dry-run")
        from canary.cli.drip import plant_over

        plant_over(env, source_name, count, over, as_json=as_json)
        return
    from canary.planting.planter import plant

    with progress_bar(count, f"planting into {source_name}") as bar:
        result = plant(env.registry, env.config, source_name, count, batch_label=batch_label,
                       dry_run=dry_run, seed=seed, progress=bar.update)
    render.plant_result(result, as_json)


@click.command("list")
@click.option("--source", "source_name")
@click.option("--batch", "batch_label")
@click.option("--status", type=click.Choice(["planned", "planted", "missing", "retired"]))
@json_option
@pass_env
def list_cmd(env: Env, source_name, batch_label, status, as_json) -> None:
    """List canaries."""
    from canary.model import CanaryStatus

    if source_name:
        env.registry.get_source(source_name)
    records = env.registry.list_canaries(source=source_name, batch=batch_label,
                                         status=CanaryStatus(status) if status else None)
    render.canaries(records, as_json)


@click.command()
@click.argument("canary_id", type=int, metavar="ID")
@json_option
@pass_env
def show(env: Env, canary_id: int, as_json: bool) -> None:
    """Show one canary: identity, tokens, placement, status."""
    render.canary_detail(env.registry.get_canary(canary_id), as_json)


@click.command()
@click.argument("source_name", metavar="[SOURCE]", required=False)
@json_option
@pass_env
def verify(env: Env, source_name, as_json) -> None:
    """Check planted canaries are still there, unaltered (exit 1 if not)."""
    from canary.planting import upkeep

    total = len(env.registry.list_canaries(source=source_name, status=upkeep.LIVE))
    with progress_bar(total, "verifying") as bar:
        report = upkeep.verify(env.registry, source_name, progress=bar.update, config=env.config)
    render.verify_report(report, as_json)
    if report.problems:
        sys.exit(1)


@click.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--source", "source_name")
@click.option("--batch", "batch_label")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_env
def retire(env: Env, ids, source_name, batch_label, yes, as_json) -> None:
    """Remove canaries from their target (ID... | --source S | --batch B).

    A canary whose row changed since planting (names, NIR, birth date, contact
    points...) is kept and reported; the command then exits 1."""
    from canary.planting import upkeep

    records = upkeep.select_for_retire(env.registry, ids, source_name, batch_label)
    live = [r for r in records if r.status in upkeep.LIVE]
    if live and not yes:
        if not sys.stdin.isatty():
            raise CanaryError(f"would retire {len(live)} canaries: pass --yes to confirm")
        click.confirm(f"Remove {len(live)} canaries from their target databases?", abort=True)
    with progress_bar(len(live), "retiring") as bar:
        report = upkeep.retire(env.registry, records, progress=bar.update)
    render.retire_report(report, as_json)
    if report.altered:  # kept rows need a person to look at them
        sys.exit(1)


COMMANDS = (generate, plant_cmd, list_cmd, show, verify, retire)
