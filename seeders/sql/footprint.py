"""A canary's footprint through a mapping: what the site is like, and the related rows of one event.

``learn_site`` reads the site once (read only, a few whole-table queries):
the values of the columns mapped ``site = "values"`` or ``fill = "site"``
from the most recent rows, and for each ``[[related]]`` table the share of
patients with rows there and the number of rows per event (per patient and
date of ``when``). ``event_rows`` then plans the rows one event writes for a
canary: at planting (the registration's own rows), or later from drip.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from canary.errors import SourceError
from canary.model import Identity
from seeders.sql.mapping import Mapping
from seeders.sql.related import RelatedSpec
from seeders.sql.rows import RowPlan
from seeders.sql.sitevalues import SAMPLE, ColumnValues, SiteValues, count_values
from seeders.sql.target import SqlTarget



@dataclass(frozen=True, slots=True)
class RelatedPace:
    share: float  # share of the site's patients with rows in the table
    rows: Counter  # rows per event (per patient and date), counted over the site
    events: tuple[int, ...] = ()  # later events per patient (dates after the first), sorted, over the site


@dataclass(frozen=True, slots=True)
class Site:
    values: SiteValues
    related: dict[str, RelatedPace]  # by alias

    def share(self, spec: RelatedSpec) -> float:
        return spec.share if spec.share is not None else self.related[spec.alias].share

    def events(self, spec: RelatedSpec, identity: Identity) -> int | None:
        """How many later events this canary gets in ``spec`` (None: no limit known)."""
        if spec.events is not None:
            return spec.events
        counts = self.related[spec.alias].events
        if not counts:
            return None
        return counts[int(spec.uniform(identity, "events") * len(counts))]

    def rows(self, spec: RelatedSpec, rnd: random.Random) -> int:
        if spec.rows is not None:
            return spec.rows
        counts = self.related[spec.alias].rows
        if not counts:
            return 1
        items = sorted(counts.items())
        return rnd.choices([n for n, _ in items], weights=[w for _, w in items])[0]


def learn_site(target: SqlTarget, mapping: Mapping, rnd: random.Random, today: date | None = None) -> Site:
    """What the site holds, read only; SourceError when there are no patients to learn from."""
    today = today or date.today()
    patients = mapping.patients
    try:
        with target.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(_table(target, patients.name))).scalar()
            if not count:
                raise SourceError(
                    f"source '{target.source_name}': table {patients.name} has no patients to learn from, and "
                    f"{mapping.path} draws values or rows from the site's own; plant into the site's database "
                    "once it holds patients, or map those columns from the identity or constants")
            columns: dict[tuple[str, str], ColumnValues] = {}
            for table in (*mapping.tables, *(r.table for r in mapping.related)):
                learnt = {c.name: (*c.given, *((c.after,) if c.after else ())) for c in table.columns if c.learns}
                after = {c.name: c.after for c in table.columns if c.after}
                if learnt:
                    found = _recent_values(conn, _table(target, table.name), learnt, today, after)
                    columns.update({(table.name, name): values for name, values in found.items()})
            paces = {spec.alias: _pace(conn, _table(target, spec.table.name), spec, count)
                     for spec in mapping.related}
    except sa.exc.StatementError as err:
        raise target._failed("reading the site", err) from None
    return Site(SiteValues(columns, rnd, today), paces)


def event_rows(mapping: Mapping, spec: RelatedSpec, identity: Identity, now: datetime, site: Site,
               rnd: random.Random, patient: dict[str, Any] | None = None, *, every: bool = False) -> list[RowPlan]:
    """The rows of ``spec`` one event writes for a canary chosen for it (none when it is not).

    ``patient`` holds the patient row's values when it was inserted earlier
    (drip events); without it the link refers to the row inserted in the
    same transaction. ``every``: for every canary (checking that values fit).
    """
    if not every and not spec.chosen(identity, site.share(spec)):
        return []
    literal = None
    if patient is not None:
        literal = {c.name: patient.get(c.ref.column) for c in spec.table.columns if c.source == "ref"}
        if any(v is None for v in literal.values()):
            return []
    return [mapping.row(spec.table, identity, now, site.values, literal) for _ in range(site.rows(spec, rnd))]


def _table(target: SqlTarget, name: str) -> sa.Table:
    table = target.table(name)
    if table is None:
        raise SourceError(f"source '{target.source_name}': table {name} is gone from the database")
    return table


def _recent_values(conn: sa.Connection, table: sa.Table, learnt: dict[str, tuple[str, ...]],
                   today: date, after: dict[str, str]) -> dict[str, ColumnValues]:
    names = sorted({*learnt, *(g for given in learnt.values() for g in given)} & set(table.c.keys()))
    order = [c.desc() for c in table.primary_key.columns]
    query = sa.select(*(table.c[n] for n in names)).order_by(*order).limit(SAMPLE)
    rows = [dict(zip(names, row)) for row in conn.execute(query)]
    given = {name: tuple(g for g in columns if g != after.get(name)) for name, columns in learnt.items()}
    return count_values(rows, given, today, after)


def _pace(conn: sa.Connection, table: sa.Table, spec: RelatedSpec, patients: int) -> RelatedPace:
    link = table.c[spec.link]
    holders = conn.execute(sa.select(sa.func.count(sa.distinct(link)))).scalar() or 0
    groups = [link] + ([table.c[spec.when]] if spec.when else [])
    per_event = conn.execute(sa.select(sa.func.count()).select_from(table).group_by(*groups)).scalars()
    events: tuple[int, ...] = ()
    if spec.when:
        dates = sa.select(sa.func.count(sa.distinct(table.c[spec.when]))).group_by(link)
        events = tuple(sorted(max(0, n - 1) for n in conn.execute(dates).scalars()))
    return RelatedPace(share=min(1.0, holders / patients), rows=Counter(per_event), events=events)
