"""What a scan found, and its stable JSON form (documented in docs/scan.md).

``ScanReport.to_dict()`` is the ``--json`` output; change it only by adding
keys, and bump ``FORMAT`` if a key ever has to change meaning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from canary.scan.attribution import PlantingEvent, SourceAnalysis
from canary.scan.shape import Shape

FORMAT = "canary.scan/1"


@dataclass(frozen=True, slots=True)
class MatchView:
    canary_id: int
    source: str | None
    batch: str | None
    kind: str  # email, phone, url_code, dns_label, portal_login, nir, fingerprint
    form: str  # how it is written
    file: str
    member: str | None
    line: int
    text: str
    confirmed: bool = True
    record: str = field(default="", compare=False)  # for the export shape; not in JSON

    def to_dict(self) -> dict[str, Any]:
        return {"canary": self.canary_id, "source": self.source, "batch": self.batch, "kind": self.kind,
                "form": self.form, "file": self.file, "member": self.member, "line": self.line,
                "text": self.text}


@dataclass
class SourceFinding:
    analysis: SourceAnalysis
    shapes: list[Shape]
    matches: list[MatchView]
    names: dict[int, str] = field(default_factory=dict)  # canary id -> "Mme Camille Morel"

    @property
    def source(self) -> str:
        return self.analysis.source


@dataclass
class ScanReport:
    paths: list[str]
    started_at: datetime
    seconds: float
    bytes: int
    engine: str
    jobs: int
    units: list  # inputs.Unit
    sources: list[SourceFinding]
    unconfirmed: list[MatchView]
    problems: list[tuple[str, str | None, str]]
    canaries_watched: int = 0

    @property
    def found(self) -> int:
        return sum(len(s.analysis.found) for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "scanned_at": _iso(self.started_at),
            "paths": self.paths,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "engine": self.engine,
            "jobs": self.jobs,
            "canaries_watched": self.canaries_watched,
            "files": [{"file": u.file, "member": u.member, "container": u.container, "encoding": u.encoding,
                       "bytes": u.bytes, "reader": u.reader or None} for u in self.units],
            "sources": [_source(s) for s in self.sources],
            "unconfirmed": [m.to_dict() for m in self.unconfirmed],
            "problems": [{"file": f, "member": m, "message": msg} for f, m, msg in self.problems],
        }


def _source(finding: SourceFinding) -> dict[str, Any]:
    a = finding.analysis
    w, c = a.window, a.completeness
    return {
        "source": a.source,
        "found": len(a.found),
        "planted": a.planted,
        "canaries": a.found,
        "retired_found": a.retired_found,
        "batches": [{"batch": b.label, "found": b.found, "planted": b.planted} for b in a.batches],
        "window": {
            "after": _iso(w.after), "after_canary": w.after_canary,
            "before": _iso(w.before), "before_canary": w.before_canary,
            "removed_before": _iso(w.removed_before), "removed_canary": w.removed_canary,
            "caveat": w.caveat,
            "after_event": _event(w.after_event), "before_event": _event(w.before_event),
        },
        "completeness": {"found": c.found, "expected": c.expected, "share": _round(c.share),
                         "ci95": [_round(c.low), _round(c.high)] if c.share is not None else None,
                         "events": c.events},
        "export_shapes": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}
                          for s in finding.shapes],
        "holds_more": [{"canary": h.canary_id, "batch": h.batch, "planted_at": _iso(h.planted_at),
                        "hits": h.hits, "channels": list(h.channels), "last_hit_at": _iso(h.last_hit_at)}
                       for h in a.holds_more],
        "matches": [m.to_dict() for m in finding.matches],
    }


def _event(event: PlantingEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"batch": event.batch, "start": _iso(event.start), "end": _iso(event.end),
            "canaries": len(event.canary_ids), "found": event.found}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
