"""Warehouse migrations and Kafka -> ClickHouse ingestion on the real servers."""

from __future__ import annotations

import base64
import shutil
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from control.stack import Stack
from speech_coach.contracts import Event, LearnerDeletionRequest, Topic, encode
from speech_coach.kafka import producer_config, topic_name
from speech_coach.settings import Settings
from tests.test_contracts import samples
from warehouse.client import connect
from warehouse.ingest import Ingestor
from warehouse.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate

pytestmark = pytest.mark.stack


@pytest.fixture
def wh_settings(stack: Stack, ch_database: str) -> Settings:
    """Settings with this test's own ClickHouse database and topic names."""
    s = stack.settings
    prefix = f"t{uuid.uuid4().hex[:8]}."
    url = s.clickhouse_url.rsplit("/", 1)[0] + f"/{ch_database}"
    return s.model_copy(
        update={
            "kafka": s.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": 2}),
            "clickhouse": s.clickhouse.model_copy(update={"url": url}),
            "warehouse": s.warehouse.model_copy(
                update={"ingest_group_id": f"wh-{prefix}", "ingest_batch_timeout_s": 0.5}
            ),
        }
    )


def produce(settings: Settings, events: list[Event], raw: list[tuple[str, bytes]] = ()) -> None:
    producer = Producer(producer_config(settings))
    for event in events:
        producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event))
    for topic, payload in raw:
        producer.produce(topic, value=payload)
    assert producer.flush(15) == 0


def counts(client, final: bool = True) -> dict[str, int]:
    tables = ["raw_answers", "raw_feedback", "raw_answer_metrics", "raw_windowed_metrics", "raw_word_counts",
              "raw_deletion_requests", "raw_dead_letters"]  # fmt: skip
    return {t: client.execute(f"SELECT count() FROM {t} {'FINAL' if final else ''}")[0][0] for t in tables}


