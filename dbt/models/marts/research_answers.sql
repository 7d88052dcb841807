{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='answer_id',
    engine='ReplacingMergeTree()',
    order_by=['answer_id'],
    post_hook="delete from {{ this }} where learner_pseudonym not in (select learner_pseudonym from {{ ref('stg_learners') }} where has_research_consent)",
  )
}}
-- The research-ready answer table: consenting learners only, by pseudonym, with no Telegram or internal ids.
-- The post-hook removes learners who withdrew consent or asked for deletion since an earlier run.
select
    answer_id,
    learner_pseudonym,
    question_id,
    track,
    task_type,
    answered_date,
    answered_month,
    answer_number,
    seconds_to_answer,
    duration_s,
    status,
    rejection_reason,
    overall_score,
    scale_max,
    normalized_score,
    is_fallback,
    transcript,
    speaking_rate_wpm,
    articulation_rate_wpm,
    silent_pause_count,
    mean_silent_pause_s,
    filled_pause_count,
    tokens,
    types,
    ttr,
    mattr,
    mtld,
    hdd,
    mean_zipf,
    rare_word_share,
    received_at,
    ingested_at
from {{ ref('int_answers_enriched') }}
where has_research_consent and status is not null
{% if is_incremental() %}
  -- All answers of learners with new data: a late answer renumbers the learner's later answers.
  and learner_id in (
    select learner_id from {{ ref('int_answers_enriched') }}
    where ingested_at > (select max(ingested_at) from {{ this }})
  )
{% endif %}
