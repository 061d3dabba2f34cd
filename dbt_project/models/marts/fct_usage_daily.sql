{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

with usage as (

    select * from {{ ref('int_all_providers__usage_by_endpoint') }}
    {{ where_in_sync_window('date', 'connection') }}

),

final as (

    select
        provider,
        connection,
        date,
        endpoint,
        project_id,
        api_key_id,
        model,
        billed_model,
        cast(sum(num_model_requests) as bigint) as num_model_requests,
        cast(sum(num_requests) as bigint) as num_requests,
        cast(sum(input_tokens) as bigint) as input_tokens,
        cast(sum(output_tokens) as bigint) as output_tokens,
        cast(sum(input_cached_tokens) as bigint) as input_cached_tokens,
        cast(sum(input_cache_write_tokens) as bigint) as input_cache_write_tokens,
        cast(sum(images) as bigint) as images,
        cast(sum(characters) as bigint) as characters,
        sum(seconds) as seconds,
        cast(sum(usage_bytes) as bigint) as usage_bytes,
        cast(sum(num_sessions) as bigint) as num_sessions,
        bool_and(is_final) as is_final
    from usage
    group by provider, connection, date, endpoint, project_id, api_key_id, model, billed_model

)

select * from final
