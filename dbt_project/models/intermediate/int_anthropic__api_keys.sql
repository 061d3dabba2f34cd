{#- Anthropic API keys in the shape of stg_openai__project_api_keys, so dim_api_keys can union the
    providers: a key's workspace is its project ('default' for the default workspace), its
    partial hint the redacted value, its creator the owner (id and type; the listing gives no
    name). A key the latest listing did not return again is no longer listed. -#}

with keys as (

    select * from {{ ref('stg_anthropic__api_keys') }}

),

final as (

    select
        provider,
        connection,
        api_key_id,
        coalesce(workspace_id, {{ anthropic_default_workspace_id() }}) as project_id,
        name,
        partial_key_hint as redacted_value,
        created_by_type as owner_type,
        created_by_id as owner_id,
        cast(null as varchar) as owner_name,
        created_at,
        cast(null as timestamp with time zone) as last_used_at,
        loaded_at >= max(loaded_at) over (partition by connection) as is_listed,
        status as listed_status,
        loaded_at
    from keys

)

select * from final
