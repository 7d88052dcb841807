"""Ingestion lag per topic and partition, read without joining the consumer group."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from speech_coach.contracts import Topic
from speech_coach.kafka import consumer_config, topic_name
from speech_coach.settings import Settings


def consumer_lag(
    settings: Settings, group_id: str, topics: Iterable[Topic] = tuple(Topic)
) -> dict[tuple[str, int], int]:
    """Records each partition holds beyond the group's committed offset (all of them if none committed)."""
    consumer = Consumer(consumer_config(settings, group_id, **{"log_level": 3}))
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
