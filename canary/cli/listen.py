"""`canary listen|hits|alerts|zone`: the listener service and what it saw."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from canary.cli import render
from canary.hits.hit import Channel
from canary.cli.options import CanaryGroup, Env, json_option, pass_env


def _bind_option(name: str, default_setting: str):
    return click.option(f"--{name}", metavar="ADDR:PORT",
                        help=f"Address to bind (default: listener.{name}, {default_setting}); port 0 picks a free one.")


@click.command()
@_bind_option("dns", "127.0.0.1:5353")
@_bind_option("http", "127.0.0.1:8080")
@_bind_option("smtp", "127.0.0.1:2525")
@_bind_option("https", "unset: no TLS front end")
@_bind_option("admin", "127.0.0.1:8081: dashboard, metrics, health")
@click.option("--audit-syslog", metavar="ADDR:PORT",
              help="Address of the audit syslog receiver, UDP and TCP (default: listener.audit_syslog, unset: none).")
@click.option("--ports-file", type=click.Path(dir_okay=False),
              help="Write the bound ports here as JSON once every front end is ready.")
@click.option("--outbox-lease", type=click.FloatRange(1, 86400), hidden=True)
@pass_env
def listen(env: Env, dns, http, smtp, https, admin, audit_syslog, ports_file, outbox_lease) -> None:
    """Run the DNS, HTTP(S) and SMTP listeners, the admin dashboard and the alert sender until SIGTERM/SIGINT."""
    from datetime import timedelta

    from listener.logs import configure_json_logging
    from listener.service import ListenerService, run

    configure_json_logging()
    service = ListenerService(env.config, env.registry, binds={"dns": dns, "http": http, "smtp": smtp,
                                                                  "https": https, "admin": admin,
                                                                  "audit_syslog": audit_syslog},
                              outbox_lease=timedelta(seconds=outbox_lease) if outbox_lease else None)
    run(service, ports_file=Path(ports_file) if ports_file else None)


@click.command("hits")
@click.option("--source", "source_name", help="Only hits of this source.")
@click.option("--since", metavar="T", help="Only hits since T: a date, a time (UTC) or a duration ago (24h, 7d).")
@click.option("--channel", type=click.Choice([c.value for c in Channel]),
              help="Only hits of this channel (e.g. access: canary records opened in an audit trail).")
@json_option
@pass_env
def hits_cmd(env: Env, source_name, since, channel, as_json) -> None:
    """List hits: every use of a canary's contact points, oldest first."""
    from canary.alerts.service import list_hits, parse_since

    render.hits(list_hits(env.registry, source=source_name, since=parse_since(since), channel=channel), as_json)


@click.group("alerts", cls=CanaryGroup, invoke_without_command=True)
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


@click.command()
@pass_env
def zone(env: Env) -> None:
    """Print the DNS records to publish at the registrar (zone-file syntax)."""
    from canary.cli.zone import registrar_records, render_zone_file

    click.echo(render_zone_file(registrar_records(env.config)), nl=False)


COMMANDS = (listen, hits_cmd, alerts_cmd, zone)
