select {{ contract_columns('raw_word_counts') }}
from {{ source('raw', 'raw_word_counts') }} final
where {{ not_deleted() }}
