"""Data access for the bot: learners, consent, question choice, answers, the credit ledger and payments.

Every function takes a cursor inside the caller's transaction, so a handler's writes commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from speech_coach import i18n
from speech_coach.contracts.events import TaskType, Track
from speech_coach.questions import load_bank

Cursor = psycopg.AsyncCursor[dict[str, Any]]
NOTICE_VERSION = "2026-12"  # bump when the consent notice changes: learners accept the new one
SUPPORTED_LANGUAGES = i18n.languages()  # those with a catalog

# What the learner picks in the menu -> the task types it draws from.
PRACTICE_KINDS: dict[str, tuple[TaskType, ...]] = {
    "toefl1": (TaskType.TOEFL_INDEPENDENT,),
    "toefl234": (
        TaskType.TOEFL_INTEGRATED_CAMPUS,
        TaskType.TOEFL_INTEGRATED_ACADEMIC,
        TaskType.TOEFL_INTEGRATED_LECTURE,
    ),
    "listen": (TaskType.TOEFL_LISTEN_REPEAT,),
    "interview": (TaskType.TOEFL_INTERVIEW,),
    "job": (TaskType.JOB_INTERVIEW,),
    "work": (TaskType.WORKPLACE,),
}
KIND_OF_TASK = {task: kind for kind, tasks in PRACTICE_KINDS.items() for task in tasks}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Learner:
    id: uuid.UUID
    telegram_user_id: int
    chat_id: int
    pseudonym: str
    language: str
    onboarded: bool
    repetition: bool
    transcription_temperature: float
    reminders: bool
    research_consent: bool
    current_question_id: str | None
    current_question_sent_at: datetime | None
    consented: bool


@dataclass(frozen=True)
class Question:
    id: str
    track: Track
    task_type: TaskType
    title: str
    prompt: str
    reading: str | None
    listening: str | None
    sentence: str | None
    tip: str | None
    set_id: str | None
    set_position: int | None
    preparation_time_s: int
    speaking_time_s: int


_LEARNER_SQL = """
    SELECT l.*, EXISTS (SELECT 1 FROM consents c WHERE c.learner_id = l.id AND c.notice_version = %s) AS consented
    FROM learners l
"""


def _learner(row: dict[str, Any] | None) -> Learner | None:
    if row is None:
        return None
    return Learner(**{k: row[k] for k in Learner.__dataclass_fields__})


async def learner_by_telegram(cur: Cursor, telegram_user_id: int) -> Learner | None:
    await cur.execute(_LEARNER_SQL + " WHERE l.telegram_user_id = %s", (NOTICE_VERSION, telegram_user_id))
    return _learner(await cur.fetchone())


async def learner_by_id(cur: Cursor, learner_id: uuid.UUID) -> Learner | None:
    await cur.execute(_LEARNER_SQL + " WHERE l.id = %s", (NOTICE_VERSION, learner_id))
    return _learner(await cur.fetchone())


async def create_learner(
    cur: Cursor,
    telegram_user_id: int,
    chat_id: int,
    pseudonym: str,
    language: str,
    starter_credits: int,
    account_hash: str,
) -> Learner:
    """Create the learner with their starter credits, unless this Telegram account was erased before (its keyed
    hash is in `erased_accounts`): deleting and starting again must not farm free credits. A concurrent /start for
    the same user creates one."""
    learner_id = uuid.uuid4()
    await cur.execute(
        "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym, language) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (telegram_user_id) DO NOTHING RETURNING id",
        (learner_id, telegram_user_id, chat_id, pseudonym, language),
    )
    created = await cur.fetchone() is not None
    if created and starter_credits > 0:
        await cur.execute("SELECT 1 FROM erased_accounts WHERE account_hash = %s", (account_hash,))
        if await cur.fetchone() is None:
            await add_credits(cur, learner_id, starter_credits, "starter", str(learner_id))
    learner = await learner_by_telegram(cur, telegram_user_id)
    assert learner is not None
    return learner


async def update_learner(cur: Cursor, learner_id: uuid.UUID, **fields: Any) -> None:
    allowed = {"language", "onboarded", "repetition", "transcription_temperature", "reminders", "chat_id",
               "current_question_id", "current_question_sent_at", "last_reminded_on", "research_consent"}  # fmt: skip
    # Names become SQL: a real check, not an assert that `python -O` would drop.
    if not fields or not set(fields) <= allowed:
        raise ValueError(f"not learner settings: {sorted(set(fields) - allowed) or 'none given'}")
    if "research_consent" in fields:  # kept for audits: when the learner last opted in or out
        fields = fields | {"research_consent_changed_at": datetime.now(UTC)}
    assignments = ", ".join(f"{name} = %s" for name in fields)
    await cur.execute(f"UPDATE learners SET {assignments} WHERE id = %s", (*fields.values(), learner_id))


async def claim_reminder(cur: Cursor, learner_id: uuid.UUID, today: date) -> bool:
    """Record today's reminder for the learner; False when it was recorded already (someone else sends it)."""
    await cur.execute(
        "UPDATE learners SET last_reminded_on = %s WHERE id = %s "
        "AND (last_reminded_on IS NULL OR last_reminded_on < %s) RETURNING id",
        (today, learner_id, today),
    )
    return await cur.fetchone() is not None


