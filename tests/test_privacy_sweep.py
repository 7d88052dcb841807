"""Issue #17's privacy sweep: a scripted life cycle through the real pipeline, then every store searched.

Four learners with distinctive Telegram ids, names and usernames come in through the Telegram stand-in and the
real bot (`python -m bot`); the answer job (PyFlink, offline engines), the metrics job and the ingestion service
run as their own processes (control/harness/pipeline.py), every one exporting spans to a local OTLP collector.

- stays:     shares with researchers, answers by voice, buys credits with Stars;
- rejected:  shares, answers by voice, then sends a tone that the job rejects (no speech);
- withdraws: shares, answers, and turns sharing off after the marts were built;
- erased:    shares, answers, sends a rejected tone, buys credits, then /delete_my_data and confirms.

Then the warehouse side as Dagster runs it (question bank, learners copy, ledger snapshots, every dbt model, once
before the withdrawal and the deletion and once after, and the month's research export with its check). The
sweep then reads every PostgreSQL table, every S3 object (keys and bodies), every ClickHouse table (payloads
decoded), every message on every topic (keys, headers, values), the released files (through duckdb), every
process's log, Dagster's storage and every exported span, and checks what docs/reliability.md promises
("Where personal data may live"): Telegram ids only in the operational tables and the raw answers' `telegram`
block, names and the bot token nowhere, nothing of the erased learner outside the documented exceptions, and
neither the erased nor the withdrawn learner in the release.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from control.harness.answer_job import ANSWERS_45S, plain_text
from control.harness.pipeline import Pipeline, ask_and_answer, running_pipeline, wait_feedback_count
from control.harness.telegram import TOKEN, TelegramStandIn, User
from control.stack import Stack
from speech_coach.settings import MetricsSettings, Settings
from tests.otlp_collector import OtlpCollector

pytestmark = pytest.mark.stack

ROLES = ("stays", "rejected", "withdraws", "erased")
SHARE_OFF, SHARE_ON = "Share with researchers: off", "Share with researchers: on"
PACK = "10 credits for 50 ⭐"
# Where the docs allow a learner's Telegram id (in a private chat the chat id is the user id) in PostgreSQL: the
# operational tables that address and recognise them. fsm_states' key is aiogram's storage key (bot:chat:user:...).
TELEGRAM_ID_COLUMNS = {
    ("learners", "telegram_user_id"), ("learners", "chat_id"), ("answers", "chat_id"),
    ("payments", "telegram_user_id"), ("payments", "chat_id"), ("fsm_states", "chat_id"), ("fsm_states", "key"),
}  # fmt: skip
# The metrics job with short waits, so windows come out while the test runs. The watermark follows the records'
# Kafka timestamps (the bot's publish time) and the windows the answer time (received_at): the lateness must
# exceed the bot's time between the two, or the part of an answer read second (feedback and answer metrics are
# two topics) is late. At 1 s, a loaded CI machine made every answer late and no window came out.
WINDOWS = MetricsSettings(enabled=True, allowed_lateness_s=30, idle_timeout_s=2)
# ClickHouse's list of deletion requests is how erasure reaches late rows: it names the erased learner by design.
ERASURE_LIST = {("raw_deletion_requests", "learner_id")}


@dataclass
class Learner:
    role: str
    user: User
    learner_id: str = ""  # internal UUID, as PostgreSQL prints it
    pseudonym: str = ""
    answer_ids: list[str] = field(default_factory=list)
    audio_keys: list[str] = field(default_factory=list)
    charge: str = ""

    @property
    def telegram(self) -> str:
        return str(self.user.id)

    def personal(self) -> dict[str, str]:
        """What identifies the Telegram account: the id (= chat id) and the names Telegram sends with updates."""
        return {f"{self.role}: telegram id": self.telegram, f"{self.role}: username": self.user.username,
                f"{self.role}: first name": self.user.first_name}  # fmt: skip

    def data(self) -> dict[str, str]:
        """What names the learner or their answers inside the platform."""
        found = {f"{self.role}: learner id": self.learner_id, f"{self.role}: pseudonym": self.pseudonym,
                 f"{self.role}: learner id (hex)": self.learner_id.replace("-", "")}  # fmt: skip
        for n, answer in enumerate(self.answer_ids):
            found[f"{self.role}: answer {n}"] = answer
            found[f"{self.role}: answer {n} (hex)"] = answer.replace("-", "")
        for n, key in enumerate(self.audio_keys):
            found[f"{self.role}: audio {n}"] = key.rsplit("/", 1)[-1].split(".")[0]  # the sha256
        return found


@dataclass
class Swept:
    p: Pipeline
    learners: dict[str, Learner]
    month: str
    deleted_at: float  # when the erased learner confirmed (epoch s)
    spans: list[Any]
    span_bodies: str
    logs: dict[str, str]  # where -> text
    dagster_storage: dict[str, bytes]  # file under the Dagster instance's directory -> bytes
    exports: dict[str, bytes]  # key in the exports bucket -> bytes

    def rows(self, query: str | sql.Composed, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.p.settings.postgres_url) as conn:
            return conn.execute(query, params).fetchall()

    @property
    def settings(self) -> Settings:
        return self.p.settings

    def everyones_personal(self) -> dict[str, str]:
        return {k: v for learner in self.learners.values() for k, v in learner.personal().items()}


SECRETS = {"bot token": TOKEN, "bot token's secret part": TOKEN.split(":", 1)[1]}


def found_in(text: str, needles: dict[str, str]) -> list[str]:
    return [label for label, needle in needles.items() if needle and needle in text]


# --- the life cycle --------------------------------------------------------------------------------------------


def distinct_ids(count: int) -> list[int]:
    """10-digit ids from 6e9 up: no substring of a 10-digit epoch second (17..., 18...) or a port, so a match is
    the id."""
    ids: set[int] = set()
    while len(ids) < count:
        ids.add(random.randint(6_000_000_000, 9_999_999_999))
    return sorted(ids)


def onboard_as(tg: TelegramStandIn, role: str, user_id: int) -> User:
    """/start, English, consent (as control.harness.telegram.onboard), as a user with a distinctive id and names."""
    tag = uuid.uuid4().hex[:6]
    user = User(tg, user_id=user_id, first_name=f"Zorvath{role.title()}{tag}", username=f"sweep_{role}_{tag}")
    user.text("/start")
    user.wait_sent(1, timeout=60)
    user.press("English")
    user.wait_sent(2)
    user.press("I agree")
    user.wait_sent(3)
    return user


def share_with_researchers(user: User, on: bool) -> None:
    n, edits = len(user.sent()), len(user.sent("editMessageReplyMarkup"))
    user.text("/settings")
    user.wait_sent(n + 1)
    user.press(SHARE_OFF if on else SHARE_ON)
    user.wait_sent(edits + 1, method="editMessageReplyMarkup")


def buy_credits(user: User, charge: str) -> None:
    """/buy, the pack, Telegram's pre-checkout query, the successful payment: as Stars payments happen."""
    tg = user.tg
    n, invoices = len(user.sent()), len(user.sent("sendInvoice"))
    user.text("/buy")
    user.wait_sent(n + 1)
    user.press(PACK)
    invoice = user.wait_sent(invoices + 1, method="sendInvoice")[-1].params
    query_id = uuid.uuid4().hex
    tg.inject({"pre_checkout_query": {"id": query_id, "from": user.user, "currency": "XTR",
                                      "total_amount": 50, "invoice_payload": invoice["payload"]}})  # fmt: skip
    answer = tg.wait_for(lambda calls: next((c.params for c in calls if c.method == "answerPreCheckoutQuery"
                                             and c.params["pre_checkout_query_id"] == query_id), None))  # fmt: skip
    assert answer["ok"] in ("true", True), answer
    n = len(user.sent())
    paid = {"currency": "XTR", "total_amount": 50, "invoice_payload": invoice["payload"],
            "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""}  # fmt: skip
    user.message(successful_payment=paid)
    assert "10 credits added" in str(user.wait_sent(n + 1)[-1].params["text"])


def delete_my_data(user: User) -> None:
    n = len(user.sent())
    user.text("/delete_my_data")
    user.wait_sent(n + 1)
    user.press("Yes, delete everything")
    assert "All your data has been deleted" in str(user.wait_sent(n + 2, timeout=60)[-1].params["text"])


def wait_warehouse(p: Pipeline, query: str, predicate: Any, params: dict[str, Any] | None = None) -> None:
    from warehouse.client import connect

    client = connect(p.settings)
    deadline = time.monotonic() + 120
    while not predicate(got := client.execute(query, params)):
        if time.monotonic() > deadline:
            dead = client.execute("SELECT stage, reason, any(detail), count() FROM raw_dead_letters GROUP BY ALL")
            pytest.fail(f"warehouse: {query} -> {got}; dead letters: {dead}")
        time.sleep(0.5)


def warehouse_side(p: Pipeline, instance: Any, *, export_month: str | None) -> str:
    """What Dagster does hourly and monthly, in process on the pipeline's settings: the question bank, the learners
    copy and ledger snapshots, every dbt model; with `export_month`, that month's release and its check. Returns
    dbt's output (a log to sweep)."""
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource, s3_resource
    from warehouse.dbt import run_dbt

    resources = {"settings": SettingsResource(), "s3": s3_resource(p.settings)}
    copies = [defs.get_assets_def(dg.AssetKey(["raw", name]))
              for name in ("dim_questions", "raw_learners", "raw_credit_ledger_snapshots")]  # fmt: skip
    assert dg.materialize(copies, resources=resources, instance=instance).success
    built = run_dbt(p.settings, ["build", "--exclude", "test_type:data"])
    assert built.returncode == 0, built.stdout[-3000:]
    if export_month:
        export = [defs.get_assets_def(dg.AssetKey("research_export"))]
        check = [c for c in defs.asset_checks or [] if "export_has_no_personal_data" in c.node_def.name]
        result = dg.materialize([*export, *check], resources=resources, partition_key=export_month,
                                instance=instance)  # fmt: skip
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed, evaluation.metadata
    return built.stdout + built.stderr


def speech_for(n: int) -> str:
    """About 15 s of a different answer per learner: content-addressed audio is then each learner's own."""
    words = plain_text(ANSWERS_45S[n % len(ANSWERS_45S)]).split()
    return " ".join(words[n // len(ANSWERS_45S) * 40 :][:40])


@pytest.fixture(scope="module")
def swept(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    import dagster as dg

    from control.stack.isolated import settings_env
    from speech_coach.audio.tts import synthesize, to_ogg_opus, tone
    from speech_coach.s3 import s3_client
    from speech_coach.tools import find_ffmpeg
    from warehouse.client import connect
    from warehouse.dbt import PROJECT_DIR
    from warehouse.ingest import Ingestor

    root = tmp_path_factory.mktemp("sweep")
    (root / "dagster").mkdir()
    database = f"sweep_{uuid.uuid4().hex[:8]}"
    admin_url = stack.settings.postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    collector = OtlpCollector().start()
    dbt_log = PROJECT_DIR / "logs" / "dbt.log"
    dbt_log_start = dbt_log.stat().st_size if dbt_log.exists() else 0
    try:
        with (
            running_pipeline(root, postgres_url=admin_url.rsplit("/", 1)[0] + f"/{database}", json_logs=True,
                             otlp_endpoint=collector.url, metrics=WINDOWS) as p,
            pytest.MonkeyPatch.context() as env,
            dg.instance_for_test(temp_dir=str(root / "dagster")) as instance,
        ):  # fmt: skip
            for key, value in settings_env(p.settings).items():  # what Dagster's resources read
                env.setenv(key, value)
            ffmpeg = find_ffmpeg(p.settings).executable
            learners = {role: Learner(role, onboard_as(p.tg, role, uid))
                        for role, uid in zip(ROLES, distinct_ids(len(ROLES)), strict=True)}  # fmt: skip
            for learner in learners.values():
                share_with_researchers(learner.user, on=True)
            # Each learner's own answer, and two tones the job rejects (no speech). The erased learner answers last,
            # so their window is still open in the metrics job when they erase their data.
            speeches = {role: synthesize(speech_for(n)) for n, role in enumerate(ROLES)}

            def answer(role: str) -> None:
                ask_and_answer(learners[role].user, (to_ogg_opus(speeches[role], ffmpeg),
                                                     round(speeches[role].duration_s)))  # fmt: skip

            for role in ("stays", "rejected", "withdraws"):
                answer(role)
            ask_and_answer(learners["rejected"].user, p.noise)
            # A recording identical to another learner's shares its content-addressed object, which erasure then
            # keeps (operator guide, Erasure): the erased learner's tone is their own.
            ask_and_answer(learners["erased"].user, (to_ogg_opus(tone(3.0, frequency=523.0), ffmpeg), 3))
            for role, count in (("stays", 1), ("withdraws", 1), ("rejected", 2), ("erased", 1)):
                wait_feedback_count(learners[role].user, count, timeout=240)
            answer("erased")
            wait_feedback_count(learners["erased"].user, 2, timeout=120)
            for role in ("stays", "erased"):
                learners[role].charge = f"stars-{role}-{uuid.uuid4().hex[:12]}"
                buy_credits(learners[role].user, learners[role].charge)
            for learner in learners.values():
                ((learner.learner_id, learner.pseudonym),) = p.rows(
                    "SELECT id::text, pseudonym FROM learners WHERE telegram_user_id = %s", learner.user.id
                )
                answers = p.rows("SELECT id::text, object_key, status FROM answers WHERE learner_id = %s "
                                 "ORDER BY received_at", uuid.UUID(learner.learner_id))  # fmt: skip
                learner.answer_ids = [a for a, _, _ in answers]
                learner.audio_keys = [k for _, k, _ in answers]
                expected = {"rejected": ["delivered", "rejected"], "erased": ["rejected", "delivered"]}.get(
                    learner.role, ["delivered"]
                )
                assert [s for *_, s in answers] == expected, (learner.role, answers)
            total = sum(len(learner.answer_ids) for learner in learners.values())
            ((newest,),) = p.rows("SELECT extract(epoch FROM max(received_at))::float FROM answers")
            wait_warehouse(p, "SELECT count() FROM raw_feedback FINAL", lambda r: r[0][0] >= total)
            # The marts are built while all four share; only then one withdraws and one erases their data.
            dbt_output = warehouse_side(p, instance, export_month=None)
            marts = {m for (m,) in connect(p.settings).execute("SELECT learner_pseudonym FROM research_answers FINAL")}
            assert marts >= {learner.pseudonym for learner in learners.values()}, marts
            share_with_researchers(learners["withdraws"].user, on=False)
            delete_my_data(learners["erased"].user)
            deleted_at = time.time()
            erased = learners["erased"].learner_id
            wait_warehouse(p, "SELECT count() FROM raw_deletion_requests WHERE learner_id = %(id)s",
                           lambda r: r[0][0] == 1, {"id": erased})  # fmt: skip
            # One more answer moves the metrics job's watermark past everyone's earlier answers: their windows,
            # the erased learner's included (the job keeps its state), come out after the deletion.
            speech = synthesize(speech_for(len(ROLES)))
            time.sleep(max(0.0, newest + WINDOWS.allowed_lateness_s + 2 - time.time()))  # once they are that late
            ask_and_answer(learners["stays"].user, (to_ogg_opus(speech, ffmpeg), round(speech.duration_s)))
            wait_feedback_count(learners["stays"].user, 2, timeout=120)
            ((latest,),) = p.rows("SELECT id::text FROM answers WHERE learner_id = %s ORDER BY received_at DESC "
                                  "LIMIT 1", uuid.UUID(learners["stays"].learner_id))  # fmt: skip
            learners["stays"].answer_ids.append(latest)
            kept = total - len(learners["erased"].answer_ids) + 1
            wait_warehouse(p, "SELECT count() FROM raw_feedback FINAL", lambda r: r[0][0] == kept)
            wait_warehouse(p, "SELECT count() FROM raw_windowed_metrics", lambda r: r[0][0] > 0)
            ((month,),) = p.rows("SELECT to_char(max(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-01') FROM answers")
            dbt_output += warehouse_side(p, instance, export_month=month)
            # Clients stop first (spans flushed, logs complete); the servers stay up for the sweep.
            for part in reversed(p.stack.stoppable_platform_parts):
                part.stop()
            # Whatever the service had not read yet is ingested now (its group, its offsets): the warehouse has
            # seen every record on every topic, late windows of the erased learner included.
            with Ingestor(p.settings) as ingestor:
                ingestor.run(until_idle_s=3)
            s3 = s3_client(p.settings)
            exports = {
                o["Key"]: s3.get_object(Bucket=p.settings.s3.exports_bucket, Key=o["Key"])["Body"].read()
                for o in s3.list_objects_v2(Bucket=p.settings.s3.exports_bucket).get("Contents", [])
            }
            log_files = {**p.stack.log_files(), "broker": p.broker.log_file, "broker-store": p.broker_store.log_file}
            logs = {name: Path(f).read_text(errors="replace") for name, f in log_files.items() if Path(f).exists()}
            if dbt_log.exists():
                with dbt_log.open("rb") as handle:
                    handle.seek(dbt_log_start)
                    logs["dbt.log"] = handle.read().decode(errors="replace")
            logs["dbt output"] = dbt_output
            storage = {str(f.relative_to(root / "dagster")): f.read_bytes()
                       for f in (root / "dagster").rglob("*") if f.is_file()}  # fmt: skip
            yield Swept(
                p,
                learners,
                month,
                deleted_at,
                collector.received(),
                b"".join(collector.bodies).decode("utf-8", errors="replace"),
                logs,
                storage,
                exports,
            )
    finally:
        collector.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))  # fmt: skip


# --- the sweep ----------------------------------------------------------------------------------------------------


def test_postgres_keeps_telegram_ids_only_in_operational_tables_and_nothing_of_the_erased(swept: Swept) -> None:
    from speech_coach.privacy import account_hash

    erased = swept.learners["erased"]
    others = {k: v for role, learner in swept.learners.items() if role != "erased"
              for k, v in learner.personal().items() if k.endswith("telegram id")}  # fmt: skip
    forbidden = {**SECRETS, **erased.personal(), **erased.data(),
                 **{k: v for k, v in swept.everyones_personal().items() if not k.endswith("telegram id")}}  # fmt: skip
    columns = swept.rows("SELECT table_name, column_name FROM information_schema.columns "
                         "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")  # fmt: skip
    assert {t for t, _ in columns} >= {"learners", "answers", "payments", "credit_ledger", "erased_accounts"}
    found: dict[str, list[str]] = {}
    allowed: set[tuple[str, str]] = set()  # where the others' ids were seen, as the docs allow
    for table, column in columns:
        query = sql.SQL("SELECT {}::text FROM {}").format(sql.Identifier(column), sql.Identifier(table))
        for (value,) in swept.rows(query):
            text = value or ""
            leaked = found_in(text, forbidden)
            if (table, column) not in TELEGRAM_ID_COLUMNS:
                leaked += found_in(text, others)
            elif found_in(text, others):
                allowed.add((table, column))
            if leaked:
                found.setdefault(f"{table}.{column}", []).extend(leaked)
    assert found == {}, f"PostgreSQL holds what it must not: {found}"
    assert {("learners", "telegram_user_id"), ("answers", "chat_id"), ("payments", "chat_id")} <= allowed, allowed
    # What stays of the erased learner is what the docs name: the payment for accounting, unlinked and without ids,
    # and the keyed hash of the account (not the id).
    payment = swept.rows("SELECT learner_id, telegram_user_id, chat_id, status FROM payments "
                         "WHERE telegram_payment_charge_id = %s", erased.charge)  # fmt: skip
    assert payment == [(None, None, None, "credited")]
    assert (account_hash(swept.settings, erased.user.id),) in swept.rows("SELECT account_hash FROM erased_accounts")
    # The others are all there: the sweep looked at live data.
    assert swept.rows("SELECT count(*) FROM learners") == [(3,)]
    assert swept.rows("SELECT research_consent FROM learners WHERE telegram_user_id = %s",
                      swept.learners["withdraws"].user.id) == [(False,)]  # fmt: skip


def test_s3_holds_no_telegram_id_and_no_recording_of_the_erased(swept: Swept) -> None:
    from speech_coach.s3 import s3_client

    s3 = s3_client(swept.settings)
    erased = swept.learners["erased"]
    forbidden = {**SECRETS, **swept.everyones_personal()}
    keys: dict[str, list[str]] = {}
    found: dict[str, list[str]] = {}
    for bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                keys.setdefault(bucket, []).append(obj["Key"])
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("latin-1")
                if leaked := found_in(obj["Key"], forbidden) + found_in(body, forbidden):
                    found[f"s3://{bucket}/{obj['Key']}"] = leaked
    assert found == {}, f"S3 holds Telegram ids, names or the token: {found}"
    audio = set(keys.get(swept.settings.s3.audio_bucket, []))
    assert not audio & set(erased.audio_keys), "the erased learner's recordings are still in S3"
    assert set(swept.learners["stays"].audio_keys) <= audio  # the others' recordings are there
    assert any(k.endswith("answers.parquet") for k in keys.get(swept.settings.s3.exports_bucket, []))


def test_clickhouse_holds_no_telegram_id_and_nothing_of_the_erased(swept: Swept) -> None:
    from warehouse.client import connect

    client = connect(swept.settings)
    erased = swept.learners["erased"]
    forbidden = {**SECRETS, **swept.everyones_personal()}
    databases = [d for (d,) in client.execute("SELECT name FROM system.databases WHERE name NOT IN "
                                              "('system', 'INFORMATION_SCHEMA', 'information_schema')")]  # fmt: skip
    found: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for database in databases:
        tables = client.execute("SELECT name FROM system.tables WHERE database = %(db)s", {"db": database})
        for (table,) in tables:
            described = client.execute("SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s "
                                       "ORDER BY position", {"db": database, "t": table})  # fmt: skip
            columns = [c for (c,) in described]
            rows = client.execute(f"SELECT * FROM `{database}`.`{table}`")
            seen[f"{database}.{table}"] = len(rows)
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    text = str(value)
                    if column == "payload_b64" and value:
                        text += base64.b64decode(value).decode(errors="replace")
                    leaked = found_in(text, forbidden)
                    if (table, column) not in ERASURE_LIST:
                        leaked += found_in(text, erased.data())
                    if leaked:
                        found.setdefault(f"{database}.{table}.{column}", []).extend(leaked)
    assert found == {}, f"ClickHouse holds Telegram ids, names, the token or the erased learner's data: {found}"
    database = swept.settings.clickhouse_database
    # The sweep saw the warehouse filled: raw events, the learners copy, dead letters and the marts.
    for table in ("raw_answers", "raw_feedback", "raw_answer_metrics", "raw_learners", "raw_dead_letters",
                  "raw_credit_ledger_snapshots", "raw_windowed_metrics", "research_answers"):  # fmt: skip
        assert seen.get(f"{database}.{table}", 0) > 0, (table, seen)
    assert client.execute("SELECT learner_id FROM raw_deletion_requests FINAL") == [(erased.learner_id,)]


def test_topics_carry_telegram_ids_only_in_the_raw_answers_telegram_block(swept: Swept) -> None:
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from speech_coach.contracts import Topic
    from speech_coach.kafka import client_config, consumer_config, topic_name

    raw_topic = topic_name(swept.settings, Topic.RAW_ANSWERS)
    windows_topic = topic_name(swept.settings, Topic.WINDOWED_METRICS)
    admin = AdminClient(client_config(swept.settings))
    metadata = admin.list_topics(timeout=15).topics
    ours = {name: len(t.partitions) for name, t in metadata.items() if not name.startswith("__")}
    assert {topic_name(swept.settings, t) for t in Topic} <= set(ours)
    consumer = Consumer(consumer_config(swept.settings, f"sweep-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(name, n, 0) for name, count in ours.items() for n in range(count)])
    # Tansu's "latest" offsets are unreliable (docs: ENVIRONMENT), so read until nothing more arrives.
    messages: list[Any] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 5:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            messages.append(msg)
            idle_since = time.monotonic()
    consumer.close()
    forbidden = {**SECRETS, **swept.everyones_personal()}
    ids = {k: v for k, v in forbidden.items() if k.endswith("telegram id")}
    found: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    chats: set[int] = set()
    erased = swept.learners["erased"]
    late_windows = 0  # the erased learner's windows the metrics job emitted after the deletion
    for msg in messages:
        counts[msg.topic()] = counts.get(msg.topic(), 0) + 1
        value = (msg.value() or b"").decode(errors="replace")
        outside = value
        try:
            event = json.loads(value)
        except ValueError:
            event = None
        if isinstance(event, dict):
            if msg.topic() == raw_topic:  # the documented place: the block that recognises redelivered updates
                block = event.pop("telegram", {})
                assert set(block) == {"update_id", "chat_id", "message_id", "file_unique_id"}, block
                chats.add(block["chat_id"])
                assert not found_in(json.dumps(block), {k: v for k, v in forbidden.items() if k not in ids})
            if msg.topic() == windows_topic and event.get("learner_id") == erased.learner_id:
                late_windows += datetime.fromisoformat(event["occurred_at"]).timestamp() > swept.deleted_at
            if event.get("payload_b64"):
                event["payload"] = base64.b64decode(event["payload_b64"]).decode(errors="replace")
            outside = json.dumps(event, ensure_ascii=False)
        headers = " ".join(f"{k}={v!r}" for k, v in msg.headers() or [])
        where = f"{msg.topic()}@{msg.partition()}:{msg.offset()}"
        if leaked := found_in(outside + headers + (msg.key() or b"").decode(errors="replace"), forbidden):
            found[where] = leaked
    assert found == {}, f"topics carry Telegram ids, names or the token: {found}"
    total = sum(len(learner.answer_ids) for learner in swept.learners.values())
    assert counts.get(raw_topic, 0) >= total, counts
    assert counts.get(topic_name(swept.settings, Topic.DEAD_LETTERS), 0) >= 2, counts  # the two rejections
    assert counts.get(topic_name(swept.settings, Topic.DELETION_REQUESTS), 0) == 1, counts
    assert chats == {learner.user.id for learner in swept.learners.values()}  # the ids were there, where allowed
    # Documented limit (reliability: known limits): the metrics job keeps an erased learner's open windows and
    # emits them later; the ClickHouse sweep shows ingestion dropped them.
    assert late_windows >= 1, "no window of the erased learner came out after the deletion"


def test_the_release_holds_no_id_and_neither_the_erased_nor_the_withdrawn(swept: Swept, tmp_path: Path) -> None:
    import duckdb

    prefix = f"research/answers/{swept.month[:7]}/"
    files = {k[len(prefix) :]: v for k, v in swept.exports.items() if k.startswith(prefix)}
    assert {"answers.parquet", "answers.csv", "answers.duckdb", "datapackage.json"} <= set(files), sorted(files)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'answers.duckdb'}' AS release (READ_ONLY)")
    read: dict[str, tuple[list[Any], list[str]]] = {}
    for fmt, query in {"parquet": f"SELECT * FROM read_parquet('{tmp_path / 'answers.parquet'}')",
                       "csv": f"SELECT * FROM read_csv('{tmp_path / 'answers.csv'}', all_varchar = true)",
                       "duckdb": "SELECT * FROM release.answers"}.items():  # fmt: skip
        result = con.execute(query)
        read[fmt] = (result.fetchall(), [d[0] for d in result.description])
    learners = swept.learners
    forbidden = {**SECRETS, **swept.everyones_personal(), **learners["erased"].data(), **learners["withdraws"].data(),
                 # internal ids of everyone: the release names learners by pseudonym only
                 **{f"{r}: learner id": learner.learner_id for r, learner in learners.items()}}  # fmt: skip
    found = {name: leaked for name, data in files.items() if (leaked := found_in(data.decode("latin-1"), forbidden))}
    released: dict[str, set[str]] = {}
    for fmt, (rows, columns) in read.items():
        assert rows, fmt
        text = repr(rows)
        if leaked := found_in(text, forbidden):
            found[f"{fmt} rows"] = leaked
        pseudonyms = columns.index("learner_pseudonym")
        released[fmt] = {str(row[pseudonyms]) for row in rows}
    assert found == {}, f"the release holds what it must not: {found}"
    stays = {learners[r].pseudonym for r in ("stays", "rejected")}
    assert all(names >= stays for names in released.values()), released  # the sweep looked at a real release


def test_logs_dagster_storage_and_traces_name_no_telegram_account_and_no_token(swept: Swept) -> None:
    forbidden = {**SECRETS, **swept.everyones_personal()}
    assert {"bot", "answer-job", "metrics-job", "ingest"} <= set(swept.logs), sorted(swept.logs)
    assert "learner data erased" in swept.logs["bot"]  # the logs cover the whole life cycle
    assert swept.learners["stays"].learner_id in swept.logs["bot"]  # learners are named, by internal id
    found = {f"log {name}": leaked for name, text in swept.logs.items() if (leaked := found_in(text, forbidden))}
    found |= {f"dagster {name}": leaked for name, data in swept.dagster_storage.items()
              if (leaked := found_in(data.decode("latin-1"), forbidden))}  # fmt: skip
    if leaked := found_in(swept.span_bodies, forbidden):
        found["spans"] = leaked
    assert found == {}, f"logs, Dagster's storage or traces name a Telegram account or hold the token: {found}"
    services = {s.service for s in swept.spans}
    assert len(swept.spans) > 10 and len(services) >= 2, services
    assert swept.dagster_storage, "Dagster wrote no storage to search"


def test_the_export_check_does_not_take_answer_ids_for_phone_numbers() -> None:
    """The sweep's release holds real answer ids: UUIDs, about one in twelve of which has digit groups PHONE took
    for a phone number ("55625062-93d4-..."), so the check failed on real releases. Spoken numbers still count."""
    from warehouse.exports import contact_details

    for answer_id in ("55625062-93d4-453d-aa94-c4e4f9ed3e9c", "f39d7813-397b-4621-9147-a616087f66c9",
                      "12345678-1234-1234-1234-123456789012"):  # fmt: skip
        assert contact_details(answer_id) == (False, False), answer_id
    assert contact_details("call me on +44 20 7946 0958") == (False, True)
    assert contact_details("write to jane.doe@example.com") == (True, False)
    assert contact_details("12345678-1234-1234-1234-123456789012 or 020 7946 0958") == (False, True)
