{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

with usage as (

    select * from {{ ref('int_openai__usage_by_endpoint') }}
    {% if is_incremental() -%}
    where {{ in_sync_window('date', 'connection') }}
    {%- endif %}

),

final as (

    select
        provider,
        connection,
        date,
        endpoint,
        project_id,
        model,
        sum(num_model_requests) as num_model_requests,
        sum(num_requests) as num_requests,
        sum(input_tokens) as input_tokens,
        sum(output_tokens) as output_tokens,
        sum(input_cached_tokens) as input_cached_tokens,
        sum(images) as images,
        sum(characters) as characters,
        sum(seconds) as seconds,
        sum(usage_bytes) as usage_bytes,
        sum(num_sessions) as num_sessions,
        bool_and(is_final) as is_final
    from usage
    group by provider, connection, date, endpoint, project_id, model

)

select * from final
