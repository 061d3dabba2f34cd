{#- Usage check: per (connection, date) and in total, both model spend marts hold every unit of
    usage that every model-naming endpoint of every provider reported (int_all_providers__usage_by_endpoint), and no model
    row carries a fine-tune's usage-side id (`ft:<base>:…`): fine-tuned usage must sit on the row
    of its billed `ft-<base>` name, beside its cost, never on a row of its own. Together with the
    marts' unique grain this means no (day, project, model) has its cost on one row and its
    tokens on another. Scoped to the sync window when window vars are set. -#}
{{ config(meta={'dagster': {'ref': {'name': 'fct_model_spend_daily'}}}) }}
{%- set units = {
    'input_tokens': "endpoint in ('completions', 'embeddings', 'moderations', 'messages')",
    'output_tokens': "endpoint in ('completions', 'messages')",
    'input_cached_tokens': "endpoint in ('completions', 'messages')",
    'input_cache_write_tokens': "endpoint in ('completions', 'messages')",
    'images': "endpoint = 'images'",
    'characters': "endpoint = 'audio_speeches'",
    'seconds': "endpoint = 'audio_transcriptions'",
    'web_search_calls': "endpoint = 'web_search_calls'",
    'num_model_requests': "endpoint in ('completions', 'embeddings', 'moderations', 'images', 'audio_speeches', 'audio_transcriptions', 'web_search_calls')",
} -%}
{%- set fields = {'web_search_calls': 'num_requests'} -%}

with reported as (

    select
        'usage endpoints' as relation,
        connection,
        date,
        {%- for unit, endpoints in units.items() %}
        coalesce(sum({{ fields.get(unit, unit) }}) filter (where {{ endpoints }}), 0) as {{ unit }}
            {{- ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_all_providers__usage_by_endpoint') }}
    where {{ in_sync_window('date', 'connection') }}
    group by connection, date

),
{% for mart in ['fct_model_spend_daily', 'fct_model_spend_by_api_key_daily'] %}
{{ mart }} as (

    select
        '{{ mart }}' as relation,
        connection,
        date,
        {%- for unit in units %}
        coalesce(sum({{ unit }}), 0) as {{ unit }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref(mart) }}
    where {{ in_sync_window('date', 'connection') }}
    group by connection, date

),
{% endfor %}

mismatches as (
{% for mart in ['fct_model_spend_daily', 'fct_model_spend_by_api_key_daily'] %}
    select
        '{{ mart }}' as relation,
        coalesce(mart.connection, reported.connection) as connection,
        cast(coalesce(mart.date, reported.date) as varchar) as problem
    from {{ mart }} as mart
    full outer join reported
        on mart.connection = reported.connection
        and mart.date = reported.date
    where
        {%- for unit in units %}
        coalesce(mart.{{ unit }}, 0) != coalesce(reported.{{ unit }}, 0){{ ' or' if not loop.last }}
        {%- endfor %}
    {{ 'union all' if not loop.last }}
{%- endfor %}

),

usage_side_fine_tune_names as (

    select distinct
        'fct_model_spend_daily' as relation,
        connection,
        'model named as usage names it: ' || model as problem
    from {{ ref('fct_model_spend_daily') }}
    where model like 'ft:%:%'
        and {{ in_sync_window('date', 'connection') }}

)

select * from mismatches
union all
select * from usage_side_fine_tune_names
