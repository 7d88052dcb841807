select
    answer_id,
    learner_id,
    question_id,
    track,
    task_type,
    interface_language,
    speaking_time_s,
    question_sent_at,
    received_at,
    toDate(received_at) as answered_date,
    dateDiff('millisecond', question_sent_at, received_at) / 1000.0 as seconds_to_answer,
    duration_s,
    size_bytes,
    mime_type,
    _ingested_at as ingested_at
from {{ source('raw', 'raw_answers') }} final
where {{ not_deleted() }}
