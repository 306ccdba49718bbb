"""Hits, incidents, alerts and their outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2025-12-01

Frozen copy of the hit and alert tables of canary/registry/schema.py at this
revision: later changes go in new revisions, never here. Only new tables: no
existing table is rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("canary_id", sa.Integer, nullable=True),
        sa.Column("source_id", sa.Integer, nullable=True),
        sa.Column("source_name", sa.String(100), nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("closes_at", UTC_DATETIME, nullable=False),
        sa.Column("last_hit_at", UTC_DATETIME, nullable=False),
        sa.Column("hit_count", sa.Integer, nullable=False),
        sa.Column("alert_count", sa.Integer, nullable=False),
        sa.Column("alerted_severity", sa.Integer, nullable=False),
        sa.Column("alerted_hit_id", sa.Integer, nullable=True),
        sa.Column("last_alert_at", UTC_DATETIME, nullable=True),
        sa.Column("next_digest_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.ForeignKeyConstraint(
            ["canary_id"], ["canaries.id"], name="fk_incidents_canary_id_canaries"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_incidents_source_id_sources"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_incidents_canary_id_closes_at", "incidents", ["canary_id", "closes_at"])
    op.create_index("ix_incidents_source_id", "incidents", ["source_id"])
    op.create_index("ix_incidents_next_digest_at", "incidents", ["next_digest_at"])

    op.create_table(
        "hits",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
        sa.Column("classification", sa.String(20), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("canary_id", sa.Integer, nullable=True),
        sa.Column("source_id", sa.Integer, nullable=True),
        sa.Column("source_name", sa.String(100), nullable=True),
        sa.Column("incident_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hits"),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"], name="fk_hits_token_id_tokens"),
        sa.ForeignKeyConstraint(
            ["canary_id"], ["canaries.id"], name="fk_hits_canary_id_canaries"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_hits_source_id_sources"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_hits_incident_id_incidents"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hits_canary_id_at", "hits", ["canary_id", "at"])
    op.create_index("ix_hits_source_name_at", "hits", ["source_name", "at"])
    op.create_index("ix_hits_source_id", "hits", ["source_id"])
    op.create_index("ix_hits_token_id", "hits", ["token_id"])
    op.create_index("ix_hits_incident_id", "hits", ["incident_id"])
    op.create_index("ix_hits_at", "hits", ["at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.Integer, nullable=True),
        sa.Column("source_name", sa.String(100), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("summary_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_alerts_incident_id_incidents"
        ),
        sa.ForeignKeyConstraint(["summary_id"], ["alerts.id"], name="fk_alerts_summary_id_alerts"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_source_name_created_at", "alerts", ["source_name", "created_at"])
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"])
    op.create_index("ix_alerts_status", "alerts", ["status"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("claimed_by", sa.String(120), nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("last_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("alert_id", "sink", name="uq_deliveries_alert_id_sink"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name="fk_deliveries_alert_id_alerts"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )

    op.create_table(
        "sink_state",
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("failing_since", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_failure_at", UTC_DATETIME, nullable=True),
        sa.Column("last_success_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("sink", name="pk_sink_state"),
    )


def downgrade() -> None:
    op.drop_table("sink_state")
    op.drop_table("deliveries")
    op.drop_table("alerts")
    op.drop_table("hits")
    op.drop_table("incidents")
