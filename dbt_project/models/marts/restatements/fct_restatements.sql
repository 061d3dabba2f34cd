{{
    config(
        materialized='incremental',
        incremental_strategy='sync_window',
        on_schema_change='sync_all_columns'
    )
}}

{#- How already-loaded days changed: each committed sync of a (connection, day) compared with the
    committed sync of that day before it, one row per (project, API key, line item) whose cost
    moved, appeared or vanished. A day's first load has nothing to compare with; a sync without
    a commit marker never counts (as in `latest_snapshot`). Every provider: OpenAI's costs and
    Anthropic's cost report (its description as the line item, its workspace as the project,
    'default' for the default workspace, as in the marts). Incremental on the run's window:
    only days a run re-pulled can gain restatements, and a run reads only those days' snapshots,
    so its cost does not grow with the length of the history. -#}

{%- set cost_resources = {'openai': ('raw_openai', 'costs'), 'anthropic': ('raw_anthropic', 'cost_report')} %}

with commits as (

    -- the committed syncs of each (connection, day), in the order `latest_snapshot` uses
    {%- for provider, (source_name, resource) in cost_resources.items() %}
        select
            '{{ provider }}' as provider,
            connection,
            date,
            sync_id,
            min(loaded_at) as synced_at,
            -- when the commit marker landed: dlt's load id is its Unix time
            coalesce(min(to_timestamp(try_cast(_dlt_load_id as double))), min(loaded_at)) as committed_at
        from {{ source_or_empty(source_name, 'sync_windows') }}
        where
            resource = '{{ resource }}'
            {%- if is_incremental() %}
                and {{ in_sync_window('date', 'connection') }}
            {%- endif %}
        group by connection, date, sync_id
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

ordered_commits as (

    select
        *,
        row_number() over (partition by connection, date order by synced_at, sync_id) as sync_number
    from commits

),

sync_pairs as (

    select
        new_sync.provider,
        new_sync.connection,
        new_sync.date,
        previous_sync.sync_id as previous_sync_id,
        new_sync.sync_id as new_sync_id,
        previous_sync.synced_at as previous_synced_at,
        new_sync.synced_at as new_synced_at,
        new_sync.committed_at as detected_at
    from ordered_commits as new_sync
    inner join ordered_commits as previous_sync
        on
            new_sync.connection = previous_sync.connection
            and new_sync.date = previous_sync.date
            and new_sync.sync_number = previous_sync.sync_number + 1

),

compared_syncs as (

    select
        connection,
        date,
        previous_sync_id as sync_id
    from sync_pairs
    union
    select
        connection,
        date,
        new_sync_id as sync_id
    from sync_pairs

),

snapshot_rows as (

    -- the snapshots of the compared syncs, one row per (project, key, line item): the API can
    -- repeat a line item, and the marts sum it, so the comparison does too. Anthropic names its
    -- model and charge in fields of their own, OpenAI in the line item (parsed below).
    select
        costs.connection,
        costs.date,
        costs.sync_id,
        costs.project_id,
        costs.api_key_id,
        costs.line_item,
        costs.model_field,
        costs.charge_type_field,
        sum(costs.cost_usd) as cost_usd
    from (
        select
            connection,
            date,
            sync_id,
            project_id,
            api_key_id,
            line_item,
            cast(null as varchar) as model_field,
            cast(null as varchar) as charge_type_field,
            cast(amount__value as double) as cost_usd
        from {{ source_or_empty('raw_openai', 'costs') }}

        union all

        select
            connection,
            date,
            sync_id,
            coalesce(workspace_id, {{ anthropic_default_workspace_id() }}) as project_id,
            cast(null as varchar) as api_key_id,
            description as line_item,
            model as model_field,
            {{ anthropic_charge_type('token_type') }} as charge_type_field,
            cast(amount_usd as double) as cost_usd
        from {{ source_or_empty('raw_anthropic', 'cost_report') }}
    ) as costs
    inner join compared_syncs
        on
            costs.connection = compared_syncs.connection
            and costs.date = compared_syncs.date
            and costs.sync_id = compared_syncs.sync_id
    {%- if is_incremental() %}
        where {{ in_sync_window('costs.date', 'costs.connection') }}
    {%- endif %}
    group by all

),

day_totals as (

    select
        connection,
        date,
        sync_id,
        sum(cost_usd) as day_cost_usd
    from snapshot_rows
    group by all

),

previous_rows as (

    select
        sync_pairs.new_sync_id,
        snapshot_rows.*
    from sync_pairs
    inner join snapshot_rows
        on
            sync_pairs.connection = snapshot_rows.connection
            and sync_pairs.date = snapshot_rows.date
            and sync_pairs.previous_sync_id = snapshot_rows.sync_id

),

new_rows as (

    select
        sync_pairs.new_sync_id,
        snapshot_rows.*
    from sync_pairs
    inner join snapshot_rows
        on
            sync_pairs.connection = snapshot_rows.connection
            and sync_pairs.date = snapshot_rows.date
            and sync_pairs.new_sync_id = snapshot_rows.sync_id

),

changes as (

    -- a full outer join: rows that vanished and rows that appeared both count
    select
        coalesce(previous_rows.connection, new_rows.connection) as connection,
        coalesce(previous_rows.date, new_rows.date) as date,
        coalesce(previous_rows.new_sync_id, new_rows.new_sync_id) as new_sync_id,
        coalesce(previous_rows.project_id, new_rows.project_id) as project_id,
        coalesce(previous_rows.api_key_id, new_rows.api_key_id) as api_key_id,
        coalesce(previous_rows.line_item, new_rows.line_item) as line_item,
        coalesce(previous_rows.model_field, new_rows.model_field) as model_field,
        coalesce(previous_rows.charge_type_field, new_rows.charge_type_field) as charge_type_field,
        coalesce(previous_rows.cost_usd, 0) as previous_cost_usd,
        coalesce(new_rows.cost_usd, 0) as new_cost_usd,
        case
            when previous_rows.sync_id is null then 'appeared'
            when new_rows.sync_id is null then 'vanished'
            else 'changed'
        end as change_type
    from previous_rows
    full outer join new_rows
        on
            previous_rows.connection = new_rows.connection
            and previous_rows.date = new_rows.date
            and previous_rows.new_sync_id = new_rows.new_sync_id
            and previous_rows.project_id is not distinct from new_rows.project_id
            and previous_rows.api_key_id is not distinct from new_rows.api_key_id
            and previous_rows.line_item is not distinct from new_rows.line_item

),

restated as (

    select * from changes
    where abs(new_cost_usd - previous_cost_usd) > 1e-9

),

parsed as (

    {{ parse_line_item('restated') }}

),

final as (

    select
        sync_pairs.provider,
        parsed.connection,
        parsed.date,
        parsed.project_id,
        parsed.api_key_id,
        parsed.line_item,
        case when sync_pairs.provider = 'openai' then parsed.model else parsed.model_field end as model,
        case
            when sync_pairs.provider = 'openai' then parsed.charge_type else parsed.charge_type_field
        end as charge_type,
        parsed.change_type,
        parsed.previous_cost_usd,
        parsed.new_cost_usd,
        parsed.new_cost_usd - parsed.previous_cost_usd as cost_change_usd,
        -- a day re-pulled empty has no snapshot rows, hence no total
        coalesce(previous_total.day_cost_usd, 0) as previous_day_cost_usd,
        coalesce(new_total.day_cost_usd, 0) as new_day_cost_usd,
        sync_pairs.previous_synced_at,
        sync_pairs.new_synced_at,
        sync_pairs.detected_at,
        sync_pairs.previous_sync_id,
        sync_pairs.new_sync_id
    from parsed
    inner join sync_pairs
        on
            parsed.connection = sync_pairs.connection
            and parsed.date = sync_pairs.date
            and parsed.new_sync_id = sync_pairs.new_sync_id
    left join day_totals as previous_total
        on
            sync_pairs.connection = previous_total.connection
            and sync_pairs.date = previous_total.date
            and sync_pairs.previous_sync_id = previous_total.sync_id
    left join day_totals as new_total
        on
            sync_pairs.connection = new_total.connection
            and sync_pairs.date = new_total.date
            and sync_pairs.new_sync_id = new_total.sync_id

)

select * from final
