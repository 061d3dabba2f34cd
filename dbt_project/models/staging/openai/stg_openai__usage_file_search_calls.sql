with source as (

    {{ latest_snapshot('usage_file_search_calls') }}

),

renamed as (

    select
        'openai' as provider,
        connection,
        date,
        bucket_start_time,
        bucket_end_time,
        to_timestamp(bucket_start_time) as bucket_start_at,
        project_id,
        user_id,
        api_key_id,
        vector_store_id,
        cast(num_requests as bigint) as num_requests,
        is_final,
        loaded_at,
        _dlt_load_id as dlt_load_id,
        _dlt_id as dlt_id
    from source

)

select * from renamed
