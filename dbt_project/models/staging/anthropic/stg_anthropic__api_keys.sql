{{ config(materialized="view") }}  {#- API keys carry no day: always the merged list -#}

with source as (

    select * from {{ source_or_empty('raw_anthropic', 'api_keys') }}

),

renamed as (

    select
        'anthropic' as provider,
        connection,
        id as api_key_id,
        name,
        workspace_id,
        status,
        partial_key_hint,
        cast(created_at as timestamp with time zone) as created_at,
        created_by__id as created_by_id,
        created_by__type as created_by_type,
        loaded_at
    from source

),

final as (

    select * from renamed
    qualify row_number() over (
        partition by connection, api_key_id
        order by loaded_at desc nulls last
    ) = 1

)

select * from final
