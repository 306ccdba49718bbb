"""``SqlTarget`` for application seeders, which know their tables in advance.

Reflecting tables one by one costs several catalogue queries each (a quarter
of a second per table on a busy PostgreSQL); an application seeder knows the
dozen tables it touches and reflects them in one go at ``open()``.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from canary.errors import SourceError
from seeders.sql.target import SqlTarget


class AppTarget(SqlTarget):
    def preload(self, names: Iterable[str]) -> None:
        """Reflect the named tables that exist, in one pass; ``table()`` then serves them."""
        existing = set(sa.inspect(self.engine).get_table_names(schema=self.schema))
        wanted = [name for name in names if name in existing]
        if not wanted:
            return
        metadata = sa.MetaData(schema=self.schema)
        try:
            metadata.reflect(self.engine, only=wanted)
        except sa.exc.StatementError as err:
            raise self._failed("reading tables", err) from None
        for table in metadata.tables.values():
            self._tables.setdefault(table.name, table)

    def failed(self, action: str, err: Exception) -> SourceError:
        """A one-line SourceError for a database failure during ``action``, password removed."""
        return self._failed(action, err)
