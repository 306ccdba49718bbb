"""May the account of a SQL source do what plant, verify and retire do? Found without writing.

``canary doctor`` asks every SQL seeder for the tables it writes; this module
asks the database what the connected account may do with them:

- PostgreSQL: ``has_table_privilege`` per table and right (roles included),
  and USAGE on the sequence behind each serial column an insert numbers;
- MariaDB/MySQL: the account's ``SHOW GRANTS`` (global, database and table
  grants; the grants of the active role appear there on MariaDB);
- SQLite: no grants, but the file and its folder must be writable (SQLite
  writes its journal next to the file).

Planting inserts, verify selects, retire deletes; nothing updates a planted
row, so UPDATE is only asked where a seeder updates something (OpenMRS's
idgen counter). Answers are problem lines naming the table and the missing
rights; an empty list means the account may do everything asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping

import sqlalchemy as sa

from seeders.sql.target import SqlTarget

PLANT_RIGHTS = ("SELECT", "INSERT", "DELETE")
ALL_RIGHTS = frozenset({"ALL", "ALL PRIVILEGES"})

_GRANT = re.compile(r"^GRANT (?P<rights>.+?) ON (?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE(?: BODY)?) )?"
                    r"(?P<what>(?:`(?:[^`]|``)*`|[^\s.`]+|\*)\.(?:`(?:[^`]|``)*`|[^\s.`]+|\*)) TO ",
                    re.IGNORECASE)
_ROLE_GRANT = re.compile(r"^GRANT (?!.* ON ).+ TO ", re.IGNORECASE)


def needs(tables: Iterable[str], rights: Iterable[str] = PLANT_RIGHTS) -> dict[str, tuple[str, ...]]:
    """The same rights on each table (in the order given, duplicates dropped)."""
    return {table: tuple(rights) for table in dict.fromkeys(tables)}


def access_problems(target: SqlTarget, wanted: Mapping[str, Iterable[str]], *,
                    sequences: Iterable[str] = ()) -> list[str]:
    """One line per table whose rights the account lacks (``target`` connected).

    ``sequences`` names PostgreSQL sequences the seeder takes numbers from
    itself (``nextval``), which needs USAGE on each.
    """
    dialect = target.dialect
    try:
        if dialect == "sqlite":
            return _sqlite_problems(target)
        if dialect == "postgresql":
            return _postgres_problems(target, wanted, tuple(sequences))
        if dialect in ("mysql", "mariadb"):
            return _mysql_problems(target, wanted)
    except sa.exc.DBAPIError as err:
        first = str(getattr(err, "orig", err)).strip().splitlines()
        return [f"could not read the account's rights: {first[0][:200] if first else type(err).__name__}"]
    return []  # another engine: open() proved the connection, rights are not checked


# -- SQLite -------------------------------------------------------------------------


def _sqlite_problems(target: SqlTarget) -> list[str]:
    database = target.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return []
    path = Path(database)
    problems = []
    if not os.access(path, os.R_OK | os.W_OK):
        problems.append(f"{path} is not readable and writable by this user")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        problems.append(f"folder {path.parent} is not writable by this user (SQLite writes its journal there)")
    return problems


# -- PostgreSQL ---------------------------------------------------------------------


def _postgres_problems(target: SqlTarget, wanted: Mapping[str, Iterable[str]],
                       sequences: tuple[str, ...]) -> list[str]:
    problems = []
    with target.engine.connect() as conn:
        for name in sequences:
            qualified = f"{target.schema}.{name}" if target.schema else name
            if not conn.execute(sa.text("SELECT has_sequence_privilege(:s, 'USAGE')"), {"s": qualified}).scalar():
                problems.append(f"missing USAGE on sequence {qualified}")
        for name, rights in wanted.items():
            table = target.table(name)
            if table is None:
                problems.append(f"table {name} is not in the database")
                continue
            qualified = conn.dialect.identifier_preparer.format_table(table)
            missing = [right for right in rights if not conn.execute(
                sa.text("SELECT has_table_privilege(:t, :r)"), {"t": qualified, "r": right}).scalar()]
            if "INSERT" in rights:
                missing += _sequence_rights(conn, target, table, qualified)
            if missing:
                problems.append(f"missing {', '.join(missing)} on {name}")
    return problems


def _sequence_rights(conn: sa.Connection, target: SqlTarget, table: sa.Table, qualified: str) -> list[str]:
    """USAGE on the sequence of each serial column an insert lets the database number."""
    missing = []
    for column in table.c:
        if column.identity is not None or not target.auto_increments(column):
            continue  # identity columns number rows without the inserting role's rights
        sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": qualified, "c": column.name}).scalar()
        if sequence and not conn.execute(sa.text("SELECT has_sequence_privilege(:s, 'USAGE')"),
                                         {"s": sequence}).scalar():
            missing.append(f"USAGE on sequence {sequence}")
    return missing


# -- MariaDB / MySQL ----------------------------------------------------------------


def _mysql_problems(target: SqlTarget, wanted: Mapping[str, Iterable[str]]) -> list[str]:
    with target.engine.connect() as conn:
        lines = [str(row[0]) for row in conn.exec_driver_sql("SHOW GRANTS")]
        database = target.schema or conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
    grants = parse_grants(lines)
    roles = any(_ROLE_GRANT.match(line) for line in lines)
    problems = []
    for name, rights in wanted.items():
        held = rights_on(grants, database, name)
        missing = [] if held & ALL_RIGHTS else [right for right in rights if right not in held]
        if missing:
            hint = " (the account's roles were not looked into: check them by hand)" if roles else ""
            problems.append(f"missing {', '.join(missing)} on {name}{hint}")
    return problems


def parse_grants(lines: Iterable[str]) -> list[tuple[frozenset[str], str, str]]:
    """(rights, database pattern, table or "*") of each ``GRANT ... ON db.table TO`` line.

    Column-level rights (``SELECT (col)``) are left out: they do not cover a
    whole row, which is what the seeders write and read.
    """
    grants = []
    for line in lines:
        match = _GRANT.match(line.strip())
        if not match:
            continue
        rights = frozenset(right.strip().upper() for right in _split_rights(match["rights"])
                           if "(" not in right)
        database, table = _split_name(match["what"])
        grants.append((rights, database, table))
    return grants


def rights_on(grants: Iterable[tuple[frozenset[str], str, str]], database: str, table: str) -> set[str]:
    held: set[str] = set()
    for rights, db_pattern, table_name in grants:
        if db_pattern == "*" or (table_name == "*" and _db_matches(db_pattern, database)) \
                or (table_name == table and db_pattern == database):
            held |= rights
    return held


def _split_rights(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _split_name(what: str) -> tuple[str, str]:
    names, current, quoted, i = [], "", False, 0
    while i < len(what):
        char = what[i]
        if char == "`":
            if quoted and what[i + 1:i + 2] == "`":
                current += "`"
                i += 1
            else:
                quoted = not quoted
        elif char == "." and not quoted:
            names.append(current)
            current = ""
        else:
            current += char
        i += 1
    names.append(current)
    return names[0], names[1] if len(names) > 1 else "*"


def _db_matches(pattern: str, database: str) -> bool:
    """A database-level grant's name is a LIKE pattern (``%``, ``_``; ``\\_`` is a plain ``_``)."""
    regex, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        i += 1
    return re.fullmatch(regex, database) is not None
