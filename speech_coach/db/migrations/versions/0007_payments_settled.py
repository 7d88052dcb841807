"""Stars payments are recorded before they are settled, and settled once: credited, or refunded.

A `successful_payment` is written first, in its own transaction (`status = 'received'`), with the Telegram ids
needed to refund it; crediting is a second step that flips the status once, so a crash, a database restart or a
rolling update between the two leaves a row a recovery sweep finishes. A payment nobody can be credited for (an
erased learner, a pack no longer on sale) is refunded with refundStarPayment. `refunded_payment` updates and admin
refunds reverse the credits (never below zero) with their own ledger reason.

`erased_accounts` keeps a keyed hash of each erased Telegram account, so the free starter credits are not granted
a second time after `/delete_my_data` and `/start`. The hash is pseudonymous and used for nothing else.

Revision ID: 0007_payments_settled
Revises: 0005_ledger_lock_order
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_payments_settled"
down_revision = "0005_ledger_lock_order"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
REASONS = "'starter', 'answer', 'refund', 'purchase', 'grant'"


def upgrade() -> None:
    # Until settled, a payment needs its payer's ids to be credited or refunded; erasure clears them.
    op.add_column("payments", sa.Column("telegram_user_id", sa.BigInteger))
    op.add_column("payments", sa.Column("chat_id", sa.BigInteger))
    op.add_column("payments", sa.Column("status", sa.Text, nullable=False, server_default="credited"))
    op.add_column("payments", sa.Column("settled_at", TS))
    op.add_column("payments", sa.Column("refunded_at", TS))
    op.add_column("payments", sa.Column("settle_attempts", sa.Integer, nullable=False, server_default="0"))
    op.alter_column("payments", "status", server_default="received")
    op.create_check_constraint("payment_status", "payments", "status IN ('received', 'credited', 'refunded')")
    op.create_index("payments_to_settle", "payments", ["paid_at"], postgresql_where=sa.text("status = 'received'"))
    op.drop_constraint("ledger_reason", "credit_ledger", type_="check")
    op.create_check_constraint("ledger_reason", "credit_ledger", f"reason IN ({REASONS}, 'payment_refund')")
    op.create_table(
        "erased_accounts",
        sa.Column("account_hash", sa.Text, primary_key=True),
        sa.Column("erased_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("erased_accounts")
    op.drop_constraint("ledger_reason", "credit_ledger", type_="check")
    op.create_check_constraint("ledger_reason", "credit_ledger", f"reason IN ({REASONS})")
    op.drop_index("payments_to_settle", "payments")
    op.drop_constraint("payment_status", "payments", type_="check")
    for column in ("settle_attempts", "refunded_at", "settled_at", "status", "chat_id", "telegram_user_id"):
        op.drop_column("payments", column)
