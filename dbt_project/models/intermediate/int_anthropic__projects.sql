{#- Anthropic workspaces as projects: every listed workspace, and the default workspace (which
    the reports name with a null workspace_id) under its id 'default' and its name, for every
    Anthropic connection, whether or not the listing returned it. -#}

with workspaces as (

    select * from {{ ref('stg_anthropic__workspaces') }}

),

connections as (

    select distinct
        provider,
        connection
    from workspaces
    union
    select distinct
        provider,
        connection
    from {{ ref('stg_anthropic__synced_days') }}

),

listed as (

    select
        provider,
        connection,
        workspace_id as project_id,
        case
            when workspace_id = {{ anthropic_default_workspace_id() }} then 'Default workspace'
            else name
        end as name,
        case when archived_at is null then 'active' else 'archived' end as status,
        created_at,
        archived_at
    from workspaces

),

default_workspaces as (

    select
        connections.provider,
        connections.connection,
        {{ anthropic_default_workspace_id() }} as project_id,
        'Default workspace' as name,
        'active' as status,
        cast(null as timestamp with time zone) as created_at,
        cast(null as timestamp with time zone) as archived_at
    from connections
    anti join listed
        on
            connections.connection = listed.connection
            and listed.project_id = {{ anthropic_default_workspace_id() }}

)

select * from listed
union all
select * from default_workspaces
