"""Registry tables (SQLAlchemy Core). Alembic migrations must produce exactly this.

    sources 1-n batches 1-n canaries 1-n tokens
    sources 1-n canaries (denormalised: most queries filter canaries by source)

Hits and alerts (migration ``0002``)::

    sources 1-n incidents 1-n hits          (one incident per canary and window)
    incidents 1-n alerts 1-n deliveries     (one delivery per alert and sink)
    sink_state: one row per sink, its failure streak

Drip planting (migration ``0003``)::

    sources 1-n drip_slots                  (a planted slot -> its batch and canary)

Scan reports (migration ``0004``)::

    scan_reports                            (one ``canary scan`` run, its JSON report)

Access positions (migration ``0005``)::

    sources 1-n access_positions            (last audit row read per source and audit table)

Hit receipts (migration ``0006``): ``hits.receipt``, unique when set, so a
journal replay or a retried webhook stores its hit once.

* ``hits`` reference ``tokens``, ``canaries``, ``sources`` and ``incidents``
  (all nullable: a hit on a value that matches no token is still recorded) and
  copy the token ``kind``/``value`` and the source name, so a hit stays
  readable when its source is removed (``detach_source`` sets the references
  to NULL).
* ``alerts`` are composed messages: ``payload`` holds everything a sink needs,
  so delivery never depends on rows that may change or go.
* ``deliveries`` are the outbox: a worker claims a due row, sends it through
  its sink, then marks it sent; failures are retried with backoff, forever.

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
        return utc(value)


def utc(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as a UTC datetime: naive ones are UTC (SQLite keeps them so, as text
    when read without SQLAlchemy's processor), aware ones are converted."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's naive UTC text; the suffix is 5x cheaper than .replace(tzinfo=)
        return datetime.fromisoformat(value + "+00:00")
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


# -- hits and alerts (0002) -----------------------------------------------------
# No CHECK on channel, classification or kinds: new values need no table rebuild.

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("canary_id", sa.Integer, sa.ForeignKey("canaries.id")),  # NULL once detached
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id")),  # NULL once detached
    sa.Column("source_name", sa.String(100), nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),  # time of the first hit
    sa.Column("closes_at", UtcDateTime, nullable=False),  # later hits open a new incident
    sa.Column("last_hit_at", UtcDateTime, nullable=False),
    sa.Column("hit_count", sa.Integer, nullable=False),
    sa.Column("alert_count", sa.Integer, nullable=False),  # messages made (queued or held)
    sa.Column("alerted_severity", sa.Integer, nullable=False),  # highest severity told, -1 none
    sa.Column("alerted_hit_id", sa.Integer),  # hits up to this id are in a queued message
    sa.Column("last_alert_at", UtcDateTime),
    sa.Column("next_digest_at", UtcDateTime),  # set while hits wait for a digest
    sa.Index(None, "canary_id", "closes_at"),
    sa.Index(None, "source_id"),
    sa.Index(None, "next_digest_at"),
    sqlite_autoincrement=True,
)

hits = sa.Table(
    "hits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),  # when the front end saw it
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("remote", sa.String(64)),
    sa.Column("classification", sa.String(20), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),  # capped (canary.hits.hit.cap_evidence)
    sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id")),
    sa.Column("canary_id", sa.Integer, sa.ForeignKey("canaries.id")),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id")),
    sa.Column("source_name", sa.String(100)),  # copy: readable after the source is removed
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("receipt", sa.String(80)),  # 0005: journal entry / webhook message id, stored once
    sa.Index(None, "canary_id", "at"),
    sa.Index(None, "source_name", "at"),
    sa.Index(None, "source_id"),
    sa.Index(None, "token_id"),
    sa.Index(None, "incident_id"),
    sa.Index(None, "at"),
    sa.Index(None, "receipt", unique=True),
    sqlite_autoincrement=True,
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # new, follow-up, digest, summary, notice
    sa.Column("status", sa.String(16), nullable=False),  # queued, held, summarised
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("source_name", sa.String(100)),  # NULL for notices about the system itself
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON),  # the composed message; NULL while held
    sa.Column("summary_id", sa.Integer, sa.ForeignKey("alerts.id")),  # held -> its summary
    sa.Index(None, "source_name", "created_at"),
    sa.Index(None, "incident_id"),
    sa.Index(None, "status"),
    sqlite_autoincrement=True,
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("sink", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, sent
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(120)),  # worker holding it, until claimed_until
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("last_attempt_at", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", UtcDateTime),
    sa.UniqueConstraint("alert_id", "sink"),
    sa.Index(None, "status", "next_attempt_at"),
    sqlite_autoincrement=True,
)

sink_state = sa.Table(
    "sink_state",
    metadata,
    sa.Column("sink", sa.String(32), primary_key=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("failing_since", UtcDateTime),  # set once the streak reaches the threshold
    sa.Column("last_error", sa.Text),
    sa.Column("last_failure_at", UtcDateTime),
    sa.Column("last_success_at", UtcDateTime),
)


# -- drip planting (0003) -------------------------------------------------------
# One row per scheduled single planting. A runner claims due rows for a lease
# (``claimed_by`` / ``claimed_until``, as deliveries are claimed), plants one
# canary in a batch of its own, then marks the row done with that batch.
# No CHECK on ``status``: new states need no table rebuild.

drip_slots = sa.Table(
    "drip_slots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, done, failed, cancelled
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(200), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("claimed_by", sa.String(120)),
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id")),  # once planted
    sa.Column("canary_id", sa.Integer, sa.ForeignKey("canaries.id")),
    sa.Column("finished_at", UtcDateTime),  # planted, given up or cancelled
    sa.Column("last_error", sa.Text),
    sa.Index(None, "status", "due_at"),
    sa.Index(None, "source_id"),
    sqlite_autoincrement=True,
)


# -- scan reports (0004) --------------------------------------------------------
# One row per ``canary scan`` run: a few summary columns for the listing, and the
# whole ``canary.scan/1`` JSON report as text. No reference to sources: a report
# stays readable, as it was written, when a source it names is removed.

scan_reports = sa.Table(
    "scan_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("operator", sa.String(200), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # the scanned paths, shortened
    sa.Column("input_files", sa.Integer, nullable=False),  # files and archive members read
    sa.Column("input_bytes", sa.BigInteger, nullable=False),
    sa.Column("sources_found", sa.Integer, nullable=False),
    sa.Column("canaries_found", sa.Integer, nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # canary.scan/1 JSON
    sa.Index(None, "created_at"),
    sqlite_autoincrement=True,
)


# -- access positions (0005) ----------------------------------------------------
# ``canary access poll`` reads an application's audit table from the row after
# ``position`` (the last row id it read, as text): kept here, with the source, so
# a rebuilt admin host or a second one never reports a row twice. Deleted with
# the source.

access_positions = sa.Table(
    "access_positions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("audit_table", sa.String(128), nullable=False),
    sa.Column("position", sa.String(64), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("source_id", "audit_table"),
    sqlite_autoincrement=True,
)
