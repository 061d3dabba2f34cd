{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

{#- fct_model_spend_by_api_key_daily summed over API keys: one row per model (its cost beside its
    usage in every unit), per non-model SKU, and per day and project. -#}
{%- set usage_units = [
    'input_tokens', 'output_tokens', 'input_cached_tokens', 'input_cache_write_tokens', 'images',
    'characters', 'seconds', 'web_search_calls', 'num_model_requests',
] -%}

with by_api_key as (

    select * from {{ ref('fct_model_spend_by_api_key_daily') }}
    {{ where_in_sync_window('date', 'connection') }}

),

summed as (

    select
        provider,
        connection,
        date,
        project_id,
        spend_category,
        model,
        product,
        sku,
        sum(cost_usd) as cost_usd,
        {%- for column in usage_units %}
            {{ 'sum(' ~ column ~ ')' if column == 'seconds' else 'cast(sum(' ~ column ~ ') as bigint)' }}
                as {{ column }},
        {%- endfor %}
        bool_or(has_cost_data) as has_cost_data,
        bool_or(has_usage_data) as has_usage_data,
        bool_and(is_final) as is_final
    from by_api_key
    group by provider, connection, date, project_id, spend_category, model, product, sku

),

final as (

    select
        *,
        case
            when has_cost_data and input_tokens + output_tokens > 0
                then cost_usd / (input_tokens + output_tokens) * 1000000
        end as cost_per_1m_tokens
    from summed

)

select * from final
