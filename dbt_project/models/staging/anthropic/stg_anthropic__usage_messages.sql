with source as (

    {{ latest_snapshot('usage_messages', 'raw_anthropic') }}

),

renamed as (

    select
        {{ bucket_key_columns('anthropic') }}
        workspace_id,
        api_key_id,
        model,
        service_tier,
        context_window,
        inference_geo,
        cast(uncached_input_tokens as bigint) as uncached_input_tokens,
        cast(cache_read_input_tokens as bigint) as cache_read_input_tokens,
        cast(cache_creation__ephemeral_1h_input_tokens as bigint) as cache_creation_1h_input_tokens,
        cast(cache_creation__ephemeral_5m_input_tokens as bigint) as cache_creation_5m_input_tokens,
        cast(output_tokens as bigint) as output_tokens,
        cast(server_tool_use__web_search_requests as bigint) as web_search_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
