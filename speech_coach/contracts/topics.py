"""Every Kafka topic the platform uses, in one place.

Names are stable identifiers; `Settings.kafka.topic_prefix` lets several environments share a cluster.
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    RAW_ANSWERS = "speech-coach.answers.raw.v1"
    FEEDBACK = "speech-coach.answers.feedback.v1"
    ANSWER_METRICS = "speech-coach.answers.metrics.v1"
    WINDOWED_METRICS = "speech-coach.learners.windowed-metrics.v1"
    VOCABULARY = "speech-coach.learners.vocabulary.v1"
    DELETION_REQUESTS = "speech-coach.learners.deletion-requests.v1"
    DEAD_LETTERS = "speech-coach.dead-letters.v1"

    def qualified(self, prefix: str = "") -> str:
        return f"{prefix}{self.value}"


# Deletion requests are compacted by learner, so the latest request per learner survives and a store that starts
# late still sees it.
COMPACTED_TOPICS = frozenset({Topic.DELETION_REQUESTS})

# How long each topic keeps its records (days; None: for ever), set on every topic the platform creates. Every
# consumer reads within seconds to minutes; the margin covers an outage. Records with personal data (transcripts,
# a raw answer's Telegram ids) go as soon as that margin allows; the warehouse keeps what research needs.
RETENTION_DAYS: dict[Topic, int | None] = {
    Topic.RAW_ANSWERS: 7,  # Telegram ids and audio references, for the answer job and ingestion
    Topic.FEEDBACK: 14,  # transcripts and advice: the bot, the metrics job and ingestion
    Topic.ANSWER_METRICS: 14,
    Topic.WINDOWED_METRICS: 30,  # pseudonymous aggregates
    Topic.VOCABULARY: 30,
    Topic.DELETION_REQUESTS: None,  # compacted: the latest request per learner, for ever (internal ids only)
    Topic.DEAD_LETTERS: 30,  # for operators to replay; the warehouse keeps them too
}


def topic_config(topic: Topic) -> dict[str, str]:
    """The topic-level configuration the platform sets: cleanup policy and retention."""
    days = RETENTION_DAYS[topic]
    return {
        "cleanup.policy": "compact" if topic in COMPACTED_TOPICS else "delete",
        "retention.ms": "-1" if days is None else str(days * 86_400_000),
    }
