"""The bot as operators run it: `make run` with and without a token, webhooks with a secret, a Kafka outage
at publish time; and the guarantees the database itself gives (ledger, question choice)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from bot import repo
from bot.db import Database
from control.harness.telegram import TelegramStandIn, User
from control.stack import Stack
from control.stack.isolated import free_port_block
from control.stack.isolated import settings_env as full_settings_env
from speech_coach.audio.tts import to_ogg_opus, tone
from speech_coach.contracts.topics import Topic
from speech_coach.db import upgrade
from speech_coach.s3 import s3_client
from speech_coach.settings import DagsterSettings, Settings
from speech_coach.tools import find_ffmpeg
from tests.bot_harness import ADMIN_ID, TOKEN, RunningBot, bot_settings, onboard, read_topic, rows
from tests.conftest import using_servers_of

pytestmark = pytest.mark.stack


def cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | full_settings_env(settings)
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args], env=env | {"COLUMNS": "200"}, capture_output=True,
        text=True, timeout=timeout, check=False, cwd=settings.state_dir.parent,
    )  # fmt: skip


def test_make_run_starts_the_bot_only_with_a_token(
    stack: Stack, tmp_path: Path, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    base = using_servers_of(stack, tmp_path / "state", dagster=DagsterSettings(enabled=False))
    without = bot_settings(base, pg_database, s3_bucket, tg, token="")
    out = cli(without, "run")
    assert out.returncode == 0, out.stderr
    assert "Telegram bot: not started" in out.stdout and "SC_BOT__TOKEN" in out.stdout
    assert " bot " not in out.stdout.split("Where things are")[0]

    with_token = bot_settings(base, pg_database, s3_bucket, tg)
    try:
        out = cli(with_token, "run")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Telegram bot (health)" in out.stdout and "not started" not in out.stdout
        status = cli(with_token, "stack", "status")
        assert next(ln for ln in status.stdout.splitlines() if " bot " in ln).count("healthy") == 1
        user = User(tg)
        user.text("/start")
        assert "Choose your interface language" in user.wait_sent(1, timeout=30)[0].params["text"]
    finally:
        down = cli(with_token, "stack", "down")
    assert down.returncode == 0 and "bot" in down.stdout
    log = (tmp_path / "state" / "logs" / "bot.log").read_text()
    assert TOKEN not in log and str(user.id) not in log  # pseudonyms only, and no secrets


def test_failed_publish_tells_the_learner_and_costs_nothing(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, publish_attempts=2)
    bot = RunningBot(settings).start()
    try:
        user = onboard(tg, "Job interview")
        # Kafka becomes unreachable: the producer now points at a port nobody listens on.
        assert bot.app is not None and bot.app.services is not None
        dead = free_port_block(1)
        bot.app.services.publisher.producer = Producer(
            {"bootstrap.servers": f"127.0.0.1:{dead}", "message.timeout.ms": 1500, "enable.idempotence": True}
        )
        user.voice(to_ogg_opus(tone(3.0), find_ffmpeg(settings).executable), 3)
        reply = user.wait_sent(6, timeout=30)[-1].params["text"]
        assert "could not be sent for analysis" in reply and "credit was not spent" in reply
        assert rows(settings, "SELECT status FROM answers") == [("failed",)]
        assert rows(settings, "SELECT sum(delta) FROM credit_ledger") == [(3,)]
        assert s3_client(settings).list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
        assert read_topic(settings, Topic.RAW_ANSWERS, 1, timeout=3) == []
        metrics = bot.app.metrics.publish_attempts.labels("failed")._value.get()
        assert metrics == 2  # retried once, then gave up
    finally:
        bot.stop()


def strand(
    settings: Settings, user: User, messages: list[tuple[int, str]], file_unique_id: str, *, lease_s: float
) -> list[uuid.UUID]:
    """Answers another bot process accepted (credit taken) and died before publishing: reserved under a lease
    that runs out, for the learner's open question, one per (message id, Telegram file id)."""
    ((learner_id, question_id, sent_at),) = rows(
        settings, "SELECT id, current_question_id, current_question_sent_at FROM learners"
    )

    async def reserve() -> list[uuid.UUID]:
        ids = []
        async with Database(settings).tx() as cur:
            for message_id, file_id in messages:
                answer = repo.NewAnswer(
                    id=repo.answer_id_for(user.id, message_id), learner_id=learner_id, question_id=question_id,
                    chat_id=user.id, message_id=message_id, update_id=message_id, file_unique_id=file_unique_id,
                    question_sent_at=sent_at, received_at=repo.now(), duration_s=3.0, mime_type="audio/ogg",
                    size_bytes=100, file_id=file_id,
                )  # fmt: skip
                assert await repo.reserve_answer(cur, answer, lease_s=lease_s)
                ids.append(answer.id)
        return ids

    return asyncio.run(reserve())


