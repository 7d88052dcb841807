select learner_id, window_kind, window_start, window_end, word, frequency
from {{ source('raw', 'raw_word_counts') }} final
where {{ not_deleted() }}