async def prune_processed_updates(cur: Cursor, older_than_days: int = 3) -> int:
    """Forget handled update ids Telegram can no longer redeliver (it keeps undelivered updates for 24 hours)."""
    await cur.execute(
        "DELETE FROM processed_updates WHERE processed_at < now() - make_interval(days => %s)", (older_than_days,)
    )
    return cur.rowcount


async def record_consent(cur: Cursor, learner_id: uuid.UUID) -> None:
    await cur.execute("INSERT INTO consents (learner_id, notice_version) VALUES (%s, %s)", (learner_id, NOTICE_VERSION))
    await update_learner(cur, learner_id, onboarded=True)


# --- credits ---------------------------------------------------------------------------------------------


class InsufficientCredits(Exception):
    pass


async def balance(cur: Cursor, learner_id: uuid.UUID) -> int:
    await cur.execute(
        "SELECT balance_after FROM credit_ledger WHERE learner_id = %s ORDER BY id DESC LIMIT 1", (learner_id,)
    )
    row = await cur.fetchone()
    return int(row["balance_after"]) if row else 0


async def add_credits(cur: Cursor, learner_id: uuid.UUID, delta: int, reason: str, ref: str) -> bool:
    """Append one ledger entry; False when this (reason, ref) was already booked. The database computes the
    balance and refuses a negative one (InsufficientCredits)."""
    try:
        async with cur.connection.transaction():  # a savepoint: the caller's transaction survives a refusal
            await cur.execute(
                "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) VALUES (%s, %s, 0, %s, %s) "
                "ON CONFLICT ON CONSTRAINT ledger_once_per_cause DO NOTHING RETURNING id",
                (learner_id, delta, reason, ref),
            )
            return await cur.fetchone() is not None
    except psycopg.errors.CheckViolation as exc:
        raise InsufficientCredits from exc


# --- payments --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPayment:
    telegram_payment_charge_id: str
    learner_id: uuid.UUID | None
    telegram_user_id: int
    chat_id: int
    provider_payment_charge_id: str
    payload: str
    currency: str
    total_amount: int
    credits: int  # 0: the payload names no pack on sale


async def record_payment(cur: Cursor, p: NewPayment) -> bool:
    """Write the payment as received (its own transaction, before anything else); False when it was already."""
    await cur.execute(
        "INSERT INTO payments (telegram_payment_charge_id, learner_id, telegram_user_id, chat_id, "
        "provider_payment_charge_id, payload, currency, total_amount, credits, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'received') ON CONFLICT DO NOTHING RETURNING 1",
        (p.telegram_payment_charge_id, p.learner_id, p.telegram_user_id, p.chat_id, p.provider_payment_charge_id,
         p.payload, p.currency, p.total_amount, p.credits),
    )  # fmt: skip
    return await cur.fetchone() is not None


async def payment_for_update(cur: Cursor, charge_id: str) -> dict[str, Any] | None:
    """The payment, locked until the end of the transaction (settling it is then done once)."""
    await cur.execute(
        "SELECT p.*, l.language FROM payments p LEFT JOIN learners l ON l.id = p.learner_id "
        "WHERE p.telegram_payment_charge_id = %s FOR UPDATE OF p",
        (charge_id,),
    )
    return await cur.fetchone()


async def payments_to_settle(cur: Cursor, older_than_s: float, limit: int = 50) -> list[str]:
    """Payments received but not settled: their handler failed or has not finished yet."""
    await cur.execute(
        "SELECT telegram_payment_charge_id FROM payments WHERE status = 'received' "
        "AND paid_at < now() - make_interval(secs => %s) ORDER BY paid_at LIMIT %s",
        (older_than_s, limit),
    )
    return [r["telegram_payment_charge_id"] for r in await cur.fetchall()]


