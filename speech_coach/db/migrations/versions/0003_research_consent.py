"""Research consent, separate from the storage consent: a learner's pseudonymized answers reach research
exports only while they have opted in. Off by default; the time of the last change is kept for audits.

Revision ID: 0003_research_consent
Revises: 0002_bot
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_research_consent"
down_revision = "0002_bot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("learners", sa.Column("research_consent", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("learners", sa.Column("research_consent_changed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("learners", "research_consent_changed_at")
    op.drop_column("learners", "research_consent")
