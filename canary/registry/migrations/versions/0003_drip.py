"""Drip planting: scheduled single plantings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-15

Frozen copy of the drip_slots table of canary/registry/schema.py at this
revision: later changes go in new revisions, never here. Only a new table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drip_slots",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(120), nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.Column("batch_id", sa.Integer, nullable=True),
        sa.Column("canary_id", sa.Integer, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drip_slots"),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_drip_slots_source_id_sources"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name="fk_drip_slots_batch_id_batches"
        ),
        sa.ForeignKeyConstraint(
            ["canary_id"], ["canaries.id"], name="fk_drip_slots_canary_id_canaries"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_drip_slots_status_due_at", "drip_slots", ["status", "due_at"])
    op.create_index("ix_drip_slots_source_id", "drip_slots", ["source_id"])


def downgrade() -> None:
    op.drop_table("drip_slots")
