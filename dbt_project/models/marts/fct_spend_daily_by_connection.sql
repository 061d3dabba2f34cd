{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

{#- One row per connection and synced day, $0 on days without spend, so a chart of daily spend
    has no holes. The days are the commit markers of the costs syncs: a day nobody synced has
    no row (it is a gap to sync, not $0). -#}

with synced_days as (

    select * from {{ ref('int_all_providers__synced_cost_days') }}
    {{ where_in_sync_window('date', 'connection') }}

),

spend as (

    select
        provider,
        connection,
        date,
        sum(cost_usd) as cost_usd,
        sum(cost_usd) filter (where model is not null) as model_cost_usd,
        sum(source_row_count) as cost_rows
    from {{ ref('fct_spend_daily') }}
    {{ where_in_sync_window('date', 'connection') }}
    group by provider, connection, date

),

final as (

    select
        synced_days.provider,
        synced_days.connection,
        synced_days.date,
        coalesce(spend.cost_usd, 0) as cost_usd,
        coalesce(spend.model_cost_usd, 0) as model_cost_usd,
        coalesce(spend.cost_usd, 0) - coalesce(spend.model_cost_usd, 0) as non_model_cost_usd,
        cast(coalesce(spend.cost_rows, 0) as bigint) as cost_rows,
        synced_days.is_final,
        synced_days.loaded_at
    from synced_days
    left join spend
        on
            synced_days.provider = spend.provider
            and synced_days.connection = spend.connection
            and synced_days.date = spend.date

)

select * from final
