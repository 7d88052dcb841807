-- One row per answer with its feedback, metrics, question and learner, and the learner's running answer
-- number (1 = first answer): the base of every mart.
select
    a.answer_id as answer_id,
    a.learner_id as learner_id,
    l.learner_pseudonym as learner_pseudonym,
    l.has_research_consent as has_research_consent,
    l.cohort_month as cohort_month,
    a.question_id as question_id,
    a.track as track,
    a.task_type as task_type,
    q.difficulty as question_difficulty,
    a.received_at as received_at,
    a.ingested_at as ingested_at,
    a.answered_date as answered_date,
    toStartOfMonth(a.received_at) as answered_month,
    a.seconds_to_answer as seconds_to_answer,
    a.duration_s as duration_s,
    a.speaking_time_s as speaking_time_s,
    f.status as status,
    f.rejection_reason as rejection_reason,
    f.overall_score as overall_score,
    f.scale_max as scale_max,
    f.normalized_score as normalized_score,
    f.is_fallback as is_fallback,
    f.transcript as transcript,
    f.feedback_engine as feedback_engine,
    m.speaking_rate_wpm as speaking_rate_wpm,
    m.articulation_rate_wpm as articulation_rate_wpm,
    m.silent_pause_count as silent_pause_count,
    m.mean_silent_pause_s as mean_silent_pause_s,
    m.filled_pause_count as filled_pause_count,
    m.tokens as tokens,
    m.types as types,
    m.ttr as ttr,
    m.mattr as mattr,
    m.mtld as mtld,
    m.hdd as hdd,
    m.mean_zipf as mean_zipf,
    m.rare_word_share as rare_word_share,
    row_number() over (partition by a.learner_id order by a.received_at, a.answer_id) as answer_number
from {{ ref('stg_answers') }} as a
left join {{ ref('stg_feedback') }} as f on f.answer_id = a.answer_id
left join {{ ref('stg_answer_metrics') }} as m on m.answer_id = a.answer_id
left join {{ ref('stg_questions') }} as q on q.question_id = a.question_id
left join {{ ref('stg_learners') }} as l on l.learner_id = a.learner_id
settings join_use_nulls = 1
