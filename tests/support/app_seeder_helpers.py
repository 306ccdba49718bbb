"""Helpers shared by the application seeder tests (OpenEMR, Mediboard).

``load_sql`` runs a whole SQL file the way the mysql client does (one
round trip, many statements); ``rows_except`` reads every row of the given
tables except those a test planted, so "real rows untouched" is a plain
equality.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import pymysql
import sqlalchemy as sa
from pymysql.constants import CLIENT

from canary.model import SourceSpec


def load_sql(url: str, sql: str) -> None:
    """Execute ``sql`` (several statements) in the database of ``url`` (MariaDB/MySQL)."""
    parsed = sa.engine.make_url(url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                           password=parsed.password or "", database=parsed.database, charset="utf8mb4",
                           client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            while cur.nextset():
                pass
        conn.commit()
    finally:
        conn.close()


def load_sql_file(url: str, path: Path) -> None:
    load_sql(url, path.read_text(encoding="utf-8"))


def create_statements(path: Path, tables: Iterable[str],
                      keep_insert: Callable[[str, str], bool] = lambda table, statement: False) -> str:
    """The CREATE TABLE statements of ``tables`` in a dump, verbatim, and the INSERTs ``keep_insert`` accepts."""
    wanted = set(tables)
    text = path.read_text(encoding="utf-8")
    out = [m.group(0) for m in re.finditer(r"^CREATE TABLE `?(\w+)`?.*?;[ \t]*$", text, re.S | re.M)
           if m.group(1) in wanted]
    missing = wanted - {re.match(r"CREATE TABLE `?(\w+)", s).group(1) for s in out}
    if missing:
        raise AssertionError(f"{path} has no CREATE TABLE for {sorted(missing)}")
    for m in re.finditer(r"^INSERT INTO `?(\w+)`?.*?\);[ \t]*$", text, re.S | re.M):
        if keep_insert(m.group(1), m.group(0)):
            out.append(m.group(0))
    return "\n".join(out)


@functools.cache
def _engine(url: str) -> sa.Engine:
    # One pooled engine per database: a new MySQL connection costs an SSL context.
    return sa.create_engine(url)


def dispose(url: str) -> None:
    """Close the pooled connections to ``url`` (before its database is dropped)."""
    _engine(url).dispose()
    _engine.cache_clear()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order (sql_seeder_helpers.snapshot on a pooled engine)."""
    engine = _engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.execute(
                    sa.select(t).order_by(*(list(t.primary_key.columns) or list(t.c))))]
                for name, t in md.tables.items()}


def insert_rows(url: str, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    engine = _engine(url)
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), rows)


def query(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    with _engine(url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def execute(url: str, sql: str, **params: Any) -> None:
    with _engine(url).begin() as conn:
        conn.execute(sa.text(sql), params)


def rows_except(url: str, tables: Iterable[str], planted: Iterable[dict[str, Any]]) -> dict[str, list[tuple]]:
    """Every row of ``tables`` except the planted ones (placement rows), in a stable order."""
    skip: dict[str, tuple[tuple[str, ...], set[tuple]]] = {}
    for row in planted:
        names = tuple(sorted(row["key"]))
        skip.setdefault(row["table"], (names, set()))[1].add(tuple(str(row["key"][n]) for n in names))
    engine = _engine(url)
    out = {}
    md = sa.MetaData()
    with engine.connect() as conn:
        for name in tables:
            table = sa.Table(name, md, autoload_with=engine)
            order = list(table.primary_key.columns) or list(table.c)
            names, keys = skip.get(name, ((), set()))
            out[name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))
                         if not keys or tuple(_text(r._mapping[n]) for n in names) not in keys]
    return out


def _text(value: Any) -> str:
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)


def spec(name: str, seeder: str, **options: Any) -> SourceSpec:
    return SourceSpec(name=name, seeder=seeder, options=dict(options))
