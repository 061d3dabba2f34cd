{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

{#- Where cost meets usage, per API key. Costs give the dollars by parsed model (or, for spend on
    no model, by product and SKU); every usage endpoint that names a model gives that model's units,
    under the name its line items bill (fine-tunes as `ft-<base>`). The usage columns and the
    endpoints they come from: -#}
{%- set usage_units = {
    'input_tokens': "endpoint in ('completions', 'embeddings', 'moderations', 'messages')",
    'output_tokens': "endpoint in ('completions', 'messages')",
    'input_cached_tokens': "endpoint in ('completions', 'messages')",
    'input_cache_write_tokens': "endpoint in ('completions', 'messages')",
    'images': "endpoint = 'images'",
    'characters': "endpoint = 'audio_speeches'",
    'seconds': "endpoint = 'audio_transcriptions'",
    'web_search_calls': "endpoint = 'web_search_calls'",
    'num_model_requests': "true",
} -%}
{%- set usage_fields = {'web_search_calls': 'num_requests'} -%}

with line_items as (

    select * from {{ ref('int_all_providers__cost_line_items') }}
    {{ where_in_sync_window('date', 'connection') }}

),

usage as (

    select * from {{ ref('int_all_providers__usage_by_endpoint') }}
    where
        endpoint in (
            'completions', 'embeddings', 'moderations', 'images', 'audio_speeches',
            'audio_transcriptions', 'web_search_calls', 'messages'
        )
        {%- if is_incremental() %}
            and {{ in_sync_window('date', 'connection') }}
        {%- endif %}

),

cost_by_item as (

    -- a model's line items (input, output, batch | …, evals | …) add up on its row; spend on
    -- no model keeps its product and SKU; unparsed line items stay, as 'unknown'
    select
        provider,
        connection,
        date,
        project_id,
        api_key_id,
        case line_item_shape when 'model' then 'model' when 'sku' then 'sku' else 'unknown' end
            as spend_category,
        model,
        case when line_item_shape = 'sku' then product end as product,
        case when line_item_shape = 'sku' then sku end as sku,
        sum(cost_usd) as cost_usd,
        bool_and(is_final) as is_final
    from line_items
    group by all

),

usage_by_model as (

    select
        provider,
        connection,
        date,
        project_id,
        api_key_id,
        'model' as spend_category,
        billed_model as model,
        cast(null as varchar) as product,
        cast(null as varchar) as sku,
        {%- for column, endpoints in usage_units.items() %}
            {%- set field = usage_fields.get(column, column) %}
            {{ 'sum(' ~ field ~ ') filter (where ' ~ endpoints ~ ')' if endpoints != 'true' else 'sum(' ~ field ~ ')' }}
                as {{ column }},
        {%- endfor %}
        bool_and(is_final) as is_final
    from usage
    group by all

),

joined as (

    select
        coalesce(cost.provider, usage.provider) as provider,
        coalesce(cost.connection, usage.connection) as connection,
        coalesce(cost.date, usage.date) as date,
        coalesce(cost.project_id, usage.project_id) as project_id,
        coalesce(cost.api_key_id, usage.api_key_id) as api_key_id,
        coalesce(cost.spend_category, usage.spend_category) as spend_category,
        coalesce(cost.model, usage.model) as model,
        cost.product,
        cost.sku,
        coalesce(cost.cost_usd, 0) as cost_usd,
        {%- for column in usage_units %}
            {{ 'cast(coalesce(usage.' ~ column ~ ', 0) as ' ~ ('double' if column == 'seconds' else 'bigint') ~ ')' }}
                as {{ column }},
        {%- endfor %}
        cost.connection is not null as has_cost_data,
        usage.connection is not null as has_usage_data,
        coalesce(cost.is_final, true) and coalesce(usage.is_final, true) as is_final
    from cost_by_item as cost
    -- neither side drops: costs without usage (non-model spend, models usage does not report)
    -- and usage without costs (free moderations, not yet billed) both stay
    full outer join usage_by_model as usage
        on
            cost.provider = usage.provider
            and cost.connection = usage.connection
            and cost.date = usage.date
            and cost.project_id is not distinct from usage.project_id
            and cost.api_key_id is not distinct from usage.api_key_id
            and cost.spend_category = usage.spend_category
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
