"""Hit receipts: a hit stored twice under one receipt is stored once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

The listener journals every hit before storing it and replays the journal
after a crash or a stop; a webhook provider retries the same message. Each
carries a receipt (journal entry id, Twilio MessageSid/CallSid...), unique
when present, so a replayed hit is recognised and not stored again. Only a
nullable column and its unique index: existing rows keep NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hits", sa.Column("receipt", sa.String(80), nullable=True))  # plain ALTER TABLE ADD
    op.create_index("ix_hits_receipt", "hits", ["receipt"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_hits_receipt", table_name="hits")
    with op.batch_alter_table("hits") as batch:
        batch.drop_column("receipt")