def test_migrations_are_idempotent_and_edits_are_refused(wh_settings: Settings, tmp_path: Path) -> None:
    client = connect(wh_settings)
    assert [m.version for m in migrate(client)] == [m.version for m in discover()]
    assert migrate(client) == []
    tables = {r[0] for r in client.execute("SHOW TABLES")}
    assert {"raw_answers", "raw_feedback", "raw_word_counts", "dim_questions", "raw_learners"} <= tables

    edited = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, edited)
    first = sorted(edited.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an afterthought\n")
    with pytest.raises(MigrationError, match=first.name):
        migrate(client, edited)


def test_ingestion_is_effectively_once_and_keeps_bad_records(wh_settings: Settings) -> None:
    client = connect(wh_settings)
    migrate(client)
    events = samples()[:-2]  # everything but the deletion request and the dead letter
    bad = [
        (topic_name(wh_settings, events[0].TOPIC), b"{not json"),
        (topic_name(wh_settings, events[1].TOPIC), b'{"event_type": "feedback_result", "schema_version": 9}'),
    ]
    produce(wh_settings, events, bad)
    with Ingestor(wh_settings, client) as ingestor:
        stats = ingestor.run(until_idle_s=3)
        assert stats.dead_letters == 2
        assert ingestor.lag() and all(v == 0 for v in ingestor.lag().values())
    expected = {
        "raw_answers": 1, "raw_feedback": 1, "raw_answer_metrics": 1, "raw_windowed_metrics": 1,
        "raw_word_counts": 1, "raw_deletion_requests": 0, "raw_dead_letters": 2,
    }  # fmt: skip
    assert counts(client) == expected
    reasons = sorted(r[0] for r in client.execute("SELECT reason FROM raw_dead_letters"))
    assert reasons == ["contract.not_json", "contract.unsupported_version"]

    # The same events again (a producer retry, a replayed topic): still one row each.
    produce(wh_settings, events)
    with Ingestor(wh_settings, client) as ingestor:
        ingestor.run(until_idle_s=3)
    assert counts(client) == expected
    row = client.execute("SELECT learner_id, task_type, audio_key FROM raw_answers FINAL")[0]
    assert row[0] == "lrn-1" and row[1] == "toefl_independent" and row[2].startswith("audio/ab/")


def test_a_crash_between_insert_and_commit_does_not_duplicate(wh_settings: Settings) -> None:
    client = connect(wh_settings)
    migrate(client)
    produce(wh_settings, samples()[:3])
    with CrashingIngestor(wh_settings, client) as crashing, pytest.raises(RuntimeError, match="crashed"):
        crashing.run(until_idle_s=3)
    # The next run re-reads the uncommitted batch; the deduplication token drops the re-sent insert.
    with Ingestor(wh_settings, client) as ingestor:
        stats = ingestor.run(until_idle_s=3)
    assert stats.messages == 3
    assert counts(client, final=False)["raw_answers"] == 1
    assert counts(client)["raw_feedback"] == 1


def test_a_bounded_run_fails_visibly_while_clickhouse_is_down_and_loses_nothing(wh_settings: Settings) -> None:
    # The service waits for ClickHouse (tests/test_faults.py stops the real server); a bounded run, such as the
    # Dagster asset's, retries until its time is up, then fails; nothing was committed, so the next run has all.
    from clickhouse_driver.errors import NetworkError

    from control.stack.isolated import free_port_block
    from warehouse.client import clickhouse_client
    from warehouse.ingest import RETRIES

    client = connect(wh_settings)
    migrate(client)
    produce(wh_settings, samples()[:3])
    down = clickhouse_client(f"clickhouse://127.0.0.1:{free_port_block(1)}/default", connect_timeout=1)
    retries = RETRIES._value.get()
    with Ingestor(wh_settings, down) as ingestor, pytest.raises(NetworkError):
        ingestor.run(until_idle_s=30, max_seconds=10)
    assert RETRIES._value.get() > retries
    with Ingestor(wh_settings, client) as ingestor:
        assert ingestor.run(until_idle_s=3).messages == 3
    assert counts(client)["raw_answers"] == 1


class CrashingIngestor(Ingestor):
    def commit(self) -> None:
        raise RuntimeError("crashed before the commit")


def test_deletion_requests_erase_and_block_late_rows(wh_settings: Settings) -> None:
    client = connect(wh_settings)
    migrate(client)
    answer, feedback, metrics = samples()[:3]
    other = answer.model_copy(update={"answer_id": "ans-2", "learner_id": "lrn-2"})
    produce(wh_settings, [answer, feedback, metrics, other])
    with Ingestor(wh_settings, client) as ingestor:
        ingestor.run(until_idle_s=3)
        produce(wh_settings, [LearnerDeletionRequest(learner_id="lrn-1")])
        stats = ingestor.run(until_idle_s=3)
        assert stats.deleted_learners == 1
        late = answer.model_copy(update={"answer_id": "ans-late"})
        produce(wh_settings, [late])
        stats = ingestor.run(until_idle_s=3)
        assert stats.skipped_deleted == 1
    for table in ("raw_answers", "raw_feedback", "raw_answer_metrics"):
        assert client.execute(f"SELECT count() FROM {table} WHERE learner_id = 'lrn-1'")[0][0] == 0
    assert client.execute("SELECT learner_id FROM raw_answers FINAL") == [("lrn-2",)]
    assert client.execute("SELECT learner_id FROM raw_deletion_requests") == [("lrn-1",)]


def test_malformed_and_unknown_version_events_on_every_topic_become_dead_letters(wh_settings: Settings) -> None:
    # Ingestion consumes every topic, so every topic's bad records end here, each with its reason and bytes.
    client = connect(wh_settings)
    migrate(client)
    by_type = {e.TOPIC: e.EVENT_TYPE for e in samples()}
    bad: list[tuple[str, bytes, str]] = []
    for topic in Topic:
        name, event_type = topic_name(wh_settings, topic), by_type[topic]
        other = next(t for t in by_type.values() if t != event_type)
        bad += [
            (name, b"\xff\x00 not json", "contract.not_json"),
            (name, b'"just a string"', "contract.not_object"),
            (name, f'{{"event_type": "{event_type}", "schema_version": 99}}'.encode(), "contract.unsupported_version"),
            (name, f'{{"event_type": "{other}", "schema_version": 1}}'.encode(), "contract.wrong_type"),
            (name, f'{{"event_type": "{event_type}", "schema_version": 1}}'.encode(), "contract.invalid"),
        ]
    produce(wh_settings, [], [(name, payload) for name, payload, _ in bad])
    with Ingestor(wh_settings, client) as ingestor:
        assert ingestor.run(until_idle_s=3).dead_letters == len(bad)
    got = client.execute("SELECT source_topic, payload_b64, reason, stage, detail FROM raw_dead_letters FINAL")
    assert sorted((t, base64.b64decode(p), r) for t, p, r, *_ in got) == sorted(bad)
    assert all(stage == "warehouse.ingest" and detail for *_, stage, detail in got)
    assert sum(counts(client).values()) == len(bad)  # nothing else was written


def test_no_warehouse_table_holds_a_telegram_id_after_rejections(wh_settings: Settings, s3_bucket: str) -> None:
    """Answers assessed, rejected and broken on the way (silent audio, a missing recording, a truncated record, one
    that breaks its contract) all reach the warehouse; afterwards no ClickHouse table holds any of their Telegram
    ids in any column, the dead letters' decoded payloads included. Their dead letters name the learner, so erasure
    reaches them."""
    from control.harness.answer_job import ANSWER_45S, ffmpeg_of, raw_answer, speech_ogg, upload
    from flink_jobs.answers.pipeline import AnswerProcessor
    from speech_coach.audio.tts import to_ogg_opus, tone

    ffmpeg = ffmpeg_of(wh_settings)
    speech, _ = speech_ogg(ANSWER_45S.split(" Second,")[0], ffmpeg)
    ids = {"update_id": 731955182, "chat_id": 648213977, "message_id": 5519273}
    recordings = [
        upload(wh_settings, s3_bucket, speech),
        upload(wh_settings, s3_bucket, to_ogg_opus(tone(3.0), ffmpeg)),  # no voice: rejected
        {**upload(wh_settings, s3_bucket, b"OggS-gone"), "key": "audio/00/missing.ogg"},  # not in S3: rejected
    ]
    answers = [raw_answer(a, telegram={**ids, "file_unique_id": f"AgADxZ7Q-{n}"}) for n, a in enumerate(recordings)]
    processor = AnswerProcessor(wh_settings)
    processor.open()
    outputs = [event for answer in answers for event in processor.process(encode(answer))]
    raw_topic = topic_name(wh_settings, Topic.RAW_ANSWERS)
    whole = encode(answers[0])
    broken = [whole[: whole.index(b'"file_unique_id"') + 20],  # cut off mid-record: not JSON
              whole.replace(b'"speaking_time_s":45', b'"speaking_time_s":-1')]  # fmt: skip
    produce(wh_settings, [*answers, *outputs], raw=[(raw_topic, b) for b in broken])
    client = connect(wh_settings)
    migrate(client)
    with Ingestor(wh_settings) as ingestor:
        ingestor.run(until_idle_s=5)
    database = wh_settings.clickhouse_database
    tables = [t for (t,) in client.execute("SELECT name FROM system.tables WHERE database = %(db)s", {"db": database})]
    found: dict[str, list[str]] = {}
    for table in tables:
        columns = [c for (c,) in client.execute("SELECT name FROM system.columns WHERE database = %(db)s AND "
                                                 "table = %(t)s", {"db": database, "t": table})]  # fmt: skip
        for row in client.execute(f"SELECT * FROM `{table}`"):
            for column, value in zip(columns, row, strict=True):
                text = str(value)
                if column == "payload_b64":
                    text += base64.b64decode(value).decode(errors="replace")
                if leaked := [str(v) for v in ids.values() if str(v) in text] + (
                    ["file_unique_id"] * ("AgADxZ7Q" in text)
                ):
                    found.setdefault(f"{table}.{column}", []).extend(leaked)
    assert found == {}, f"Telegram ids in the warehouse: {found}"
    # The two rejections (the job) and the two broken records (ingestion) are dead letters, each with its learner.
    letters = client.execute("SELECT stage, reason, learner_id FROM raw_dead_letters ORDER BY stage, reason")
    assert len(letters) == 4, letters
    assert {learner for *_, learner in letters} <= {a.learner_id for a in answers}, letters
    counted = counts(client)
    assert counted["raw_answers"] == 3 and counted["raw_feedback"] == 3


def test_topics_are_created_with_their_retention(wh_settings: Settings) -> None:
    """Every topic the platform creates has the retention and cleanup policy the contracts give it. (Tansu cannot
    change an existing topic's configuration; on Kafka `ensure_topics` applies it to existing topics too.)"""
    from confluent_kafka.admin import AdminClient, ConfigResource

    from speech_coach.contracts.topics import topic_config
    from speech_coach.kafka import client_config, ensure_topics

    admin = AdminClient(client_config(wh_settings))
    assert len(ensure_topics(wh_settings)) == len(Topic)
    ensure_topics(wh_settings)  # again: the topics exist; nothing fails where the broker cannot alter them

    def configs(topic: Topic) -> dict[str, str]:
        resource = ConfigResource("topic", topic_name(wh_settings, topic))
        found = admin.describe_configs([resource])[resource].result(15)
        return {k: found[k].value for k in ("cleanup.policy", "retention.ms")}

    for topic in Topic:
        assert configs(topic) == topic_config(topic), topic
