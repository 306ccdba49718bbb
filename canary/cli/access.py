"""`canary access poll`: canary records opened in the applications' own audit tables.

Register with ``cli.add_command(access)`` in canary/cli/main.py; the command
takes the ``Env`` through ``click.pass_obj`` and only prints what
``canary.access.poll.run_poll`` returns.
"""

from __future__ import annotations

import json

import click

from canary.cli.options import json_option


@click.group("access")
def access() -> None:
    """Canary records opened inside the hospital's systems (audit trails)."""


@access.command("poll")
@click.argument("source_name", metavar="[SOURCE]", required=False)
@json_option
@click.pass_obj
def access_poll(env, source_name: str | None, as_json: bool) -> None:
    """Read the new rows of the audit tables of SOURCE (default: every source that has one)."""
    from canary.access.poll import run_poll

    results = run_poll(env.registry, env.config, source_name)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    if not results:
        click.echo("no source with an audit table to poll (built in for openemr; sql mapping files: [audit])")
    for result in results:
        for table in result.tables:
            bulk = f", {table.bulk} bulk" if table.bulk else ""
            click.echo(f"{result.source} {table.table}: {table.rows} rows read up to #{table.position}, "
                       f"{len(table.hits)} canary access hit(s){bulk}, {table.own} of canary's own skipped")
