"""`canary audit [SOURCE] [--separability] [--json]`: register with ``cli.add_command(audit)`` in canary/cli/main.py.

Takes the ``Env`` of canary.cli.main through ``click.pass_obj`` (no import cycle).
Exit 1 when a finding is a warning or an error, as `verify` does for problems;
with ``--separability``, exit 1 when the ROC AUC is above
``audit.separability_threshold``.
"""

from __future__ import annotations

import json
import sys

import click

from canary.cli.options import json_option
from canary.errors import ConfigError


@click.command("audit")
@click.argument("source_name", metavar="[SOURCE]", required=False)
@click.option("--no-target", is_flag=True,
              help="Do not read the target database (skips the fill-pattern check).")
@click.option("--separability", is_flag=True,
              help="Read every patient of SOURCE and measure how well a classifier tells canaries apart "
                   "(read only; see docs/concealment.md).")
@json_option
@click.pass_obj
def audit(env, source_name: str | None, no_target: bool, separability: bool, as_json: bool) -> None:
    """What an attacker could notice about SOURCE's canaries (or, without SOURCE, the pool)."""
    from canary.audit.report import audit_config, audit_source, report_to_dict

    if separability:
        if not source_name or no_target:
            raise ConfigError("--separability needs a SOURCE and reads its target (no --no-target)")
        _separability(env, source_name, as_json)
        return
    if source_name:
        report = audit_source(env.registry, env.config, source_name, compare_target=not no_target)
    else:
        report = audit_config(env.config)
    if as_json:
        click.echo(json.dumps(report_to_dict(report), indent=2, ensure_ascii=False))
    else:
        _print(report)
    if report.failed:
        sys.exit(1)


def _separability(env, source_name: str, as_json: bool) -> None:
    from canary.audit.separability import report_to_dict
    from canary.audit.site import audit_separability

    report = audit_separability(env.registry, env.config, source_name)
    if as_json:
        click.echo(json.dumps(report_to_dict(report), indent=2, ensure_ascii=False))
    else:
        verdict = "FAIL" if report.failed else "ok"
        click.echo(f"separability of {report.source}: ROC AUC {report.auc:.2f} "
                   f"(95 % CI {report.low:.2f}-{report.high:.2f}, {report.model}), threshold "
                   f"{report.threshold:.2f}: {verdict}")
        if report.comparison == "period":
            click.echo(f"        {report.canaries} canaries against {report.compared} of the site's patients "
                       f"registered in the same period ({report.period_start:%Y-%m-%d} to "
                       f"{report.period_end:%Y-%m-%d}, where canaries are {100 * report.canary_share:.1f} % "
                       f"of registrations), {report.features} features")
            click.echo(f"        against a sample of the whole site, recency included: ROC AUC "
                       f"{report.auc_site:.2f} ({report.model_site})")
        else:
            click.echo(f"        {report.canaries} canaries against {report.compared} of the site's "
                       f"{report.patients - report.canaries} other patients (registration dates unknown), "
                       f"{report.features} features")
        if report.rule_feature:
            click.echo(f"        best one-line rule finding half the canaries: {report.rule_feature}, "
                       f"precision {report.rule_precision:.2f} on the whole site")
        for rank, give in enumerate(report.giveaways, 1):
            click.echo(f"{rank}. {give.feature} (alone: AUC {give.auc:.2f}): canaries {give.canaries}, "
                       f"others {give.others}")
            click.echo(f"        fix: {give.fix}")
    if report.failed:
        sys.exit(1)


def _print(report) -> None:
    counts = report.counts()
    summary = ", ".join(f"{n} {label}{'s' if n != 1 else ''}" for label, n in counts.items() if n) or "no findings"
    what = f" ({report.canaries} live canaries)" if report.subject != "configuration" else ""
    click.echo(f"audit of {report.subject}{what}: {summary}")
    for finding in report.findings:
        click.echo(f"{finding.severity.label.upper():<8}{finding.check}: {finding.message}")
        if finding.canaries:
            shown = ", ".join(f"#{i}" for i in finding.canaries[:20])
            more = f" (+{len(finding.canaries) - 20})" if len(finding.canaries) > 20 else ""
            click.echo(f"        canaries: {shown}{more}")
        if finding.values:
            click.echo(f"        e.g.: {', '.join(finding.values)}")
        click.echo(f"        fix: {finding.fix}")
    for note in report.skipped:
        click.echo(f"not checked: {note}")
