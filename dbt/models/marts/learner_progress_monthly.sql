select
    learner_id,
    answered_month as month,
    count() as answers,
    uniqExact(answered_date) as practice_days,
    avg(normalized_score) as mean_normalized_score,
    avg(speaking_rate_wpm) as mean_speaking_rate_wpm,
    avg(mattr) as mean_mattr,
    avg(mtld) as mean_mtld,
    avg(mean_zipf) as mean_zipf
from {{ ref('int_answers_enriched') }}
group by learner_id, answered_month
