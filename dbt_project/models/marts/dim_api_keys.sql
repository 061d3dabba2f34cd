with listed_keys as (

    select
        *,
        cast(null as varchar) as listed_status
    from {{ ref('stg_openai__project_api_keys') }}

    union all by name

    select * from {{ ref('int_anthropic__api_keys') }}

),

seen_keys as (

    -- every key costs or usage attribute spend to, with a project it was seen in
    select
        provider,
        connection,
        api_key_id,
        min(project_id) as project_id
    from (
        select
            provider,
            connection,
            api_key_id,
            project_id
        from {{ ref('int_all_providers__cost_line_items') }}
        where api_key_id is not null

        union all

        select
            provider,
            connection,
            api_key_id,
            project_id
        from {{ ref('int_all_providers__usage_by_endpoint') }}
        where api_key_id is not null
    ) as seen
    group by provider, connection, api_key_id

),

never_listed_keys as (

    -- spent through, but no listing returns it: deleted before Stax first listed the keys
    select seen_keys.*
    from seen_keys
    anti join listed_keys
        on
            seen_keys.provider = listed_keys.provider
            and seen_keys.connection = listed_keys.connection
            and seen_keys.api_key_id = listed_keys.api_key_id

),

final as (

    select
        provider,
        connection,
        api_key_id,
        case when is_listed then name else '(deleted key)' end as name,
        redacted_value,
        project_id,
        owner_type,
        owner_name,
        created_at,
        last_used_at,
        is_listed,
        -- Anthropic's listing says active, inactive or archived; OpenAI lists active keys only
        case when is_listed then coalesce(listed_status, 'active') else 'deleted' end as status,
        name as last_listed_name,
        loaded_at as last_listed_at
    from listed_keys

    union all

    select
        provider,
        connection,
        api_key_id,
        '(deleted key)' as name,
        cast(null as varchar) as redacted_value,
        project_id,
        cast(null as varchar) as owner_type,
        cast(null as varchar) as owner_name,
        cast(null as timestamp with time zone) as created_at,
        cast(null as timestamp with time zone) as last_used_at,
        false as is_listed,
        'deleted' as status,
        cast(null as varchar) as last_listed_name,
        cast(null as timestamp with time zone) as last_listed_at
    from never_listed_keys

)

select * from final
