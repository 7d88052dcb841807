"""The bot's operational state: learners, consent, question history, answers, the credit ledger, payments,
processed updates and feedback deliveries.

The credit ledger is append-only and its running balance can never go negative: a trigger locks the learner's
row, computes `balance_after` from the previous entry and a CHECK rejects a negative result, so concurrent
writers serialize and no application bug can overdraw. Updates are refused; deletes only while a learner's data
is being erased (`SET LOCAL speech_coach.erasing = 'on'`).

Revision ID: 0002_bot
Revises: 0001_questions
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_bot"
down_revision = "0001_questions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "learners",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("telegram_user_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("pseudonym", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False, server_default="en"),
        sa.Column("onboarded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("repetition", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("transcription_temperature", sa.Float, nullable=False, server_default="0"),
        sa.Column("reminders", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_reminded_on", sa.Date),
        sa.Column("current_question_id", sa.Text, sa.ForeignKey("questions.id")),
        sa.Column("current_question_sent_at", TS),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("transcription_temperature >= 0 AND transcription_temperature <= 1", name="temperature"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("learner_id", sa.Uuid, sa.ForeignKey("learners.id", ondelete="CASCADE"), nullable=False),
        sa.Column("notice_version", sa.Text, nullable=False),
        sa.Column("accepted_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("consents_by_learner", "consents", ["learner_id"])
    op.create_table(
        "question_history",
        sa.Column("learner_id", sa.Uuid, sa.ForeignKey("learners.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("question_id", sa.Text, sa.ForeignKey("questions.id"), primary_key=True),
        sa.Column("first_sent_at", TS, nullable=False),
        sa.Column("last_sent_at", TS, nullable=False),
        sa.Column("times_sent", sa.Integer, nullable=False, server_default="1"),
        sa.Column("times_answered", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_answered_at", TS),
        # Spaced repetition: the next time an answered question may return (doubling interval).
        sa.Column("interval_days", sa.Integer, nullable=False, server_default="1"),
        sa.Column("due_at", TS),
    )
    op.create_table(
        "answers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("learner_id", sa.Uuid, sa.ForeignKey("learners.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question_id", sa.Text, sa.ForeignKey("questions.id"), nullable=False),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("update_id", sa.BigInteger, nullable=False),
        sa.Column("file_unique_id", sa.Text, nullable=False),
        sa.Column("question_sent_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("mime_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("bucket", sa.Text),
        sa.Column("object_key", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="accepted"),
        sa.Column("published_at", TS),
        sa.Column("feedback_at", TS),
        sa.Column("overall_score", sa.Float),
        sa.Column("words_per_minute", sa.Float),
        sa.Column("pause_count", sa.Integer),
        sa.Column("lexical_diversity", sa.Float),
        sa.Column("word_count", sa.Integer),
        sa.Column("word_counts", sa.JSON),
        sa.UniqueConstraint("chat_id", "message_id", name="answers_one_per_message"),
        sa.CheckConstraint(
            "status IN ('accepted', 'published', 'failed', 'delivered', 'rejected')", name="answer_status"
        ),
    )
    op.create_index("answers_by_learner", "answers", ["learner_id", "received_at"])
    op.create_index("answers_by_object", "answers", ["object_key"])
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("learner_id", sa.Uuid, sa.ForeignKey("learners.id", ondelete="CASCADE"), nullable=False),
        sa.Column("delta", sa.Integer, nullable=False),
        sa.Column("balance_after", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("balance_after >= 0", name="balance_not_negative"),
        sa.CheckConstraint("delta <> 0", name="delta_not_zero"),
        sa.CheckConstraint("reason IN ('starter', 'answer', 'refund', 'purchase', 'grant')", name="ledger_reason"),
        # One entry per cause: a retried charge, refund or payment cannot be booked twice.
        sa.UniqueConstraint("reason", "ref", name="ledger_once_per_cause"),
    )
    op.create_index("ledger_by_learner", "credit_ledger", ["learner_id", "id"])
    op.execute(
        """
        CREATE FUNCTION credit_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM learners WHERE id = NEW.learner_id FOR UPDATE;
            NEW.balance_after := NEW.delta + COALESCE(
                (SELECT balance_after FROM credit_ledger WHERE learner_id = NEW.learner_id ORDER BY id DESC LIMIT 1),
                0);
            RETURN NEW;
        END $$;
        CREATE TRIGGER credit_ledger_balance BEFORE INSERT ON credit_ledger
            FOR EACH ROW EXECUTE FUNCTION credit_ledger_balance();

        CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND current_setting('speech_coach.erasing', true) = 'on' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'credit_ledger is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
            FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
        """
    )
    op.create_table(
        "payments",
        sa.Column("telegram_payment_charge_id", sa.Text, primary_key=True),
        # Kept for accounting when a learner erases their data, without the link to them.
        sa.Column("learner_id", sa.Uuid, sa.ForeignKey("learners.id", ondelete="SET NULL")),
        sa.Column("provider_payment_charge_id", sa.Text, nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("total_amount", sa.Integer, nullable=False),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("paid_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger, primary_key=True),
        sa.Column("processed_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "deliveries",
        sa.Column("answer_id", sa.Uuid, sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("deliveries", "processed_updates", "payments"):
        op.drop_table(table)
    op.execute("DROP TABLE credit_ledger")
    op.execute("DROP FUNCTION credit_ledger_balance(); DROP FUNCTION credit_ledger_append_only()")
    for table in ("answers", "question_history", "consents", "learners"):
        op.drop_table(table)
