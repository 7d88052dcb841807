"""A ledger entry takes its id after the learner's lock, so the newest entry by id is the newest balance.

The id came from the column default, drawn before the BEFORE INSERT trigger waited for the learner's lock. Two
entries booked at once for one learner (two payments handled as concurrent tasks, an answer and a refund) could
commit in the opposite order of their ids: the balance trigger, and every reader taking the entry with the highest
id as the balance, then read an older balance, and a later charge could be refused though the credits were there.

Revision ID: 0011_ledger_order_after_lock
Revises: 0010_erasures
Create Date: 2026-12-04
"""

from alembic import op

revision = "0011_ledger_order_after_lock"
down_revision = "0010_erasures"
branch_labels = None
depends_on = None

BALANCE = """
CREATE OR REPLACE FUNCTION credit_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM learners WHERE id = NEW.learner_id FOR NO KEY UPDATE;
    {renumber}
    NEW.balance_after := NEW.delta + COALESCE(
        (SELECT balance_after FROM credit_ledger WHERE learner_id = NEW.learner_id ORDER BY id DESC LIMIT 1),
        0);
    RETURN NEW;
END $$;
"""
# Drawn while the learner's lock is held: entries of one learner get their ids in commit order.
RENUMBER = "NEW.id := nextval(pg_get_serial_sequence('credit_ledger', 'id'));"


def upgrade() -> None:
    op.execute(BALANCE.format(renumber=RENUMBER))


def downgrade() -> None:
    op.execute(BALANCE.format(renumber=""))
