"""Answers stranded between acceptance and publication are taken over: each accepted answer keeps the
Telegram file id it came with (to download it again) and a lease until which its publication belongs to the bot
process that accepted it. A bot killed mid-publish leaves the answer `accepted` with its credit taken; once the
lease has run out, any bot process claims it, stores and publishes it, or refunds it and tells the learner.

Revision ID: 0004_answer_publish_lease
Revises: 0003_research_consent
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_answer_publish_lease"
down_revision = "0003_research_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("file_id", sa.Text))
    op.add_column("answers", sa.Column("publish_lease_until", sa.DateTime(timezone=True)))
    # The takeover scan reads only the few answers still waiting to be published.
    op.create_index(
        "answers_awaiting_publication",
        "answers",
        ["publish_lease_until"],
        postgresql_where=sa.text("status = 'accepted'"),
    )


def downgrade() -> None:
    op.drop_index("answers_awaiting_publication", table_name="answers")
    op.drop_column("answers", "publish_lease_until")
    op.drop_column("answers", "file_id")
