select
    answer_id,
    learner_id,
    answered_at,
    total_duration_s,
    speech_duration_s,
    speaking_rate_wpm,
    articulation_rate_wpm,
    silent_pause_count,
    mean_silent_pause_s,
    mean_length_of_run_words,
    filled_pause_count,
    time_to_answer_s,
    tokens,
    types,
    ttr,
    root_ttr,
    mattr,
    mtld,
    hdd,
    mean_zipf,
    rare_word_share
from {{ source('raw', 'raw_answer_metrics') }} final
where {{ not_deleted() }}
