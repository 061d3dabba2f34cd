{#- The latest-sync rule, implemented once for every raw data table.

    dlt appends a full snapshot of the pulled days on each sync, tagged with its `sync_id`. Only
    after those rows loaded does the sync write `sync_windows`: every (connection, resource, date)
    it covered, even days the API returned nothing for. For each (connection, date) only the rows
    of the latest RECORDED sync count: a row the API stopped returning disappears, nothing is
    counted twice, a day re-pulled empty is empty, and a sync that failed half-way is invisible.
    Returns a select of the raw table's columns plus the window's `is_final`. On an incremental
    run only the run's window is read, so a staging table (which holds the latest snapshot of
    every day, materialized) costs the same to refresh whatever the history length. -#}
{% macro latest_snapshot(resource, source_name='raw_openai') %}
select
    snapshot.*,
    latest_window.is_final
from (
    select * from {{ source_or_empty(source_name, resource) }}
    {{ where_in_sync_window('date', 'connection') }}
) as snapshot
inner join (
    select
        connection,
        date,
        sync_id,
        is_final
    from {{ source_or_empty(source_name, 'sync_windows') }}
    where resource = '{{ resource }}'
    {%- if is_incremental() %}
        and {{ in_sync_window('date', 'connection') }}
    {%- endif %}
    qualify row_number() over (
        partition by connection, date
        order by {{ latest_sync_first() }}
    ) = 1
) as latest_window
    on snapshot.connection = latest_window.connection
    and snapshot.date = latest_window.date
    and snapshot.sync_id = latest_window.sync_id
{% endmacro %}


{#- Which recorded sync of a (connection, resource, date) is the latest: the one loaded last
    (sync_id breaks a tie). The one ordering the staging models and the commit markers share. -#}
{% macro latest_sync_first() %}loaded_at desc, sync_id desc{% endmacro %}


{#- A source relation that always has every column declared for it in the sources yml.

    dlt creates a table only once it has loaded a row for it, and a column only once it has seen a
    value (unless the pipeline hints it), so a new organisation may lack e.g. `usage_images` or
    `input_audio_tokens`. Missing tables become an empty typed select, missing columns typed nulls,
    so staging never fails on what the API has not returned yet. -#}
{% macro source_or_empty(source_name, table_name) %}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{- return(relation) -}}
    {%- endif -%}
    {%- set declared_columns = [] -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == source_name and node.name == table_name -%}
            {%- for column in node.columns.values() -%}
                {%- do declared_columns.append(column) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for column in declared_columns if not column.data_type -%}
        {{ exceptions.raise_compiler_error(
            "source " ~ source_name ~ "." ~ table_name ~ " column " ~ column.name
            ~ " needs a data_type in the sources yml") }}
    {%- endfor -%}
    {%- set existing = adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
    {%- if existing is none -%}
        {%- set nulls = [] -%}
        {%- for column in declared_columns -%}
            {%- do nulls.append('cast(null as ' ~ column.data_type ~ ') as ' ~ adapter.quote(column.name)) -%}
        {%- endfor -%}
        {{- return('(select ' ~ nulls | join(', ') ~ ' where false)') -}}
    {%- endif -%}
    {%- set present = adapter.get_columns_in_relation(existing) | map(attribute='name') | map('lower') | list -%}
    {%- set missing = declared_columns | rejectattr('name', 'in', present) | list -%}
    {%- if not missing -%}
        {{- return(relation) -}}
    {%- endif -%}
    {#- an explicit column list, not `*`: the view must not break once dlt adds the column -#}
    {%- set selected = [] -%}
    {%- for column in declared_columns -%}
        {%- if column.name | lower in present -%}
            {%- do selected.append(adapter.quote(column.name)) -%}
        {%- else -%}
            {%- do selected.append('cast(null as ' ~ column.data_type ~ ') as ' ~ adapter.quote(column.name)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return('(select ' ~ selected | join(', ') ~ ' from ' ~ relation ~ ')') -}}
{% endmacro %}
