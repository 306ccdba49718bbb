"""One target SQL database, as every SQL-backed seeder needs it.

``SqlTarget`` connects (SQLite, MariaDB/MySQL, PostgreSQL), reflects tables,
says whether planned rows fit their columns, inserts the rows of one patient
in one transaction (generated keys read back, references resolved), reads
them back by key and deletes exactly them. It knows nothing about mappings
or identities: the generic mapping seeder and application-specific seeders
(OpenEMR, OpenMRS, OpenELIS...) describe rows as ``RowPlan`` and share it.

Fit problems are returned as ``Problem`` values so each seeder can word them
for its user (a mapping file, an application version); database failures
raise ``SourceError`` with the URL redacted.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy import event

from canary.errors import CanaryAltered, SourceError
from canary.model import VerifyResult, VerifyState
from seeders.sql import rows as r
from seeders.sql.values import coerce, comparable, describe, kind_problem, to_json, value_problem

# Rows read when looking for a patient's rows by a non-key column (locate).
_FIND_LIMIT = 100
# A PostgreSQL column default drawing from a sequence. SQLAlchemy's reflection
# takes only the plain serial form nextval('t_id_seq'::regclass) for an
# autoincrement column; Tryton before 7.0 writes
# nextval((format('%I'::text, 't_id_seq'::text))::regclass) (trytond 6.0
# backend/postgresql/table.py, TableHandler.__init__), which numbers rows all the same.
_NEXTVAL_DEFAULT = re.compile(r"^\s*nextval\(", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why planned rows do not fit a table; ``column`` is None for the table itself."""

    table: str
    column: str | None
    message: str


