"""Pipeline health read straight from Kafka, without joining any consumer group: lag, last feedback, dead letters.

`speech-coach stack status` prints it and the ingestion service publishes lag as a gauge. Tansu reports a
partition's end offset as its last batch's base offset + 1, so on that broker these counts can be a little low
where batches hold several records; on Kafka they are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from speech_coach.contracts.topics import Topic
from speech_coach.kafka import consumer_lag, kafka_consumer, topic_name
from speech_coach.settings import Settings


@dataclass
class PipelineHealth:
    lag: dict[str, int] = field(default_factory=dict)  # consumer name -> records behind, all its topics
    last_feedback_at: datetime | None = None
    dead_letters: int = 0
    error: str | None = None


def _topic_records(consumer: Consumer, name: str, metadata: Mapping[str, object]) -> list[tuple[int, int, int]]:
    if name not in metadata:
        return []
    out = []
    for p in metadata[name].partitions:  # type: ignore[attr-defined]
        low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
        out.append((p, low, high))
    return out


def _last_timestamp(consumer: Consumer, name: str, partitions: list[tuple[int, int, int]]) -> datetime | None:
    """Broker timestamp of the newest record in any partition of `name`."""
    newest: float | None = None
    for p, low, high in partitions:
        if high <= low:
            continue
        consumer.assign([TopicPartition(name, p, max(low, high - 1) if high > 0 else OFFSET_BEGINNING)])
        msg = consumer.poll(5)
        if msg is not None and msg.error() is None:
            _kind, millis = msg.timestamp()
            if millis > 0:
                newest = max(newest or 0, millis / 1000)
    consumer.unassign()
    return datetime.fromtimestamp(newest, UTC) if newest else None


def pipeline_health(settings: Settings, consumers: Mapping[str, tuple[str, Iterable[Topic]]]) -> PipelineHealth:
    """Lag of each named consumer (group id, topics), newest feedback time and dead letters kept so far."""
    health = PipelineHealth()
    try:
        for name, (group_id, topics) in consumers.items():
            health.lag[name] = sum(consumer_lag(settings, group_id, topics).values())
        consumer = kafka_consumer(settings, "speech-coach-status")
        try:
            metadata = consumer.list_topics(timeout=10).topics
            feedback = topic_name(settings, Topic.FEEDBACK)
            health.last_feedback_at = _last_timestamp(consumer, feedback, _topic_records(consumer, feedback, metadata))
            dead = _topic_records(consumer, topic_name(settings, Topic.DEAD_LETTERS), metadata)
            health.dead_letters = sum(high - low for _, low, high in dead)
        finally:
            consumer.close()
    except KafkaException as exc:
        health.error = str(exc)
    return health


def platform_consumers(settings: Settings) -> dict[str, tuple[str, Iterable[Topic]]]:
    """The platform's consumer groups and what each reads (the bot and the Flink jobs add theirs here)."""
    return {"warehouse ingestion": (settings.warehouse.ingest_group_id, tuple(Topic))}
