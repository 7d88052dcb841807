"""The question bank, as the bot reads it.

Revision ID: 0001_questions
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_questions"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "questions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("bank_version", sa.Text, nullable=False),
        sa.Column("track", sa.Text, nullable=False),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("reading", sa.Text),
        sa.Column("listening", sa.Text),
        sa.Column("sentence", sa.Text),
        sa.Column("tip", sa.Text),
        sa.Column("set_id", sa.Text),
        sa.Column("set_position", sa.Integer),
        sa.Column("preparation_time_s", sa.Integer, nullable=False),
        sa.Column("speaking_time_s", sa.Integer, nullable=False),
        sa.Column("difficulty", sa.Text, nullable=False),
        sa.Column("tags", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("speaking_time_s > 0 AND speaking_time_s <= 600", name="speaking_time_in_range"),
        sa.CheckConstraint("preparation_time_s >= 0", name="preparation_time_not_negative"),
    )
    # The bot picks active questions of a task type.
    op.create_index(
        "questions_active_by_task", "questions", ["task_type"], postgresql_where=sa.text("retired_at IS NULL")
    )


def downgrade() -> None:
    op.drop_table("questions")
