-- Empirical difficulty: the score distribution per question, and its rank within its task type.
with per_question as (
    select
        question_id,
        any(track) as track,
        any(task_type) as task_type,
        any(question_difficulty) as declared_difficulty,
        count() as answers,
        countIf(status = 'rejected') / count() as rejection_rate,
        avg(normalized_score) as mean_normalized_score,
        quantile(0.1)(normalized_score) as p10_normalized_score,
        quantile(0.5)(normalized_score) as median_normalized_score,
        quantile(0.9)(normalized_score) as p90_normalized_score,
        stddevPop(normalized_score) as sd_normalized_score
    from {{ ref('int_answers_enriched') }}
    group by question_id
)
select
    *,
    percent_rank() over (partition by task_type order by mean_normalized_score desc) as difficulty_percentile
from per_question
