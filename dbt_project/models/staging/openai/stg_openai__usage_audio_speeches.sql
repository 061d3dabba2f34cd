with source as (

    {{ latest_snapshot('usage_audio_speeches') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        model,
        cast(characters as bigint) as characters,
        cast(num_model_requests as bigint) as num_model_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
