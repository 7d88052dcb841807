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
