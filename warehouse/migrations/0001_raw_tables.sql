-- Raw tables: one per Kafka topic, filled by warehouse ingestion (warehouse/ingest.py).
-- ReplacingMergeTree on the event's natural key makes a replayed event replace, never duplicate; readers
-- use FINAL (or dbt staging's dedup). The `non_replicated_deduplication_window` lets ClickHouse drop a
-- re-sent batch outright when it carries the same insert_deduplication_token (topic, partition, offsets).
-- No Telegram ids, names or usernames are stored here: learners appear by internal id only.

CREATE TABLE IF NOT EXISTS raw_answers
(
    answer_id String,
    learner_id String,
    question_id String,
    track LowCardinality(String),
    task_type LowCardinality(String),
    interface_language LowCardinality(String),
    speaking_time_s UInt16,
    question_sent_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    audio_bucket String,
    audio_key String,
    audio_sha256 String,
    mime_type LowCardinality(String),
    size_bytes UInt64,
    duration_s Float32,
    transcription_temperature Float32,
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY answer_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS raw_feedback
(
    answer_id String,
    learner_id String,
    question_id String,
    track LowCardinality(String),
    task_type LowCardinality(String),
    status LowCardinality(String),
    rejection_reason LowCardinality(String),
    interface_language LowCardinality(String),
    transcript String,
    rubric_criteria Array(String),
    rubric_scores Array(Float32),
    rubric_max_scores Array(Float32),
    overall_score Nullable(Float32),
    feedback String,
    strengths Array(String),
    suggestions Array(String),
    improved_answer String,
    words_per_minute Nullable(Float32),
    pause_count Nullable(UInt32),
    mean_pause_s Nullable(Float32),
    lexical_diversity Nullable(Float32),
    transcription_engine LowCardinality(String),
    transcription_model LowCardinality(String),
    feedback_engine LowCardinality(String),
    feedback_model LowCardinality(String),
    prompt_version LowCardinality(String),
    scale LowCardinality(String),
    fallback UInt8,
    answered_at DateTime64(3, 'UTC'),
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
PARTITION BY toYYYYMM(answered_at)
ORDER BY answer_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS raw_answer_metrics
(
    answer_id String,
    learner_id String,
    question_id String,
    task_type LowCardinality(String),
    answered_at DateTime64(3, 'UTC'),
    total_duration_s Float32,
    speech_duration_s Float32,
    speaking_rate_wpm Float32,
    articulation_rate_wpm Float32,
    silent_pause_count UInt32,
    mean_silent_pause_s Float32,
    mean_length_of_run_words Float32,
    filled_pause_count UInt32,
    time_to_answer_s Nullable(Float32),
    tokens UInt32,
    types UInt32,
    ttr Float32,
    root_ttr Float32,
    mattr Float32,
    mtld Float32,
    hdd Float32,
    mean_zipf Float32,
    rare_word_share Float32,
    overall_score Nullable(Float32),
    lemmas Map(String, UInt32),
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
PARTITION BY toYYYYMM(answered_at)
ORDER BY answer_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS raw_windowed_metrics
(
    learner_id String,
    window_kind LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    answer_count UInt32,
    pooled_ttr Float32,
    pooled_mattr Float32,
    pooled_mtld Float32,
    mean_score Nullable(Float32),
    mean_speaking_rate_wpm Float32,
    mean_time_to_answer_s Nullable(Float32),
    event_id String,
    occurred_at DateTime64(3, 'UTC'),
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
ORDER BY (learner_id, window_kind, window_start)
SETTINGS non_replicated_deduplication_window = 10000;

-- Word counts: one row per word of a learner's active vocabulary in a window.
CREATE TABLE IF NOT EXISTS raw_word_counts
(
    learner_id String,
    window_kind LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    word String,
    frequency UInt32,
    event_id String,
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
ORDER BY (learner_id, window_kind, window_start, word)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS raw_deletion_requests
(
    learner_id String,
    requested_at DateTime64(3, 'UTC'),
    event_id String,
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
ORDER BY learner_id;

-- Records that failed their contract, from the dead-letter topic or from ingestion itself.
CREATE TABLE IF NOT EXISTS raw_dead_letters
(
    source_topic LowCardinality(String),
    source_partition Nullable(UInt32),
    source_offset Nullable(UInt64),
    stage LowCardinality(String),
    reason LowCardinality(String),
    detail String,
    answer_id Nullable(String),
    payload_b64 String,
    failed_at DateTime64(3, 'UTC'),
    event_id String,
    _topic LowCardinality(String),
    _partition UInt32,
    _offset UInt64,
    _ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_ingested_at)
ORDER BY (_topic, _partition, _offset, source_topic, ifNull(source_partition, 0), ifNull(source_offset, 0))
SETTINGS non_replicated_deduplication_window = 10000, allow_nullable_key = 1;
