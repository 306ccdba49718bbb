"""What every seeder written for one application's SQL database shares.

OpenEMR, Mediboard... each know their own tables and conventions and build
the rows of a patient as ``RowPlan`` values; this base class does the rest
the same way for all of them, on top of ``SqlTarget`` (and the shared
lifecycle of ``seeders.sql.appseeder.TargetSeeder``): typed ``--set``
options, connecting and checking that the database is the application's
(tables and columns it must have), checking every value fits before any
write, and verify / retire by the keys recorded in the placement.

Binary columns (OpenEMR's ``uuid`` BINARY(16)) are stored in placements as
hexadecimal text (JSON); they are turned back into bytes before the rows are
read or deleted by key.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable

import sqlalchemy as sa

from canary.errors import ConfigError, MappingError, SourceError
from canary.model import Identity, SourceSpec
from seeders.sql.appseeder import TargetSeeder
from seeders.sql.rows import RowPlan
from seeders.sql.target import SqlTarget

OptionParser = Callable[[str, Any], Any]


class ApplicationSqlSeeder(TargetSeeder):
    """Base of the seeders that write a patient the way one application does."""

    #: Product name for error messages ("OpenEMR").
    application: ClassVar[str] = ""
    #: Tables and the columns they must have; anything missing is not this application.
    required_columns: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: How each option's text is read: name -> parser(option name, raw value) -> value.
    option_parsers: ClassVar[dict[str, OptionParser]] = {}

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self.settings: dict[str, Any] = {}
        self._checked_tables: set[str] = set()

    # -- options -----------------------------------------------------------
    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        known = super().validate_options(options)
        return {name: cls._parse_option(name, value) for name, value in known.items()}

    @classmethod
    def _parse_option(cls, name: str, value: Any) -> Any:
        parser = cls.option_parsers.get(name)
        return value if parser is None else parser(name, value)

    def _settings(self) -> dict[str, Any]:
        given = self.validate_options({k: v for k, v in self.source.options.items()})
        return {opt.name: given[opt.name] if opt.name in given else self._parse_option(opt.name, opt.default)
                for opt in self.options}

    # -- lifecycle ---------------------------------------------------------
    def open(self) -> None:
        self.close()  # opening twice must not leak the first pool
        settings = self._settings()
        target = SqlTarget(self.source.name, self.url)
        target.connect()
        try:
            self._check_tables(target)
            self.target, self.settings = target, settings
            self._prepare()
        except BaseException:
            self.target = None
            target.close()
            raise

    def close(self) -> None:
        super().close()
        self._checked_tables.clear()

    def _ready(self) -> SqlTarget:
        return self._target()

    def _prepare(self) -> None:
        """Read what the seeder needs from the host once (habits, users...); target is set."""

    def _check_tables(self, target: SqlTarget) -> None:
        for name, columns in self.required_columns.items():
            table = target.table(name)
            if table is None:
                raise SourceError(f"source '{self.source.name}': no table {name}: "
                                  f"is this an {self.application} database?")
            missing = [c for c in columns if c not in table.c]
            if missing:
                raise SourceError(f"source '{self.source.name}': table {name} has no column "
                                  f"{', '.join(missing)}: not an {self.application} version this seeder knows")

    # -- planting ----------------------------------------------------------
    def _rows(self, identity: Identity, *, dry_run: bool) -> list[RowPlan]:
        """The rows of one patient, in insertion order (subclasses)."""
        raise NotImplementedError

    def _fit(self, rows: Iterable[RowPlan]) -> list[RowPlan]:
        """The rows, once every table and value is known to take them; else MappingError."""
        target = self._ready()
        rows = list(rows)
        problems = []
        for row in rows:
            if row.table not in self._checked_tables:
                kinds = {name: "any" for name in row.columns()}
                # Generated keys are unique by construction (AUTO_INCREMENT).
                problems += target.structure_problems(row.table, row.key, kinds, row.generated, list(row.generated))
                self._checked_tables.add(row.table)
            problems += target.value_problems(row)
        if problems:
            first = problems[0]
            where = f"{first.table}.{first.column}" if first.column else first.table
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise MappingError(f"source '{self.source.name}': {where} {first.message}{more}")
        return rows

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        return self._fit(self._rows(identity, dry_run=True))

    # -- after planting ----------------------------------------------------
    def _placed(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Placement rows with binary key values back as bytes, so keys match again."""
        target = self._ready()
        out = []
        for row in rows:
            table = target.table(row["table"])
            key = dict(row["key"])
            if table is not None:
                for name, value in key.items():
                    if name in table.c and _is_binary(table.c[name]) and isinstance(value, str):
                        key[name] = bytes.fromhex(value)
            out.append({**row, "key": key})
        return out

    def _read_rows(self, query: sa.Select) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts; database errors are one-line SourceErrors."""
        try:
            with self._ready().engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(query)]
        except sa.exc.StatementError as err:
            raise SourceError(f"source '{self.source.name}': reading failed: "
                              f"{str(getattr(err, 'orig', err)).splitlines()[0][:200]}") from None


def _is_binary(column: sa.Column) -> bool:
    return isinstance(column.type, (sa.LargeBinary, sa.types._Binary))


# -- option parsers ---------------------------------------------------------
_TRUE, _FALSE = {"1", "true", "yes", "on", "oui"}, {"0", "false", "no", "off", "non"}


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"option {name!r} is {value!r}: use yes or no")


def parse_choice(*choices: str) -> OptionParser:
    def parse(name: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(f"option {name!r} is {value!r}: use one of {', '.join(choices)}")
        return text
    return parse


def parse_int(name: str, value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"option {name!r} is {value!r}: use a whole number") from None


def parse_auto_int(name: str, value: Any) -> int | None:
    """An integer, or None for "auto" (the seeder works it out from the host)."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"option {name!r} is {value!r}: use a whole number or auto") from None


def parse_auto_int_or_none(name: str, value: Any) -> int | str | None:
    """An integer, None for "auto", or "none" (write NULL)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return "none"
    return parse_auto_int(name, value)


def parse_text(name: str, value: Any) -> str:
    return "" if value is None else str(value).strip()
