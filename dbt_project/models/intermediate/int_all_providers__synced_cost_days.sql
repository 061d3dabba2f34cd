{#- Every (provider, connection, day) whose costs a sync committed (its commit marker), with the
    latest sync's is_final: the days the daily rollups must have a row for, $0 or not. -#}

select
    provider,
    connection,
    date,
    is_final,
    sync_id,
    loaded_at
from {{ ref('stg_openai__synced_days') }}
where resource = 'costs'

union all

select
    provider,
    connection,
    date,
    is_final,
    sync_id,
    loaded_at
from {{ ref('stg_anthropic__synced_days') }}
where resource = 'cost_report'
