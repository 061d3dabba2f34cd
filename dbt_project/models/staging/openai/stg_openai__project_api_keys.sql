{{ config(materialized="view") }}  {#- keys carry no day: always the merged listing -#}

with source as (

    select * from {{ source_or_empty('raw_openai', 'project_api_keys') }}

),

latest_listing as (

    -- every sync lists every project's keys; a key it did not list again was deleted since
    select
        connection,
        max(loaded_at) as loaded_at
    from {{ source_or_empty('raw_openai', 'projects') }}
    group by connection

),

renamed as (

    select
        'openai' as provider,
        source.connection,
        source.id as api_key_id,
        source.project_id,
        source.name,
        source.redacted_value,
        source.owner__type as owner_type,
        case source.owner__type
            when 'user' then source.owner__user__id
            when 'service_account' then source.owner__service_account__id
        end as owner_id,
        case source.owner__type
            when 'user' then source.owner__user__name
            when 'service_account' then source.owner__service_account__name
        end as owner_name,
        to_timestamp(source.created_at) as created_at,
        to_timestamp(source.last_used_at) as last_used_at,
        source.loaded_at >= coalesce(latest_listing.loaded_at, source.loaded_at) as is_listed,
        source.loaded_at
    from source
    left join latest_listing
        on source.connection = latest_listing.connection

),

final as (

    -- a key belongs to one project; should a merge ever leave two rows, keep the newest
    select * from renamed
    qualify row_number() over (
        partition by connection, api_key_id
        order by loaded_at desc nulls last, project_id asc
    ) = 1

)

select * from final
