"""Which canaries an audit event names, and what a run of such events means.

**Identifiers.** An audit trail names a patient by an application
identifier: the row key or patient number (IPP) the seeder wrote, a uuid, a
FHIR id, or the NIR/INS. ``identifiers_of`` collects them from a canary's
placement (the rows the seeder recorded) and identity; ``AccessIndex`` maps
them back, in memory.

A uuid, a FHIR reference and a NIR are the same patient wherever they come
from. A small number ("4411") is only a patient *of one database*: it counts
only when the event's audit source is known to be that canary's database
(``sources``: AuditSourceID -> source name), otherwise a real patient 4411 of
another system would raise an alert.

**Meaning.** Nobody has a reason to open a canary's record: one read is an
unjustified access (a curious colleague, or the first step of a theft); reads
of ``burst_canaries`` different canaries by one account within
``burst_window``, or any query, export or print returning a canary, is bulk
access (a stolen account, an exfiltration under way).
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from canary.access.event import AccessEvent, Action, PatientRef
from canary.model import Placement

INS_OIDS = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
                      "1.2.250.1.213.1.4.11", "1.2.250.1.213.1.4.2"})
# Columns that hold a patient's identifier in the tables seeders write (any system).
ID_COLUMNS = frozenset({"pid", "pubpid", "uuid", "patient_id", "person_id", "patient_uuid", "person_uuid",
                        "ipp", "national_id", "fhir_uuid", "fhir_id", "puid", "external_id", "identifier",
                        "patient_number", "id400", "ref"})
ID_EXTRA = ("fhir_id", "patient_id", "ipp", "uuid", "id")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_NIR = re.compile(r"^[12][0-9]{2}[0-9]{2}(?:[0-9]{2}|2A|2B)[0-9]{6}(?:[0-9]{2})?$")


class Severity(str, enum.Enum):
    UNJUSTIFIED = "unjustified-access"  # warning
    BULK = "bulk-access"  # critical


def _normal(value: str) -> str:
    value = "".join(value.split()).lower()
    return value.replace("-", "") if _UUID.match(value) else value


def _global(value: str) -> bool:
    """A value that names one patient wherever it is met (uuid, NIR)."""
    return bool(_UUID.match(value)) or bool(_NIR.match(value.upper()))


def identifiers_of(placement: Placement, nir: str | None) -> set[str]:
    """Normalised identifiers of one canary: its NIR (15 and 13 characters) and the ids its rows hold."""
    out: set[str] = set()
    if nir:
        out |= {_normal(nir), _normal(nir[:13])}
    for index, row in enumerate(placement.rows):
        values = dict(row.get("values") or {})
        if index == 0:  # the patient's own row: its key names it
            values.update(row.get("key") or {})
        for column, value in values.items():
            if str(column).lower() in ID_COLUMNS or (index == 0 and column in (row.get("key") or {})):
                if value not in (None, "") and not isinstance(value, (dict, list, bool)):
                    out.add(_normal(str(value)))
    for name in ID_EXTRA:
        value = placement.extra.get(name)
        if isinstance(value, (str, int)) and str(value):
            out.add(_normal(str(value)))
    return {v for v in out if v}


@dataclass(frozen=True, slots=True)
class Match:
    canary_id: int
    source: str
    ref: PatientRef


@dataclass
class AccessIndex:
    """identifier -> {(canary id, source)}, and which audit source is which database."""

    sources: Mapping[str, str] = field(default_factory=dict)  # AuditSourceID -> source name
    _ids: dict[str, set[tuple[int, str]]] = field(default_factory=lambda: defaultdict(set))

    def add(self, canary_id: int, source: str, identifiers: Iterable[str]) -> None:
        for value in identifiers:
            self._ids[value].add((canary_id, source))

    def match(self, event: AccessEvent) -> list[Match]:
        """The canaries ``event`` names, once each."""
        known_source = self.sources.get(event.audit_source or "")
        found: dict[int, Match] = {}
        for ref in event.patients:
            value = _normal(ref.value)
            for canary_id, source in self._ids.get(value, ()):
                if ref.authority and ref.authority.removeprefix("urn:oid:") in INS_OIDS:
                    ok = bool(_NIR.match(value.upper()))
                else:
                    ok = _global(value) or known_source == source
                if ok and canary_id not in found:
                    found[canary_id] = Match(canary_id, source, ref)
        return list(found.values())


@dataclass
class BurstPolicy:
    """One account's reads of canaries over time -> the severity of each new one."""

    burst_canaries: int = 3
    burst_window: timedelta = timedelta(hours=1)
    _seen: dict[tuple[str, str], deque[tuple[datetime, int]]] = field(default_factory=lambda: defaultdict(deque))

    def severity(self, source: str, user: str | None, canary_id: int, action: Action, at: datetime) -> Severity:
        """Record one access of ``canary_id`` by ``user`` in ``source`` and say what it means."""
        if action.bulk:
            return Severity.BULK
        reads = self._seen[(source, user or "?")]
        reads.append((at, canary_id))
        while reads and reads[0][0] < at - self.burst_window:
            reads.popleft()
        distinct = {cid for _when, cid in reads}
        return Severity.BULK if len(distinct) >= self.burst_canaries else Severity.UNJUSTIFIED
