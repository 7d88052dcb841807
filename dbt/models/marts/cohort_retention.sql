-- Sign-up cohorts by month: the share of each cohort that answered at least once N months after signing up.
with activity as (
    select distinct
        learner_id,
        assumeNotNull(cohort_month) as cohort_month,
        dateDiff('month', cohort_month, answered_month) as months_since_signup
    from {{ ref('int_answers_enriched') }}
    where cohort_month is not null
),
cohorts as (
    select cohort_month, count() as cohort_size
    from {{ ref('stg_learners') }}
    group by cohort_month
)
select
    a.cohort_month as cohort_month,
    a.months_since_signup as months_since_signup,
    c.cohort_size as cohort_size,
    uniqExact(a.learner_id) as active_learners,
    active_learners / c.cohort_size as retention
from activity as a
inner join cohorts as c on c.cohort_month = a.cohort_month
where a.months_since_signup >= 0
group by a.cohort_month, a.months_since_signup, c.cohort_size
