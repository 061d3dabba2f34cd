{#- Anthropic's messages usage in the shape of int_openai__usage_by_endpoint, so the marts can
    union the providers. Token columns in the marts' vocabulary: `input_tokens` is every input
    token (uncached + cache reads + cache writes, as OpenAI's input_tokens includes cached ones),
    `input_cached_tokens` the cache reads, `input_cache_write_tokens` the 5-minute and 1-hour
    cache writes, `output_tokens` the output. Web searches are rows of endpoint
    'web_search_calls' (`num_requests`), as OpenAI's are. The report counts no requests:
    `num_model_requests` is null. -#}

with usage as (

    select * from {{ ref('stg_anthropic__usage_messages') }}

),

messages as (

    select
        provider,
        'messages' as endpoint,
        connection,
        date,
        coalesce(workspace_id, {{ anthropic_default_workspace_id() }}) as project_id,
        api_key_id,
        model,
        model as billed_model,
        cast(null as bigint) as num_model_requests,
        cast(null as bigint) as num_requests,
        coalesce(uncached_input_tokens, 0) + coalesce(cache_read_input_tokens, 0)
        + coalesce(cache_creation_1h_input_tokens, 0) + coalesce(cache_creation_5m_input_tokens, 0)
            as input_tokens,
        output_tokens,
        cache_read_input_tokens as input_cached_tokens,
        coalesce(cache_creation_1h_input_tokens, 0) + coalesce(cache_creation_5m_input_tokens, 0)
            as input_cache_write_tokens,
        cast(null as bigint) as images,
        cast(null as bigint) as characters,
        cast(null as double) as seconds,
        cast(null as bigint) as usage_bytes,
        cast(null as bigint) as num_sessions,
        is_final
    from usage

),

web_searches as (

    select
        provider,
        'web_search_calls' as endpoint,
        connection,
        date,
        coalesce(workspace_id, {{ anthropic_default_workspace_id() }}) as project_id,
        api_key_id,
        model,
        model as billed_model,
        cast(null as bigint) as num_model_requests,
        web_search_requests as num_requests,
        cast(null as bigint) as input_tokens,
        cast(null as bigint) as output_tokens,
        cast(null as bigint) as input_cached_tokens,
        cast(null as bigint) as input_cache_write_tokens,
        cast(null as bigint) as images,
        cast(null as bigint) as characters,
        cast(null as double) as seconds,
        cast(null as bigint) as usage_bytes,
        cast(null as bigint) as num_sessions,
        is_final
    from usage
    where web_search_requests > 0

)

select * from messages
union all
select * from web_searches
