-- Dead letters name the learner they are about (DeadLetter.learner_id), so a learner's erasure reaches them too;
-- their payloads no longer carry a raw answer's Telegram ids. Rows written before this keep theirs: see
-- docs/reliability.md (known limits) for the one-off scrub.
ALTER TABLE raw_dead_letters ADD COLUMN IF NOT EXISTS learner_id Nullable(String) AFTER answer_id;
