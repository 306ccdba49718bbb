"""Access positions: how far `canary access poll` has read each source's audit tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Frozen copy of the access_positions table of canary/registry/schema.py at
this revision: later changes go in new revisions, never here. Only a new
table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "access_positions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.Integer, nullable=False),
        sa.Column("audit_table", sa.String(128), nullable=False),
        sa.Column("position", sa.String(64), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_access_positions_source_id_sources"),
        sa.PrimaryKeyConstraint("id", name="pk_access_positions"),
        sa.UniqueConstraint("source_id", "audit_table", name="uq_access_positions_source_id_audit_table"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("access_positions")