async def mark_payment(cur: Cursor, charge_id: str, status: str) -> None:
    assert status in ("credited", "refunded"), status
    await cur.execute(
        "UPDATE payments SET status = %s, settled_at = COALESCE(settled_at, now()), "
        "refunded_at = CASE WHEN %s = 'refunded' THEN now() ELSE refunded_at END "
        "WHERE telegram_payment_charge_id = %s",
        (status, status, charge_id),
    )
    if status == "refunded":  # nothing left to do with the payer's ids once an erased learner's payment is refunded
        await cur.execute(
            "UPDATE payments SET telegram_user_id = NULL, chat_id = NULL "
            "WHERE telegram_payment_charge_id = %s AND learner_id IS NULL",
            (charge_id,),
        )


async def reverse_payment_credits(cur: Cursor, learner_id: uuid.UUID, credits: int, charge_id: str) -> int:
    """Take back what a refunded payment bought, but never below zero: credits already spent stay spent."""
    await cur.execute("SELECT 1 FROM learners WHERE id = %s FOR NO KEY UPDATE", (learner_id,))
    take = min(credits, await balance(cur, learner_id))
    if take > 0:
        await add_credits(cur, learner_id, -take, "payment_refund", charge_id)
    return take


# --- questions -------------------------------------------------------------------------------------------


def _question(row: dict[str, Any]) -> Question:
    fields = {k: row[k] for k in Question.__dataclass_fields__}
    fields["track"], fields["task_type"] = Track(row["track"]), TaskType(row["task_type"])
    return Question(**fields)


async def seed_questions_if_empty(cur: Cursor) -> int:
    """Load the bundled question bank when Dagster has not loaded one yet, so a fresh bot can ask questions."""
    await cur.execute("SELECT count(*) AS n FROM questions")
    row = await cur.fetchone()
    if row and row["n"]:
        return 0
    bank = load_bank()
    await cur.executemany(
        "INSERT INTO questions (id, bank_version, track, task_type, title, prompt, reading, listening, sentence, "
        "tip, set_id, set_position, preparation_time_s, speaking_time_s, difficulty, tags) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        [
            (q.id, bank.version, q.track.value, q.task_type.value, q.title, q.prompt, q.reading, q.listening,
             q.sentence, q.tip, q.set_id, q.set_position, q.preparation_time_s, q.speaking_time_s,
             q.difficulty.value, list(q.tags))
            for q in bank.items if not q.retired
        ],
    )  # fmt: skip
    return len(bank.items)


async def question(cur: Cursor, question_id: str) -> Question | None:
    await cur.execute("SELECT * FROM questions WHERE id = %s", (question_id,))
    row = await cur.fetchone()
    return _question(row) if row else None


async def pick_question(cur: Cursor, learner: Learner, kind: str) -> Question | None:
    """The next question of a practice kind for this learner.

    Sets (Listen and Repeat, Take an Interview) continue where the learner is. Otherwise: never-sent questions
    first (in a per-learner shuffled order), then sent but unanswered ones (oldest first), then, only with
    repetition on, answered questions whose spaced-repetition time has come (most overdue first).
    """
    tasks = [t.value for t in PRACTICE_KINDS[kind]]
    # Inside a set, the item after the last one sent, unless the learner already answered it.
    await cur.execute(
        """
        SELECT nxt.* FROM question_history h
        JOIN questions cur ON cur.id = h.question_id
        JOIN questions nxt ON nxt.set_id = cur.set_id AND nxt.set_position = cur.set_position + 1
        LEFT JOIN question_history nh ON nh.question_id = nxt.id AND nh.learner_id = h.learner_id
        WHERE h.learner_id = %s AND cur.task_type = ANY(%s) AND nxt.retired_at IS NULL
          AND COALESCE(nh.times_answered, 0) = 0
        ORDER BY h.last_sent_at DESC LIMIT 1
        """,
        (learner.id, tasks),
    )
    row = await cur.fetchone()
    if row:
        return _question(row)
    # A set starts at its first item; its later items come through the branch above.
    await cur.execute(
        """
        SELECT q.*, h.last_sent_at, h.times_answered, h.due_at
        FROM questions q
        LEFT JOIN question_history h ON h.question_id = q.id AND h.learner_id = %(learner)s
        WHERE q.retired_at IS NULL AND q.task_type = ANY(%(tasks)s) AND COALESCE(q.set_position, 1) = 1
          AND (COALESCE(h.times_answered, 0) = 0 OR (%(repeat)s AND h.due_at <= now()))
        ORDER BY
          CASE WHEN h.question_id IS NULL THEN 0 WHEN h.times_answered = 0 THEN 1 ELSE 2 END,
          CASE WHEN h.question_id IS NULL THEN md5(%(learner_text)s || q.id) END,
          h.last_sent_at, h.due_at
        LIMIT 1
        """,
        {"learner": learner.id, "tasks": tasks, "repeat": learner.repetition, "learner_text": str(learner.id)},
    )
    row = await cur.fetchone()
    return _question(row) if row else None


