"""Feedback deliveries become an outbox: the feedback is kept until every part has been sent.

A delivery row is written with the answer's scores (or its rejection and refund) in one transaction, holding the
feedback event itself; the Kafka offset is committed after that, so the row, not the topic, is what the bot still
owes the learner. Parts are counted as they go out, so a send that fails half-way resumes from the first part not
sent; transient Telegram errors are retried at `next_attempt_at`, by whichever bot process claims the row
(`claimed_until`); a delivery that finally fails is refunded once. The answer is `delivered` only once the last
part was sent (`scored` until then, `undelivered` when it failed for good).

Revision ID: 0009_delivery_outbox
Revises: 0008_fsm_states
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_delivery_outbox"
down_revision = "0008_fsm_states"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ANSWER_STATUSES = "'accepted', 'published', 'failed', 'delivered', 'rejected'"


def upgrade() -> None:
    op.drop_constraint("answer_status", "answers", type_="check")
    op.create_check_constraint("answer_status", "answers", f"status IN ({ANSWER_STATUSES}, 'scored', 'undelivered')")
    op.add_column("deliveries", sa.Column("result", JSONB))  # the FeedbackResult; erased with the answer
    op.add_column("deliveries", sa.Column("parts_sent", sa.Integer, nullable=False, server_default="0"))
    op.add_column("deliveries", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("deliveries", sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()))
    op.add_column("deliveries", sa.Column("next_attempt_at", TS, nullable=False, server_default=sa.func.now()))
    op.add_column("deliveries", sa.Column("claimed_until", TS))
    op.add_column("deliveries", sa.Column("last_error", sa.Text))
    # Rows from before are final whatever they say: 'sending' ones were marked delivered before any send.
    op.execute("UPDATE deliveries SET status = 'sent' WHERE status = 'sending'")
    op.alter_column("deliveries", "delivered_at", nullable=True, server_default=None)
    op.create_check_constraint("delivery_status", "deliveries", "status IN ('sending', 'sent', 'failed')")
    op.create_index("deliveries_due", "deliveries", ["next_attempt_at"], postgresql_where=sa.text("status = 'sending'"))


def downgrade() -> None:
    op.drop_index("deliveries_due", "deliveries")
    op.drop_constraint("delivery_status", "deliveries", type_="check")
    op.execute("UPDATE deliveries SET delivered_at = coalesce(delivered_at, created_at)")
    op.alter_column("deliveries", "delivered_at", nullable=False, server_default=sa.func.now())
    for column in ("last_error", "claimed_until", "next_attempt_at", "created_at", "attempts", "parts_sent", "result"):
        op.drop_column("deliveries", column)
    op.execute("UPDATE answers SET status = 'delivered' WHERE status IN ('scored', 'undelivered')")
    op.drop_constraint("answer_status", "answers", type_="check")
    op.create_check_constraint("answer_status", "answers", f"status IN ({ANSWER_STATUSES})")
