"""`canary doctor`'s checks of the installation itself: configuration, registry, sources, verify, audit.

Each is a generator of ``Check`` lines run by ``canary.doctor.run.run_checks``;
see that module for the rules every check follows (independent, never
raising, writing nothing).
"""

from __future__ import annotations

import contextlib
import functools
from datetime import timedelta, timezone
from typing import Any, Iterator, Mapping

from canary.doctor.checks import (
    FAIL,
    OK,
    SOURCE_DEADLINE,
    VERIFY_HINT,
    WARN,
    Check,
    Context,
    NotChecked,
    Probe,
    call_with_deadline,
    error_check,
    lookup,
    named_secrets,
    source_secrets,
)


# -- config, registry -------------------------------------------------------------------


def check_config(ctx: Context) -> Iterator[Check]:
    config = ctx.load_config()  # a CanaryError here is the fail line
    demo = config.contacts.demo
    if demo:
        yield Check("config", FAIL, "[contacts] holds the demo contact points nobody watches: put the domains, "
                                    "DNS zone and phone numbers you own")
    missing = [(what, env) for what, env in named_secrets(config.raw) if not ctx.environ.get(env)]
    present = [env for _, env in named_secrets(config.raw) if ctx.environ.get(env)]
    with contextlib.suppress(NotChecked):
        with ctx.registry() as registry:
            for summary in registry.list_sources():
                for what, env in source_secrets(summary.spec):
                    if ctx.environ.get(env):
                        present.append(env)
                    else:
                        missing.append((f"source '{summary.name}' ({what})", env))
    for what, env in missing:
        yield Check("config", FAIL, f"{env} is not set in the environment ({what} reads it)")
    if not missing and not demo:
        names = ", ".join(dict.fromkeys(present)) or "none named"
        yield Check("config", OK, f"{config.path} loads; secrets set in the environment: {names}")


def check_registry(ctx: Context) -> Iterator[Check]:
    from canary.registry import Registry
    from canary.registry.migrate import head_revisions

    url = ctx.config.registry_url
    with Registry.open(url) as registry:  # RegistryError: unreachable, outdated or foreign, in one line
        count = len(registry.list_sources())
        yield Check("registry", OK, f"{registry.url_redacted} at the newest schema "
                                    f"({', '.join(head_revisions())}); {count} source(s)")


# -- sources -------------------------------------------------------------------------------


def check_sources(ctx: Context) -> Iterator[Check]:
    with ctx.registry() as registry:
        specs = [s.spec for s in registry.list_sources()]
    if not specs:
        yield Check("sources", WARN, "no source registered: nothing is planted (canary source add)")
        return
    for spec in specs:
        name = f"sources.{spec.name}"
        unset = [env for _, env in source_secrets(spec) if not ctx.environ.get(env)]
        if unset:
            yield Check(name, WARN, f"not checked: {unset[0]} is not set (see config)")
            continue
        finished, problems, error = call_with_deadline(functools.partial(_open_source, spec, ctx.environ),
                                                       SOURCE_DEADLINE)
        if not finished:
            yield Check(name, FAIL, f"no answer from the target within {SOURCE_DEADLINE:g} s")
        elif error is not None:
            check = error_check(name, error)
            yield Check(name, check.status, _without_prefix(check.detail, spec.name))
        else:
            yield from problems


def _open_source(spec, environ: Mapping[str, str]) -> list[Check]:
    from canary.dsn import redact, resolve_url
    from canary.planting.planter import open_seeder

    name = f"sources.{spec.name}"
    seeder = open_seeder(spec, environ)  # connects and runs the seeder's read-only fit checks
    try:
        problems = seeder.check_access()
    finally:
        seeder.close()
    where = redact(resolve_url(spec, environ))
    if problems:
        return [Check(name, FAIL, f"{where}: {problem}") for problem in problems]
    return [Check(name, OK, f"{spec.seeder} seeder opens {where}; the account may plant, verify and retire")]


def _without_prefix(detail: str, source: str) -> str:
    prefix = f"source '{source}': "
    return detail[len(prefix):] if detail.startswith(prefix) else detail


# -- verify age ------------------------------------------------------------------------------


def verify_max_age(raw: Mapping[str, Any]) -> timedelta:
    from canary.alerts.config import parse_duration

    return parse_duration(lookup(raw, "doctor.verify_max_age") or "48h", "doctor.verify_max_age")