def test_answers_whose_publisher_died_are_taken_over_or_refunded(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    # Another bot process accepted two answers (credit taken) and died before publishing them; Telegram will not
    # send those updates again. Once their lease runs out, this bot publishes the one whose file Telegram still
    # has, and refunds the other and tells the learner. (tests/test_faults.py kills a real bot process.)
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, publish_lease_s=6, recovery_interval_s=0.5)
    bot = RunningBot(settings).start()
    try:
        user = onboard(tg, "Job interview")
        file_id, unique = tg.add_file(to_ogg_opus(tone(3.0), find_ffmpeg(settings).executable))
        published, lost = strand(settings, user, [(901, file_id), (902, "a-file-telegram-no-longer-has")], unique,
                                 lease_s=1)  # fmt: skip
        reply = user.wait_sent(5, timeout=30)[-1].params
        assert "could not be sent for analysis" in reply["text"] and reply["reply_parameters"]["message_id"] == 902
        (raw,) = read_topic(settings, Topic.RAW_ANSWERS, 1, settle=2)
        assert str(published) in raw.decode()
        statuses = dict(rows(settings, "SELECT id, status FROM answers"))
        assert statuses == {published: "published", lost: "failed"}
        ledger = rows(settings, "SELECT reason, ref FROM credit_ledger WHERE reason <> 'starter' ORDER BY id")
        assert ledger == [("answer", str(published)), ("answer", str(lost)), ("refund", str(lost))]
        # The question is answered: the learner's next press gets a new one.
        assert rows(settings, "SELECT current_question_id FROM learners") == [(None,)]
        assert bot.app is not None and bot.app.metrics.answers.labels("taken_over")._value.get() == 2
    finally:
        bot.stop()


def test_a_takeover_ends_within_its_lease(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> None:
    # A stranded answer whose download hangs when it is taken over: the takeover gives up (refund, the learner
    # told) before its lease runs out, so no second takeover can start on it while the first still runs.
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, publish_lease_s=4, recovery_interval_s=0.5)
    bot = RunningBot(settings).start()
    try:
        user = onboard(tg, "Job interview")
        file_id, unique = tg.add_file(to_ogg_opus(tone(3.0), find_ffmpeg(settings).executable))
        tg.file_delay_s = 15
        (answer_id,) = strand(settings, user, [(903, file_id)], unique, lease_s=0.1)
        taken = time.monotonic()
        tg.wait_for(lambda calls: any(c.method == "getFile" for c in calls), 10)
        reply = user.wait_sent(5, timeout=30)[-1].params
        assert "could not be sent for analysis" in reply["text"]
        assert time.monotonic() - taken < 4 + 1, "the takeover outlived its lease"
        assert rows(settings, "SELECT status FROM answers WHERE id = %s", answer_id) == [("failed",)]
        time.sleep(12)  # the download would have come back by now: still nothing published, nothing taken twice
        assert read_topic(settings, Topic.RAW_ANSWERS, 1, timeout=2) == []
        assert bot.app is not None and bot.app.metrics.answers.labels("taken_over")._value.get() == 1
    finally:
        tg.file_delay_s = 0
        bot.stop()