async def mark_sent(cur: Cursor, learner_id: uuid.UUID, question_id: str) -> datetime:
    sent_at = now()
    await cur.execute(
        "INSERT INTO question_history (learner_id, question_id, first_sent_at, last_sent_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (learner_id, question_id) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at, "
        "times_sent = question_history.times_sent + 1",
        (learner_id, question_id, sent_at, sent_at),
    )
    await update_learner(cur, learner_id, current_question_id=question_id, current_question_sent_at=sent_at)
    return sent_at


async def mark_answered(cur: Cursor, learner_id: uuid.UUID, question_id: str, at: datetime) -> None:
    # Spaced repetition: the question may return after 1, 2, 4, 8... days.
    await cur.execute(
        "UPDATE question_history SET times_answered = times_answered + 1, last_answered_at = %s, "
        "due_at = %s + make_interval(days => interval_days), interval_days = LEAST(interval_days * 2, 120) "
        "WHERE learner_id = %s AND question_id = %s",
        (at, at, learner_id, question_id),
    )


# --- answers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAnswer:
    id: uuid.UUID
    learner_id: uuid.UUID
    question_id: str
    chat_id: int
    message_id: int
    update_id: int
    file_unique_id: str
    question_sent_at: datetime
    received_at: datetime
    duration_s: float
    mime_type: str
    size_bytes: int
    file_id: str = ""  # Telegram's, to download the recording again when another process takes the answer over


