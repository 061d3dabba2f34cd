with source as (

    {{ latest_snapshot('usage_code_interpreter_sessions') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        cast(num_sessions as bigint) as num_sessions,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
