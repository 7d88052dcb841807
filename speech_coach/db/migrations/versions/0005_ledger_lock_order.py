"""The ledger's balance trigger locks the learner row FOR NO KEY UPDATE instead of FOR UPDATE.

A transaction that first inserts a child row of the learner (an answer, a payment) holds FOR KEY SHARE on the
learner from the foreign key check. FOR UPDATE conflicts with another transaction's FOR KEY SHARE, so two such
transactions for one learner each waited for the other (deadlock, 40P01). FOR NO KEY UPDATE does not conflict
with FOR KEY SHARE but does with itself, so ledger entries of one learner are still booked one at a time.

Revision ID: 0005_ledger_lock_order
Revises: 0004_answer_publish_lease
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005_ledger_lock_order"
down_revision = "0004_answer_publish_lease"
branch_labels = None
depends_on = None

BALANCE = """
CREATE OR REPLACE FUNCTION credit_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM learners WHERE id = NEW.learner_id FOR {lock};
    NEW.balance_after := NEW.delta + COALESCE(
        (SELECT balance_after FROM credit_ledger WHERE learner_id = NEW.learner_id ORDER BY id DESC LIMIT 1),
        0);
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.execute(BALANCE.format(lock="NO KEY UPDATE"))


def downgrade() -> None:
    op.execute(BALANCE.format(lock="UPDATE"))
