"""The lifecycle the SQL seeders share, around the one ``SqlTarget`` they hold.

``TargetSeeder`` is what every SQL seeder does the same way once it is open:
close, the "was open() called" check, the access check on the tables it
writes, ``plan`` / ``check_fits`` from its dry-run rows, and verify / retire
by the keys recorded in the placement.

It also answers the read-only questions about the site (patients for the
separability audit, recent admissions, postcodes) from ``patient_layout``,
through ``seeders/sql/siteread.py``; a seeder that leaves it None says it
cannot tell.

``AppSeeder`` adds the ``open()`` of the seeders written for one application
that reflect its tables up front (``AppTarget``): check the dialect, preload,
let the application check its structure and read its setup, and close the
target again on any failure, a database error being one line, not a
traceback (e.g. no USAGE on the application's schema).
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar, Iterable, Iterator

import sqlalchemy as sa

from canary.errors import MappingError
from canary.model import Identity, Placement, SourceSpec, VerifyResult, VerifyState
from seeders.base import AuditPatient
from seeders.sql.apptarget import AppTarget
from seeders.base import PlannedRow, Seeder
from seeders.sql.rows import RowPlan
from seeders.sql.access import access_problems, needs
from seeders.sql.siteread import (PatientLayout, admission_times, layout_with_links, postcodes, read_patients,
                                  registration_ages, site_stamp)
from seeders.sql.target import Problem, SqlTarget


class TargetSeeder(Seeder):
    """A seeder that writes through one SqlTarget, held from open() to close()."""

    #: Tables the seeder inserts into (and retire deletes from), for ``check_access``.
    written_tables: ClassVar[tuple[str, ...]] = ()
    #: Where the site keeps its patients, for the read-only site questions (None: cannot tell).
    patient_layout: ClassVar[PatientLayout | None] = None

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self.target: SqlTarget | None = None

    def close(self) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None

    def check_access(self) -> list[str]:
        return access_problems(self._target(), needs(self.written_tables))

    def _target(self) -> SqlTarget:
        if self.target is None:
            raise RuntimeError(f"{type(self).__name__}.open() was not called")
        return self.target

    # -- planting --------------------------------------------------------
    @abstractmethod
    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        """The checked rows of a dry run for ``identity``; MappingError if one does not fit."""

    def plan(self, identity: Identity) -> list[PlannedRow]:
        return planned(self._plan_rows(identity))

    def check_fits(self, identities: Iterable[Identity]) -> None:
        for identity in identities:
            self._plan_rows(identity)

    # -- after planting --------------------------------------------------
    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        if not placement.rows:
            return VerifyResult(VerifyState.MISSING, ("the placement lists no rows",))
        return self._target().compare(self._placed(placement.rows))

    def retire(self, placement: Placement) -> None:
        if placement.rows:
            self._target().delete(self._placed(placement.rows))

    # -- reading the site (read only) ---------------------------------------
    def _site_layout(self) -> PatientLayout | None:
        """Where the patients are; seeders that learn it at open() override this."""
        return self.patient_layout

    def patients_for_audit(self, limit: int | None = None) -> Iterator[AuditPatient] | None:
        layout = self._site_layout()
        if layout is None:
            return None
        target = self._target()
        return read_patients(target, layout_with_links(target, layout), limit)

    def admissions_since(self, since: datetime) -> list[datetime] | None:
        layout = self._site_layout()
        return None if layout is None else admission_times(self._target(), layout, since)

    def site_postcodes(self, limit: int = 5000) -> Counter[str] | None:
        layout = self._site_layout()
        return None if layout is None else postcodes(self._target(), layout, limit)

    def site_ages(self, limit: int = 5000) -> Counter[int] | None:
        layout = self._site_layout()
        return None if layout is None else registration_ages(self._target(), layout, limit)

    def _placed(self, rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Placement rows as the target compares and deletes them (keys as stored)."""
        return rows


