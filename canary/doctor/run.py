"""Running `canary doctor`: every probe in GROUPS order, each under its deadline, secrets scrubbed."""

from __future__ import annotations

from typing import Iterable

from canary.doctor import hardening, install, network
from canary.doctor.checks import FAIL, WARN, Check, Context, Probe, call_with_deadline, error_check, scrub, secret_values


def run_probe(probe: Probe, ctx: Context) -> list[Check]:
    results: list[Check] = []

    def collect() -> None:
        for check in probe.run(ctx):
            results.append(check)

    error: BaseException | None = None
    if probe.deadline is None:  # the probe puts its own deadlines on its slow parts
        try:
            collect()
        except Exception as err:
            error = err
    else:
        finished, _, error = call_with_deadline(collect, probe.deadline)
        if not finished:  # the thread may still append: keep what it had said so far
            return [*results[:], Check(probe.group, FAIL, f"no result within {probe.deadline:g} s")]
    if error is not None:
        results.append(error_check(probe.group, error))
    return results


def probes() -> tuple[Probe, ...]:
    """Every check, in GROUPS order."""
    return (*install.PROBES[:4], *network.PROBES, *install.PROBES[4:], *hardening.PROBES)


def run_checks(ctx: Context, *, skip: Iterable[str] = (), only: Iterable[str] = ()) -> list[Check]:
    skip, only = set(skip), set(only)
    results: list[Check] = []
    for probe in probes():
        if probe.group in skip or (only and probe.group not in only):
            continue
        results.extend(run_probe(probe, ctx))
    secrets = secret_values(ctx)
    return [Check(c.name, c.status, scrub(c.detail, secrets)) for c in results]


def failed(results: Iterable[Check], *, strict: bool = False) -> bool:
    bad = (FAIL, WARN) if strict else (FAIL,)
    return any(c.status in bad for c in results)
