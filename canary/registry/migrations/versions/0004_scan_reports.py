"""Scan reports: what each `canary scan` run found, kept for the admin dashboard.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Frozen copy of the scan_reports table of canary/registry/schema.py at this
revision: later changes go in new revisions, never here. Only a new table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scan_reports",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("input_files", sa.Integer, nullable=False),
        sa.Column("input_bytes", sa.BigInteger, nullable=False),
        sa.Column("sources_found", sa.Integer, nullable=False),
        sa.Column("canaries_found", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scan_reports"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_scan_reports_created_at", "scan_reports", ["created_at"])


def downgrade() -> None:
    op.drop_table("scan_reports")
