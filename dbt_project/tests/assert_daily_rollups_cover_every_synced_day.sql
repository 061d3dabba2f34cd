{#- No missing days: fct_spend_daily_by_connection has exactly one row for every day a costs sync
    committed (every provider's sync_windows, via int_all_providers__synced_cost_days), $0 or not, and
    fct_spend_daily_by_project has every such day too (for a connection with any project). Scoped to the sync window when window vars
    are set. -#}
{{ config(meta={'dagster': {'ref': {'name': 'fct_spend_daily_by_connection'}}}) }}

with synced_days as (

    select connection, date
    from {{ ref('int_all_providers__synced_cost_days') }}
    where {{ in_sync_window('date', 'connection') }}

),

by_connection as (

    select connection, date, count(*) as rows_of_day
    from {{ ref('fct_spend_daily_by_connection') }}
    where {{ in_sync_window('date', 'connection') }}
    group by connection, date

),

by_project as (

    select distinct connection, date
    from {{ ref('fct_spend_daily_by_project') }}
    where {{ in_sync_window('date', 'connection') }}

),

connections_with_projects as (

    select distinct connection from {{ ref('dim_projects') }}

),

final as (

    select
        coalesce(synced_days.connection, by_connection.connection) as connection,
        coalesce(synced_days.date, by_connection.date) as date,
        synced_days.date is not null as is_synced,
        coalesce(by_connection.rows_of_day, 0) as rows_by_connection,
        by_project.date is not null
            or connections_with_projects.connection is null as has_project_rows
    from synced_days
    full outer join by_connection
        on synced_days.connection = by_connection.connection
        and synced_days.date = by_connection.date
    left join by_project
        on synced_days.connection = by_project.connection
        and synced_days.date = by_project.date
    left join connections_with_projects
        on synced_days.connection = connections_with_projects.connection

)

select * from final
where not is_synced or rows_by_connection != 1 or not has_project_rows
