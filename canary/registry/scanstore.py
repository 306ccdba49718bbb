"""Registry reads for the leak scanner (``canary scan``) and HIBP breach sync.

Functions taking the Registry, so that store.py stays as it is; like every
module of this package they are the only code that talks SQL.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

import sqlalchemy as sa

from canary.hits.hit import Channel, Classification
from canary.model import CanaryStatus, Identity
from canary.registry.schema import batches, canaries, hits, sources, utc
from canary.registry.schema import tokens as token_table

if TYPE_CHECKING:
    from canary.registry import Registry

# Hits that say nothing about who holds a canary: our own networks, values of no
# canary, and verify findings. Hits recorded by `canary scan --alert` are left
# out too (evidence key "scan"): a published file is not a use.
NOT_USE_CLASSES = (Classification.INTERNAL.value, Classification.UNMATCHED.value)
NOT_USE_CHANNELS = (Channel.VERIFY.value,)
_AS_STORED = sa.types.NullType()  # no result processing: the driver's value as it is


@dataclass(frozen=True, slots=True)
class PatternRow:
    """What the scanner compiles patterns from: one canary, every status."""

    canary_id: int
    identity: dict[str, Any]  # Identity.to_dict()
    tokens: tuple[tuple[str, str], ...]  # (kind, stored value)


class Timeline(NamedTuple):
    """One canary of a source, as attribution needs it (no identity). A named tuple: a scan
    that finds a source of 100,000 canaries reads all of them (a frozen dataclass took four
    times as long to make)."""

    canary_id: int
    source: str
    batch: str
    status: CanaryStatus
    created_at: datetime
    planted_at: datetime | None
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class UseSummary:
    """Usage hits of one canary."""

    canary_id: int
    count: int
    first_at: datetime
    last_at: datetime
    channels: tuple[str, ...]


def registry_stamp(registry: "Registry") -> str:
    """Changes whenever a canary or token is added or removed (ids are never reused)."""
    with registry._tx(write=False) as connection:
        c = connection.execute(sa.select(sa.func.count(), sa.func.max(canaries.c.id))).one()
        t = connection.execute(sa.select(sa.func.count(), sa.func.max(token_table.c.id))).one()
    return f"c{c[0]}:{c[1] or 0}/t{t[0]}:{t[1] or 0}"


# What the scanner compiles from an identity (canary/scan/patterns.py build()): the rest
# (address, treatments...) is most of the JSON and is left in the registry.
PATTERN_FIELDS = ("last_name", "birth_name", "first_names", "birth_date", "nir", "portal_password")
STREAM_ROWS = 2000  # canaries fetched at a time


def pattern_rows(registry: "Registry") -> Iterator[PatternRow]:
    """Every canary (retired ones too) with its tokens and the identity fields of PATTERN_FIELDS.

    Streamed, in canary order: with 100,000 canaries the whole identities held at
    once took about 1 GB before compiling even started.
    """
    with registry._tx(write=False) as connection:
        tokens: dict[int, list[tuple[str, str]]] = defaultdict(list)
        token_rows = connection.execution_options(yield_per=STREAM_ROWS * 8).execute(
            sa.select(token_table.c.canary_id, token_table.c.kind, token_table.c.value)
            .order_by(token_table.c.id))
        for canary_id, kind, value in token_rows:
            tokens[canary_id].append((sys.intern(kind), value))  # a handful of kinds, 700,000 rows
        rows = connection.execution_options(yield_per=STREAM_ROWS).execute(
            sa.select(canaries.c.id, canaries.c.identity).order_by(canaries.c.id))
        for canary_id, identity in rows:
            kept = {name: identity[name] for name in PATTERN_FIELDS if name in identity}
            yield PatternRow(canary_id, kept, tuple(tokens.pop(canary_id, ())))


def timelines(registry: "Registry", source_names: Iterable[str] | None = None) -> list[Timeline]:
    """Canaries with their source, batch and dates, without identities (fast)."""
    # The three timestamps as the driver gives them (SQLite: text), made UTC datetimes by
    # schema.utc: SQLAlchemy's processors (a regular expression per SQLite value, then
    # UtcDateTime's) were half of the 0.8 s a source of 100,000 canaries took.
    query = sa.select(
        canaries.c.id, sources.c.name, batches.c.label, canaries.c.status,
        *(sa.type_coerce(column, _AS_STORED) for column in
          (canaries.c.created_at, canaries.c.planted_at, canaries.c.retired_at)),
    ).select_from(
        canaries.join(sources, canaries.c.source_id == sources.c.id)
        .join(batches, canaries.c.batch_id == batches.c.id)
    ).order_by(canaries.c.id)
    if source_names is not None:
        query = query.where(sources.c.name.in_(sorted(set(source_names))))
    with registry._tx(write=False) as connection:
        rows = connection.execute(query).all()
    status = {s.value: s for s in CanaryStatus}  # CanaryStatus(value) was a fifth of the time
    return [Timeline(r[0], r[1], r[2], status.get(r[3]) or CanaryStatus(r[3]), utc(r[4]), utc(r[5]), utc(r[6]))
            for r in rows]


def source_of(registry: "Registry", canary_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(canary_ids))
    out: dict[int, str] = {}
    with registry._tx(write=False) as connection:
        for start in range(0, len(ids), 500):
            out.update(connection.execute(
                sa.select(canaries.c.id, sources.c.name)
                .select_from(canaries.join(sources, canaries.c.source_id == sources.c.id))
                .where(canaries.c.id.in_(ids[start:start + 500]))
            ).all())
    return out


def identities(registry: "Registry", canary_ids: Iterable[int]) -> dict[int, Identity]:
    ids = sorted(set(canary_ids))
    out: dict[int, Identity] = {}
    with registry._tx(write=False) as connection:
        for start in range(0, len(ids), 500):
            for cid, identity in connection.execute(
                sa.select(canaries.c.id, canaries.c.identity).where(canaries.c.id.in_(ids[start:start + 500]))
            ).all():
                out[cid] = Identity.from_dict(identity)
    return out


def usage(registry: "Registry", source_names: Iterable[str]) -> dict[int, UseSummary]:
    """Per canary of these sources: its usage hits (see NOT_USE_*)."""
    names = sorted(set(source_names))
    if not names:
        return {}
    with registry._tx(write=False) as connection:
        rows = connection.execute(
            sa.select(hits.c.canary_id, hits.c.at, hits.c.channel, hits.c.evidence)
            .select_from(hits.join(canaries, hits.c.canary_id == canaries.c.id)
                         .join(sources, canaries.c.source_id == sources.c.id))
            .where(sources.c.name.in_(names), hits.c.classification.not_in(NOT_USE_CLASSES),
                   hits.c.channel.not_in(NOT_USE_CHANNELS))
            .order_by(hits.c.at)
        ).all()
    gathered: dict[int, list] = defaultdict(list)
    for canary_id, at, channel, evidence in rows:
        if isinstance(evidence, dict) and "scan" in evidence:
            continue
        gathered[canary_id].append((at, channel))
    return {
        cid: UseSummary(cid, len(items), items[0][0], items[-1][0],
                        tuple(dict.fromkeys(channel for _, channel in items)))
        for cid, items in gathered.items()
    }


def breach_hits(registry: "Registry") -> set[tuple[str, str]]:
    """(email, breach name) of every stored breach hit: what a HIBP sync already recorded."""
    with registry._tx(write=False) as connection:
        rows = connection.execute(
            sa.select(hits.c.value, hits.c.evidence).where(hits.c.channel == Channel.BREACH.value)
        ).all()
    out = set()
    for value, evidence in rows:
        if isinstance(evidence, dict) and evidence.get("breach"):
            out.add((value.lower(), str(evidence["breach"])))
    return out
