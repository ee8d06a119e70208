"""CRM sync state: what was last sent to each CRM per lead, and a checkpoint per CRM.

Revision ID: 0002_crm
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_crm"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "crm_sync",
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("sent_values", _JSON, nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("pulled", _JSON, nullable=True),
        sa.Column("pulled_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("system IN ('hubspot', 'salesforce')", name=op.f("ck_crm_sync_system")),
        sa.PrimaryKeyConstraint("system", "lead_id", name=op.f("pk_crm_sync")),
    )
    op.create_table(
        "crm_checkpoints",
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("push_status", sa.String(length=16), nullable=True),
        sa.Column("push_started_at", sa.DateTime(), nullable=True),
        sa.Column("push_cursor", sa.String(length=64), nullable=True),
        sa.Column("push_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pull_cursor", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "system IN ('hubspot', 'salesforce')", name=op.f("ck_crm_checkpoints_system")
        ),
        sa.PrimaryKeyConstraint("system", name=op.f("pk_crm_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("crm_checkpoints")
    op.drop_table("crm_sync")
