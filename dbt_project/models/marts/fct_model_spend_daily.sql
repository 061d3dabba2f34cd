{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

with line_items as (

    select * from {{ ref('int_openai__cost_line_items') }}
    {{ where_in_sync_window('date', 'connection') }}

),

completions as (

    select * from {{ ref('stg_openai__usage_completions') }}
    {{ where_in_sync_window('date', 'connection') }}

),

cost_by_model as (

    -- model is null for non-model spend (file search, storage, unknown line items): kept, so
    -- this table's total equals total spend
    select
        provider,
        connection,
        date,
        project_id,
        model,
        sum(cost_usd) as cost_usd,
        bool_and(is_final) as is_final
    from line_items
    group by provider, connection, date, project_id, model

),

usage_by_model as (

    select
        provider,
        connection,
        date,
        project_id,
        model,
        cast(sum(input_tokens) as bigint) as input_tokens,
        cast(sum(output_tokens) as bigint) as output_tokens,
        cast(sum(input_cached_tokens) as bigint) as input_cached_tokens,
        cast(sum(num_model_requests) as bigint) as num_model_requests,
        bool_and(is_final) as is_final
    from completions
    group by provider, connection, date, project_id, model

),

joined as (

    select
        coalesce(cost.provider, usage.provider) as provider,
        coalesce(cost.connection, usage.connection) as connection,
        coalesce(cost.date, usage.date) as date,
        coalesce(cost.project_id, usage.project_id) as project_id,
        coalesce(cost.model, usage.model) as model,
        coalesce(cost.cost_usd, 0) as cost_usd,
        coalesce(usage.input_tokens, 0) as input_tokens,
        coalesce(usage.output_tokens, 0) as output_tokens,
        coalesce(usage.input_cached_tokens, 0) as input_cached_tokens,
        coalesce(usage.num_model_requests, 0) as num_model_requests,
        cost.connection is not null as has_cost_data,
        usage.connection is not null as has_usage_data,
        coalesce(cost.is_final, true) and coalesce(usage.is_final, true) as is_final
    from cost_by_model as cost
    -- neither side drops: costs without usage (non-model spend, fine-tunes named differently)
    -- and usage without costs (free tiers, not yet billed) both stay
    full outer join usage_by_model as usage
        on cost.provider = usage.provider
        and cost.connection = usage.connection
        and cost.date = usage.date
        and cost.project_id is not distinct from usage.project_id
        and cost.model is not distinct from usage.model

),

final as (

    select
        *,
        case
            when has_cost_data and input_tokens + output_tokens > 0
                then cost_usd / (input_tokens + output_tokens) * 1000000
        end as cost_per_1m_tokens
    from joined

)

select * from final
