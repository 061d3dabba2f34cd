{#- Anthropic's cost rows in the shape of int_openai__cost_line_items, so the marts can union the
    providers. A workspace is a project (the default workspace, null in the reports, is
    'default'); there is no cost per API key; `line_item` is the report's description; token
    types map onto the marts' charge vocabulary: input, cached input, cache write, output.
    Costs of no model (web search, code execution) are SKUs named by their cost_type. -#}

with source as (

    select * from {{ ref('stg_anthropic__cost_report') }}

),

final as (

    select
        provider,
        connection,
        date,
        bucket_start_time,
        bucket_end_time,
        bucket_start_at,
        bucket_end_at,
        coalesce(workspace_id, {{ anthropic_default_workspace_id() }}) as project_id,
        cast(null as varchar) as api_key_id,
        description as line_item,
        cast(null as varchar) as product,
        model,
        case when model is null then cost_type end as sku,
        {{ anthropic_charge_type('token_type') }} as charge_type,
        case
            when model is not null then 'model'
            when cost_type is not null then 'sku'
            else 'unknown'
        end as line_item_shape,
        cost_usd,
        currency,
        cast(null as double) as quantity,
        cast(null as varchar) as quantity_unit,
        cast(null as varchar) as organization_id,
        service_tier,
        context_window,
        inference_geo,
        is_final,
        loaded_at,
        dlt_load_id
    from source

)

select * from final
