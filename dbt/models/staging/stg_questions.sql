select
    question_id,
    bank_version,
    track,
    task_type,
    title,
    preparation_time_s,
    speaking_time_s,
    difficulty,
    retired_at,
    retired_at is not null as is_retired
from {{ source('raw', 'dim_questions') }} final
