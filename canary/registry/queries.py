"""Read-side helpers of the Registry: joined selects and the per-source summary."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping, Sequence

import sqlalchemy as sa

from canary.model import CanaryStatus
from canary.registry.records import SourceSummary, source_from_row
from canary.registry.schema import batches, canaries, sources


def canary_query() -> sa.Select:
    """Canary rows with their source name (``source``) and batch label (``batch``)."""
    return sa.select(
        canaries, sources.c.name.label("source"), batches.c.label.label("batch")
    ).select_from(
        canaries.join(sources, canaries.c.source_id == sources.c.id).join(
            batches, canaries.c.batch_id == batches.c.id
        )
    )


def batch_query() -> sa.Select:
    """Batch rows with their source name (``source``)."""
    return sa.select(batches, sources.c.name.label("source")).select_from(
        batches.join(sources, batches.c.source_id == sources.c.id)
    )


def source_stats_query() -> sa.Select:
    """Per source and status: count, last planted, last verified."""
    return sa.select(
        canaries.c.source_id,
        canaries.c.status,
        sa.func.count(),
        sa.func.max(canaries.c.planted_at),
        sa.func.max(canaries.c.verified_at),
    ).group_by(canaries.c.source_id, canaries.c.status)


def summarise_sources(rows: Iterable[Mapping], stats: Sequence[tuple]) -> list[SourceSummary]:
    """Join source rows with ``source_stats_query`` results."""
    counts: dict[int, dict[CanaryStatus, int]] = {}
    last_planted: dict[int, datetime] = {}
    last_verified: dict[int, datetime] = {}
    for source_id, status, count, planted_at, verified_at in stats:
        counts.setdefault(source_id, {})[CanaryStatus(status)] = count
        _keep_latest(last_planted, source_id, planted_at)
        _keep_latest(last_verified, source_id, verified_at)
    return [
        SourceSummary(
            spec=source_from_row(row),
            created_at=row["created_at"],
            counts={s: counts.get(row["id"], {}).get(s, 0) for s in CanaryStatus},
            last_planted=last_planted.get(row["id"]),
            last_verified=last_verified.get(row["id"]),
        )
        for row in rows
    ]


def _keep_latest(latest: dict[int, datetime], key: int, value: datetime | None) -> None:
    if value is not None and (key not in latest or value > latest[key]):
        latest[key] = value
