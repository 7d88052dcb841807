"""Conversation states (aiogram FSM) live in PostgreSQL, so every bot replica and a restarted bot see the same:
an admin's broadcast started on one replica can be confirmed on another, an onboarding survives a rolling update.

Revision ID: 0008_fsm_states
Revises: 0007_payments_settled
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_fsm_states"
down_revision = "0007_payments_settled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fsm_states",
        sa.Column("key", sa.Text, primary_key=True),  # bot, chat, user, thread, business connection, destiny
        sa.Column("chat_id", sa.BigInteger, nullable=False),  # erased with the learner's chat
        sa.Column("state", sa.Text),
        sa.Column("data", JSONB, nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("fsm_states_by_chat", "fsm_states", ["chat_id"])


def downgrade() -> None:
    op.drop_table("fsm_states")
