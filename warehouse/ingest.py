"""Kafka topics -> ClickHouse raw tables, with effectively-once results.

The local design is a consumer driven by Dagster (or `speech-coach warehouse ingest`); production can use
the ClickHouse Kafka engine instead (docs/warehouse.md). Either way the guarantees come from the tables:

1. A batch is inserted, then its offsets are committed. A crash in between replays the batch (at least once).
2. The replay is harmless: each insert carries a deduplication token built from the batch's topic,
   partition and offset range, so ClickHouse drops an identical re-sent batch; and the ReplacingMergeTree
   tables collapse any re-inserted event by its natural key, so FINAL reads see each event once.
3. Records that fail their contract become raw_dead_letters rows with the reason; they are never dropped.
   While ClickHouse cannot be reached, the batch waits in memory, uncommitted, and is retried with backoff
   (the same dedup tokens, so a batch that reached the server before the connection broke is not doubled);
   a bounded run (`max_seconds`: a Dagster materialization) raises once its time is up.
   An outage longer than the consumer's max.poll.interval.ms (5 min) costs the group membership: the commit
   then fails, the service exits and its restart reads the batch again from the committed offsets.
4. A deletion request erases the learner's rows in every learner table, and rows that arrive later for a
   learner who asked for deletion are not inserted.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from speech_coach.contracts import ContractError, LearnerDeletionRequest, Topic, decode, without_operational_ids
from speech_coach.kafka import consumer_config, consumer_lag, ensure_topics, topic_name
from speech_coach.logging import get_logger
from speech_coach.privacy import require_private_key
from speech_coach.settings import Settings
from warehouse.client import connect, insert
from warehouse.rows import LEARNER_TABLES, rows_for

log = get_logger(__name__)

RECORDS = Counter("speech_coach_ingest_records_total", "Kafka records ingested", ["topic"])
ROWS = Counter("speech_coach_ingest_rows_total", "Rows inserted into the raw tables", ["table"])
DEAD_LETTERS = Counter(
    "speech_coach_ingest_dead_letters_total", "Records that failed their contract, kept as dead letters", ["topic"]
)
BATCH_SECONDS = Histogram(
    "speech_coach_ingest_batch_seconds", "Time to insert and commit one batch", buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5)
)
LAST_BATCH = Gauge("speech_coach_ingest_last_batch_timestamp_seconds", "When the last batch was committed")
LAG = Gauge("speech_coach_ingest_lag_records", "Records not yet ingested", ["topic", "partition"])
RETRIES = Counter("speech_coach_ingest_batch_retries_total", "Batches retried because ClickHouse was unreachable")

# ClickHouse down, restarting or unreachable: worth waiting for. Anything else (a bad query) is a bug and raises.
UNREACHABLE = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, ConnectionError, OSError)
RETRY_MAX_S = 10.0


@dataclass
class IngestStats:
    messages: int = 0
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_letters: int = 0
    deleted_learners: int = 0
    skipped_deleted: int = 0
    batches: int = 0

    def merge(self, other: IngestStats) -> None:
        self.messages += other.messages
        for table, n in other.rows.items():
            self.rows[table] += n
        self.dead_letters += other.dead_letters
        self.deleted_learners += other.deleted_learners
        self.skipped_deleted += other.skipped_deleted
        self.batches += other.batches


def _dead_letter_row(msg: Message, exc: ContractError) -> dict[str, Any]:
    # As every dead letter: without a raw answer's Telegram ids, and erasable with the learner it names.
    payload, learner = without_operational_ids(msg.value() or b"")
    return {
        "source_topic": msg.topic(),
        "source_partition": msg.partition(),
        "source_offset": msg.offset(),
        "stage": "warehouse.ingest",
        "reason": exc.reason,
        "detail": str(exc)[:4000],
        "answer_id": None,
        "learner_id": learner,
        "payload_b64": base64.b64encode(payload).decode(),
        "failed_at": datetime.now(UTC),
        "event_id": f"ingest:{msg.topic()}:{msg.partition()}:{msg.offset()}",
    }


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        client: Client | None = None,
        topics: Iterable[Topic] = tuple(Topic),
        group_id: str | None = None,
    ) -> None:
        require_private_key(settings, "ingestion")
        self.settings = settings
        self.client = client or connect(settings)
        self.topics = {topic_name(settings, t): t for t in topics}
        ensure_topics(settings, self.topics.values())
        self.group_id = group_id or settings.warehouse.ingest_group_id
        self.consumer = Consumer(consumer_config(settings, self.group_id, **{"log_level": 3}))
        self.assigned_at: float | None = None
        self.consumer.subscribe(list(self.topics), on_assign=self._on_assign)

    def _on_assign(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(
        self,
        *,
        until_idle_s: float | None = 5.0,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
        on_poll: Callable[[], None] | None = None,
    ) -> IngestStats:
        """Ingest batches until nothing arrived for `until_idle_s` (None: forever), `max_seconds` passed or
        `stop` is set. `on_poll` runs after every poll, so a service can report liveness."""
        total = IngestStats()
        started = last_data = time.monotonic()
        while stop is None or not stop.is_set():
            messages = self.consumer.consume(
                num_messages=self.settings.warehouse.ingest_batch_size,
                timeout=self.settings.warehouse.ingest_batch_timeout_s,
            )
            now = time.monotonic()
            if on_poll is not None:
                on_poll()
            if messages:
                deadline = None if max_seconds is None else started + max_seconds
                stats = self._process_until_stored(messages, stop, on_poll, deadline)
                if stats is None:  # stopped while ClickHouse was away: uncommitted, so the batch is read again
                    return total
                total.merge(stats)
                last_data = now = time.monotonic()
            elif self.assigned_at is None or self.assigned_at > last_data:
                # Idle time counts only once the group has handed us partitions.
                last_data = self.assigned_at or now
            if until_idle_s is not None and now - last_data >= until_idle_s:
                return total
            if max_seconds is not None and now - started >= max_seconds:
                return total
        return total

    def _process_until_stored(
        self,
        messages: Sequence[Message],
        stop: threading.Event | None,
        on_poll: Callable[[], None] | None,
        deadline: float | None,
    ) -> IngestStats | None:
        """Process the batch, retrying while ClickHouse is unreachable; None if `stop` was set meanwhile. Past
        `deadline` (a bounded run, such as a Dagster materialization) the error is raised: the run fails visibly."""
        delay = 0.5
        while True:
            try:
                return self.process(messages)
            except UNREACHABLE as exc:
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                RETRIES.inc()
                log.warning("warehouse.clickhouse_unreachable", error=str(exc)[:200], retry_in_s=delay)
                self.client.disconnect()  # the next attempt opens a fresh connection
            if on_poll is not None:
                on_poll()  # waiting for ClickHouse is not a stuck loop; /readyz reports ClickHouse down
            if stop is not None:
                if stop.wait(delay):
                    return None
            else:
                time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def process(self, messages: Sequence[Message]) -> IngestStats:
        with BATCH_SECONDS.time():
            stats = self._process(messages)
        LAST_BATCH.set_to_current_time()
        return stats

    def _process(self, messages: Sequence[Message]) -> IngestStats:
        stats = IngestStats(batches=1)
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        ranges: dict[str, dict[tuple[str, int], list[int]]] = defaultdict(dict)
        deletions: list[str] = []
        for msg in messages:
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            stats.messages += 1
            RECORDS.labels(msg.topic()).inc()
            meta = {"_topic": msg.topic(), "_partition": msg.partition(), "_offset": msg.offset()}
            topic = self.topics[msg.topic()]
            try:
                event = decode(topic, msg.value() or b"")
                rows = rows_for(topic, event)
                if isinstance(event, LearnerDeletionRequest):
                    deletions.append(event.learner_id)
            except ContractError as exc:
                log.warning("warehouse.dead_letter", topic=msg.topic(), offset=msg.offset(), reason=exc.reason)
                rows = [("raw_dead_letters", _dead_letter_row(msg, exc))]
                stats.dead_letters += 1
                DEAD_LETTERS.labels(msg.topic()).inc()
            for table, row in rows:
                by_table[table].append(row | meta)
                span = ranges[table].setdefault((msg.topic(), msg.partition()), [msg.offset(), msg.offset()])
                span[0], span[1] = min(span[0], msg.offset()), max(span[1], msg.offset())

        erased = self._erased_learners(by_table, deletions)
        for table, rows in by_table.items():
            if table in LEARNER_TABLES and erased:
                kept = [r for r in rows if r.get("learner_id") not in erased]
                stats.skipped_deleted += len(rows) - len(kept)
                rows = kept
            token = hashlib.sha256(repr(sorted(ranges[table].items())).encode()).hexdigest()
            inserted = insert(self.client, table, rows, dedup_token=f"{table}:{token}")
            stats.rows[table] += inserted
            ROWS.labels(table).inc(inserted)
        if deletions:
            self.erase(deletions)
            stats.deleted_learners += len(set(deletions))
        self.commit()
        return stats

    def commit(self) -> None:
        # Only once the batch is safely in ClickHouse.
        self.consumer.commit(asynchronous=False)

    def _erased_learners(self, by_table: dict[str, list[dict[str, Any]]], deletions: list[str]) -> set[str]:
        learners = {
            r["learner_id"] for t, rows in by_table.items() if t in LEARNER_TABLES for r in rows if r.get("learner_id")
        }  # a dead letter may name no learner
        if not learners:
            return set(deletions)
        known = self.client.execute(
            "SELECT DISTINCT learner_id FROM raw_deletion_requests WHERE learner_id IN %(ids)s",
            {"ids": tuple(learners)},
        )
        return {row[0] for row in known} | set(deletions)

    def erase(self, learner_ids: Iterable[str]) -> None:
        ids = tuple(sorted(set(learner_ids)))
        for table in LEARNER_TABLES:
            self.client.execute(f"DELETE FROM `{table}` WHERE learner_id IN %(ids)s", {"ids": ids})
        log.info("warehouse.learners_erased", count=len(ids))

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet ingested, per topic and partition (also published as a gauge)."""
        lag = consumer_lag(self.settings, self.group_id, self.topics.values())
        for (topic, partition), n in lag.items():
            LAG.labels(topic, str(partition)).set(n)
        return lag
