"""Accounts: account scoring runs, account scores, MQA events and account states, each
lead's account on its scores and state (what account funnels and views join on), and the
``mqa`` alert kind (an account entering MQA).

Revision ID: 0003_accounts
Revises: 0002_crm
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_accounts"
down_revision = "0002_crm"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _card_columns() -> list[sa.Column]:
    """Score, grade and probability, as an account score and an MQA event both keep."""
    return [
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=4), nullable=True),
    ]


_KINDS_BEFORE = "kind IN ('mql', 'jump', 'monitor')"
_KINDS_AFTER = "kind IN ('mql', 'jump', 'monitor', 'mqa')"


def _alert_kinds(condition: str) -> None:
    """Replace the outbox's kind check (SQLite rebuilds the table to change a constraint)."""
    with op.batch_alter_table("alert_outbox", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_alert_outbox_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_alert_outbox_kind"), condition)


def upgrade() -> None:
    _alert_kinds(_KINDS_AFTER)
    for table in ("scores", "lead_states"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("account_id", sa.String(length=64), nullable=True))
    op.create_table(
        "account_runs",
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
        sa.Column("accounts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("mqas", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_accounts", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
        sa.Column("data_location", sa.Text(), nullable=True),
        sa.CheckConstraint("source IN ('batch', 'online')", name=op.f("ck_account_runs_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_runs")),
    )
    op.create_index(op.f("ix_account_runs_as_of"), "account_runs", ["as_of"], unique=False)
    op.create_table(
        "account_scores",
        sa.Column("id", _BIGINT, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("probability_low", sa.Float(), nullable=True),
        sa.Column("probability_high", sa.Float(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=4), nullable=False),
        sa.Column("mqa", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("leads", sa.Integer(), nullable=True),
        sa.Column("engaged", sa.Integer(), nullable=True),
        sa.Column("reasons", _JSON, nullable=True),
        sa.Column("buying_group", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["account_runs.id"],
            name=op.f("fk_account_scores_run_id_account_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_scores")),
    )
    op.create_index(
        op.f("ix_account_scores_account_id_as_of"),
        "account_scores",
        ["account_id", "as_of"],
        unique=False,
    )
    op.create_index(op.f("ix_account_scores_run_id"), "account_scores", ["run_id"], unique=False)
    op.create_table(
        "mqa_events",
        sa.Column("id", _BIGINT, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        *_card_columns(),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.CheckConstraint("event IN ('entered', 'left')", name=op.f("ck_mqa_events_event")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["account_runs.id"],
            name=op.f("fk_mqa_events_run_id_account_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mqa_events")),
    )
    op.create_index(
        op.f("ix_mqa_events_account_id_occurred_at"),
        "mqa_events",
        ["account_id", "occurred_at"],
        unique=False,
    )
    op.create_index(op.f("ix_mqa_events_occurred_at"), "mqa_events", ["occurred_at"], unique=False)
    op.create_table(
        "account_states",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("leads", sa.Integer(), nullable=True),
        sa.Column("engaged", sa.Integer(), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("last_as_of", sa.DateTime(), nullable=False),
        *_card_columns(),
        sa.Column("mqa", sa.Boolean(), nullable=False),
        sa.Column("mqa_since", sa.DateTime(), nullable=True),
        sa.Column("first_mqa_at", sa.DateTime(), nullable=True),
        sa.Column("last_mqa_at", sa.DateTime(), nullable=True),
        sa.Column("mqa_episodes", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_states")),
    )


def downgrade() -> None:
    op.drop_table("account_states")
    op.drop_index(op.f("ix_mqa_events_occurred_at"), table_name="mqa_events")
    op.drop_index(op.f("ix_mqa_events_account_id_occurred_at"), table_name="mqa_events")
    op.drop_table("mqa_events")
    op.drop_index(op.f("ix_account_scores_run_id"), table_name="account_scores")
    op.drop_index(op.f("ix_account_scores_account_id_as_of"), table_name="account_scores")
    op.drop_table("account_scores")
    op.drop_index(op.f("ix_account_runs_as_of"), table_name="account_runs")
    op.drop_table("account_runs")
    for table in ("lead_states", "scores"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("account_id")
    op.execute("DELETE FROM alert_outbox WHERE kind = 'mqa'")
    op.execute("DELETE FROM alert_derived WHERE source = 'account_run'")
    _alert_kinds(_KINDS_BEFORE)
