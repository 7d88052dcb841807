"""Erasure is recorded before it starts and finished by a sweep: retried until done, the learner told when it is.

`/delete_my_data` writes an `erasures` row first (the learner's chat, language and the keyed account hash: what it
takes to finish and to say so), then tells downstream (the deletion event), erases PostgreSQL with the learner's
audio objects noted on the row, deletes those objects from S3, and tells the learner. Any step that fails is retried
by every bot process's recovery loop; the row, and the chat id on it, is deleted once the learner was told.
No foreign key: the row outlives the learner it erases.

Revision ID: 0010_erasures
Revises: 0009_delivery_outbox
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_erasures"
down_revision = "0009_delivery_outbox"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("learner_id", sa.Uuid, primary_key=True),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("account_hash", sa.Text, nullable=False),
        sa.Column("requested_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", TS),  # the deletion event is on Kafka
        sa.Column("erased_at", TS),  # PostgreSQL rows gone; `objects` lists the audio ([bucket, key]) to delete
        sa.Column("objects", JSONB),
        sa.Column("objects_deleted_at", TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("claimed_until", TS),
        sa.Column("last_error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("erasures")
