with source as (

    {{ latest_snapshot('usage_images') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        model,
        source.source as image_source,
        size,
        cast(images as bigint) as images,
        cast(num_model_requests as bigint) as num_model_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
