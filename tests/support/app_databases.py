"""Databases for the application seeders' tests: real dumps, snapshots, shared fixtures.

``module_database`` gives a test module one fresh database (the per-test
fixtures of conftest cost seconds each to create and drop); tests sharing it
leave it as they found it, which they check anyway.

It also loads the real OpenMRS (mysqldump) and OpenELIS (pg_dump) schemas
into a test database, and snapshots every table.

The dumps live in /work/shared/schemas (CI has them); tests that need them
skip with a clear reason otherwise. Loading goes through the same drivers the
seeders use (no mysql/psql client needed):

* mysqldump: the whole file in one multi-statement call (its string values
  hold semicolons and newlines, so it is never split by hand).
* pg_dump: split on statement ends outside quotes, COPY blocks fed through
  psycopg's COPY support. Objects a test database cannot or need not hold are
  skipped: ownership and grants for roles that do not exist, the
  ``tablefunc`` helper functions in ``public`` (C code from an extension),
  and data blocks the dump's authors commented out with ``/* ... */``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from support.needs import missing

# .ci/run exports CANARY_REAL_SCHEMAS; otherwise look beside the checkout.
SCHEMAS = Path(os.environ.get("CANARY_REAL_SCHEMAS")
               or Path(__file__).resolve().parents[3] / "shared" / "schemas")
OPENMRS_DUMP = SCHEMAS / "openmrs-initial_test_db.sql"
OPENELIS_DUMP = SCHEMAS / "openelis-init.sql"


def module_database(env: str, what: str, prepare) -> Iterator[str]:  # noqa: ANN001 (callable)
    """A fresh database for a whole test module, ``prepare(url)`` run once, dropped at the end."""
    from conftest import _fresh_database, _server_url

    databases = _fresh_database(_server_url(env, what), what)
    url = next(databases)
    try:
        prepare(url)
        yield url
    finally:
        from support.app_seeder_helpers import dispose

        dispose(url)  # pooled connections would hold the drop back
        databases.close()  # drops it


def snapshotted_database(env: str, what: str, prepare, snapshot) -> Iterator[tuple[str, object]]:  # noqa: ANN001
    """``module_database`` with the prepared database's ``snapshot(url)``: yields (url, baseline)."""
    for url in module_database(env, what, prepare):
        yield url, snapshot(url)


def left_as_prepared(database: tuple[str, object], snapshot) -> Iterator[str]:  # noqa: ANN001
    """A test's view of a ``snapshotted_database``: its URL, then, after the test, the check
    that the test left it exactly as prepared."""
    url, baseline = database
    yield url
    assert snapshot(url) == baseline, "the test left rows behind"


def opened_on(url: str, make, snapshot) -> Iterator:  # noqa: ANN001
    """``make(url)`` opened for one test, closed after it, with the check that every table is
    as before (the seeder touched only the rows it added and retired them)."""
    before = snapshot(url)
    seeder = make(url)
    seeder.open()
    yield seeder
    seeder.close()
    assert snapshot(url) == before, "the test left rows behind or changed real ones"


def require_dump(path: Path) -> Path:
    if not path.is_file():
        missing("schemas", f"real schema {path.name} not found in {SCHEMAS} (CI provides it; "
                "set CANARY_REAL_SCHEMAS to its folder)")
    return path


def load_mysqldump(url: str, path: Path) -> None:
    from pymysql.constants import CLIENT

    engine = sa.create_engine(url, connect_args={"client_flag": CLIENT.MULTI_STATEMENTS})
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(path.read_text(encoding="utf-8"))
            while cursor.nextset():
                pass
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


_SKIPPED_PG = (
    re.compile(r"^ALTER \w+ .* OWNER TO ", re.S),
    re.compile(r"^(GRANT|REVOKE) ", re.S),
    re.compile(r"^COMMENT ON EXTENSION ", re.S),
    re.compile(r"^CREATE EXTENSION ", re.S),
    re.compile(r"^(CREATE|ALTER) (FUNCTION|TYPE|AGGREGATE) public\.", re.S),
)


def _pg_statements(text: str):
    """(sql, copy_rows) pairs: copy_rows is the raw data of a COPY ... FROM stdin, else None."""
    lines = text.splitlines(keepends=True)
    buffer: list[str] = []
    in_quote = False
    dollar: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not buffer and not in_quote and dollar is None and (line.startswith("--") or not line.strip()):
            continue
        if not buffer and line.startswith("/*"):
            # A data block commented out by hand (the OpenELIS dump has some): skip to its end.
            while not line.rstrip().endswith("*/"):
                line = lines[i]
                i += 1
            continue
        buffer.append(line)
        in_quote, dollar = _scan_quotes(line, in_quote, dollar)
        if in_quote or dollar is not None or not line.rstrip().endswith(";"):
            continue
        statement = "".join(buffer).strip()
        buffer = []
        if statement.startswith("COPY ") and statement.endswith("FROM stdin;"):
            data = []
            while lines[i].rstrip("\n") != "\\.":
                data.append(lines[i])
                i += 1
            i += 1
            yield statement, "".join(data)
        else:
            yield statement, None


def _scan_quotes(line: str, in_quote: bool, dollar: str | None) -> tuple[bool, str | None]:
    pos = 0
    while pos < len(line):
        if dollar is not None:
            end = line.find(dollar, pos)
            if end < 0:
                return in_quote, dollar
            pos, dollar = end + len(dollar), None
            continue
        char = line[pos]
        if in_quote:
            if char == "'":
                in_quote = False
        elif char == "'":
            in_quote = True
        elif char == "-" and line.startswith("--", pos):
            return in_quote, dollar
        elif char == "$":
            match = re.match(r"\$[A-Za-z_]*\$", line[pos:])
            if match:
                dollar = match.group(0)
                pos += len(dollar)
                continue
        pos += 1
    return in_quote, dollar


def load_pgdump(url: str, path: Path) -> None:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            batch: list[str] = []  # statements sent together: one round trip, not thousands
            for statement, rows in _pg_statements(path.read_text(encoding="utf-8")):
                if any(p.match(statement) for p in _SKIPPED_PG):
                    continue
                if rows is None:
                    batch.append(statement)
                    continue
                if batch:
                    cursor.execute("\n".join(batch))
                    batch = []
                with cursor.copy(statement) as copy:
                    copy.write(rows)
            if batch:
                cursor.execute("\n".join(batch))
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def snapshot_tables(url: str, schema: str | None = None) -> dict[str, list[tuple]]:
    """Every row of every table (of ``schema``, else the database's own), sorted.

    Plain SQL rather than reflection: the real schemas have 100+ tables and
    reflecting them all takes seconds.
    """
    engine = sa.create_engine(url)
    out: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                names = conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                    "AND table_type = 'BASE TABLE'"), {"s": schema or "public"}).scalars().all()
                quoted = [f'{schema or "public"}."{name}"' for name in names]
            else:
                names = conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                    "AND table_type = 'BASE TABLE'")).scalars().all()
                quoted = [f"`{name}`" for name in names]
            for name, table in zip(names, quoted):
                rows = conn.exec_driver_sql(f"SELECT * FROM {table}").all()
                out[name] = sorted((tuple(row) for row in rows), key=repr)
    finally:
        engine.dispose()
    return out
