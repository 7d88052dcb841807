-- Population curves: how lexical measures develop with practice, by the learner's answer number
-- (capped at 200 so the long tail of very active learners is one point), per track.
select
    track,
    least(answer_number, 200) as answer_number,
    count() as answers,
    uniqExact(learner_id) as learners,
    avg(mattr) as mean_mattr,
    quantile(0.25)(mattr) as p25_mattr,
    quantile(0.75)(mattr) as p75_mattr,
    avg(mtld) as mean_mtld,
    avg(hdd) as mean_hdd,
    avg(mean_zipf) as mean_zipf,
    avg(rare_word_share) as mean_rare_word_share,
    avg(normalized_score) as mean_normalized_score
from {{ ref('int_answers_enriched') }}
where status = 'ok'
group by track, answer_number
