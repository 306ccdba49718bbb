"""The Registry: which source holds which canary, and which tokens are in use.

Only this class talks to the registry database. Every method is one short
transaction, so the planting loop, ``verify`` and the listener can share an
SQLite file.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable, Iterator

import sqlalchemy as sa

from canary.dsn import has_password, redact
from canary.errors import CanaryError, ConfigError, RegistryError, SourceError
from canary.model import (
    CanaryStatus,
    Identity,
    Placement,
    SourceSpec,
    Token,
    TokenKind,
    VerifyResult,
    VerifyState,
)
from canary.registry import migrate
from canary.registry.dripstore import DripStore, delete_drip_slots
from canary.registry.engine import create_engine, read_transaction, unreachable, write_transaction
from canary.registry.hitstore import HitStore, detach_source
from canary.registry.lifecycle import LIVE, check_move, status_after_verify
from canary.registry.outboxstore import OutboxStore
from canary.registry.queries import (
    batch_query,
    canary_query,
    source_stats_query,
    summarise_sources,
)
from canary.registry.records import (
    Batch,
    CanaryRecord,
    SourceSummary,
    batch_from_row,
    canary_from_row,
    fold,
    fold_any,
    source_from_row,
    source_row,
    token_kind,
)
from canary.registry.schema import batches, canaries, sources
from canary.registry.schema import tokens as token_table


class TokenTaken(CanaryError):
    """A contact point of a new canary is already used by another one."""

    def __init__(self, kind: TokenKind, canary_id: int | None) -> None:
        owner = f"canary #{canary_id}" if canary_id is not None else "another canary"
        super().__init__(f"{kind.value} token already used by {owner}: draw another identity")
        self.kind = kind
        self.canary_id = canary_id


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Registry(HitStore, OutboxStore, DripStore):
    """Open with ``Registry.open(url)``; close (or use as a context manager) when done."""

    def __init__(self, engine: sa.Engine, url_redacted: str) -> None:
        self._engine = engine
        self.url_redacted = url_redacted

    # -- lifecycle -------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, create: bool = False, outdated_ok: bool = False) -> "Registry":
        """Connect; with ``create`` initialise or upgrade the schema, else require it current.

        ``outdated_ok`` accepts an initialised registry at an older schema, for
        ``canary upgrade`` to call ``upgrade()`` on.
        """
        url_redacted = redact(url)
        engine = create_engine(url, create=create)
        try:
            if create:
                migrate.upgrade(engine, url_redacted)
            else:
                with engine.connect() as connection:
                    migrate.require_current(connection, url_redacted, behind_ok=outdated_ok)
        except RegistryError:
            engine.dispose()
            raise
        except sa.exc.DBAPIError as err:
            engine.dispose()
            raise unreachable(err, url) from None
        return cls(engine, url_redacted)

    def upgrade(self) -> None:
        """Bring the schema to the newest revision (no-op when current)."""
        try:
            migrate.upgrade(self._engine, self.url_redacted)
        except sa.exc.DBAPIError as err:
            raise self._unreachable(err) from None

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.url_redacted!r})"

    def _unreachable(self, err: BaseException) -> RegistryError:
        return unreachable(err, self._engine.url.render_as_string(hide_password=False))

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sa.Connection]:
        begin = write_transaction if write else read_transaction
        try:
            with begin(self._engine) as connection:
                yield connection
        except sa.exc.OperationalError as err:  # server gone, "database is locked"...
            raise self._unreachable(err) from None

    # -- sources ---------------------------------------------------------
    def add_source(self, spec: SourceSpec) -> None:
        if not spec.name or not spec.name.strip():
            raise ConfigError("a source needs a name")
        if spec.url and has_password(spec.url):
            raise ConfigError(
                f"source '{spec.name}': the URL holds a password; put the URL in an "
                "environment variable and give its name with --url-env"
            )
        exists = SourceError(
            f"source '{spec.name}' already exists: choose another name "
            f"or remove it first (`canary source remove {spec.name}`)"
        )
        try:
            with self._tx(write=True) as connection:
                if self._source_id(connection, spec.name, required=False) is not None:
                    raise exists
                connection.execute(sources.insert().values(**source_row(spec), created_at=_now()))
        except sa.exc.IntegrityError:  # added meanwhile by another process
            raise exists from None

    def get_source(self, name: str) -> SourceSpec:
        with self._tx(write=False) as connection:
            row = _first(connection, sources.select().where(sources.c.name == name))
        if row is None:
            raise _unknown_source(name)
        return source_from_row(row)

    def list_sources(self) -> list[SourceSummary]:
        with self._tx(write=False) as connection:
            rows = connection.execute(sources.select().order_by(sources.c.name)).mappings().all()
            stats = connection.execute(source_stats_query()).all()
        return summarise_sources(rows, stats)

    def remove_source(self, name: str, *, force: bool = False) -> None:
        """Forget a source with its batches, canaries and tokens."""
        with self._tx(write=True) as connection:
            source_id = self._source_id(connection, name)
            live = connection.execute(
                sa.select(sa.func.count()).where(
                    canaries.c.source_id == source_id,
                    canaries.c.status.in_([s.value for s in LIVE]),
                )
            ).scalar_one()
            if live and not force:
                # Missing ones count too: "altered" canaries are still in the target.
                raise SourceError(
                    f"source '{name}' still has {live} canaries planned, planted or missing: "
                    "retire them first, or force the removal"
                )
            detach_source(connection, source_id)  # its hits and incidents stay, unlinked
            delete_drip_slots(connection, source_id)  # they reference its batches and canaries
            its_canaries = sa.select(canaries.c.id).where(canaries.c.source_id == source_id)
            connection.execute(
                token_table.delete().where(token_table.c.canary_id.in_(its_canaries))
            )
            connection.execute(canaries.delete().where(canaries.c.source_id == source_id))
            connection.execute(batches.delete().where(batches.c.source_id == source_id))
            connection.execute(sources.delete().where(sources.c.id == source_id))

    @staticmethod
    def _source_id(connection: sa.Connection, name: str, *, required: bool = True) -> int | None:
        source_id = connection.execute(
            sa.select(sources.c.id).where(sources.c.name == name)
        ).scalar_one_or_none()
        if source_id is None and required:
            raise _unknown_source(name)
        return source_id

    # -- batches ---------------------------------------------------------
    def new_batch(self, source: str, label: str | None, operator: str, planned: int,
                  kind: str = "manual", note: str | None = None) -> Batch:
        """Open a batch; without a label, "<source>-YYYYMMDD-HHMMSS" (+ "-2"... if taken)."""
        if label is not None and not label.strip():
            raise ConfigError("a batch label cannot be empty: omit it for a generated one")
        if planned < 0:
            raise ConfigError(f"a batch cannot plan {planned} canaries")
        now = _now()
        taken = SourceError(f"batch label '{label}' is already used: choose another label")
        for _attempt in range(5):  # generated labels may race with another process
            try:
                with self._tx(write=True) as connection:
                    source_id = self._source_id(connection, source)
                    chosen = label or self._free_label(connection, f"{source}-{now:%Y%m%d-%H%M%S}")
                    if label is not None and self._label_used(connection, label):
                        raise taken
                    batch_id = connection.execute(
                        batches.insert().values(
                            label=chosen, source_id=source_id, created_at=now, operator=operator,
                            planned=planned, planted=0, kind=kind, note=note,
                        )
                    ).inserted_primary_key[0]
                return Batch(id=batch_id, label=chosen, source=source, created_at=now,
                             operator=operator, planned=planned, kind=kind, planted=0, note=note)
            except sa.exc.IntegrityError:
                if label is not None:
                    raise taken from None
        raise RegistryError(f"could not find a free batch label for source '{source}': retry")

    @staticmethod
    def _label_used(connection: sa.Connection, label: str) -> bool:
        return connection.execute(
            sa.select(batches.c.id).where(batches.c.label == label)
        ).first() is not None

    def _free_label(self, connection: sa.Connection, base: str) -> str:
        label, n = base, 1
        while self._label_used(connection, label):
            n += 1
            label = f"{base}-{n}"
        return label

    def get_batch(self, label: str) -> Batch:
        with self._tx(write=False) as connection:
            row = _first(connection, batch_query().where(batches.c.label == label))
        if row is None:
            raise CanaryError(f"no batch labelled '{label}': see `canary list`")
        return batch_from_row(row)

    def list_batches(self, source: str | None = None) -> list[Batch]:
        query = batch_query().order_by(batches.c.id)
        with self._tx(write=False) as connection:
            if source is not None:
                query = query.where(batches.c.source_id == self._source_id(connection, source))
            rows = connection.execute(query).mappings().all()
        return [batch_from_row(row) for row in rows]

    # -- canaries --------------------------------------------------------
    def add_planned(self, batch: Batch, identity: Identity, tokens: Iterable[Token]
                    ) -> CanaryRecord:
        """Record a canary about to be planted, with its tokens, in one transaction."""
        wanted = list(dict.fromkeys(
            (token_kind(t.kind), fold(token_kind(t.kind), t.value)) for t in tokens
        ))
        if any(not value for _kind, value in wanted):
            raise ValueError("a token value cannot be empty")
        now = _now()
        try:
            with self._tx(write=True) as connection:
                source_id = connection.execute(
                    sa.select(batches.c.source_id).where(batches.c.id == batch.id)
                ).scalar_one_or_none()
                if source_id is None:
                    raise CanaryError(f"no batch labelled '{batch.label}': see `canary list`")
                canary_id = connection.execute(
                    canaries.insert().values(
                        source_id=source_id, batch_id=batch.id, status=CanaryStatus.PLANNED.value,
                        identity=identity.to_dict(), created_at=now,
                    )
                ).inserted_primary_key[0]
                if wanted:
                    connection.execute(token_table.insert(), [
                        {"canary_id": canary_id, "kind": kind.value, "value": value}
                        for kind, value in wanted
                    ])
        except sa.exc.IntegrityError:
            raise self._token_taken(wanted) from None
        return CanaryRecord(id=canary_id, source=batch.source, batch=batch.label,
                            status=CanaryStatus.PLANNED, identity=identity, placement=None,
                            created_at=now)

    def _token_taken(self, wanted: list[tuple[TokenKind, str]]) -> CanaryError:
        with self._tx(write=False) as connection:
            for kind, value in wanted:
                owner = connection.execute(
                    sa.select(token_table.c.canary_id)
                    .where(token_table.c.kind == kind.value, token_table.c.value == value)
                ).scalar_one_or_none()
                if owner is not None:
                    return TokenTaken(kind, owner)
        kind = wanted[0][0] if wanted else TokenKind.EMAIL
        return TokenTaken(kind, None)  # taken then freed meanwhile: still a clash

    def mark_planted(self, canary_id: int, placement: Placement) -> None:
        """The seeder wrote the canary: store where, and count it in its batch."""
        with self._tx(write=True) as connection:
            status, batch_id = self._lock(connection, canary_id, canaries.c.batch_id)
            if status is not CanaryStatus.PLANNED:
                raise CanaryError(
                    f"canary #{canary_id} is {status.value}, not planned: cannot mark it planted"
                )
            connection.execute(canaries.update().where(canaries.c.id == canary_id).values(
                status=CanaryStatus.PLANTED.value, placement=placement.to_dict(), planted_at=_now(),
            ))
            connection.execute(batches.update().where(batches.c.id == batch_id).values(
                planted=batches.c.planted + 1
            ))

    def replace_placement(self, canary_id: int, placement: Placement) -> None:
        """A planted canary's rows grew (drip added a later event): store the new placement."""
        with self._tx(write=True) as connection:
            status, = self._lock(connection, canary_id)
            if status is not CanaryStatus.PLANTED:
                raise CanaryError(f"canary #{canary_id} is {status.value}, not planted: its placement stays")
            connection.execute(canaries.update().where(canaries.c.id == canary_id).values(
                placement=placement.to_dict()))

    def set_status(self, canary_id: int, status: CanaryStatus, note: str | None = None) -> None:
        status = CanaryStatus(status)
        with self._tx(write=True) as connection:
            (current,) = self._lock(connection, canary_id)
            check_move(canary_id, current, status)
            values: dict = {"status": status.value, "status_note": note}
            if status is CanaryStatus.RETIRED and current is not CanaryStatus.RETIRED:
                values["retired_at"] = _now()
            connection.execute(canaries.update().where(canaries.c.id == canary_id).values(**values))

    def record_verify(self, canary_id: int, result: VerifyResult) -> None:
        """Store a verify outcome; a planted canary found gone or altered becomes missing."""
        with self._tx(write=True) as connection:
            (current,) = self._lock(connection, canary_id)
            state = VerifyState(result.state)
            connection.execute(canaries.update().where(canaries.c.id == canary_id).values(
                verified_at=_now(), verify_state=state.value, verify_details=list(result.details),
                status=status_after_verify(current, state).value,
            ))

    @staticmethod
    def _lock(connection: sa.Connection, canary_id: int, *extra: sa.Column) -> tuple:
        """Read a canary's status (and ``extra`` columns), locking its row on PostgreSQL."""
        row = connection.execute(
            sa.select(canaries.c.status, *extra).where(canaries.c.id == canary_id).with_for_update()
        ).first()
        if row is None:
            raise CanaryError(f"no canary #{canary_id}: see `canary list`")
        return (CanaryStatus(row[0]), *row[1:])

    def get_canary(self, canary_id: int) -> CanaryRecord:
        with self._tx(write=False) as connection:
            row = _first(connection, canary_query().where(canaries.c.id == canary_id))
        if row is None:
            raise CanaryError(f"no canary #{canary_id}: see `canary list`")
        return canary_from_row(row)

    def list_canaries(self, *, source: str | None = None, batch: str | None = None,
                      status: CanaryStatus | Iterable[CanaryStatus] | None = None,
                      ) -> list[CanaryRecord]:
        query = canary_query().order_by(canaries.c.id)
        if isinstance(status, (CanaryStatus, str)):
            status = [status]
        if status is not None:
            query = query.where(canaries.c.status.in_([CanaryStatus(s).value for s in status]))
        with self._tx(write=False) as connection:
            if source is not None:
                query = query.where(canaries.c.source_id == self._source_id(connection, source))
            if batch is not None:
                batch_id = connection.execute(
                    sa.select(batches.c.id).where(batches.c.label == batch)
                ).scalar_one_or_none()
                if batch_id is None:
                    raise CanaryError(f"no batch labelled '{batch}': see `canary list`")
                query = query.where(canaries.c.batch_id == batch_id)
            rows = connection.execute(query).mappings().all()
        return [canary_from_row(row) for row in rows]

    # -- tokens ----------------------------------------------------------
    def is_taken(self, token: Token) -> bool:
        with self._tx(write=False) as connection:
            return connection.execute(
                sa.select(token_table.c.id).where(
                    token_table.c.kind == token_kind(token.kind).value,
                    token_table.c.value == fold(token_kind(token.kind), token.value),
                )
            ).first() is not None

    def taken_values(self, kind: TokenKind) -> set[str]:
        """Every stored value of one kind (as ``fold`` writes it), in one query."""
        with self._tx(write=False) as connection:
            return set(connection.execute(
                sa.select(token_table.c.value).where(token_table.c.kind == token_kind(kind).value)
            ).scalars())

    def find_token(self, value: str, kind: TokenKind | None = None) -> CanaryRecord | None:
        """The canary owning a contact point; ``value`` normalised, in any case."""
        query = (
            canary_query().join(token_table, token_table.c.canary_id == canaries.c.id)
            .order_by(token_table.c.id).limit(1)
        )
        if kind is not None:
            kind = token_kind(kind)
            query = query.where(token_table.c.kind == kind.value,
                                token_table.c.value == fold(kind, value))
        else:
            query = query.where(token_table.c.value.in_(sorted(fold_any(value))))
        with self._tx(write=False) as connection:
            row = _first(connection, query)
        return canary_from_row(row) if row is not None else None

    def tokens_of(self, canary_id: int) -> list[Token]:
        with self._tx(write=False) as connection:
            rows = connection.execute(
                sa.select(token_table.c.kind, token_table.c.value)
                .where(token_table.c.canary_id == canary_id)
                .order_by(token_table.c.id)
            ).all()
        return [Token(TokenKind(kind), value) for kind, value in rows]


def _first(connection: sa.Connection, query: sa.Executable):
    return connection.execute(query).mappings().first()


def _unknown_source(name: str) -> SourceError:
    return SourceError(f"unknown source '{name}': see `canary source list`")
