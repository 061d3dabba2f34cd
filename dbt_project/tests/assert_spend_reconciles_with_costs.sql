{#- Money check: per (connection, date) and in total, the spend marts hold exactly the cost
    amounts of the latest recorded syncs (stg_openai__costs), to 1e-6 USD, and
    fct_spend_daily holds every staged cost row once. Fails if a row is dropped or doubled.
    Scoped to the sync window when window vars are set: that is what the run rebuilt. -#}
{#- meta.dagster.ref: dagster-dbt shows this multi-model test as an asset check of fct_spend_daily -#}
{{ config(meta={'dagster': {'ref': {'name': 'fct_spend_daily'}}}) }}
{%- set tolerance = 0.000001 -%}

with staged as (

    select connection, date, 'costs' as relation, cost_usd, 1 as source_rows
    from {{ ref('stg_openai__costs') }}
    where {{ in_sync_window('date', 'connection') }}

),

spend_daily as (

    select connection, date, 'spend_daily' as relation, cost_usd, source_row_count as source_rows
    from {{ ref('fct_spend_daily') }}
    where {{ in_sync_window('date', 'connection') }}

),

model_spend_daily as (

    select connection, date, 'model_spend_daily' as relation, cost_usd, 0 as source_rows
    from {{ ref('fct_model_spend_daily') }}
    where {{ in_sync_window('date', 'connection') }}

),

unioned as (

    select * from staged
    union all
    select * from spend_daily
    union all
    select * from model_spend_daily

),

per_day as (

    select
        connection,
        cast(date as varchar) as date,
        coalesce(sum(cost_usd) filter (where relation = 'costs'), 0) as staged_cost_usd,
        coalesce(sum(cost_usd) filter (where relation = 'spend_daily'), 0) as spend_daily_cost_usd,
        coalesce(sum(cost_usd) filter (where relation = 'model_spend_daily'), 0) as model_spend_daily_cost_usd,
        coalesce(sum(source_rows) filter (where relation = 'costs'), 0) as staged_rows,
        coalesce(sum(source_rows) filter (where relation = 'spend_daily'), 0) as spend_daily_source_rows
    from unioned
    group by connection, date

),

total as (

    select
        'all connections' as connection,
        'all dates' as date,
        sum(staged_cost_usd) as staged_cost_usd,
        sum(spend_daily_cost_usd) as spend_daily_cost_usd,
        sum(model_spend_daily_cost_usd) as model_spend_daily_cost_usd,
        sum(staged_rows) as staged_rows,
        sum(spend_daily_source_rows) as spend_daily_source_rows
    from per_day

),

checked as (

    select * from per_day
    union all
    select * from total

)

select *
from checked
where abs(staged_cost_usd - spend_daily_cost_usd) > {{ tolerance }}
    or abs(staged_cost_usd - model_spend_daily_cost_usd) > {{ tolerance }}
    or staged_rows != spend_daily_source_rows