class SqlTarget:
    def __init__(self, source_name: str, url: str, *, schema: str | None = None) -> None:
        # ``url`` may carry a password: it is only ever shown through redact().
        self.source_name = source_name
        self._url = url
        self.schema = schema
        self._engine: sa.Engine | None = None
        self._tables: dict[str, sa.Table] = {}

    # -- connection ------------------------------------------------------
    def connect(self) -> None:
        from canary.dsn import sqlite_path

        path = sqlite_path(self._url)
        if path is not None and not path.is_file():
            # SQLite would quietly create an empty database: a typo, not a target.
            raise self._error("cannot connect to", f"no such file {path}")
        try:
            engine = sa.create_engine(self._url, **_connect_args(self._url))
        except Exception as err:  # bad URL, unknown driver
            raise self._error("cannot connect to", _reason(err, self._url)) from None
        if engine.dialect.name == "sqlite":
            _take_over_sqlite_transactions(engine)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as err:
            engine.dispose()
            raise self._error("cannot connect to", _reason(err, self._url)) from None
        self._engine = engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._tables.clear()

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("SqlTarget.connect() was not called")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _error(self, action: str, reason: str) -> SourceError:
        from canary.dsn import redact

        return SourceError(f"source '{self.source_name}': {action} {redact(self._url)}: {reason}")

    def _failed(self, action: str, err: Exception) -> SourceError:
        return SourceError(f"source '{self.source_name}': {action} failed: {_reason(err, self._url)}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(canary_write=True)
            with conn.begin():
                yield conn

    # -- structure -------------------------------------------------------
    def table(self, name: str) -> sa.Table | None:
        """The reflected table, or None if the database has no such table."""
        if name not in self._tables:
            try:
                self._tables[name] = sa.Table(name, sa.MetaData(schema=self.schema), autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                return None
            except sa.exc.StatementError as err:
                raise self._failed(f"reading table {name}", err) from None
        return self._tables[name]

    def auto_increments(self, column: sa.Column) -> bool:
        """Whether the database assigns this column itself on insert."""
        if column.identity is not None or column.autoincrement is True:
            return True
        if self.dialect == "postgresql" and isinstance(column.type, sa.Integer) \
                and column.server_default is not None \
                and _NEXTVAL_DEFAULT.match(str(getattr(column.server_default, "arg", ""))):
            return True
        # SQLite: a lone INTEGER PRIMARY KEY is the rowid, numbered on insert.
        return self.dialect == "sqlite" and column.table.autoincrement_column is column

    def structure_problems(
        self, table_name: str, key: Sequence[str], kinds: dict[str, str],
        generated: dict[str, r.Generated] | None = None, unique_by_construction: Iterable[str] = (),
    ) -> list[Problem]:
        """What keeps rows with these columns out of the table, before any value exists.

        ``kinds`` maps every column the seeder writes (literal, generated or
        referenced) to the kind of value it writes (see seeders.sql.fields).
        The key must be unique so verify and retire never reach another row:
        the table says so (primary key, unique constraint or index), or a key
        column is in ``unique_by_construction`` (generated keys, uuids).
        """
        table = self.table(table_name)
        if table is None:
            return [Problem(table_name, None, "no such table in the database")]
        problems = []
        for name in list(kinds) + [k for k in key if k not in kinds]:
            if name not in table.c:
                problems.append(Problem(table_name, name, "no such column in the table"))
        for name in key:
            if name in table.c and name not in kinds:
                problems.append(Problem(table_name, name, "is a key column the seeder does not set"))
        for column in table.c:
            if column.name in kinds or column.nullable or column.server_default is not None:
                continue
            if not self.auto_increments(column):
                problems.append(Problem(
                    table_name, column.name, "is NOT NULL without a default and is not set: map it"))
        for name, kind in kinds.items():
            if name in table.c and (message := kind_problem(table.c[name], kind)):
                problems.append(Problem(table_name, name, message))
        generated = generated or {}
        for name, gen in generated.items():
            if name in table.c and (message := self._generation_problem(table.c[name], gen)):
                problems.append(Problem(table_name, name, message))
        for column in table.c:
            identity = column.identity
            if identity is not None and identity.always and column.name in kinds and column.name not in generated:
                problems.append(Problem(table_name, column.name,
                                        "is GENERATED ALWAYS AS IDENTITY: use generate = \"autoincrement\""))
        if not problems and not set(unique_by_construction) & set(key) and not any(
                cols <= set(key) for cols in _unique_column_sets(table)):
            problems.append(Problem(table_name, None, f"key ({', '.join(key)}) is not unique in the table: "
                                    "use its primary key or a unique column"))
        return problems

    def _generation_problem(self, column: sa.Column, gen: r.Generated) -> str | None:
        if gen.kind == r.AUTOINCREMENT and not self.auto_increments(column):
            return "is not numbered by the database: use generate = \"max+1\" or \"sequence\""
        if gen.kind == r.MAX_PLUS_ONE and not isinstance(column.type, sa.Integer):
            return f"is {describe(column)}: max+1 needs an integer column"
        if gen.kind == r.SEQUENCE:
            if not self.engine.dialect.supports_sequences:
                return f"{self.dialect} has no sequences: use generate = \"max+1\""
            if not sa.inspect(self.engine).has_sequence(gen.sequence, schema=self.schema):
                return f"sequence {gen.sequence!r} does not exist"
        return None

    def value_problems(self, row: r.RowPlan) -> list[Problem]:
        """Literal values of ``row`` that do not fit (length, NOT NULL, type)."""
        table = self.table(row.table)
        if table is None:
            return [Problem(row.table, None, "no such table in the database")]
        problems = []
        for name, value in row.values.items():
            if name in table.c and (message := value_problem(table.c[name], value)):
                problems.append(Problem(row.table, name, message))
        return problems

    # -- rows ------------------------------------------------------------
    def insert(self, plans: Sequence[r.RowPlan]) -> tuple[dict[str, Any], ...]:
        """Insert all rows in one transaction; return them as Placement rows."""
        done: dict[str, dict[str, Any]] = {}  # alias -> every value of its row
        placed = []
        action = "insert"
        try:
            with self._write() as conn:
                for plan in plans:
                    action = f"insert into {plan.table}"
                    table = self._require(plan.table)
                    values = dict(plan.values)
                    for name, ref in plan.refs.items():
                        values[name] = done[ref.alias][ref.column]
                    auto = None
                    for name, gen in plan.generated.items():
                        if gen.kind == r.AUTOINCREMENT:
                            auto = name
                        else:
                            values[name] = self._next_value(conn, table, name, gen)
                    values = {name: coerce(table.c[name], value) for name, value in values.items()}
                    stored = dict(values)
                    stored_auto = self._insert_row(conn, table, values, auto)
                    if auto is not None:
                        stored[auto] = stored_auto
                    done[plan.name] = stored
                    placed.append(_placement_row(plan, stored, values))
        except sa.exc.StatementError as err:
            raise self._failed(action, err) from None
        return tuple(placed)

    def _insert_row(self, conn: sa.Connection, table: sa.Table, values: dict[str, Any],
                    auto: str | None) -> Any:
        stmt = table.insert().values(values)
        if auto is not None and conn.dialect.insert_returning:
            return conn.execute(stmt.returning(table.c[auto])).scalar_one()
        result = conn.execute(stmt)
        return result.lastrowid if auto is not None else None

    def _next_value(self, conn: sa.Connection, table: sa.Table, name: str, gen: r.Generated) -> Any:
        if gen.kind == r.SEQUENCE:
            return conn.execute(sa.select(sa.Sequence(gen.sequence, schema=self.schema).next_value())).scalar_one()
        # max+1: lock so that a concurrent insert cannot take the same number.
        # SQLite already holds the write lock (BEGIN IMMEDIATE).
        query = sa.select(sa.func.max(table.c[name]))
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"LOCK TABLE {conn.dialect.identifier_preparer.format_table(table)} "
                                 "IN SHARE ROW EXCLUSIVE MODE"))
        elif conn.dialect.name in ("mysql", "mariadb"):
            query = query.with_for_update()
        return (conn.execute(query).scalar() or 0) + 1

    def _require(self, name: str) -> sa.Table:
        table = self.table(name)
        if table is None:
            raise SourceError(f"source '{self.source_name}': table {name} is gone from the database")
        return table

    def _where(self, table: sa.Table, key: dict[str, Any]) -> sa.ColumnElement[bool]:
        return sa.and_(*(table.c[name] == coerce(table.c[name], value) for name, value in key.items()))

    def read(self, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The row with this key, or None if it (or its table) is gone."""
        try:
            with self.engine.connect() as conn:
                return self._read(conn, table_name, key)
        except sa.exc.StatementError as err:
            raise self._failed(f"reading {table_name}", err) from None

    def _read(self, conn: sa.Connection, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        table = self.table(table_name)
        if table is None or any(name not in table.c for name in key):
            return None
        row = conn.execute(sa.select(table).where(self._where(table, key)).limit(1)).first()
        return None if row is None else dict(row._mapping)

    def find(self, table_name: str, equal: dict[str, Any], *, casefold: Iterable[str] = (),
             limit: int = _FIND_LIMIT) -> list[dict[str, Any]]:
        """Rows whose columns equal ``equal`` (columns in ``casefold`` compared case-insensitively)."""
        table = self._require(table_name)
        folded = set(casefold)
        conditions = []
        for name, value in equal.items():
            column = table.c[name]
            value = coerce(column, value)
            if name in folded and isinstance(column.type, sa.String) and isinstance(value, str):
                conditions.append(sa.func.lower(column) == value.lower())
            else:
                conditions.append(column == value)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(table).where(*conditions).limit(limit)).all()
        except sa.exc.StatementError as err:
            raise self._failed(f"searching {table_name}", err) from None
        return [dict(row._mapping) for row in rows]

    def compare(self, placed: Sequence[dict[str, Any]]) -> VerifyResult:
        """OK, MISSING (a row is gone) or ALTERED (a compared value changed)."""
        gone, changed = [], []
        try:
            with self.engine.connect() as conn:
                current_rows = [self._read(conn, row["table"], row["key"]) for row in placed]
        except sa.exc.StatementError as err:
            raise self._failed("reading planted rows", err) from None
        for row, current in zip(placed, current_rows):
            if current is None:
                gone.append(f"{row['table']} row {_key_text(row['key'])} is gone")
                continue
            table = self._require(row["table"])
            skip = set(row.get("unchecked") or ())
            for name, value in row["values"].items():
                if name in skip:
                    continue
                column = table.c.get(name)
                if column is None:
                    changed.append(f"{row['table']}.{name} column is gone")
                elif comparable(column, current[name]) != comparable(column, value):
                    changed.append(f"{row['table']}.{name} changed")
        if gone:
            return VerifyResult(VerifyState.MISSING, tuple(gone + changed))
        if changed:
            return VerifyResult(VerifyState.ALTERED, tuple(changed))
        return VerifyResult(VerifyState.OK)

    def delete(self, placed: Sequence[dict[str, Any]]) -> int:
        """Delete exactly these rows, last first, in one transaction; return how many were there.

        A key that matches more than one row means the key is not unique:
        nothing is deleted rather than risk a real patient's row. So does a row
        where any value recorded at planting (NIR, names, birth date, contact
        points...: every compared column) changed: the canary was edited by
        someone, or deleted and its key (MAX(id)+1, a rowid) given to a real
        patient since; either way it is not ours to delete any more
        (CanaryAltered, naming the changed columns, never their values).
        """
        deleted = 0
        try:
            with self._write() as conn:
                for row in reversed(placed):
                    table = self.table(row["table"])
                    if table is None or any(name not in table.c for name in row["key"]):
                        continue  # the table or key column is gone, so is the row
                    current = self._read(conn, row["table"], row["key"])
                    changed = _changed_columns(table, row, current) if current is not None else []
                    if changed:
                        raise CanaryAltered(
                            f"source '{self.source_name}': {row['table']} row {_key_text(row['key'])} was altered "
                            f"since planting ({', '.join(changed)} changed: it may now be a real patient's); "
                            "nothing of this canary was deleted, check that row by hand")
                    count = conn.execute(table.delete().where(self._where(table, row["key"]))).rowcount
                    if count > 1:
                        raise SourceError(
                            f"source '{self.source_name}': key {_key_text(row['key'])} of {row['table']} "
                            f"matches {count} rows; nothing was deleted, check the key columns")
                    deleted += count
        except sa.exc.StatementError as err:
            raise self._failed("delete", err) from None
        return deleted


def _changed_columns(table: sa.Table, row: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Recorded, compared columns whose value is no longer the one written at planting."""
    skip = set(row.get("unchecked") or ())
    return [name for name, value in row["values"].items()
            if name not in skip and name in table.c and name not in row["key"]
            and comparable(table.c[name], current[name]) != comparable(table.c[name], value)]


def _unique_column_sets(table: sa.Table) -> list[set[str]]:
    sets = [{c.name for c in table.primary_key.columns}]
    sets += [{c.name for c in con.columns} for con in table.constraints if isinstance(con, sa.UniqueConstraint)]
    sets += [{c.name for c in index.columns} for index in table.indexes if index.unique]
    return [cols for cols in sets if cols]


def _placement_row(plan: r.RowPlan, stored: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "table": plan.table,
        "key": {name: to_json(stored[name]) for name in plan.key},
        "values": {name: to_json(value) for name, value in written.items()},
    }
    if plan.unchecked:
        row["unchecked"] = sorted(plan.unchecked)
    return row


def _key_text(key: dict[str, Any]) -> str:
    return ",".join(f"{name}={value}" for name, value in key.items())


def _connect_args(url: str) -> dict[str, Any]:
    # Fail in seconds on an unreachable server rather than hang on the OS timeout.
    backend = sa.engine.make_url(url).get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in sa.engine.make_url(url).query:
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def _take_over_sqlite_transactions(engine: sa.Engine) -> None:
    """Let writes start with BEGIN IMMEDIATE, so max+1 and inserts hold the lock throughout.

    pysqlite otherwise starts a transaction only at the first INSERT, after
    our SELECT MAX. This is SQLAlchemy's documented recipe.
    """

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        write = conn.get_execution_options().get("canary_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _reason(err: BaseException, url: str) -> str:
    """A short, password-free reason from a driver or SQLAlchemy error."""
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    try:
        password = sa.engine.make_url(url).password
    except Exception:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text[:200]
