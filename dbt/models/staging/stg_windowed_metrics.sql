-- Every window metric, as the contract defines it (WindowedMetrics).
select {{ contract_columns('raw_windowed_metrics') }}
from {{ source('raw', 'raw_windowed_metrics') }} final
where {{ not_deleted() }}
