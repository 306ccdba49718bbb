"""Reading a source's site for `canary audit SOURCE --separability`.

Opens the source's seeder, reads every patient through
``Seeder.patients_for_audit`` (read only), marks the ones that are ours from
the registry's placements (the registry is the only place that knows), and
hands both to ``canary.audit.separability``.
"""

from __future__ import annotations

import os
from typing import Any

from canary.audit.separability import SeparabilityReport, separability
from canary.audit.settings import DEFAULT_THRESHOLD
from canary.config import Config
from canary.errors import CanaryError, ConfigError
from canary.model import CanaryStatus

LIVE = (CanaryStatus.PLANTED, CanaryStatus.MISSING)


def threshold_of(config: Config) -> float:
    value = (config.raw.get("audit") or {}).get("separability_threshold", DEFAULT_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value <= 1:
        raise ConfigError("audit.separability_threshold must be a number between 0.5 and 1")
    return float(value)


def audit_separability(registry, config: Config, source: str, *, limit: int | None = None,
                       environ=os.environ) -> SeparabilityReport:
    from canary.planting.planter import open_seeder

    threshold = threshold_of(config)
    spec = registry.get_source(source)
    ours = placed_refs(registry.list_canaries(source=source, status=LIVE))
    if not ours:
        raise CanaryError(f"source '{source}' has no planted canaries: nothing to tell apart "
                          f"(plant some with `canary plant {source}` first)")
    seeder = open_seeder(spec, environ)
    try:
        rows = seeder.patients_for_audit(limit)
        if rows is None:
            raise CanaryError(f"seeder {spec.seeder!r} of source '{source}' cannot read its patients "
                              "for the separability audit")
        patients = list(rows)
    finally:
        seeder.close()
    if not patients:
        raise CanaryError(f"source '{source}': the target holds no patients to learn from")
    flags = [_ref_key(p.ref) in ours for p in patients]
    return separability(source, patients, flags, threshold=threshold)


def placed_refs(records) -> set[tuple[str, frozenset]]:
    """(table, key) of every row a live canary placed, as AuditPatient.ref reads."""
    refs = set()
    for record in records:
        for row in (record.placement.rows if record.placement else ()):
            key = row.get("key") or {}
            if key:
                refs.add((row["table"], frozenset(key.items())))
    return refs


def _ref_key(ref: tuple[str, tuple[tuple[str, Any], ...]]) -> tuple[str, frozenset]:
    return ref[0], frozenset(ref[1])
