{#- The one place that knows the sync window.

    Dagster passes the window in the environment variable STAX_DBT_WINDOW, e.g.
    '{"start_date": "2026-10-01", "end_date": "2026-10-31", "connections": ["acme"]}': start
    inclusive, end exclusive, UTC dates. It is read only while executing, never while parsing, so
    a new window does not invalidate dbt's partial parse (`--vars` would: dbt re-parses the whole
    project whenever vars change). `--vars` with the same keys still work, and win, for a person
    running dbt by hand. Every key is optional; a missing one does not restrict. -#}

{% macro sync_window() %}
    {%- set date_pattern = modules.re.compile('^[0-9]{4}-[0-9]{2}-[0-9]{2}$') -%}
    {%- set from_env = {} -%}
    {%- if execute -%}
        {%- set text = env_var('STAX_DBT_WINDOW', '') -%}
        {%- if text | trim -%}
            {%- do from_env.update(fromjson(text)) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set window = {} -%}
    {%- for name in ['start_date', 'end_date'] -%}
        {%- set value = var(name, none) -%}
        {%- if value is none -%}
            {%- set value = from_env.get(name) -%}
        {%- endif -%}
        {%- if value is none or (value | string | trim) == '' -%}
            {%- do window.update({name: none}) -%}
        {%- elif date_pattern.match(value | string | trim) -%}
            {%- do window.update({name: value | string | trim}) -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                "var '" ~ name ~ "' must be a date like 2026-10-01 (UTC), got " ~ (value | string)) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if window.start_date and window.end_date and window.start_date > window.end_date -%}
        {{ exceptions.raise_compiler_error(
            "var 'start_date' (" ~ window.start_date ~ ") is after 'end_date' (" ~ window.end_date
            ~ "); end_date is exclusive") }}
    {%- endif -%}
    {%- set connections = var('connections', none) -%}
    {%- if connections is none -%}
        {%- set connections = from_env.get('connections') -%}
    {%- endif -%}
    {%- if connections is string -%}
        {%- set connections = [connections] -%}
    {%- endif -%}
    {%- do window.update({'connections': connections}) -%}
    {{ return(window) }}
{% endmacro %}


{#- A SQL predicate selecting the window's rows; `true` when no window vars are set. -#}
{% macro in_sync_window(date_column='date', connection_column='connection') %}
    {%- set window = sync_window() -%}
    {%- set predicates = [] -%}
    {%- if window.start_date -%}
        {%- do predicates.append(date_column ~ " >= date '" ~ window.start_date ~ "'") -%}
    {%- endif -%}
    {%- if window.end_date -%}
        {%- do predicates.append(date_column ~ " < date '" ~ window.end_date ~ "'") -%}
    {%- endif -%}
    {%- if window.connections is not none -%}
        {%- if window.connections | length == 0 -%}
            {%- do predicates.append('false') -%}
        {%- else -%}
            {%- set quoted = [] -%}
            {%- for name in window.connections -%}
                {%- do quoted.append("'" ~ (name | string | replace("'", "''")) ~ "'") -%}
            {%- endfor -%}
            {%- do predicates.append(connection_column ~ ' in (' ~ quoted | join(', ') ~ ')') -%}
        {%- endif -%}
    {%- endif -%}
    {{- return('(' ~ predicates | join(' and ') ~ ')' if predicates else 'true') -}}
{% endmacro %}


{#- Custom incremental strategy `sync_window`: replace the window, whatever rows it held.

    Deletes every target row in the window and inserts the recomputed rows of the window in the same
    transaction. Unlike delete+insert on unique keys, rows the API no longer returns for a re-pulled
    day disappear. The model must have `date` and `connection` columns and should filter its own
    select with `in_sync_window()` under `is_incremental()` so a run only computes the window. -#}
{% macro get_incremental_sync_window_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where {{ in_sync_window('date', 'connection') }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
    where {{ in_sync_window('date', 'connection') }}
{% endmacro %}


{#- `where <the run's window>` on an incremental run of an incremental model; nothing on a first
    or full-refresh build, which builds every day. -#}
{% macro where_in_sync_window(date_column='date', connection_column='connection') %}
    {%- if is_incremental() -%}
    where {{ in_sync_window(date_column, connection_column) }}
    {%- endif -%}
{% endmacro %}
