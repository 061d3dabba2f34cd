with source as (

    select * from {{ source_or_empty('raw_openai', 'sync_windows') }}
    {{ where_in_sync_window('date', 'connection') }}

),

latest as (

    -- the latest recorded sync of each (connection, resource, day), as latest_snapshot reads it
    select * from source
    qualify row_number() over (
        partition by connection, resource, date
        order by {{ latest_sync_first() }}
    ) = 1

),

final as (

    select
        'openai' as provider,
        connection,
        resource,
        date,
        is_final,
        sync_id,
        loaded_at
    from latest

)

select * from final
