{{ config(materialized='view') }}

with spend as (

    select * from {{ ref('fct_spend_daily') }}

),

projects as (

    select * from {{ ref('dim_projects') }}

),

monthly as (

    select
        cast(date_trunc('month', date) as date) as month,
        provider,
        connection,
        project_id,
        sum(cost_usd) as cost_usd,
        count(distinct date) as days_in_data,
        min(date) as first_date,
        max(date) as last_date
    from spend
    group by cast(date_trunc('month', date) as date), provider, connection, project_id

),

final as (

    select
        monthly.month,
        monthly.provider,
        monthly.connection,
        monthly.project_id,
        projects.name as project_name,
        projects.status as project_status,
        monthly.cost_usd,
        monthly.days_in_data,
        monthly.first_date,
        monthly.last_date,
        monthly.month = cast(date_trunc('month', {{ utc_today() }}) as date) as is_month_to_date
    from monthly
    left join projects
        on
            monthly.provider = projects.provider
            and monthly.connection = projects.connection
            and monthly.project_id = projects.project_id

)

select * from final
