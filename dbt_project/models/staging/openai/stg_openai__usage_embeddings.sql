with source as (

    {{ latest_snapshot('usage_embeddings') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        model,
        cast(input_tokens as bigint) as input_tokens,
        cast(num_model_requests as bigint) as num_model_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
