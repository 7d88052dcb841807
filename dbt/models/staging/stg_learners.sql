select
    learner_id,
    learner_pseudonym,
    research_consent = 1 as has_research_consent,
    interface_language,
    signed_up_at,
    toStartOfMonth(signed_up_at) as cohort_month
from {{ source('raw', 'raw_learners') }} final
where {{ not_deleted() }}
