{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

with line_items as (

    select * from {{ ref('int_all_providers__cost_line_items') }}
    {{ where_in_sync_window('date', 'connection') }}

),

final as (

    -- the API can return the same line item twice for one project/key/day; sum them
    select
        provider,
        connection,
        date,
        project_id,
        api_key_id,
        line_item,
        product,
        model,
        sku,
        charge_type,
        line_item_shape,
        -- Anthropic's (its line item, the cost report's description, implies them); null for OpenAI
        min(service_tier) as service_tier,
        min(context_window) as context_window,
        min(inference_geo) as inference_geo,
        coalesce(sum(cost_usd), 0) as cost_usd,
        sum(quantity) as quantity,
        min(quantity_unit) as quantity_unit,
        min(currency) as currency,
        bool_and(is_final) as is_final,
        count(*) as source_row_count,
        max(loaded_at) as loaded_at
    from line_items
    group by all  -- the grain and the attributes parsed from the line item

)

select * from final
