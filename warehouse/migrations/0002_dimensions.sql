-- Dimensions and snapshots loaded by Dagster from the operational database and the question bank.

-- The question bank. Retired questions keep their row (retired_at set) so answer history still joins.
CREATE TABLE IF NOT EXISTS dim_questions
(
    question_id String,
    bank_version String,
    track LowCardinality(String),
    task_type LowCardinality(String),
    title String,
    prompt String,
    preparation_time_s UInt16,
    speaking_time_s UInt16,
    difficulty LowCardinality(String),
    retired_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY question_id;

-- Learners, pseudonymized: the HMAC pseudonym is the only identifier that leaves the warehouse.
CREATE TABLE IF NOT EXISTS raw_learners
(
    learner_id String,
    learner_pseudonym String,
    research_consent UInt8,
    interface_language LowCardinality(String),
    signed_up_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY learner_id;

-- Daily snapshots of the credit ledger, aggregated per learner.
CREATE TABLE IF NOT EXISTS raw_credit_ledger_snapshots
(
    snapshot_date Date,
    learner_id String,
    balance Int64,
    charged UInt64,
    refunded UInt64,
    granted UInt64,
    purchased UInt64,
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (snapshot_date, learner_id);
