"""`canary scan` and `canary hibp sync`.

Register with ``cli.add_command(scan)`` and ``cli.add_command(hibp)`` in
canary/cli/main.py. The commands take the ``Env`` of canary.cli.main through
``click.pass_obj`` (no import of canary.cli.main, so no import cycle); user errors
are CanaryError, turned into one line by the top-level group. Exit codes:
0 nothing found, 1 canaries found (scan), 2 usage or configuration error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from canary.cli.options import json_flag

_json_option = json_flag("docs/scan.md")


def _progress(paths):
    """A progress bar on a terminal; elsewhere (cron, CI, a pipe) not even the folders' sizes are summed."""
    from canary.scan import inputs

    if not sys.stderr.isatty():
        return None
    total = inputs.total_size(paths)
    if total <= 0:
        return None
    return click.progressbar(length=total, label="scanning", file=sys.stderr, show_eta=True)


def _count_files(paths) -> int:
    return sum(1 if not Path(p).is_dir() else sum(1 for f in Path(p).rglob("*") if f.is_file()) for p in paths)


def _shorten(name: str, width: int = 40) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in name)
    return printable if len(printable) <= width else "..." + printable[-(width - 3):]


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_json_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report to this file.")
@click.option("--alert", is_flag=True, help="Raise one alert per source found, through the alert pipeline.")
@click.option("--jobs", type=click.IntRange(1, 256), help="Worker processes (default: one per CPU).")
@click.option("--engine", type=click.Choice(["hyperscan", "pyahocorasick"]),
              help="Matching engine (default: hyperscan when installed).")
@click.option("--no-cache", is_flag=True, help="Compile the patterns again instead of using the cache.")
@click.pass_obj
def scan(env, paths, as_json, report_path, alert, jobs, engine, no_cache) -> None:
    """Find canaries in leaked files: which database, when, how complete (exit 1 if found)."""
    from canary.scan import report
    from canary.scan.service import raise_alerts
    from canary.scan.service import scan as run_scan

    bar = _progress(paths)
    if bar is not None:
        files = _count_files(paths)
        seen: list[str] = []

        def on_unit(unit) -> None:  # the bar's label names the file or member being read
            if unit.file not in seen:
                seen.append(unit.file)
            name = Path(unit.file).name + (f" [{unit.member}]" if unit.member else "")
            bar.label = f"{len(seen)}/{files} {_shorten(name)}"

        with bar:
            result = run_scan(env.registry, list(paths), jobs=jobs, engine=engine, use_cache=not no_cache,
                              progress=bar.update, on_unit=on_unit)
    else:
        result = run_scan(env.registry, list(paths), jobs=jobs, engine=engine, use_cache=not no_cache)
    if report_path:
        Path(report_path).write_text(report.to_html(result), encoding="utf-8")
    click.echo(report.to_json(result) if as_json else report.text(result), nl=False)
    from canary.registry.reportstore import (
        save_scan_report,  # kept for the admin dashboard
    )

    save_scan_report(env.registry, result.to_dict(), operator=env.config.operator)
    if alert and result.sources:
        hit_ids = raise_alerts(env.registry, result, env.config.raw)
        click.echo(f"raised {len(hit_ids)} alert(s), one per source (hits {', '.join(map(str, hit_ids))})",
                   err=True)
    if result.sources:
        sys.exit(1)


@click.group("hibp")
def hibp() -> None:
    """Have I Been Pwned breach notifications for our canary email domains."""


@hibp.command("sync")
@click.option("--domain", "domains", multiple=True, help="Only this domain (repeatable; default: hibp.domains).")
@json_flag("docs/hibp.md")
@click.pass_obj
def hibp_sync(env, domains, as_json) -> None:
    """Record a breach hit per canary address HIBP lists in a breach (exit 1 if a domain failed)."""
    from canary.scan.hibp import sync_configured

    result = sync_configured(env.registry, env.config, domains=list(domains) or None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for d in result.domains:
            detail = f"{d.addresses} breached address(es)" if d.status == "ok" else d.message or d.status
            click.echo(f"{d.domain}: {detail}")
        click.echo(f"recorded {len(result.recorded)} new breach hit(s); {result.already} already recorded; "
                   f"{result.not_canaries} breached address(es) are no canary")
    if any(d.status == "error" for d in result.domains):
        sys.exit(1)
