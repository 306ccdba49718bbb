"""The `canary` command: one click group, thin over the library.

Commands parse arguments, call canary.* functions and print. Exit codes:
0 ok, 1 findings (verify found missing/altered canaries), 2 usage or
configuration error with one line on stderr.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from canary.cli import render
from canary.cli.options import json_option, progress_bar
from canary.errors import CanaryError, ConfigError


class CanaryGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CanaryError as err:
            click.echo(f"canary: error: {err}", err=True)
            ctx.exit(err.exit_code)


class Env:
    """Lazily loaded configuration and registry shared by the commands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._registry = None

    @functools.cached_property
    def config(self):
        from canary.config import find_config_path, load_config

        path = find_config_path(self.config_path)
        if path is None:
            raise ConfigError("no configuration found: run `canary init` or pass --config / set CANARY_CONFIG")
        return load_config(path)

    @property
    def registry(self):
        if self._registry is None:
            from canary.registry import Registry

            self._registry = Registry.open(self.config.registry_url)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_env = click.make_pass_decorator(Env)


@click.group(cls=CanaryGroup)
@click.option("--config", "config_path", envvar="CANARY_CONFIG", type=click.Path(dir_okay=False),
              help="Path to canary.toml (default: $CANARY_CONFIG, then ./canary.toml).")
@click.version_option(package_name="canary-patients")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Plant watched fake patients into hospital and lab databases."""
    env = Env(config_path)
    ctx.obj = env
    ctx.call_on_close(env.close)


@cli.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Write a commented canary.toml in DIRECTORY and create the registry."""
    from canary.cli.setup import init_workspace

    path = init_workspace(Path(directory))
    click.echo(f"wrote {path} and created the registry")
    click.echo("next: put domains, a DNS zone and phone numbers you own in [contacts], "
               "then `canary source add`")


@cli.command()
@pass_env
def upgrade(env: Env) -> None:
    """Migrate the registry database to the current schema."""
    from canary.registry import Registry

    with Registry.open(env.config.registry_url, outdated_ok=True) as registry:
        registry.upgrade()
    click.echo("registry is up to date")


# -- sources ----------------------------------------------------------------


@cli.group(cls=CanaryGroup)
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


# -- canaries -----------------------------------------------------------------


@cli.command()
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


@cli.command("plant")
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


@cli.command("list")
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


@cli.command()
@click.argument("canary_id", type=int, metavar="ID")
@json_option
@pass_env
def show(env: Env, canary_id: int, as_json: bool) -> None:
    """Show one canary: identity, tokens, placement, status."""
    render.canary_detail(env.registry.get_canary(canary_id), as_json)


@cli.command()
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


@cli.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--source", "source_name")
@click.option("--batch", "batch_label")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_env
def retire(env: Env, ids, source_name, batch_label, yes, as_json) -> None:
    """Remove canaries from their target (ID... | --source S | --batch B)."""
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


# -- listener, hits and alerts ----------------------------------------------------


def _bind_option(name: str, default_setting: str):
    return click.option(f"--{name}", metavar="ADDR:PORT",
                        help=f"Address to bind (default: listener.{name}, {default_setting}); port 0 picks a free one.")


@cli.command()
@_bind_option("dns", "127.0.0.1:5353")
@_bind_option("http", "127.0.0.1:8080")
@_bind_option("smtp", "127.0.0.1:2525")
@_bind_option("https", "unset: no TLS front end")
@_bind_option("admin", "127.0.0.1:8081: dashboard, metrics, health")
@click.option("--ports-file", type=click.Path(dir_okay=False),
              help="Write the bound ports here as JSON once every front end is ready.")
@click.option("--outbox-lease", type=click.FloatRange(1, 86400), hidden=True)
@pass_env
def listen(env: Env, dns, http, smtp, https, admin, ports_file, outbox_lease) -> None:
    """Run the DNS, HTTP(S) and SMTP listeners, the admin dashboard and the alert sender until SIGTERM/SIGINT."""
    from datetime import timedelta

    from listener.logs import configure_json_logging
    from listener.service import ListenerService, run

    configure_json_logging()
    service = ListenerService(env.config, env.registry, binds={"dns": dns, "http": http, "smtp": smtp,
                                                                  "https": https, "admin": admin},
                              outbox_lease=timedelta(seconds=outbox_lease) if outbox_lease else None)
    run(service, ports_file=Path(ports_file) if ports_file else None)


@cli.command("hits")
@click.option("--source", "source_name", help="Only hits of this source.")
@click.option("--since", metavar="T", help="Only hits since T: a date, a time (UTC) or a duration ago (24h, 7d).")
@json_option
@pass_env
def hits_cmd(env: Env, source_name, since, as_json) -> None:
    """List hits: every use of a canary's contact points, oldest first."""
    from canary.alerts.service import list_hits, parse_since

    render.hits(list_hits(env.registry, source=source_name, since=parse_since(since)), as_json)


@cli.group("alerts", cls=CanaryGroup, invoke_without_command=True)
@json_option
@click.pass_context
def alerts_cmd(ctx: click.Context, as_json: bool) -> None:
    """Alert messages with their delivery per sink, incidents, and sink health."""
    if ctx.invoked_subcommand is not None:
        return
    from canary.alerts.config import AlertsConfig
    from canary.alerts.service import alerts_overview

    env: Env = ctx.obj
    config = AlertsConfig.from_table(env.config.raw.get("alerts"))
    render.alerts_overview(alerts_overview(env.registry, config), as_json)


@alerts_cmd.command("test")
@pass_env
def alerts_test(env: Env) -> None:
    """Send a test alert through every configured sink now (exit 1 if one fails)."""
    from canary.alerts.service import build_alerting, send_test_alert

    results = send_test_alert(build_alerting(env.registry, env.config.raw))
    render.alert_test_results(results)
    if not all(r.ok for r in results):
        sys.exit(1)


@cli.command()
@pass_env
def zone(env: Env) -> None:
    """Print the DNS records to publish at the registrar (zone-file syntax)."""
    from canary.cli.zone import registrar_records, render_zone_file

    click.echo(render_zone_file(registrar_records(env.config)), nl=False)


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Folder for the demo files, new or empty (default: a new temporary folder).")
def demo(directory: str | None) -> None:
    """Run the whole loop on embedded defaults (SQLite, loopback, no root)."""
    from canary.demo.run import run_demo

    run_demo(Path(directory) if directory else None, echo=click.echo)


def _register_commands() -> None:
    # Commands that live in their own modules (they use the same Env object).
    from canary.cli.admin import admin
    from canary.cli.audit import audit
    from canary.cli.doctor import doctor
    from canary.cli.drip import drip
    from canary.cli.scan import hibp, scan

    cli.add_command(admin)
    cli.add_command(drip)
    cli.add_command(audit)
    cli.add_command(doctor)
    cli.add_command(scan)
    cli.add_command(hibp)


_register_commands()


def main() -> None:
    cli(prog_name="canary")
