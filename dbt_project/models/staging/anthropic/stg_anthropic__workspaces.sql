{{ config(materialized="view") }}  {#- workspaces carry no day: always the merged list -#}

with source as (

    select * from {{ source_or_empty('raw_anthropic', 'workspaces') }}

),

renamed as (

    select
        'anthropic' as provider,
        connection,
        id as workspace_id,
        name,
        display_color,
        cast(created_at as timestamp with time zone) as created_at,
        cast(archived_at as timestamp with time zone) as archived_at,
        loaded_at
    from source

),

final as (

    -- dlt merges on (connection, id); keep the newest row should a merge ever leave two
    select * from renamed
    qualify row_number() over (
        partition by connection, workspace_id
        order by loaded_at desc nulls last
    ) = 1

)

select * from final
