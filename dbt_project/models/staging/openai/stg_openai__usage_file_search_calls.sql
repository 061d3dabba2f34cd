with source as (

    {{ latest_snapshot('usage_file_search_calls') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        user_id,
        api_key_id,
        vector_store_id,
        cast(num_requests as bigint) as num_requests,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
