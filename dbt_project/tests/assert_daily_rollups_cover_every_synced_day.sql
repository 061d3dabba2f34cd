{#- No missing days: fct_spend_daily_by_connection has exactly one row for every day a costs sync
    committed (every provider's sync_windows, via int_all_providers__synced_cost_days), $0 or not, and
    fct_spend_daily_by_project has every such day on which a project of the connection was alive
    (created, not yet archived) or money was spent. Scoped to the sync window when window vars are
    set. -#}
{{ config(meta={'dagster': {'ref': {'name': 'fct_spend_daily_by_connection'}}}) }}

with synced_days as (

    select provider, connection, date
    from {{ ref('int_all_providers__synced_cost_days') }}
    where {{ in_sync_window('date', 'connection') }}

),

by_connection as (

    select connection, date, count(*) as rows_of_day, sum(cost_usd) as cost_usd
    from {{ ref('fct_spend_daily_by_connection') }}
    where {{ in_sync_window('date', 'connection') }}
    group by connection, date

),

by_project as (

    select distinct connection, date
    from {{ ref('fct_spend_daily_by_project') }}
    where {{ in_sync_window('date', 'connection') }}

),

days_with_live_projects as (

    -- a day before a connection's first project was created (or after its last was archived),
    -- with no spend, has no project to put on the spine
    select distinct synced_days.connection, synced_days.date
    from synced_days
    inner join {{ ref('dim_projects') }} as projects
        on synced_days.provider = projects.provider
        and synced_days.connection = projects.connection
    where (projects.created_at is null
        or cast(timezone('UTC', projects.created_at) as date) <= synced_days.date)
    and (projects.archived_at is null
        or cast(timezone('UTC', projects.archived_at) as date) >= synced_days.date)

),

final as (

    select
        coalesce(synced_days.connection, by_connection.connection) as connection,
        coalesce(synced_days.date, by_connection.date) as date,
        synced_days.date is not null as is_synced,
        coalesce(by_connection.rows_of_day, 0) as rows_by_connection,
        by_project.date is not null
            or (days_with_live_projects.date is null and coalesce(by_connection.cost_usd, 0) = 0)
            as has_project_rows
    from synced_days
    full outer join by_connection
        on synced_days.connection = by_connection.connection
        and synced_days.date = by_connection.date
    left join by_project
        on synced_days.connection = by_project.connection
        and synced_days.date = by_project.date
    left join days_with_live_projects
        on synced_days.connection = days_with_live_projects.connection
        and synced_days.date = days_with_live_projects.date

)

select * from final
where not is_synced or rows_by_connection != 1 or not has_project_rows