class AppSeeder(TargetSeeder):
    """A seeder for one application whose tables are known in advance."""

    #: Product name for error messages ("OpenMRS").
    application: ClassVar[str] = ""
    #: Dialects the application runs on (empty: any), and the error when it is another ({} the dialect).
    dialects: ClassVar[tuple[str, ...]] = ()
    wrong_dialect: ClassVar[str] = ""
    #: Schema holding the tables (None: the connection's default).
    schema: ClassVar[str | None] = None
    #: Tables reflected in one pass at open().
    preloaded: ClassVar[tuple[str, ...]] = ()
    #: Attributes set from what ``_prepare`` returns, in order; None while closed.
    parts: ClassVar[tuple[str, ...]] = ()
    #: Tables whose rows tell that the site changed since ``_prepare`` read its habits: ``refresh()``
    #: then reads them again (empty: the habits are read once per open()).
    stamped: ClassVar[tuple[str, ...]] = ()

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self._forget()

    def open(self) -> None:
        self.close()  # opening twice must not leak the first pool
        target = AppTarget(self.source.name, self.url, schema=self.schema)
        target.connect()
        try:
            if self.dialects and target.dialect not in self.dialects:
                raise MappingError(f"source '{self.source.name}': {self.wrong_dialect.format(target.dialect)}")
            target.preload(self.preloaded)
            stamp = site_stamp(target, self.stamped) if self.stamped else None
            prepared = self._prepare(target)
        except sa.exc.DBAPIError as err:
            target.close()
            raise target.failed(f"reading the {self.application} schema", err) from None
        except BaseException:
            target.close()
            raise
        for name, value in zip(self.parts, prepared, strict=True):
            setattr(self, name, value)
        self.target, self._stamp = target, stamp

    def refresh(self) -> None:
        """Read the site's habits again (``_prepare``, the tables staying reflected) if the ``stamped``
        tables changed since they were read: a planting then sees the site as a fresh open() would."""
        if not self.stamped or self.target is None:
            return
        target = self.target
        try:
            stamp = site_stamp(target, self.stamped)
            if stamp == self._stamp:
                return
            prepared = self._prepare(target)
        except sa.exc.DBAPIError as err:
            raise target.failed(f"reading the {self.application} schema", err) from None
        for name, value in zip(self.parts, prepared, strict=True):
            setattr(self, name, value)
        self._stamp = stamp

    def close(self) -> None:
        super().close()
        self._forget()

    def _forget(self) -> None:
        for name in self.parts:
            setattr(self, name, None)
        self._stamp: tuple | None = None

    @abstractmethod
    def _prepare(self, target: AppTarget) -> tuple[Any, ...]:
        """Check the structure and read the setup from the host, once; the values of ``parts``."""

    def plan(self, identity: Identity) -> list[PlannedRow]:
        return planned(self._plan_rows(identity), prefix=f"{self.schema}." if self.schema else "")

    # -- errors ----------------------------------------------------------
    def _where(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def _structure_error(self, first: Problem) -> MappingError:
        where = f"{self._where(first.table)}.{first.column}" if first.column else f"table {self._where(first.table)}:"
        return MappingError(f"source '{self.source.name}': {where} {first.message} "
                            f"(this database does not look like a supported {self.application} version)")

    def _value_error(self, first: Problem) -> MappingError:
        return MappingError(f"source '{self.source.name}': {self._where(first.table)}.{first.column} "
                            f"{first.message}")

    def _checked(self, rows: list[RowPlan]) -> list[RowPlan]:
        """The rows, once every value is known to fit its column; else the first problem as MappingError."""
        target = self._target()
        for row in rows:
            problems = target.value_problems(row)
            if problems:
                raise self._value_error(problems[0])
        return rows


def planned(rows: Iterable[RowPlan], prefix: str = "") -> list[PlannedRow]:
    """What a dry run shows of the rows: their values, generated and linked columns still unknown."""
    return [PlannedRow(table=prefix + row.table,
                       values={**row.values, **{name: None for name in (*row.generated, *row.refs)}})
            for row in rows]