def answer_id_for(chat_id: int, message_id: int) -> uuid.UUID:
    """Stable per Telegram message: a redelivered update maps to the same answer."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"telegram:{chat_id}:{message_id}")


async def reserve_answer(cur: Cursor, answer: NewAnswer, lease_s: float) -> bool:
    """Record the answer and take its credit, together. False if this message was already taken;
    InsufficientCredits if the learner has none (then nothing is written). Publishing it belongs to this process
    for `lease_s` seconds; after that, another process may take it over (`claim_stranded`)."""
    await cur.execute(
        "INSERT INTO answers (id, learner_id, question_id, chat_id, message_id, update_id, file_unique_id, "
        "question_sent_at, received_at, duration_s, mime_type, size_bytes, file_id, publish_lease_until) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT DO NOTHING RETURNING id",
        (answer.id, answer.learner_id, answer.question_id, answer.chat_id, answer.message_id, answer.update_id,
         answer.file_unique_id, answer.question_sent_at, answer.received_at, answer.duration_s, answer.mime_type,
         answer.size_bytes, answer.file_id or None, lease_s),
    )  # fmt: skip
    if await cur.fetchone() is None:
        return False
    await add_credits(cur, answer.learner_id, -1, "answer", str(answer.id))
    return True


async def book_object(cur: Cursor, answer_id: uuid.UUID, bucket: str, key: str) -> None:
    await cur.execute("UPDATE answers SET bucket = %s, object_key = %s WHERE id = %s", (bucket, key, answer_id))


async def answer_published(cur: Cursor, answer_id: uuid.UUID, bucket: str, key: str, learner: Learner) -> None:
    """Book the publication once. Its feedback may already have been delivered (the job is fast), and a process
    that took a stranded answer over may publish it a second time: neither changes a later status or counts the
    answer twice."""
    await cur.execute(
        "UPDATE answers SET status = CASE WHEN status = 'accepted' THEN 'published' ELSE status END, "
        "published_at = now(), bucket = %s, object_key = %s WHERE id = %s AND published_at IS NULL "
        "RETURNING question_id, received_at",
        (bucket, key, answer_id),
    )
    row = await cur.fetchone()
    if row is None:
        return
    await mark_answered(cur, learner.id, row["question_id"], row["received_at"])
    # The question is done; Retry or Next sends the next one (unless the learner already moved on to another).
    await cur.execute(
        "UPDATE learners SET current_question_id = NULL, current_question_sent_at = NULL "
        "WHERE id = %s AND current_question_id = %s",
        (learner.id, row["question_id"]),
    )


async def answer_failed(cur: Cursor, answer_id: uuid.UUID, learner_id: uuid.UUID) -> bool:
    """Give up on an accepted answer and refund it; False (nothing changed) when it was published meanwhile."""
    await cur.execute(
        "UPDATE answers SET status = 'failed' WHERE id = %s AND status = 'accepted' RETURNING id", (answer_id,)
    )
    if await cur.fetchone() is None:
        return False
    await add_credits(cur, learner_id, 1, "refund", str(answer_id))
    return True


async def claim_stranded(cur: Cursor, lease_s: float, skip: list[uuid.UUID], limit: int = 20) -> list[dict[str, Any]]:
    """Accepted answers whose publishing process died (lease run out): renew the lease for this process and
    return them. SKIP LOCKED: two bot processes scanning at once never take the same answer."""
    await cur.execute(
        "UPDATE answers SET publish_lease_until = now() + make_interval(secs => %s) WHERE id IN ("
        "  SELECT id FROM answers WHERE status = 'accepted' AND publish_lease_until < now() AND NOT (id = ANY(%s))"
        "  ORDER BY publish_lease_until LIMIT %s FOR UPDATE SKIP LOCKED"
        ") RETURNING *",
        (lease_s, skip, limit),
    )
    return await cur.fetchall()


async def answer_row(cur: Cursor, answer_id: uuid.UUID) -> dict[str, Any] | None:
    await cur.execute("SELECT * FROM answers WHERE id = %s", (answer_id,))
    return await cur.fetchone()


async def object_still_used(cur: Cursor, key: str, except_learner: uuid.UUID | None = None) -> bool:
    """Keys are content-addressed: two answers with identical bytes share one object."""
    await cur.execute(
        "SELECT 1 FROM answers WHERE object_key = %s AND learner_id IS DISTINCT FROM %s AND status <> 'failed' LIMIT 1",
        (key, except_learner),
    )
    return await cur.fetchone() is not None


# --- progress --------------------------------------------------------------------------------------------


async def delivered_answers(cur: Cursor, learner_id: uuid.UUID, limit: int = 500) -> list[dict[str, Any]]:
    await cur.execute(
        "SELECT received_at, overall_score, words_per_minute, lexical_diversity, word_count, word_counts "
        "FROM answers WHERE learner_id = %s AND status = 'delivered' ORDER BY received_at DESC LIMIT %s",
        (learner_id, limit),
    )
    return list(reversed(await cur.fetchall()))


# --- erasure ---------------------------------------------------------------------------------------------


async def learner_objects(cur: Cursor, learner_id: uuid.UUID, lock: bool = False) -> list[tuple[str, str]]:
    """The learner's stored audio. `lock`: the answers are locked first, so a publication in flight commits before
    and its object is listed (an erasure must not miss it)."""
    if lock:
        await cur.execute("SELECT bucket, object_key FROM answers WHERE learner_id = %s FOR UPDATE", (learner_id,))
    else:
        await cur.execute("SELECT bucket, object_key FROM answers WHERE learner_id = %s", (learner_id,))
    found = {(r["bucket"], r["object_key"]) for r in await cur.fetchall() if r["object_key"] is not None}
    return sorted(found)


async def erase_learner(cur: Cursor, learner_id: uuid.UUID, account_hash: str) -> None:
    """Delete every row about the learner; the ledger allows it only inside this erasure. Payments stay for
    accounting without the link to the learner (a payment still to settle keeps the payer's ids until it is
    refunded), and the account's keyed hash withholds a second starter grant."""
    await cur.execute(
        "UPDATE payments SET telegram_user_id = NULL, chat_id = NULL WHERE learner_id = %s AND status <> 'received'",
        (learner_id,),
    )
    await cur.execute("INSERT INTO erased_accounts (account_hash) VALUES (%s) ON CONFLICT DO NOTHING", (account_hash,))
    await cur.execute(
        "DELETE FROM fsm_states WHERE chat_id IN (SELECT chat_id FROM learners WHERE id = %s)", (learner_id,)
    )
    await cur.execute("SET LOCAL speech_coach.erasing = 'on'")
    await cur.execute("DELETE FROM learners WHERE id = %s", (learner_id,))
