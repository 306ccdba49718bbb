"""What a SQL site looks like, read only: patients for the audit, admissions, postcodes.

A ``PatientLayout`` says where a site keeps its patients: the table and its
key, the column holding the registration time, the postcode column, and the
related tables (a table and its column that refers to the patient key).
``layout_with_links`` adds every table whose foreign key points at the
patient table, found in the database itself: an attacker counts rows in all
of them, whether the seeder writes there or not.

Everything here only reads, in a few whole-table queries (one SELECT of the
patient table, one GROUP BY per related table), so a site of 100,000
patients is read in seconds (bench/bench_separability.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Iterator

import sqlalchemy as sa

from seeders.base import AuditPatient
from seeders.sql.target import SqlTarget
from seeders.sql.values import to_json


@dataclass(frozen=True, slots=True)
class PatientLayout:
    table: str
    key: tuple[str, ...]
    created: str | None = None  # registration time column (a DATETIME/TIMESTAMP is best)
    postcode: str | None = None
    related: tuple[tuple[str, str], ...] = ()  # (table, column holding the patient key)
    birth: str | None = None  # birth date column (ages at registration: the canaries' age profile)


def layout_with_links(target: SqlTarget, layout: PatientLayout) -> PatientLayout:
    """The layout plus every table whose foreign key refers to the patient key."""
    if len(layout.key) != 1:
        return layout
    found = list(layout.related)
    try:
        inspector = sa.inspect(target.engine)
        every = inspector.get_multi_foreign_keys(schema=target.schema)
    except sa.exc.SQLAlchemyError:
        return layout  # no right to read the catalogue: keep what the seeder knows
    for (_schema, table), keys in every.items():
        for fk in keys:
            if (fk["referred_table"] == layout.table and fk["referred_columns"] == list(layout.key)
                    and len(fk["constrained_columns"]) == 1):
                link = (table, fk["constrained_columns"][0])
                if link not in found and table != layout.table:
                    found.append(link)
    return replace(layout, related=tuple(found))


def read_patients(target: SqlTarget, layout: PatientLayout, limit: int | None = None
                  ) -> Iterator[AuditPatient]:
    """Every patient row (the ``limit`` most recent), with its related-row counts."""
    table = _table(target, layout.table)
    order = _recent_first(table, layout)
    query = sa.select(table).order_by(*order)
    if limit:
        query = query.limit(limit)
    with _reading(target, f"reading {layout.table}"):
        with target.engine.connect() as conn:
            result = conn.execute(query)
            names = list(result.keys())
            rows = [dict(zip(names, row)) for row in result]  # plain tuples: faster than RowMapping
            related = {(name, column): _related_counts(conn, target, name, column)
                       for name, column in layout.related}
            contacts: dict[Any, list[str]] = {}
            for name, column in layout.related:
                _related_contacts(conn, target, name, column, contacts)
    created = layout.created if layout.created in table.c else None
    single = layout.key[0] if len(layout.key) == 1 else None
    for row in rows:
        patient_key = row.get(single) if single else None
        counts, first = {}, {}
        for (name, _column), per_patient in related.items():
            count, earliest = per_patient.get(patient_key, (0, None))
            counts[name] = counts.get(name, 0) + count
            if earliest is not None and (first.get(name) is None or earliest < first[name]):
                first[name] = earliest
            first.setdefault(name, None)
        yield AuditPatient(
            ref=(layout.table, tuple((k, to_json(row[k])) for k in layout.key)),
            values=row, related=counts, related_first=first,
            created=_as_datetime(row.get(created)) if created else None,
            contacts=tuple(contacts.get(patient_key, ())))


def admission_times(target: SqlTarget, layout: PatientLayout, since: datetime) -> list[datetime] | None:
    """Registration times since ``since`` (naive, as stored: an aware ``since`` is read as its wall-clock
    time); None without a timestamp column."""
    table = _table(target, layout.table)
    if layout.created is None or layout.created not in table.c:
        return None
    column = table.c[layout.created]
    if not isinstance(column.type, (sa.DateTime, sa.Date)):
        return None  # a text date cannot be compared in SQL portably
    with _reading(target, f"counting admissions in {layout.table}"):
        with target.engine.connect() as conn:
            found = conn.execute(sa.select(column).where(column >= since.replace(tzinfo=None))).scalars()
            return sorted(t for t in (_as_datetime(v) for v in found) if t is not None)


def postcodes(target: SqlTarget, layout: PatientLayout, limit: int = 5000) -> Counter[str] | None:
    """The postcodes of the ``limit`` most recent patients, counted; None without a postcode column."""
    table = _table(target, layout.table)
    if layout.postcode is None or layout.postcode not in table.c:
        return None
    query = sa.select(table.c[layout.postcode]).order_by(*_recent_first(table, layout)).limit(limit)
    with _reading(target, f"reading postcodes of {layout.table}"):
        with target.engine.connect() as conn:
            values = conn.execute(query).scalars()
            return Counter(v.strip() for v in values if isinstance(v, str) and v.strip())


def registration_ages(target: SqlTarget, layout: PatientLayout, limit: int = 5000) -> Counter[int] | None:
    """Ages at registration of the ``limit`` most recent patients, counted; None without a birth column.

    The age on the registration day when the layout knows it, else today's: canaries are new
    patients, so they must be as old as the site's new patients were when they came.
    """
    table = _table(target, layout.table)
    if layout.birth is None or layout.birth not in table.c:
        return None
    columns = [table.c[layout.birth]] + ([table.c[layout.created]] if layout.created in table.c else [])
    query = sa.select(*columns).order_by(*_recent_first(table, layout)).limit(limit)
    today = datetime.now()
    ages: Counter[int] = Counter()
    with _reading(target, f"reading birth dates of {layout.table}"):
        with target.engine.connect() as conn:
            for row in conn.execute(query):
                born = _as_datetime(_iso_date(row[0]))
                seen = (_as_datetime(row[1]) if len(row) > 1 else None) or today
                if born is None or born > seen:
                    continue
                age = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
                if 0 <= age <= 110:
                    ages[age] += 1
    return ages


def _iso_date(value: Any) -> Any:
    """A birth date kept as ISO text ('1953-01-03', '1953-01-03 00:00:00') as a date; others unchanged."""
    if isinstance(value, str):
        from datetime import date

        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return value


def site_stamp(target: SqlTarget, names: Iterable[str]) -> tuple:
    """Rows and highest key per table: what changes when anyone inserts or deletes a row there.

    Cheap next to reading the site's habits (one aggregate per table), for
    knowing whether what was learnt from the site is still what it holds.
    Tables that do not exist count as (None,).
    """
    stamp: list[Any] = []
    with target.engine.connect() as conn:
        for name in names:
            table = target.table(name)
            if table is None:
                stamp.append((name, None))
                continue
            keys = list(table.primary_key.columns)[:1]
            query = sa.select(sa.func.count(), *(sa.func.max(k) for k in keys)).select_from(table)
            stamp.append((name, *conn.execute(query).one()))
    return tuple(stamp)


def _table(target: SqlTarget, name: str) -> sa.Table:
    table = target.table(name)
    if table is None:
        from canary.errors import SourceError

        raise SourceError(f"source '{target.source_name}': table {name} is gone")
    return table


def _recent_first(table: sa.Table, layout: PatientLayout) -> list[sa.ColumnElement]:
    names = [layout.created] if layout.created in table.c else []
    names += [k for k in layout.key if k in table.c]
    return [table.c[name].desc() for name in names]


def _related_counts(conn: sa.Connection, target: SqlTarget, name: str, column: str
                    ) -> dict[Any, tuple[int, datetime | None]]:
    table = target.table(name)
    if table is None or column not in table.c:
        return {}
    stamp = next((c for c in table.c if isinstance(c.type, sa.DateTime)), None)
    stamp = stamp if stamp is not None else next((c for c in table.c if isinstance(c.type, sa.Date)), None)
    columns = [table.c[column], sa.func.count()]
    columns.append(sa.func.min(stamp) if stamp is not None else sa.null())
    query = sa.select(*columns).group_by(table.c[column])
    return {key: (count, _as_datetime(first)) for key, count, first in conn.execute(query)}


def _related_contacts(conn: sa.Connection, target: SqlTarget, name: str, column: str,
                      into: dict[Any, list[str]]) -> None:
    """Emails and phone numbers of a related table (a contacts table), per patient key."""
    table = target.table(name)
    if table is None or column not in table.c:
        return
    texts = [c for c in table.c if isinstance(c.type, sa.String) and c.name != column]
    if not texts:
        return
    sample = conn.execute(sa.select(*texts).limit(_SAMPLE)).all()
    chosen = [c for i, c in enumerate(texts)
              if sample and sum(_contact_like(row[i]) for row in sample) >= _CONTACT_SHARE * len(sample)]
    for c in chosen:
        for key, value in conn.execute(sa.select(table.c[column], c)):
            if _contact_like(value):
                into.setdefault(key, []).append(value.strip())


_SAMPLE = 200
_CONTACT_SHARE = 0.2  # a column is a contact column when this share of its values are emails or numbers


def _contact_like(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip()
    if "@" in text and "." in text.rpartition("@")[2]:
        return True
    digits = "".join(ch for ch in text if ch.isdigit())
    return 9 <= len(digits) <= 13 and len(digits) >= len(text.replace(" ", "")) - 3


def _as_datetime(value: Any) -> datetime | None:
    from datetime import date

    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return None


class _reading:
    """Turns a database error while reading into one SourceError line."""

    def __init__(self, target: SqlTarget, action: str) -> None:
        self.target, self.action = target, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, _tb) -> bool:
        if isinstance(err, sa.exc.SQLAlchemyError):
            raise self.target._failed(self.action, err) from None
        return False
