"""The `canary` command: one click group, thin over the library.

Commands parse arguments, call canary.* functions and print. Exit codes:
0 ok, 1 findings (verify found missing/altered canaries), 2 usage or
configuration error with one line on stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from canary.cli import canaries, listen, sources
from canary.cli.options import CanaryGroup, Env, pass_env


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


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="Folder for the demo files, new or empty (default: a new temporary folder).")
def demo(directory: str | None) -> None:
    """Run the whole loop on embedded defaults (SQLite, loopback, no root)."""
    from canary.demo.run import run_demo

    run_demo(Path(directory) if directory else None, echo=click.echo)


def _register_commands() -> None:
    # Command families live in their own modules; all take the same Env object.
    from canary.cli.access import access
    from canary.cli.admin import admin
    from canary.cli.audit import audit
    from canary.cli.doctor import doctor
    from canary.cli.drip import drip
    from canary.cli.scan import hibp, scan

    for family in (sources, canaries, listen):
        for command in family.COMMANDS:
            cli.add_command(command)
    cli.add_command(admin)
    cli.add_command(drip)
    cli.add_command(audit)
    cli.add_command(doctor)
    cli.add_command(scan)
    cli.add_command(hibp)
    cli.add_command(access)


_register_commands()


def main() -> None:
    cli(prog_name="canary")
