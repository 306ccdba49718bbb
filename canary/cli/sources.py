"""`canary source add|list|show|remove`: the target databases canaries are planted in."""

from __future__ import annotations

from pathlib import Path

import click

from canary.cli import render
from canary.cli.options import CanaryGroup, Env, json_option, pass_env


@click.group(cls=CanaryGroup)
def source() -> None:
    """Target databases that receive canaries."""


@source.command("add")
@click.argument("name")
@click.option("--seeder", "seeder_name", required=True, help="Seeder kind, e.g. sql (see docs/seeders.md).")
@click.option("--url-env", help="Environment variable holding the database URL (with its password).")
@click.option("--url", help="Database URL without password (a URL with a password is refused).")
@click.option("--mapping", type=click.Path(dir_okay=False), help="Mapping file (generic sql seeder).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Seeder-specific option; repeatable.")
@click.option("--establishment", help="Establishment (hospital, lab) named in alerts.")
@click.option("--tenant", help="Tenant or site label inside a shared system.")
@click.option("--alert-to", multiple=True, metavar="EMAIL", help="Extra alert recipient for this source; repeatable.")
@click.option("--catchment", metavar="DEPS", help="Comma-separated départements for addresses, e.g. 35,22,56.")
@pass_env
def source_add(env: Env, name, seeder_name, url_env, url, mapping, settings, establishment, tenant, alert_to, catchment):
    """Register a target database NAME."""
    from canary.planting.sources import build_source_spec

    spec = build_source_spec(
        name, seeder_name, url_env=url_env, url=url, mapping=mapping, settings=settings,
        establishment=establishment, tenant=tenant, alert_to=alert_to, catchment=catchment,
        base_dir=Path.cwd(),
    )
    env.registry.add_source(spec)
    click.echo(f"added source {name} ({seeder_name})")


@source.command("list")
@json_option
@pass_env
def source_list(env: Env, as_json: bool) -> None:
    """List target databases with their canary counts."""
    render.sources(env.registry.list_sources(), as_json)


@source.command("show")
@click.argument("name")
@json_option
@pass_env
def source_show(env: Env, name: str, as_json: bool) -> None:
    """Show one target database."""
    summaries = {s.spec.name: s for s in env.registry.list_sources()}
    if name not in summaries:
        env.registry.get_source(name)  # raises the standard unknown-source error
    render.source_detail(summaries[name], as_json)


@source.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even with live canaries (they stay in the target!).")
@pass_env
def source_remove(env: Env, name: str, force: bool) -> None:
    """Forget a target database (retire its canaries first)."""
    env.registry.remove_source(name, force=force)
    click.echo(f"removed source {name}")


COMMANDS = (source,)
