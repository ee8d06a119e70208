"""The lead store: scoring runs, scores, MQL events, lead states, dispositions, monitoring.

The first migration: every table of ``store.schema`` as this release defines it.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "dispositions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("flag", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "reason_code IS NULL OR reason_code IN ('bad_fit', 'no_budget', 'bad_timing', "
            "'no_contact', 'existing_customer', 'duplicate', 'spam', 'other')",
            name=op.f("ck_dispositions_reason_code"),
        ),
        sa.CheckConstraint(
            "stage IN ('accepted', 'rejected', 'sql', 'opportunity', 'won', 'lost')",
            name=op.f("ck_dispositions_stage"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispositions")),
        sa.UniqueConstraint("event_key", name=op.f("uq_dispositions_event_key")),
    )
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispositions_lead_id_occurred_at"),
            ["lead_id", "occurred_at"],
            unique=False,
        )

    op.create_table(
        "lead_states",
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("lead_source", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("last_as_of", sa.DateTime(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=4), nullable=True),
        sa.Column("mql", sa.Boolean(), nullable=False),
        sa.Column("mql_since", sa.DateTime(), nullable=True),
        sa.Column("first_mql_at", sa.DateTime(), nullable=True),
        sa.Column("last_mql_at", sa.DateTime(), nullable=True),
        sa.Column("mql_episodes", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_states")),
    )
    op.create_table(
        "monitoring_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("check_run", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("period_start", sa.DateTime(), nullable=True),
        sa.Column("period_end", sa.DateTime(), nullable=True),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reference", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint(
            "status IN ('ok', 'warn', 'alert')", name=op.f("ck_monitoring_results_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_results")),
    )
    with op.batch_alter_table("monitoring_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monitoring_results_check_run"), ["check_run"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_monitoring_results_checked_at"), ["checked_at"], unique=False
        )

    op.create_table(
        "scoring_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_alias", sa.String(length=64), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("policy_rule", sa.String(length=32), nullable=True),
        sa.Column("policy_target", sa.Float(), nullable=True),
        sa.Column("leads", sa.Integer(), server_default="0", nullable=False),
        sa.Column("mqls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_leads", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
        sa.Column("data_location", sa.Text(), nullable=True),
        sa.CheckConstraint("source IN ('batch', 'online')", name=op.f("ck_scoring_runs_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_runs")),
    )
    with op.batch_alter_table("scoring_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scoring_runs_as_of"), ["as_of"], unique=False)

    op.create_table(
        "mql_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=4), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.CheckConstraint("event IN ('entered', 'left')", name=op.f("ck_mql_events_event")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring_runs.id"],
            name=op.f("fk_mql_events_run_id_scoring_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mql_events")),
    )
    with op.batch_alter_table("mql_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mql_events_lead_id_occurred_at"),
            ["lead_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_mql_events_occurred_at"), ["occurred_at"], unique=False
        )

    op.create_table(
        "scores",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("probability_low", sa.Float(), nullable=True),
        sa.Column("probability_high", sa.Float(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=4), nullable=False),
        sa.Column("mql", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("lead_source", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "next_best_actions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring_runs.id"],
            name=op.f("fk_scores_run_id_scoring_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scores_lead_id_as_of"), ["lead_id", "as_of"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_scores_run_id"), ["run_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scores_run_id"))
        batch_op.drop_index(batch_op.f("ix_scores_lead_id_as_of"))

    op.drop_table("scores")
    with op.batch_alter_table("mql_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mql_events_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_mql_events_lead_id_occurred_at"))

    op.drop_table("mql_events")
    with op.batch_alter_table("scoring_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scoring_runs_as_of"))

    op.drop_table("scoring_runs")
    with op.batch_alter_table("monitoring_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitoring_results_checked_at"))
        batch_op.drop_index(batch_op.f("ix_monitoring_results_check_run"))

    op.drop_table("monitoring_results")
    op.drop_table("lead_states")
    with op.batch_alter_table("dispositions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispositions_lead_id_occurred_at"))

    op.drop_table("dispositions")
