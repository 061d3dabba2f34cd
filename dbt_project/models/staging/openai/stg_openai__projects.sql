{{ config(materialized="view") }}  {#- projects carry no day: always the merged list -#}

with source as (

    select * from {{ source_or_empty('raw_openai', 'projects') }}

),

renamed as (

    select
        'openai' as provider,
        connection,
        id as project_id,
        name,
        status,
        to_timestamp(created_at) as created_at,
        to_timestamp(archived_at) as archived_at,
        external_key_id,
        residency,
        loaded_at
    from source

),

final as (

    -- dlt merges on (connection, id); keep the newest row should a merge ever leave two
    select * from renamed
    qualify row_number() over (
        partition by connection, project_id
        order by loaded_at desc nulls last
    ) = 1

)

select * from final