def post(url: str, body: dict[str, object], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"} | ({"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_webhook_checks_the_secret_token(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> None:
    secret = "s3cret-webhook-token_1"
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, webhook_url="https://coach.example/tg",
                            webhook_secret=secret)  # fmt: skip
    bot = RunningBot(settings).start()
    try:
        (hook,) = tg.wait_for(lambda calls: [c for c in calls if c.method == "setWebhook"])
        assert hook.params["url"] == "https://coach.example/tg" and hook.params["secret_token"] == secret
        # The path of the configured URL (an ingress forwards it as is), not a fixed one.
        url = f"http://127.0.0.1:{settings.bot.webhook_port}/tg"
        user = User(tg)
        update = {"update_id": 9001, "message": {"message_id": 1, "date": 1700000000, "text": "/start",
                  "entities": [{"type": "bot_command", "offset": 0, "length": 6}], "from": user.user,
                  "chat": {"id": user.id, "type": "private"}}}  # fmt: skip
        assert post(url.replace("/tg", "/telegram/webhook"), update, secret) == 404
        assert post(url, update, None) == 401
        assert post(url, update, "forged") == 401
        assert bot.app is not None and bot.app.metrics.forged_webhooks._value.get() == 2
        assert rows(settings, "SELECT count(*) FROM learners") == [(0,)]
        assert post(url, update, secret) == 200
        assert "Choose your interface language" in user.wait_sent(1)[0].params["text"]
        assert post(url, update, secret) == 200  # Telegram retries: handled once
        # The id is recorded once its handler returned, which can be just after the reply went out.
        tg.wait_for(lambda _c: rows(settings, "SELECT count(*) FROM processed_updates") == [(1,)])
        time.sleep(1)
        assert len(user.sent()) == 1
        # Telegram posts only when there is something to post: the bot asks its own listener, and is ready.
        health = f"http://127.0.0.1:{settings.bot.health_port}/readyz"
        with urllib.request.urlopen(health, timeout=10) as response:
            assert json.loads(response.read())["checks"]["telegram_updates"] == "ok"
    finally:
        bot.stop()


# --- the database's own guarantees ---------------------------------------------------------------------------


@pytest.fixture
def db_settings(stack: Stack, pg_database: str) -> Settings:
    settings = stack.settings.model_copy(
        update={"postgres": stack.settings.postgres.model_copy(update={"url": pg_database})}
    )
    upgrade(settings)
    return settings


def test_ledger_is_append_only_and_never_negative(db_settings: Settings) -> None:
    async def scenario() -> uuid.UUID:
        async with Database(db_settings).tx() as cur:
            learner = await repo.create_learner(cur, 1, 1, "Lx", "en", starter_credits=1, account_hash="h1")
            await repo.add_credits(cur, learner.id, -1, "answer", "a1")
            with pytest.raises(repo.InsufficientCredits):
                await repo.add_credits(cur, learner.id, -1, "answer", "a2")
            assert await repo.add_credits(cur, learner.id, 1, "refund", "a1") is True
            assert await repo.add_credits(cur, learner.id, 1, "refund", "a1") is False  # once per cause
            assert await repo.balance(cur, learner.id) == 1
            return learner.id

    learner_id = asyncio.run(scenario())
    with psycopg.connect(db_settings.postgres_url) as conn:
        # Even SQL written by hand cannot overdraw or rewrite history.
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
                         "VALUES (%s, -5, 100, 'grant', 'manual')", (learner_id,))  # fmt: skip
        conn.rollback()
        for statement in ("UPDATE credit_ledger SET delta = 100", "DELETE FROM credit_ledger"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        assert conn.execute("SELECT sum(delta), min(balance_after) FROM credit_ledger").fetchone() == (1, 0)


def test_question_choice_unanswered_first_and_spaced_repetition(db_settings: Settings) -> None:
    with psycopg.connect(db_settings.postgres_url) as conn:
        for qid in ("q-a", "q-b"):
            conn.execute(
                "INSERT INTO questions (id, bank_version, track, task_type, title, prompt, preparation_time_s, "
                "speaking_time_s, difficulty) VALUES (%s, 'v', 'job_interview', 'job_interview', 't', 'p', 30, 90, "
                "'easy')", (qid,),
            )  # fmt: skip

    async def scenario() -> None:
        db = Database(db_settings)
        async with db.tx() as cur:
            learner = await repo.create_learner(cur, 2, 2, "Ly", "en", starter_credits=0, account_hash="h2")

            async def pick() -> str | None:
                fresh = await repo.learner_by_id(cur, learner.id)
                assert fresh is not None
                q = await repo.pick_question(cur, fresh, "job")
                return q.id if q else None

            first = await pick()
            await repo.mark_sent(cur, learner.id, first)  # type: ignore[arg-type]
            second = await pick()
            assert second not in (None, first)  # never-sent before sent-but-unanswered
            await repo.mark_sent(cur, learner.id, second)  # type: ignore[arg-type]
            assert await pick() == first  # then the oldest unanswered
            for qid in (first, second):
                await repo.mark_answered(cur, learner.id, qid, repo.now())  # type: ignore[arg-type]
            assert await pick() is None  # answered questions never return without repetition
            await repo.update_learner(cur, learner.id, repetition=True)
            assert await pick() is None  # not due yet (1 day)
            await cur.execute("UPDATE question_history SET due_at = now() - interval '1 hour' WHERE question_id = %s",
                              (second,))  # fmt: skip
            assert await pick() == second
            await cur.execute("SELECT interval_days FROM question_history WHERE question_id = %s", (second,))
            assert (await cur.fetchone())["interval_days"] == 2  # type: ignore[index]

    asyncio.run(scenario())


def test_daily_reminder_once_a_day_for_those_who_asked(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    from datetime import UTC, datetime

    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, reminder_hour_utc=17)
    bot = RunningBot(settings).start()
    try:
        keen, quiet = User(tg, language_code="ru"), User(tg)
        for user, agree in ((keen, "Я согласен(на)"), (quiet, "I agree")):
            user.text("/start")
            user.wait_sent(1)
            user.press("Русский" if user is keen else "English")
            user.wait_sent(2)
            user.press(agree)
            user.wait_sent(3)
        keen.text("/settings")
        keen.wait_sent(4)
        keen.press("Ежедневное напоминание: выкл.")
        tg.wait_for(lambda _c: rows(settings, "SELECT count(*) FROM learners WHERE reminders") == [(1,)])
        assert bot.app is not None
        assert bot.call(bot.app.send_reminders(datetime(2030, 1, 1, 9, tzinfo=UTC))) == 0  # before the hour
        assert bot.call(bot.app.send_reminders(datetime(2030, 1, 1, 18, tzinfo=UTC))) == 1
        assert bot.call(bot.app.send_reminders(datetime(2030, 1, 1, 19, tzinfo=UTC))) == 0  # once a day
        assert keen.sent()[-1].params["text"] == "Время для сегодняшней разговорной практики!"
        assert len(quiet.sent()) == 3
        # Two replicas (here two rounds at once) find the learner due the next day: one reminder, not two.
        before = len(keen.sent())
        day = datetime(2030, 1, 2, 18, tzinfo=UTC)

        async def both() -> list[int]:
            return list(await asyncio.gather(bot.app.send_reminders(day), bot.app.send_reminders(day)))

        assert sorted(bot.call(both())) == [0, 1]
        time.sleep(1)
        assert len(keen.sent()) == before + 1
    finally:
        bot.stop()


def test_a_conversation_state_survives_a_restart_and_is_shared_by_replicas(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    """An admin starts a broadcast on one bot process and sends its text to another (a second replica, or the same
    bot after a rolling update): the second knows the conversation is waiting for that text."""
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg)
    admin = User(tg, user_id=ADMIN_ID)
    first = RunningBot(settings).start()
    try:
        admin.text("/broadcast")
        assert "Send the text to broadcast" in admin.wait_sent(1)[-1].params["text"]
    finally:
        first.stop()
    assert rows(settings, "SELECT state FROM fsm_states") == [("Broadcast:text",)]
    second = RunningBot(settings).start()
    try:
        admin.text("Practice week starts Monday")
        assert admin.wait_sent(2)[-1].params["text"] == "Preview:\n\nPractice week starts Monday"
        admin.press("Cancel")
        assert admin.wait_sent(3)[-1].params["text"] == "Broadcast cancelled."
    finally:
        second.stop()
    assert rows(settings, "SELECT count(*) FROM fsm_states") == [(0,)]  # a finished conversation leaves nothing


def test_learner_settings_are_checked_by_name_and_old_update_ids_are_pruned(
    stack: Stack, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column names become SQL: a name outside the allow-list is refused even under `python -O`; handled update ids
    older than Telegram's redelivery window are pruned."""
    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings)
    db = Database(settings)

    async def scenario() -> int:
        async with db.tx() as cur:
            with pytest.raises(ValueError, match="not learner settings"):
                await repo.update_learner(cur, uuid.uuid4(), **{"reminders = true, chat_id": 1})
            with pytest.raises(ValueError):
                await repo.update_learner(cur, uuid.uuid4())
            await cur.execute("INSERT INTO processed_updates (update_id, processed_at) VALUES "
                              "(1, now() - interval '4 days'), (2, now())")  # fmt: skip
            return await repo.prune_processed_updates(cur)

    assert asyncio.run(scenario()) == 1
    assert rows(settings, "SELECT update_id FROM processed_updates") == [(2,)]
