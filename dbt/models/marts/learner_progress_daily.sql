{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['learner_id', 'day'],
    engine='ReplacingMergeTree()',
    order_by=['learner_id', 'day'],
    post_hook="delete from {{ this }} where learner_id in (select learner_id from {{ source('raw', 'raw_deletion_requests') }})",
  )
}}
-- Re-runs rebuild only learners with answers ingested since the last run: all their days, because a late
-- answer shifts the running counts of the days after it. Rows of learners who asked for deletion are removed
-- on every run, since an incremental run would not rebuild them.
select
    learner_id,
    answered_date as day,
    count() as answers,
    countIf(status = 'ok') as scored_answers,
    avg(normalized_score) as mean_normalized_score,
    avg(speaking_rate_wpm) as mean_speaking_rate_wpm,
    avg(mattr) as mean_mattr,
    avg(mtld) as mean_mtld,
    avg(seconds_to_answer) as mean_seconds_to_answer,
    max(answer_number) as answers_to_date,
    max(ingested_at) as last_ingested_at
from {{ ref('int_answers_enriched') }}
{% if is_incremental() %}
where learner_id in (
    select learner_id from {{ ref('int_answers_enriched') }}
    where ingested_at > (select max(last_ingested_at) from {{ this }})
)
{% endif %}
group by learner_id, answered_date
