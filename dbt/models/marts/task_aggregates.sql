select
    track,
    task_type,
    answered_month as month,
    count() as answers,
    uniqExact(learner_id) as learners,
    avg(normalized_score) as mean_normalized_score,
    avg(speaking_rate_wpm) as mean_speaking_rate_wpm,
    avg(duration_s / speaking_time_s) as mean_time_used_share,
    countIf(status = 'rejected') / count() as rejection_rate,
    countIf(is_fallback) / count() as fallback_rate
from {{ ref('int_answers_enriched') }}
group by track, task_type, answered_month
