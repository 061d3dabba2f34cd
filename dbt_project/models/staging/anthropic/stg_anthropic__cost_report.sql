with source as (

    {{ latest_snapshot('cost_report', 'raw_anthropic') }}

),

renamed as (

    select
        {{ bucket_key_columns('anthropic') }}
        to_timestamp(bucket_end_time) as bucket_end_at,
        workspace_id,
        description,
        cost_type,
        model,
        token_type,
        service_tier,
        context_window,
        inference_geo,
        -- `amount` is a decimal string in cents; the source converted it to dollars exactly
        cast(amount as decimal(38, 16)) as amount_cents,
        amount_usd as cost_usd_exact,
        cast(amount_usd as double) as cost_usd,
        lower(currency) as currency,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
