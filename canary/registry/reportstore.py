"""Scan reports in the registry: each ``canary scan`` run, kept for the admin dashboard.

Functions taking the Registry (like ``scanstore.py``), so that store.py stays
as it is. The report is the stable ``canary.scan/1`` JSON of
``canary.scan.result.ScanReport.to_dict``; a few of its numbers are copied
into columns so that the listing needs no JSON parsing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

import sqlalchemy as sa

from canary.registry.schema import scan_reports

if TYPE_CHECKING:
    from canary.registry import Registry

REPORT_FORMAT_PREFIX = "canary.scan/"
MAX_INPUTS_CHARS = 1000
MAX_OPERATOR_CHARS = 200


@dataclass(frozen=True, slots=True)
class ScanReportSummary:
    """One stored scan, as the listing shows it."""

    id: int
    created_at: datetime
    operator: str
    inputs: str  # the scanned paths, comma-separated, shortened
    input_files: int  # files and archive members read
    input_bytes: int
    sources_found: int
    canaries_found: int


@dataclass(frozen=True, slots=True)
class StoredScanReport:
    summary: ScanReportSummary
    report: dict[str, Any]  # canary.scan/1


def save_scan_report(registry: "Registry", report: Mapping[str, Any], *, operator: str,
                     at: datetime | None = None) -> int:
    """Store one scan's report; returns its id."""
    fmt = str(report.get("format", ""))
    if not fmt.startswith(REPORT_FORMAT_PREFIX):  # a bug of the caller, not a user error
        raise ValueError(f"not a scan report (format {fmt!r})")
    sources = list(report.get("sources") or ())
    inputs = ", ".join(str(p) for p in report.get("paths") or ())
    if len(inputs) > MAX_INPUTS_CHARS:
        inputs = inputs[: MAX_INPUTS_CHARS - 1] + "…"
    values = dict(
        created_at=at or datetime.now(timezone.utc),
        operator=(operator or "unknown")[:MAX_OPERATOR_CHARS],
        inputs=inputs,
        input_files=len(report.get("files") or ()),
        input_bytes=int(report.get("bytes") or 0),
        sources_found=len(sources),
        canaries_found=sum(int(s.get("found") or 0) for s in sources),
        report=json.dumps(report, ensure_ascii=False, separators=(",", ":")),
    )
    with registry._tx(write=True) as connection:
        return connection.execute(scan_reports.insert().values(**values)).inserted_primary_key[0]


_SUMMARY_COLUMNS = [c for c in scan_reports.c if c.name != "report"]


def list_scan_reports(registry: "Registry", *, limit: int = 50, offset: int = 0) -> list[ScanReportSummary]:
    """Newest first."""
    query = (sa.select(*_SUMMARY_COLUMNS).order_by(scan_reports.c.id.desc())
             .limit(limit).offset(offset))
    with registry._tx(write=False) as connection:
        rows = connection.execute(query).mappings().all()
    return [_summary(row) for row in rows]


def count_scan_reports(registry: "Registry") -> int:
    with registry._tx(write=False) as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(scan_reports)).scalar_one()


def get_scan_report(registry: "Registry", report_id: int) -> StoredScanReport | None:
    with registry._tx(write=False) as connection:
        row = connection.execute(
            scan_reports.select().where(scan_reports.c.id == report_id)
        ).mappings().first()
    if row is None:
        return None
    return StoredScanReport(summary=_summary(row), report=json.loads(row["report"]))


def _summary(row: Mapping[str, Any]) -> ScanReportSummary:
    return ScanReportSummary(
        id=row["id"], created_at=row["created_at"], operator=row["operator"], inputs=row["inputs"],
        input_files=row["input_files"], input_bytes=row["input_bytes"],
        sources_found=row["sources_found"], canaries_found=row["canaries_found"],
    )
