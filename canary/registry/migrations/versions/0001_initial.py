"""Initial registry: sources, batches, canaries, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-11-26

Frozen copy of canary/registry/schema.py at this revision: later schema
changes go in new revisions, never here. Hits and alerts come in 0002.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("seeder", sa.String(64), nullable=False),
        sa.Column("url_env", sa.String(255), nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("mapping", sa.Text, nullable=True),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("establishment", sa.String(255), nullable=True),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("alert_to", sa.JSON, nullable=False),
        sa.Column("catchment", sa.JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
        sa.UniqueConstraint("name", name="uq_sources_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("planned", sa.Integer, nullable=False),
        sa.Column("planted", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.UniqueConstraint("label", name="uq_batches_label"),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_batches_source_id_sources"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_batches_source_id", "batches", ["source_id"])
    op.create_table(
        "canaries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identity", sa.JSON, nullable=False),
        sa.Column("placement", sa.JSON, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("planted_at", UTC_DATETIME, nullable=True),
        sa.Column("verified_at", UTC_DATETIME, nullable=True),
        sa.Column("verify_state", sa.String(16), nullable=True),
        sa.Column("verify_details", sa.JSON, nullable=True),
        sa.Column("retired_at", UTC_DATETIME, nullable=True),
        sa.Column("status_note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_canaries"),
        sa.CheckConstraint(
            "status IN ('planned', 'planted', 'missing', 'retired')",
            name="ck_canaries_status",
        ),
        sa.CheckConstraint(
            "verify_state IS NULL OR verify_state IN ('ok', 'missing', 'altered')",
            name="ck_canaries_verify_state",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_canaries_source_id_sources"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name="fk_canaries_batch_id_batches"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_canaries_source_id_status", "canaries", ["source_id", "status"])
    op.create_index("ix_canaries_batch_id", "canaries", ["batch_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("canary_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("kind", "value", name="uq_tokens_kind_value"),
        sa.ForeignKeyConstraint(
            ["canary_id"], ["canaries.id"], name="fk_tokens_canary_id_canaries"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tokens_value", "tokens", ["value"])
    op.create_index("ix_tokens_canary_id", "tokens", ["canary_id"])


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("canaries")
    op.drop_table("batches")
    op.drop_table("sources")
