with projects as (

    select * from {{ ref('int_all_providers__projects') }}

),

seen_projects as (

    select
        provider,
        connection,
        project_id
    from {{ ref('int_all_providers__cost_line_items') }}
    where project_id is not null

    union

    select
        provider,
        connection,
        project_id
    from {{ ref('int_all_providers__usage_by_endpoint') }}
    where project_id is not null

),

unlisted_projects as (

    -- spend or usage for a project the projects list does not return (deleted, or listed
    -- under another key): a row anyway, so BI joins on project_id never drop spend
    select seen_projects.*
    from seen_projects
    anti join projects
        on
            seen_projects.provider = projects.provider
            and seen_projects.connection = projects.connection
            and seen_projects.project_id = projects.project_id

),

final as (

    select
        provider,
        connection,
        project_id,
        name,
        status,
        created_at,
        archived_at,
        true as is_listed
    from projects

    union all

    select
        provider,
        connection,
        project_id,
        cast(null as varchar) as name,
        'unknown' as status,
        cast(null as timestamp with time zone) as created_at,
        cast(null as timestamp with time zone) as archived_at,
        false as is_listed
    from unlisted_projects

)

select * from final
