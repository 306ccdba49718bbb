"""Rows to insert for one patient, before the database fills in the blanks.

A SQL-backed seeder (the generic mapping seeder, or one written for a given
application) describes a patient as a list of ``RowPlan``: literal values,
columns the database or a lock-protected query must generate, and columns
that take a value of a row inserted earlier for the same patient. The
``SqlTarget`` turns that list into rows in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds of keys generated at insert time, inside the patient's transaction.
AUTOINCREMENT = "autoincrement"  # the database assigns it (AUTO_INCREMENT, SERIAL, IDENTITY, rowid)
MAX_PLUS_ONE = "max+1"  # SELECT MAX(col) + 1 with the table locked against concurrent inserts
SEQUENCE = "sequence"  # the next value of a named sequence (PostgreSQL, MariaDB >= 10.3)
DB_GENERATED_KINDS = (AUTOINCREMENT, MAX_PLUS_ONE, SEQUENCE)


@dataclass(frozen=True, slots=True)
class Generated:
    kind: str  # one of DB_GENERATED_KINDS
    sequence: str | None = None  # for SEQUENCE


@dataclass(frozen=True, slots=True)
class Ref:
    """The value of ``column`` in the row inserted earlier under ``alias``."""

    alias: str
    column: str


@dataclass(frozen=True, slots=True)
class RowPlan:
    table: str
    key: tuple[str, ...]  # columns that identify the row for verify / retire
    values: dict[str, Any] = field(default_factory=dict)  # literal values
    generated: dict[str, Generated] = field(default_factory=dict)
    refs: dict[str, Ref] = field(default_factory=dict)
    alias: str = ""  # name Refs use; defaults to the table name
    # Columns verify does not compare (timestamps the application may rewrite).
    unchecked: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.alias or self.table

    def columns(self) -> set[str]:
        return set(self.values) | set(self.generated) | set(self.refs)