def check_verify(ctx: Context) -> Iterator[Check]:
    from canary.model import CanaryStatus

    max_age = verify_max_age(ctx.config.raw)
    with ctx.registry() as registry:
        summaries = registry.list_sources()
    now = ctx.now()
    for summary in summaries:
        name = f"verify.{summary.name}"
        planted = summary.counts.get(CanaryStatus.PLANTED, 0) + summary.counts.get(CanaryStatus.MISSING, 0)
        if not planted:
            yield Check(name, OK, "no planted canary to verify")
            continue
        last = summary.last_verified
        if last is None:
            yield Check(name, FAIL, f"{planted} planted canaries never verified: {VERIFY_HINT}")
            continue
        last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
        age = now - last
        if age > max_age:
            yield Check(name, FAIL, f"last verified {_ago(age)} ago (more than {_ago(max_age)}): {VERIFY_HINT}")
            continue
        missing = summary.counts.get(CanaryStatus.MISSING, 0)
        if missing:
            yield Check(name, WARN, f"{missing} canaries missing or altered at the last verify, {_ago(age)} ago: "
                                    f"see canary list --source {summary.name} --status missing")
        else:
            yield Check(name, OK, f"{planted} planted canaries, last verified {_ago(age)} ago")


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


# -- audit -------------------------------------------------------------------------------------


def check_audit(ctx: Context) -> Iterator[Check]:
    from canary.audit.report import Severity, audit_config

    config = ctx.config
    report = audit_config(config)
    failing = [f for f in report.findings if f.severity >= Severity.WARNING]
    for finding in failing:
        values = f" ({', '.join(finding.values[:3])})" if finding.values else ""
        yield Check("audit", FAIL, f"{finding.check}: {finding.message}{values}; fix: {finding.fix}")
    if not failing:
        notes = len(report.findings)
        yield Check("audit", OK, f"{len(config.contacts.phone_pool)} pool numbers and "
                                 f"{len(config.contacts.email_domains)} email domains pass the audit rules"
                                 + (f" ({notes} note(s): canary audit)" if notes else ""))
    if config.contacts.mailbox_pool:
        yield _mailboxes_left(ctx, config.contacts.mailbox_pool)


# Fewer free watched mailboxes than this: open more before the next plantings.
MAILBOXES_LOW = 5


def _mailboxes_left(ctx: Context, pool) -> Check:
    """How many watched mailboxes no canary ever had (a retired canary keeps its address)."""
    from canary.model import TokenKind

    with ctx.registry() as registry:
        used = registry.taken_values(TokenKind.EMAIL)
    free = sum(m.address not in used for m in pool)
    if not free:
        return Check("audit.mailboxes", WARN, f"all {len(pool)} watched mailboxes are taken: new canaries get "
                                              "addresses at the owned domains, a tell; open more (docs/setup.md)")
    if free < MAILBOXES_LOW:
        return Check("audit.mailboxes", WARN, f"{free} of {len(pool)} watched mailboxes left: open more before "
                                              "the next plantings (docs/setup.md)")
    return Check("audit.mailboxes", OK, f"{free} of {len(pool)} watched mailboxes free")


# -- scanner --------------------------------------------------------------------------------


def check_scanner(ctx: Context) -> Iterator[Check]:
    """Whether `canary scan` runs at full speed: Hyperscan (a dependency on x86_64) and the
    C helper the install builds when it finds a compiler (docs/scan.md, "How it is fast")."""
    import platform

    from canary.scan import engines

    helper = engines.compiled_helper() is not None
    slow = []
    if "hyperscan" not in engines.available():
        slow.append("Hyperscan is not installed: scans use pyahocorasick, about 10x slower"
                    + (" (pip install hyperscan)" if platform.machine() == "x86_64" else
                       f" (Hyperscan is built for x86_64, this is {platform.machine()})"))
    if not helper:
        slow.append("the C helper was not built at install (no C compiler or Python headers): scans of many "
                    "canaries take nearly twice the CPU; reinstall with gcc and python3-dev")
    for line in slow:
        yield Check("scanner", WARN, line)
    if not slow:
        yield Check("scanner", OK, "Hyperscan and the compiled helper: `canary scan` at full speed")


PROBES = (
    Probe("config", check_config, "the configuration loads; every secret it names is set"),
    Probe("registry", check_registry, "the registry answers, at the newest schema"),
    Probe("sources", check_sources, "each source opens with its seeder and may be written", deadline=None),
    Probe("verify", check_verify, "canaries were verified recently"),
    Probe("audit", check_audit, "the phone pool and email domains pass the audit rules"),
    Probe("scanner", check_scanner, "the leak scanner runs at full speed (Hyperscan, its C helper)"),
)
