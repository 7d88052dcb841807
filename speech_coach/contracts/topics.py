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


# Topics whose records must be kept until every learner-facing effect happened; deletion requests are
# compacted by learner so the latest request per learner survives retention.
COMPACTED_TOPICS = frozenset({Topic.DELETION_REQUESTS})
