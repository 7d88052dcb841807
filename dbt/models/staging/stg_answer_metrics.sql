-- Every per-answer metric, as the contract defines it (AnswerMetrics); the question, task and score come from
-- stg_answers and stg_feedback.
select {{ contract_columns('raw_answer_metrics', except=['question_id', 'task_type', 'overall_score', 'lemmas']) }}
from {{ source('raw', 'raw_answer_metrics') }} final
where {{ not_deleted() }}
