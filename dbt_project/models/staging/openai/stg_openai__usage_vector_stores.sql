with source as (

    {{ latest_snapshot('usage_vector_stores') }}

),

renamed as (

    select
        {{ bucket_key_columns('openai') }}
        project_id,
        cast(usage_bytes as bigint) as usage_bytes,
        {{ snapshot_lineage_columns() }}
    from source

)

select * from renamed
