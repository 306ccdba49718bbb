"""`canary doctor`: registered with ``cli.add_command(doctor)`` in canary/cli/main.py.

Takes the ``Env`` of canary.cli.main through ``click.pass_obj`` but reads only its
``config_path``: a configuration that does not load is the doctor's first
finding, not a usage error. Exit 1 when a check fails (``--strict``: or warns).
"""

from __future__ import annotations

import json
import sys

import click

from canary.cli.options import json_option
from canary.doctor.checks import DEFAULT_TIMEOUT, GROUPS

_CHECK = click.Choice(GROUPS)


@click.command("doctor")
@click.option("--listener", "listener_host", metavar="HOST",
              help="Ask the listener on HOST (configured ports) instead of the configured addresses.")
@click.option("--skip", multiple=True, type=_CHECK, metavar="CHECK",
              help=f"Do not run CHECK ({', '.join(GROUPS)}); repeatable.")
@click.option("--only", multiple=True, type=_CHECK, metavar="CHECK", help="Run only CHECK; repeatable.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=DEFAULT_TIMEOUT, show_default=True,
              metavar="SECONDS", help="How long each network question may wait for an answer.")
@click.option("--strict", is_flag=True, help="Exit 1 on a warning too.")
@click.option("--quiet", is_flag=True, help="Print only warn and fail lines (and the summary).")
@json_option
@click.pass_obj
def doctor(env, listener_host: str | None, skip: tuple[str, ...], only: tuple[str, ...], timeout: float,
           strict: bool, quiet: bool, as_json: bool) -> None:
    """Check the whole installation; one line per finding (exit 1 if one fails)."""
    from canary.doctor.checks import FAIL, OK, WARN, Context
    from canary.doctor.run import failed, run_checks

    ctx = Context(config_path=env.config_path, timeout=timeout, listener_host=listener_host)
    results = run_checks(ctx, skip=skip, only=only)
    counts = {status: sum(c.status == status for c in results) for status in (OK, WARN, FAIL)}
    bad = failed(results, strict=strict)
    if as_json:
        click.echo(json.dumps({"ok": not bad, "counts": counts, "checks": [c.as_dict() for c in results]},
                              indent=2, ensure_ascii=False))
    else:
        for check in results:
            if not (quiet and check.status == OK):
                click.echo(check.line())
        click.echo(f"doctor: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    if bad:
        sys.exit(1)
