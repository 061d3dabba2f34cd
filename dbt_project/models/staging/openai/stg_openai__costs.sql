with source as (

    {{ latest_snapshot('costs') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
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
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
