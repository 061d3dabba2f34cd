{#- Money check: per (connection, date) and in total, every spend mart holds exactly the cost
    amounts of the latest recorded syncs of every provider (int_all_providers__cost_line_items: one row
    per staged cost row of stg_openai__costs and stg_anthropic__cost_report), to 1e-6 USD, and
    fct_spend_daily holds every staged cost row once. Fails if a row is dropped or doubled.
    Scoped to the sync window when window vars are set: that is what the run rebuilt. -#}
{#- meta.dagster.ref: dagster-dbt shows this multi-model test as an asset check of fct_spend_daily -#}
{{ config(meta={'dagster': {'ref': {'name': 'fct_spend_daily'}}}) }}
{%- set tolerance = 0.000001 -%}
{#- every mart whose cost_usd must add up to the costs, with the rows-of-costs column it counts -#}
{%- set marts = {
    'fct_spend_daily': 'source_row_count',
    'fct_model_spend_daily': '0',
    'fct_model_spend_by_api_key_daily': '0',
    'fct_spend_daily_by_connection': 'cost_rows',
    'fct_spend_daily_by_project': 'cost_rows',
} -%}

with staged as (

    select connection, date, 'staged costs' as relation, cost_usd, 1 as source_rows
    from {{ ref('int_all_providers__cost_line_items') }}
    where {{ in_sync_window('date', 'connection') }}

),
{% for mart, rows_column in marts.items() %}
{{ mart }} as (

    select connection, date, '{{ mart }}' as relation, cost_usd, {{ rows_column }} as source_rows
    from {{ ref(mart) }}
    where {{ in_sync_window('date', 'connection') }}

),
{% endfor %}

unioned as (

    select * from staged
    {%- for mart in marts %}
    union all
    select * from {{ mart }}
    {%- endfor %}

),

per_relation_and_day as (

    select
        relation,
        connection,
        cast(date as varchar) as date,
        sum(cost_usd) as cost_usd,
        sum(source_rows) as source_rows
    from unioned
    group by relation, connection, date

),

with_totals as (

    select * from per_relation_and_day
    union all
    select relation, 'all connections', 'all dates', sum(cost_usd), sum(source_rows)
    from per_relation_and_day
    group by relation

),

marts as (

    select * from with_totals where relation != 'staged costs'

),

expected as (

    -- what each mart must hold: the staged costs of every (connection, date)
    select mart_names.relation, staged.connection, staged.date, staged.cost_usd, staged.source_rows
    from (select * from with_totals where relation = 'staged costs') as staged
    cross join (values {% for mart in marts %}('{{ mart }}'){{ ', ' if not loop.last }}{% endfor %}) as mart_names (relation)

),

checked as (

    select
        coalesce(marts.relation, expected.relation) as relation,
        coalesce(marts.connection, expected.connection) as connection,
        coalesce(marts.date, expected.date) as date,
        coalesce(expected.cost_usd, 0) as staged_cost_usd,
        coalesce(marts.cost_usd, 0) as mart_cost_usd,
        coalesce(expected.source_rows, 0) as staged_rows,
        coalesce(marts.source_rows, 0) as mart_source_rows
    from marts
    full outer join expected
        on marts.relation = expected.relation
        and marts.connection = expected.connection
        and marts.date = expected.date

)

select *
from checked
where abs(staged_cost_usd - mart_cost_usd) > {{ tolerance }}
    or (relation in ('fct_spend_daily', 'fct_spend_daily_by_connection', 'fct_spend_daily_by_project')
        and staged_rows != mart_source_rows)
