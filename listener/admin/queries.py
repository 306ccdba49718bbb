"""What each dashboard page shows, gathered read-only through the Registry API.

Plain dataclasses built from ``Registry`` methods and ``canary.alerts.service``;
no SQL here (only ``canary.registry`` talks to the database), no Flask: the
views only render what these functions return.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from markupsafe import Markup

from canary.alerts.service import AlertsOverview, alerts_overview
from canary.hits.hit import Hit
from canary.model import CanaryStatus, VerifyState
from canary.registry.records import SourceSummary
from canary.registry.reportstore import (
    ScanReportSummary,
    StoredScanReport,
    count_scan_reports,
    get_scan_report,
    list_scan_reports,
)
from listener.admin.charts import timeline_svg

if TYPE_CHECKING:
    from canary.registry import Registry

TIMELINE_DAYS = 30
MAX_TIMELINE_HITS = 50_000  # a flood beyond this is drawn from its newest hits (and said so)
INCIDENT_HORIZON = timedelta(days=366)  # incidents older than this are closed whatever the window
PAGE_SIZE = 50
OVERVIEW_LIMIT = 100  # incidents and messages on the incidents page


@dataclass(frozen=True, slots=True)
class SourceRow:
    summary: SourceSummary
    last_hit: datetime | None
    open_incidents: int

    @property
    def name(self) -> str:
        return self.summary.name


@dataclass(frozen=True, slots=True)
class CanaryRow:
    id: int
    name: str  # the fake patient's name, as planted
    batch: str
    status: CanaryStatus
    planted_at: datetime | None
    verified_at: datetime | None
    verify_state: VerifyState | None
    hits: int  # over the timeline's days
    last_hit: datetime | None


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # from 1
    size: int
    total: int

    @property
    def count(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.count


@dataclass(frozen=True, slots=True)
class SourcePage:
    row: SourceRow
    chart: Markup
    hits_in_window: int
    truncated: bool  # more hits than MAX_TIMELINE_HITS: the chart shows the newest
    canaries: list[CanaryRow]
    page: Page
    status: CanaryStatus | None  # the filter, if any


def sources_overview(registry: "Registry", now: datetime) -> list[SourceRow]:
    summaries = registry.list_sources()
    open_by_source = Counter(
        incident.source for incident in registry.list_incidents(since=now - INCIDENT_HORIZON)
        if incident.is_open(now)
    )
    return [
        SourceRow(summary=s, last_hit=_last_hit(registry, s.name), open_incidents=open_by_source[s.name])
        for s in summaries
    ]


def source_page(registry: "Registry", name: str, now: datetime, *, page: int = 1,
                status: CanaryStatus | None = None) -> SourcePage:
    """One source; raises SourceError for an unknown name."""
    registry.get_source(name)
    summary = next(s for s in registry.list_sources() if s.name == name)
    since = datetime.combine((now - timedelta(days=TIMELINE_DAYS - 1)).date(), datetime.min.time(),
                             tzinfo=now.tzinfo)
    hits = registry.list_hits(source=name, since=since, limit=MAX_TIMELINE_HITS)
    open_incidents = sum(1 for i in registry.list_incidents(source=name, since=now - INCIDENT_HORIZON)
                         if i.is_open(now))
    row = SourceRow(summary=summary, last_hit=hits[-1].at if hits else _last_hit(registry, name),
                    open_incidents=open_incidents)
    records = registry.list_canaries(source=name, status=status)
    total = len(records)
    pager = Page(number=min(max(page, 1), max(1, -(-total // PAGE_SIZE))), size=PAGE_SIZE, total=total)
    shown = records[(pager.number - 1) * PAGE_SIZE: pager.number * PAGE_SIZE]
    per_canary = _hits_per_canary(hits)
    canaries = [
        CanaryRow(id=r.id, name=f"{r.identity.civility} {r.identity.first_name} {r.identity.last_name}",
                  batch=r.batch, status=r.status, planted_at=r.planted_at, verified_at=r.verified_at,
                  verify_state=r.verify_state, hits=per_canary.get(r.id, (0, None))[0],
                  last_hit=per_canary.get(r.id, (0, None))[1])
        for r in shown
    ]
    return SourcePage(row=row, chart=timeline_svg(hits, end=now.date(), days=TIMELINE_DAYS, label=name),
                      hits_in_window=len(hits), truncated=len(hits) >= MAX_TIMELINE_HITS,
                      canaries=canaries, page=pager, status=status)


def incidents_overview(registry: "Registry") -> AlertsOverview:
    """Incidents, messages with their delivery per sink, and sink health."""
    return alerts_overview(registry, limit=OVERVIEW_LIMIT)


def scan_reports(registry: "Registry", page: int = 1) -> tuple[list[ScanReportSummary], Page]:
    total = count_scan_reports(registry)
    pager = Page(number=min(max(page, 1), max(1, -(-total // PAGE_SIZE))), size=PAGE_SIZE, total=total)
    return list_scan_reports(registry, limit=PAGE_SIZE, offset=(pager.number - 1) * PAGE_SIZE), pager


def scan_report(registry: "Registry", report_id: int) -> StoredScanReport | None:
    return get_scan_report(registry, report_id)


def _last_hit(registry: "Registry", source: str) -> datetime | None:
    newest = registry.list_hits(source=source, limit=1)
    return newest[-1].at if newest else None


def _hits_per_canary(hits: list[Hit]) -> dict[int, tuple[int, datetime]]:
    out: dict[int, tuple[int, datetime]] = {}
    for hit in hits:  # oldest first: the last one seen is the newest
        if hit.canary_id is not None:
            count, _ = out.get(hit.canary_id, (0, hit.at))
            out[hit.canary_id] = (count + 1, hit.at)
    return out
