"""Real round trips through each server of the local stack."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from control.stack import Stack
from speech_coach.kafka import consumer_config, producer_config
from speech_coach.s3 import s3_client
from warehouse.client import clickhouse_client

pytestmark = pytest.mark.stack


def test_kafka_produce_and_consume(stack: Stack, kafka_topic: str) -> None:
    from confluent_kafka import Consumer, Producer

    producer = Producer(producer_config(stack.settings))
    errors: list[object] = []
    sent = [(f"learner-{i % 4}".encode(), f"{i}".encode()) for i in range(40)]
    for key, value in sent:
        producer.produce(kafka_topic, key=key, value=value, on_delivery=lambda e, _m: e and errors.append(e))
    assert producer.flush(15) == 0
    assert errors == []

    consumer = Consumer(consumer_config(stack.settings, group_id=f"g-{uuid.uuid4().hex}"))
    consumer.subscribe([kafka_topic])
    received: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 45
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            received.append((msg.key(), msg.value(), msg.partition()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    assert sorted((k, v) for k, v, _ in received) == sorted(sent)
    for key in {k for k, _ in sent}:
        mine = [(int(v), p) for k, v, p in received if k == key]
        # One key, one partition, in send order: per-learner ordering is what the pipeline relies on.
        assert len({p for _, p in mine}) == 1
        assert [v for v, _ in mine] == sorted(v for v, _ in mine)


def test_postgres_write_and_read(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        conn.execute("CREATE TABLE learners (id uuid PRIMARY KEY, language text NOT NULL, credits int)")
        rows = [(uuid.uuid4(), lang, n) for n, lang in enumerate(["en", "ru", "en"])]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO learners VALUES (%s, %s, %s)", rows)
        conn.commit()
    with psycopg.connect(pg_database) as conn:
        got = conn.execute("SELECT id, language, credits FROM learners ORDER BY credits").fetchall()
        assert got == rows
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO learners VALUES (%s, 'en', 0)", (rows[0][0],))


def test_clickhouse_write_and_read(stack: Stack, ch_database: str) -> None:
    client = clickhouse_client(stack.settings.clickhouse_url, database=ch_database)
    client.execute(
        "CREATE TABLE answers (answer_id String, learner String, score Float32, at DateTime) "
        "ENGINE = ReplacingMergeTree ORDER BY answer_id"
    )
    import datetime as dt

    now = dt.datetime(2026, 11, 23, 10, 0, 0)
    rows = [(f"a{i}", f"l{i % 3}", i / 10, now) for i in range(100)]
    client.execute("INSERT INTO answers VALUES", rows)
    client.execute("INSERT INTO answers VALUES", rows[:10])  # a replayed batch
    count, mean = client.execute("SELECT count(), round(avg(score), 3) FROM answers FINAL")[0]
    assert count == 100
    assert mean == pytest.approx(sum(r[2] for r in rows) / 100, abs=1e-3)
    assert client.execute("SELECT learner, count() FROM answers FINAL GROUP BY learner ORDER BY learner") == [
        ("l0", 34),
        ("l1", 33),
        ("l2", 33),
    ]


def test_s3_write_and_read(stack: Stack, s3_bucket: str) -> None:
    client = s3_client(stack.settings)
    payload = bytes(range(256)) * 1000
    client.put_object(Bucket=s3_bucket, Key="audio/ab/abcdef.ogg", Body=payload, ContentType="audio/ogg")
    obj = client.get_object(Bucket=s3_bucket, Key="audio/ab/abcdef.ogg")
    assert obj["Body"].read() == payload
    assert obj["ContentType"] == "audio/ogg"
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="audio/")
    assert [o["Key"] for o in listed["Contents"]] == ["audio/ab/abcdef.ogg"]


def test_external_servers_are_used_and_nothing_local_starts(stack: Stack, tmp_path) -> None:
    """A second stack pointed at the first one's servers as "external" starts no process of its own."""
    from tests.conftest import using_servers_of

    other = Stack(using_servers_of(stack, tmp_path / "state"))
    result = other.up()
    assert result.started == [] and sorted(result.external) == ["clickhouse", "kafka", "postgres", "s3"]
    states = {st.name: st.state for st in other.status()}
    assert states == {
        "s3": "external", "kafka": "external", "postgres": "external", "clickhouse": "external",
        "java": "available", "ffmpeg": "available",
    }  # fmt: skip
    assert not (tmp_path / "state" / "run").exists() or not list((tmp_path / "state" / "run").glob("*.json"))
    assert other.down() == []
    # The servers it used are untouched.
    assert all(st.state == "healthy" for st in stack.status() if st.name in {"s3", "kafka", "postgres", "clickhouse"})
