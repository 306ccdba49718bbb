"""`canary audit`: what an attacker holding a dump could notice about our canaries.

``audit_source`` runs every check of ``canary/audit/rules.py`` and
``canary/audit/phones.py`` on a source's live canaries: NIR key and
consistency, phone validity and carrier, postcode and commune, e-mail
domains, domains and phone blocks crowded with canaries, duplicates, canaries with consecutive ids or planted in one burst,
and (when the seeder exposes its target rows) columns the canaries fill
unlike their neighbouring rows. ``audit_pool``
checks a list of phone numbers (the configured pool); ``audit_config`` the
pool and e-mail domains of canary.toml.

Each finding says what gives the canaries away and how to fix it. A report
"fails" (``canary audit`` exits 1) when a finding is a warning or worse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from canary.audit.phones import phone_findings
from canary.audit.rules import (
    Finding,
    Severity,
    address_findings,
    cluster_findings,
    duplicate_findings,
    email_findings,
    fill_findings,
    key_run_findings,
    nir_findings,
    time_findings,
)
from canary.config import Config
from canary.errors import CanaryError
from canary.model import CanaryStatus

__all__ = ["AuditReport", "Finding", "Severity", "audit_config", "audit_pool", "audit_source",
           "report_to_dict"]

LIVE = (CanaryStatus.PLANNED, CanaryStatus.PLANTED, CanaryStatus.MISSING)
MAX_COMPARED = 200  # canaries whose rows are compared with their neighbours
NEIGHBOUR_STEPS = (-1, 1, -2, 2, -3, 3)


@dataclass
class AuditReport:
    subject: str  # a source name, or "configuration"
    canaries: int = 0  # live canaries audited
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checks not run, and why

    @property
    def failed(self) -> bool:
        return any(f.severity >= Severity.WARNING for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s.label: sum(f.severity is s for f in self.findings) for s in reversed(Severity)}


def _sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity, f.check, f.canaries))


def audit_pool(numbers: Iterable[str]) -> list[Finding]:
    """Phone numbers as an attacker's number lookup sees them."""
    return _sorted(phone_findings([(None, n) for n in numbers]))


def audit_config(config: Config) -> AuditReport:
    """The [contacts] pool and e-mail domains, before anything is planted."""
    findings = audit_pool(config.contacts.phone_pool)
    findings += email_findings([(None, domain) for domain in config.contacts.email_domains])
    mailboxes = [m.address for m in config.contacts.mailbox_pool]  # a disposable or test-looking provider
    findings += email_findings([(None, address) for address in mailboxes], common=set(mailboxes))
    return AuditReport("configuration", findings=_sorted(findings))


def audit_source(registry, config: Config, source: str, *, compare_target: bool = True,
                 environ=os.environ) -> AuditReport:
    """Every check on the live canaries of ``source``."""
    spec = registry.get_source(source)
    records = registry.list_canaries(source=source, status=LIVE)
    report = AuditReport(source, canaries=len(records))
    if not records:
        report.skipped.append("no live canaries: nothing to audit")
        return report
    identities = [(r.id, r.identity) for r in records]
    phones = [(r.id, p) for r in records for p in (r.identity.phone, r.identity.phone2) if p]
    findings = nir_findings(identities) + address_findings(identities)
    contacts = config.contacts
    # Watched mailboxes at ordinary providers share their domain with real patients: no crowding tell.
    mailboxes = {m.address for m in contacts.mailbox_pool}
    findings += email_findings([(r.id, r.identity.email) for r in records], common=mailboxes)
    findings += duplicate_findings(identities) + phone_findings(phones)
    findings += cluster_findings(phones + [(r.id, r.identity.email) for r in records
                                           if r.identity.email.lower() not in mailboxes],
                                 contacts.max_per_email_domain, contacts.max_per_phone_block)
    findings += key_run_findings(_key_intervals(records))
    findings += time_findings([(r.id, r.batch, r.planted_at) for r in records if r.planted_at])
    if compare_target:
        findings += _fill_pattern(spec, records, report, environ)
    else:
        report.skipped.append("fill pattern: not compared with the target (asked not to)")
    report.findings = _sorted(findings)
    return report


def _key_intervals(records) -> list[tuple[int, str, int, int]]:
    """Per canary and table: the lowest and highest single integer key of its rows."""
    intervals = []
    for record in records:
        keys: dict[str, list[int]] = {}
        for row in (record.placement.rows if record.placement else ()):
            value = _int_key(row)
            if value is not None:
                keys.setdefault(row["table"], []).append(value)
        intervals += [(record.id, table, min(v), max(v)) for table, v in keys.items()]
    return intervals


def _int_key(row: dict[str, Any]) -> int | None:
    key = row.get("key") or {}
    if len(key) != 1:
        return None
    (value,) = key.values()
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fill_pattern(spec, records, report: AuditReport, environ) -> list[Finding]:
    from canary.planting.planter import open_seeder

    try:
        seeder = open_seeder(spec, environ)
    except CanaryError as err:
        report.skipped.append(f"fill pattern: target not reachable ({err})")
        return []
    try:
        target = getattr(seeder, "target", None)
        if target is None or not callable(getattr(target, "read", None)):
            report.skipped.append(f"fill pattern: seeder {spec.seeder!r} does not expose its rows")
            return []
        return fill_findings(_comparisons(target, records[:MAX_COMPARED], _canary_keys(records)))
    except CanaryError as err:
        report.skipped.append(f"fill pattern: reading the target failed ({err})")
        return []
    finally:
        seeder.close()


def _canary_keys(records) -> set[tuple[str, str, int]]:
    keys = set()
    for record in records:
        for row in (record.placement.rows if record.placement else ()):
            if _int_key(row) is not None:
                ((column, value),) = row["key"].items()
                keys.add((row["table"], column, value))
    return keys


def _comparisons(target, records, canary_keys) -> list[tuple[int, str, dict, list[dict]]]:
    """(canary id, table, its row as stored, up to two real rows with nearby keys)."""
    compared = []
    for record in records:
        seen_tables = set()
        for row in (record.placement.rows if record.placement else ()):
            value = _int_key(row)
            if value is None or row["table"] in seen_tables:
                continue
            seen_tables.add(row["table"])
            ((column, _),) = row["key"].items()
            stored = target.read(row["table"], {column: value})
            if stored is None:
                continue
            neighbours = []
            for step in NEIGHBOUR_STEPS:
                if len(neighbours) == 2:
                    break
                if (row["table"], column, value + step) in canary_keys:
                    continue
                near = target.read(row["table"], {column: value + step})
                if near is not None:
                    neighbours.append(near)
            compared.append((record.id, row["table"], stored, neighbours))
    return compared


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "subject": report.subject,
        "canaries": report.canaries,
        "failed": report.failed,
        "counts": report.counts(),
        "findings": [
            {"check": f.check, "severity": f.severity.label, "message": f.message, "fix": f.fix,
             "canaries": list(f.canaries), "values": list(f.values)}
            for f in report.findings
        ],
        "skipped": list(report.skipped),
    }
