with source as (

    {{ latest_snapshot('costs') }}

),

renamed as (

    select
        'openai' as provider,
        connection,
        date,
        bucket_start_time,
        bucket_end_time,
        to_timestamp(bucket_start_time) as bucket_start_at,
        to_timestamp(bucket_end_time) as bucket_end_at,
        project_id,
        api_key_id,
        line_item,
        -- amount.value as the API returned it; spend is never derived from tokens
        cast(amount__value as double) as cost_usd,
        lower(amount__currency) as currency,
        cast(quantity as double) as quantity,
        quantity_unit,
        organization_id,
        is_final,
        loaded_at,
        _dlt_load_id as dlt_load_id,
        _dlt_id as dlt_id
    from source

)

select * from renamed
