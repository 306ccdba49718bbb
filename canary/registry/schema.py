"""Registry tables (SQLAlchemy Core). Alembic migrations must produce exactly this.

    sources 1-n batches 1-n canaries 1-n tokens
    sources 1-n canaries (denormalised: most queries filter canaries by source)

Room for what comes next (hits and alerts, in a later migration ``0002``):

* ``hits`` will reference ``tokens.id`` and ``canaries.id`` (nullable, so a hit
  on a value that matches no token is still recorded) and copy the token
  ``kind``/``value`` it matched, so it stays readable if a source is removed.
* ``alerts`` will reference ``hits.id`` (and ``sources.id`` for routing).

To make that safe every table uses an integer surrogate key that is never
reused: SQLite tables are created with AUTOINCREMENT (plain rowid tables hand
out a deleted max id again, which would attach old hits to a new canary);
PostgreSQL sequences never go back. New tables only need ``op.create_table``:
no existing table has to be rebuilt.

Timestamps are timezone-aware UTC in Python (``UtcDateTime``): PostgreSQL
stores ``timestamptz``; SQLite stores naive UTC text, tagged UTC on the way out.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from canary.model import CanaryStatus, VerifyState

# Explicit constraint names: Alembic needs them to alter or drop a constraint
# later, and SQLite batch migrations recreate tables by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC datetime on every engine."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry timestamps must be timezone-aware (UTC)")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)  # SQLite keeps text; store naive UTC
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _in(column: str, values) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({listed})"


sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("seeder", sa.String(64), nullable=False),
    sa.Column("url_env", sa.String(255)),
    sa.Column("url", sa.Text),  # never with a password: checked before insert
    sa.Column("mapping", sa.Text),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("establishment", sa.String(255)),
    sa.Column("tenant", sa.String(255)),
    sa.Column("alert_to", sa.JSON, nullable=False),  # list of addresses / sink names
    sa.Column("catchment", sa.JSON, nullable=False),  # list of département codes
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("name"),
    sqlite_autoincrement=True,
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(200), nullable=False),
    sa.Column("planned", sa.Integer, nullable=False),  # how many the operator asked for
    sa.Column("planted", sa.Integer, nullable=False),  # how many reached the target
    sa.Column("kind", sa.String(20), nullable=False),  # "manual", "drip", ...
    sa.Column("note", sa.Text),
    sa.UniqueConstraint("label"),
    sa.Index(None, "source_id"),
    sqlite_autoincrement=True,
)

canaries = sa.Table(
    "canaries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("identity", sa.JSON, nullable=False),  # Identity.to_dict()
    sa.Column("placement", sa.JSON),  # Placement.to_dict(), once planted
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("planted_at", UtcDateTime),
    sa.Column("verified_at", UtcDateTime),
    sa.Column("verify_state", sa.String(16)),
    sa.Column("verify_details", sa.JSON),  # list of human-readable lines
    sa.Column("retired_at", UtcDateTime),
    sa.Column("status_note", sa.Text),
    sa.CheckConstraint(_in("status", CanaryStatus), name="status"),
    sa.CheckConstraint(
        "verify_state IS NULL OR " + _in("verify_state", VerifyState), name="verify_state"
    ),
    sa.Index(None, "source_id", "status"),
    sa.Index(None, "batch_id"),
    sqlite_autoincrement=True,
)

# One row per contact point. ``value`` is stored normalised and lower case, so
# the unique constraint is case-insensitive in effect on every engine.
# No CHECK on ``kind``: a new TokenKind then needs no table rebuild.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("canary_id", sa.Integer, sa.ForeignKey("canaries.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.UniqueConstraint("kind", "value"),
    sa.Index(None, "value"),  # the listener looks values up without knowing the kind
    sa.Index(None, "canary_id"),
    sqlite_autoincrement=True,
)
