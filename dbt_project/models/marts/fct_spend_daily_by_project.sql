{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

{#- One row per connection, synced day and project that existed that day, $0 where the project
    spent nothing; plus a row wherever spend was attributed to a project not alive that day (or
    to none: project_id null), so the total is every dollar. The days are the costs syncs'
    commit markers, as in fct_spend_daily_by_connection. -#}

with synced_days as (

    select * from {{ ref('int_all_providers__synced_cost_days') }}
    {{ where_in_sync_window('date', 'connection') }}

),

projects as (

    select * from {{ ref('dim_projects') }}

),

spend as (

    select
        connection,
        date,
        project_id,
        sum(cost_usd) as cost_usd,
        sum(source_row_count) as cost_rows
    from {{ ref('fct_spend_daily') }}
    {{ where_in_sync_window('date', 'connection') }}
    group by connection, date, project_id

),

live_projects as (

    -- a project is on the spine from the day it was created to the day it was archived;
    -- projects known only from spend have no dates and are on every synced day
    select
        synced_days.connection,
        synced_days.date,
        projects.project_id
    from synced_days
    inner join projects
        on
            synced_days.provider = projects.provider
            and synced_days.connection = projects.connection
    where (
        projects.created_at is null
        or cast(timezone('UTC', projects.created_at) as date) <= synced_days.date
    )
    and (
        projects.archived_at is null
        or cast(timezone('UTC', projects.archived_at) as date) >= synced_days.date
    )

),

spine as (

    select
        connection,
        date,
        project_id
    from live_projects
    union
    select
        connection,
        date,
        project_id
    from spend

),

final as (

    select
        synced_days.provider,
        spine.connection,
        spine.date,
        spine.project_id,
        coalesce(spend.cost_usd, 0) as cost_usd,
        cast(coalesce(spend.cost_rows, 0) as bigint) as cost_rows,
        synced_days.is_final
    from spine
    inner join synced_days
        on
            spine.connection = synced_days.connection
            and spine.date = synced_days.date
    left join spend
        on
            spine.connection = spend.connection
            and spine.date = spend.date
            and spine.project_id is not distinct from spend.project_id

)

select * from final
