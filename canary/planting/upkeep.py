"""Verify and retire: read back or remove what was planted, source by source.

Verify also reconciles *planned* canaries left by an interrupted plant: the
seeder either finds the patient in the target (the insert committed, the
registry update did not) or we know it never got there.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from canary.errors import CanaryAltered, CanaryError
from canary.model import CanaryStatus, VerifyResult, VerifyState

Progress = Callable[[int], None]

LIVE = (CanaryStatus.PLANNED, CanaryStatus.PLANTED, CanaryStatus.MISSING)
UNSEARCHABLE = "unsearchable"


@dataclass(frozen=True, slots=True)
class VerifyFinding:
    canary_id: int
    source: str
    state: str  # "ok", "missing", "altered", "unsearchable", "reconciled", "never-planted"
    details: tuple[str, ...] = ()


@dataclass
class VerifyReport:
    findings: list[VerifyFinding] = field(default_factory=list)

    @property
    def problems(self) -> list[VerifyFinding]:
        return [f for f in self.findings if f.state in (VerifyState.MISSING.value, VerifyState.ALTERED.value)]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for finding in self.findings:
            counts[finding.state] += 1
        return dict(counts)


def verify(registry, source: str | None = None, *, progress: Progress | None = None,
           environ=os.environ, config=None) -> VerifyReport:
    """Read every live canary back; with ``config``, a newly missing or altered
    canary is also recorded as a hit of channel ``verify`` and alerted (someone
    deleted or edited a patient record that nobody should have touched)."""
    from canary.planting.planter import open_seeder

    report = VerifyReport()
    records = registry.list_canaries(source=source, status=LIVE)
    if source is not None:
        registry.get_source(source)  # unknown source -> one clear error
    for source_name, group in _by_source(records).items():
        seeder = open_seeder(registry.get_source(source_name), environ)
        try:
            for record in group:
                report.findings.append(_verify_one(registry, seeder, record))
                if progress:
                    progress(1)
        finally:
            seeder.close()
    if config is not None:
        _alert_new_problems(registry, config, report, records, environ)
    return report


def _alert_new_problems(registry, config, report: VerifyReport, records, environ) -> None:
    from canary.alerts.service import build_alerting, build_hit_sink
    from canary.hits.hit import Channel, Observation
    from canary.model import TokenKind

    before = {r.id: r for r in records}
    new = [f for f in report.problems
           if before[f.canary_id].status != CanaryStatus.MISSING or before[f.canary_id].verify_state != f.state]
    if not new:
        return
    alerting = build_alerting(registry, config.raw, environ)
    sink, _ = build_hit_sink(registry, config.raw, alerting)
    for finding in new:
        nir = before[finding.canary_id].identity.nir
        sink.observe(Observation(channel=Channel.VERIFY, kind=TokenKind.NIR, value=nir, remote=None,
                                 evidence={"state": finding.state, "details": list(finding.details)}))
    alerting.worker.run_once()  # deliver now; anything that fails stays in the outbox for the listener


def _verify_one(registry, seeder, record) -> VerifyFinding:
    if record.status == CanaryStatus.PLANNED or record.placement is None:
        placement = seeder.locate(record.identity)
        if placement is None:
            registry.set_status(record.id, CanaryStatus.RETIRED, "never reached the target (interrupted plant)")
            return VerifyFinding(record.id, record.source, "never-planted")
        registry.mark_planted(record.id, placement)
        registry.record_verify(record.id, VerifyResult(VerifyState.OK, ("reconciled after an interrupted plant",)))
        return VerifyFinding(record.id, record.source, "reconciled")
    result = seeder.verify(record.identity, record.placement)
    registry.record_verify(record.id, result)
    state = result.state.value
    if result.state is VerifyState.OK and result.searchable is False:
        state = UNSEARCHABLE  # rows intact (recorded ok), but the application's search does not show it
    return VerifyFinding(record.id, record.source, state, tuple(result.details))


@dataclass
class RetireReport:
    retired: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    # (canary id, why): a planted row changed since planting, so nothing of it was deleted.
    altered: list[tuple[int, str]] = field(default_factory=list)


def select_for_retire(registry, ids: Iterable[int] = (), source: str | None = None,
                      batch: str | None = None) -> list:
    ids = list(ids)
    if sum(bool(x) for x in (ids, source, batch)) != 1:
        raise CanaryError("retire needs canary IDs, or --source, or --batch (exactly one of them)")
    if ids:
        return [registry.get_canary(i) for i in ids]
    if source:
        registry.get_source(source)
        return registry.list_canaries(source=source)
    registry.get_batch(batch)
    return registry.list_canaries(batch=batch)


def retire(registry, records: list, *, progress: Progress | None = None, environ=os.environ) -> RetireReport:
    """Remove exactly the planted rows of each canary, then mark it retired.

    Its tokens stay in the registry: a retired canary's email or phone must
    still be recognised when an old leak resurfaces, and never be reused.
    A canary whose planted row was altered since planting (the seeder raises
    CanaryAltered) keeps its row and its status and is listed in
    ``report.altered``.
    """
    from canary.planting.planter import open_seeder

    report = RetireReport()
    live = [r for r in records if r.status in LIVE]
    report.already = [r.id for r in records if r.status not in LIVE]
    for source_name, group in _by_source(live).items():
        seeder = open_seeder(registry.get_source(source_name), environ)
        try:
            for record in group:
                placement = record.placement or seeder.locate(record.identity)
                if placement is not None:
                    try:
                        seeder.retire(placement)
                    except CanaryAltered as err:  # kept, reported; the other canaries go on
                        report.altered.append((record.id, str(err)))
                        if progress:
                            progress(1)
                        continue
                registry.set_status(record.id, CanaryStatus.RETIRED, "retired")
                report.retired.append(record.id)
                if progress:
                    progress(1)
        finally:
            seeder.close()
    return report


def _by_source(records) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for record in records:
        groups[record.source].append(record)
    return dict(groups)
