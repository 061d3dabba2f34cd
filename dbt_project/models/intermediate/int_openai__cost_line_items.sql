{#- Every cost row of the latest snapshots, its free-text line item parsed (see the
    `parse_line_item` macro for the grammar). -#}

with source as (

    select * from {{ ref('stg_openai__costs') }}

),

parsed as (

    {{ parse_line_item('source') }}

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
        project_id,
        api_key_id,
        line_item,
        product,
        model,
        sku,
        charge_type,
        line_item_shape,
        cost_usd,
        currency,
        quantity,
        quantity_unit,
        organization_id,
        is_final,
        loaded_at,
        dlt_load_id
    from parsed

)

select * from final
