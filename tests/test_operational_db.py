"""The operational PostgreSQL schema (Alembic) and the question bank loaded into it by Dagster."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from speech_coach.db import current_revision, upgrade
from speech_coach.questions import DEFAULT_BANK_DIR, load_bank
from speech_coach.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture
def pg_settings(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_migrations_apply_idempotently(pg_settings: Settings) -> None:
    assert current_revision(pg_settings) is None
    upgrade(pg_settings)
    upgrade(pg_settings)
    assert current_revision(pg_settings) == "0011_ledger_order_after_lock"
    with psycopg.connect(pg_settings.postgres_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO questions (id, bank_version, track, task_type, title, prompt, preparation_time_s, "
            "speaking_time_s, difficulty) VALUES ('x', 'v', 'toefl', 'toefl_independent', 't', 'p', 0, 0, 'easy')"
        )


def test_bank_is_upserted_and_removed_questions_are_retired(pg_settings: Settings, tmp_path: Path) -> None:
    from orchestration.domains.question_bank import question_bank_postgres
    from orchestration.resources import SettingsResource

    bank = load_bank()
    resources = {"settings": SettingsResource()}

    def run(directory: str = "") -> dg.ExecuteInProcessResult:
        config = {"ops": {"operational__questions": {"config": {"directory": directory}}}}
        result = dg.materialize([question_bank_postgres], resources=resources, run_config=config)
        assert result.success
        return result

    run()
    run()  # idempotent
    with psycopg.connect(pg_settings.postgres_url) as conn:
        total, active = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE retired_at IS NULL) FROM questions"
        ).fetchone()
        assert total == len(bank.items) and active == len([q for q in bank.items if not q.retired])
        row = conn.execute(
            "SELECT track, speaking_time_s, bank_version FROM questions WHERE id = %s", (bank.items[0].id,)
        ).fetchone()
        assert row == (bank.items[0].track.value, bank.items[0].speaking_time_s, bank.version)

    # A release without the workplace file: those questions are retired, not deleted.
    smaller = tmp_path / "bank"
    shutil.copytree(DEFAULT_BANK_DIR, smaller)
    (smaller / "workplace.yaml").unlink()
    result = run(str(smaller))
    retired = result.asset_materializations_for_node("operational__questions")[0].metadata["retired_now"].value
    workplace = {q.id for q in bank.items if q.task_type.value == "workplace"}
    assert set(retired) == workplace and len(workplace) >= 40
    with psycopg.connect(pg_settings.postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM questions").fetchone()[0] == len(bank.items)
        still = conn.execute(
            "SELECT count(*) FROM questions WHERE task_type = 'workplace' AND retired_at IS NULL"
        ).fetchone()[0]
        assert still == 0


def test_two_charges_for_one_learner_at_once_do_not_deadlock(pg_settings: Settings) -> None:
    """Each transaction first inserts a child row of the learner (the foreign key takes FOR KEY SHARE on the
    learner), then books a ledger entry (the balance trigger locks the learner): the bot's answer and payment
    paths. Interleaved for one learner, the second waits for the first instead of deadlocking."""
    import threading
    import uuid

    upgrade(pg_settings)
    url = pg_settings.postgres_url
    learner = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(
            "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym) VALUES (%s, 1, 1, 'Lx')", (learner,)
        )
        setup.execute(
            "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) VALUES (%s, 5, 0, 'grant', 'g')",
            (learner,),
        )
    first, second = psycopg.connect(url), psycopg.connect(url)
    for conn in (first, second):
        conn.execute("SET lock_timeout = '20s'")
    errors: list[BaseException] = []

    def pay(conn: psycopg.Connection, charge: str) -> None:
        conn.execute(
            "INSERT INTO payments (telegram_payment_charge_id, learner_id, payload, currency, total_amount, credits) "
            "VALUES (%s, %s, 'pack', 'XTR', 50, 10)",
            (charge, learner),
        )

    def book(conn: psycopg.Connection, ref: str) -> None:
        try:
            conn.execute(
                "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
                "VALUES (%s, 10, 0, 'purchase', %s)",
                (learner, ref),
            )
            conn.commit()
        except BaseException as exc:
            errors.append(exc)
            conn.rollback()

    try:
        pay(first, "c1")
        pay(second, "c2")  # both now hold FOR KEY SHARE on the learner row
        waiting = threading.Thread(target=book, args=(first, "c1"))
        waiting.start()  # blocks on the second's key-share lock under FOR UPDATE; not under FOR NO KEY UPDATE
        waiting.join(1.0)
        book(second, "c2")
        waiting.join(30)
    finally:
        first.close()
        second.close()
    assert not errors, f"concurrent ledger entries failed: {errors!r}"
    with psycopg.connect(url) as conn:
        balances = conn.execute(
            "SELECT delta, balance_after FROM credit_ledger WHERE learner_id = %s ORDER BY id", (learner,)
        ).fetchall()
    assert balances == [(5, 5), (10, 15), (10, 25)], balances


def test_entries_booked_at_once_commit_in_id_order_so_the_newest_is_the_balance(pg_settings: Settings) -> None:
    """An entry whose id was drawn first but whose lock came second (two payments handled at once) must not end
    up below the other: the newest entry by id is what every reader takes as the balance."""
    import threading
    import uuid

    upgrade(pg_settings)
    url = pg_settings.postgres_url
    learner = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(
            "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym) VALUES (%s, 2, 2, 'Ly')", (learner,)
        )
        setup.execute(
            "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
            "VALUES (%s, 3, 0, 'grant', 'g2')",
            (learner,),
        )
    holder, late = psycopg.connect(url), psycopg.connect(url)
    errors: list[BaseException] = []

    def book_late() -> None:  # draws its id now, then waits for the holder's lock
        try:
            late.execute(
                "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
                "VALUES (%s, 10, 0, 'purchase', 'late')",
                (learner,),
            )
            late.commit()
        except BaseException as exc:
            errors.append(exc)

    try:
        holder.execute("SELECT 1 FROM learners WHERE id = %s FOR NO KEY UPDATE", (learner,))
        waiting = threading.Thread(target=book_late)
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "the late entry did not wait for the lock"
        holder.execute(
            "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
            "VALUES (%s, 10, 0, 'purchase', 'first')",
            (learner,),
        )
        holder.commit()
        waiting.join(30)
    finally:
        holder.close()
        late.close()
    assert not errors, errors
    with psycopg.connect(url) as conn:
        entries = conn.execute(
            "SELECT ref, balance_after FROM credit_ledger WHERE learner_id = %s ORDER BY id", (learner,)
        ).fetchall()
    assert entries == [("g2", 3), ("first", 13), ("late", 23)], entries


def test_rekeying_rewrites_every_stored_pseudonym_with_the_new_key(pg_settings: Settings) -> None:
    from pydantic import SecretStr

    from speech_coach.db.pseudonyms import rekey_pseudonyms
    from speech_coach.privacy import pseudonym
    from speech_coach.settings import PrivacySettings

    upgrade(pg_settings)
    old = pg_settings.model_copy(update={"environment": "test"})
    with psycopg.connect(pg_settings.postgres_url, autocommit=True) as conn:
        for uid in (11, 12):
            conn.execute(
                "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym) "
                "VALUES (gen_random_uuid(), %s, %s, %s)",
                (uid, uid, pseudonym(old, uid)),
            )
    new = old.model_copy(update={"privacy": PrivacySettings(pseudonym_key=SecretStr("n" * 40))})
    assert rekey_pseudonyms(new) == 2
    assert rekey_pseudonyms(new) == 0  # idempotent
    with psycopg.connect(pg_settings.postgres_url) as conn:
        stored = dict(conn.execute("SELECT telegram_user_id, pseudonym FROM learners").fetchall())
    assert stored == {11: pseudonym(new, 11), 12: pseudonym(new, 12)}
    assert stored[11] != pseudonym(old, 11)
