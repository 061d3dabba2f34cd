with source as (

    {{ latest_snapshot('usage_code_interpreter_sessions') }}

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
        cast(num_sessions as bigint) as num_sessions,
        is_final,
        loaded_at,
        _dlt_load_id as dlt_load_id,
        _dlt_id as dlt_id
    from source

)

select * from renamed
