"""Kafka client configuration shared by every runtime (confluent-kafka / librdkafka)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from speech_coach.contracts.topics import Topic, topic_config
from speech_coach.logging import get_logger
from speech_coach.settings import Settings

log = get_logger(__name__)


def client_config(settings: Settings) -> dict[str, Any]:
    """What every client (producer, consumer, admin) needs to reach the brokers: address, TLS and SASL.

    The keys appear only when set, so the local stack's clients stay plain PLAINTEXT ones."""
    kafka = settings.kafka
    conf: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap, "security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        conf |= {
            "sasl.mechanism": kafka.sasl_mechanism,
            "sasl.username": kafka.sasl_username,
            "sasl.password": kafka.sasl_password.get_secret_value(),
        }
    if kafka.ssl_ca_location and kafka.security_protocol.endswith("SSL"):
        conf["ssl.ca.location"] = kafka.ssl_ca_location
    return conf


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    # Idempotent, fully acknowledged producer: a retried send never duplicates or reorders.
    return (
        client_config(settings)
        | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 30000,
        }
        | overrides
    )


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return (
        client_config(settings)
        | {
            "group.id": group_id,
            # Tansu answers ListOffsets "latest" wrongly, and nothing may be skipped anyway: start at the
            # committed offset, else at the beginning.
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # A group join waits about half the session timeout on Tansu; 6 s keeps rebalances short.
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "isolation.level": "read_committed",
        }
        | overrides
    )


def topic_name(settings: Settings, topic: Topic) -> str:
    return topic.qualified(settings.kafka.topic_prefix)


def ensure_topics(settings: Settings, topics: Iterable[Topic] = tuple(Topic), timeout: float = 15.0) -> list[str]:
    """Create the platform's topics if missing, with their retention and cleanup policy (idempotent); a topic that
    exists gets the same configuration, so retention is what the contracts say. Returns the names created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted, present = [], []
    for topic in topics:
        name = topic_name(settings, topic)
        if name in existing:
            present.append(topic)
            continue
        wanted.append(
            NewTopic(
                name,
                num_partitions=settings.kafka.default_partitions,
                replication_factor=settings.kafka.replication_factor,
                config=topic_config(topic),
            )
        )
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if present:
        _apply_topic_configs(admin, settings, present, timeout)
    return created


def _apply_topic_configs(admin: Any, settings: Settings, topics: list[Topic], timeout: float) -> None:
    """Give existing topics the platform's retention (an incremental change: other settings stay)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource  # type: ignore[attr-defined]

    current = admin.describe_configs([ConfigResource("topic", topic_name(settings, t)) for t in topics])
    shown = {res.name: {k: c.value for k, c in fut.result(timeout).items()} for res, fut in current.items()}
    topics = [t for t in topics if any(shown[topic_name(settings, t)].get(k) != v for k, v in topic_config(t).items())]
    if not topics:
        return
    resources = [
        ConfigResource("topic", topic_name(settings, t), incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in topic_config(t).items()
        ])
        for t in topics
    ]  # fmt: skip
    try:
        for future in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
            future.result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._UNSUPPORTED_FEATURE:
            raise
        # The local broker (Tansu) cannot change a topic's configuration; Kafka can. Tell the operator once.
        log.warning(
            "kafka.topic_config_unchanged", reason="the broker cannot change topic configurations",
            topics=[topic_name(settings, t) for t in topics], wanted={t.value: topic_config(t) for t in topics},
        )  # fmt: skip


def kafka_consumer(settings: Settings, group_id: str) -> Consumer:
    """A quiet consumer for reading offsets and single records without joining its group."""
    return Consumer(consumer_config(settings, group_id, **{"log_level": 3, "enable.partition.eof": False}))


def consumer_lag(
    settings: Settings, group_id: str, topics: Iterable[Topic] = tuple(Topic)
) -> dict[tuple[str, int], int]:
    """Records each partition holds beyond the group's committed offset (all of them if none committed)."""
    consumer = kafka_consumer(settings, group_id)
    try:
        names = [topic_name(settings, t) for t in topics]
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [TopicPartition(name, p) for name in names if name in metadata for p in metadata[name].partitions]
        committed = consumer.committed(partitions, timeout=10) if partitions else []
        lag = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag[(tp.topic, tp.partition)] = max(0, high - (tp.offset if tp.offset >= 0 else low))
        return lag
    finally:
        consumer.close()


def read_to_end(settings: Settings, topic: Topic, timeout: float = 30.0) -> list[bytes]:
    """Every record a topic holds now, from the beginning of each partition to its end, without joining a group:
    for small, compacted topics read whole (the deletion requests)."""
    consumer = kafka_consumer(settings, "speech-coach-read-to-end")
    try:
        name = topic_name(settings, topic)
        metadata = consumer.list_topics(name, timeout=10).topics.get(name)
        if metadata is None or metadata.error is not None:
            return []
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in ends])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            values.append(msg.value() or b"")
            partition, offset = msg.partition(), msg.offset()
            end = ends.get(partition) if partition is not None else None
            if end is not None and offset is not None and offset + 1 >= end:
                ends.pop(partition)
        # Tansu reports a partition's end as its last batch's first offset + 1: the rest of that batch comes now.
        while not ends and (msg := consumer.poll(0.5)) is not None:
            if not msg.error():
                values.append(msg.value() or b"")
        if ends:
            raise TimeoutError(f"{name}: partitions {sorted(ends)} not read to their end within {timeout:.0f} s")
        return values
    finally:
        consumer.close()
