select
    learner_id,
    window_kind,
    window_start,
    window_end,
    answer_count,
    pooled_ttr,
    pooled_mattr,
    pooled_mtld,
    mean_score,
    mean_speaking_rate_wpm,
    mean_time_to_answer_s
from {{ source('raw', 'raw_windowed_metrics') }} final
where {{ not_deleted() }}
