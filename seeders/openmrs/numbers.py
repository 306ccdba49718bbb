"""Patient identifiers for OpenMRS canaries, numbered the way the host numbers them.

Two ways, as in the application:

* The identifier type has an idgen sequential source (Reference Application):
  the canary takes the source's next value exactly as idgen does (base
  characters, first identifier base, prefix, suffix, validator check
  character, reserved identifiers skipped) and moves the source's counter on
  in its own short transaction. Like a database sequence, the counter never
  goes back: retiring the canary leaves a gap, as a registration abandoned
  after its identifier was generated does in the real application.
* No idgen source (identifiers typed by hand, or a bare core install): the
  number right after the highest one of the series in use, with the type's
  check digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa

from canary.errors import MappingError, SourceError
from seeders.sql.idnumbers import Series, from_base, to_base, undecorated_bases
from seeders.openmrs.setup import IdentifierType, IdgenSource
from seeders.sql.apptarget import AppTarget


class IdentifierNumbering:
    def __init__(self, target: AppTarget, id_type: IdentifierType, idgen: IdgenSource | None) -> None:
        self.target, self.id_type, self.idgen = target, id_type, idgen
        self._series = Series((), id_type.validator.counter_alphabet)

    def load(self) -> None:
        """Read the identifiers of the type once (hand numbering), oldest first."""
        if self.idgen is not None:
            return
        ids = self._table("patient_identifier")
        with self.target.engine.connect() as conn:
            identifiers = conn.execute(
                sa.select(ids.c.identifier).where(ids.c.identifier_type == self.id_type.id)
                .order_by(ids.c.patient_identifier_id)).scalars().all()
        self._series = Series(undecorated_bases(identifiers, self.id_type.validator.undecorated),
                              self.id_type.validator.counter_alphabet)

    def _table(self, name: str) -> sa.Table:
        table = self.target.table(name)
        if table is None:
            raise SourceError(f"source '{self.target.source_name}': table {name} is gone from the database")
        return table

    # -- what plan() shows, and plant() takes --------------------------------
    def preview(self) -> str:
        """The identifier the next canary would get, without taking it."""
        if self.idgen is not None:
            with self.target.engine.connect() as conn:
                return self._idgen_identifier(conn, self._idgen_counter(conn))[0]
        return self._checked(self.id_type.validator.valid_identifier(self._series.peek(self._taken)))

    def take(self) -> str:
        """An identifier for a canary about to be planted, reserved as the application reserves it."""
        if self.idgen is not None:
            return self._take_from_idgen()
        base = self._series.take(self._taken)
        try:
            return self._checked(self.id_type.validator.valid_identifier(base))
        except BaseException:
            self._series.forget(base)
            raise

    def forget(self, identifier: str) -> None:
        """A taken (hand-numbered) identifier whose canary was not planted: free it again."""
        base = self.id_type.validator.undecorated(identifier)
        if self.idgen is None and base:
            self._series.forget(base)

    def _checked(self, identifier: str) -> str:
        pattern = self.id_type.format
        if pattern and not re.fullmatch(pattern, identifier):
            raise MappingError(
                f"source '{self.target.source_name}': identifier {identifier!r} does not match the format "
                f"{pattern!r} of identifier type {self.id_type.name!r}; choose another with --set identifier_type=NAME")
        return identifier

    def _taken(self, base: str) -> bool:
        return self._in_use(self.id_type.validator.valid_identifier(base))

    def _in_use(self, identifier: str) -> bool:
        ids = self._table("patient_identifier")
        with self.target.engine.connect() as conn:
            return conn.execute(sa.select(ids.c.patient_identifier_id)
                                .where(ids.c.identifier == identifier).limit(1)).first() is not None

    # -- idgen ---------------------------------------------------------------
    def _idgen_counter(self, conn: sa.Connection, *, lock: bool = False) -> int:
        seq = self._table("idgen_seq_id_gen")
        query = sa.select(seq.c.next_sequence_value).where(seq.c.id == self.idgen.id)
        value = conn.execute(query.with_for_update() if lock else query).scalar_one()
        if value is None or value < 0:  # never used: idgen starts at the first identifier base
            value = from_base(self.idgen.first_identifier_base, self.idgen.base_character_set)
        return value

    def _reserved(self, conn: sa.Connection) -> set[str]:
        reserved = self.target.table("idgen_reserved_identifier")
        if reserved is None:
            return set()
        return set(conn.execute(sa.select(reserved.c.identifier)
                                .where(reserved.c.source == self.idgen.id)).scalars())

    def _idgen_identifier(self, conn: sa.Connection, seed: int) -> tuple[str, int]:
        """SequentialIdentifierGeneratorProcessor: the identifier for ``seed`` (reserved ones skipped) and the next seed."""
        reserved = self._reserved(conn)
        while True:
            identifier = self._for_seed(seed)
            seed += 1
            if identifier not in reserved:
                return self._checked(identifier), seed

    def _for_seed(self, seed: int) -> str:
        src = self.idgen
        text = to_base(seed, src.base_character_set, max(1, len(src.first_identifier_base)))
        identifier = self.id_type.validator.valid_identifier(src.prefix + text + src.suffix)
        too_short = src.min_length and len(identifier) < src.min_length
        too_long = src.max_length and len(identifier) > src.max_length
        if too_short or too_long:
            raise MappingError(
                f"source '{self.target.source_name}': idgen source {src.id} generates {identifier!r}, outside its "
                f"length limits ({src.min_length}-{src.max_length}); fix the source in OpenMRS first")
        return identifier

    def _take_from_idgen(self) -> str:
        seq = self._table("idgen_seq_id_gen")
        try:
            with self.target.engine.begin() as conn:
                identifier, next_seed = self._idgen_identifier(conn, self._idgen_counter(conn, lock=True))
                conn.execute(sa.update(seq).where(seq.c.id == self.idgen.id).values(next_sequence_value=next_seed))
        except sa.exc.StatementError as err:
            raise self.target.failed("reserving an identifier from idgen", err) from None
        return identifier


def recent_log_comment(target: AppTarget, source_id: int) -> str | None:
    """The comment the host's idgen log entries usually carry (which module asked), or None."""
    log = target.table("idgen_log_entry")
    if log is None:
        return None
    with target.engine.connect() as conn:
        comments: Sequence[str | None] = conn.execute(
            sa.select(log.c.comment).where(log.c.source == source_id).order_by(log.c.id.desc()).limit(200)).scalars().all()
    if not comments:
        return None
    return max(set(comments), key=comments.count)
