with source as (

    {{ latest_snapshot('usage_web_search_calls') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        model,
        context_level,
        cast(num_model_requests as bigint) as num_model_requests,
        cast(num_requests as bigint) as num_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
