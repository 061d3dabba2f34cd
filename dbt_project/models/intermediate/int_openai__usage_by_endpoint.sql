{#- Every usage endpoint in one long table: one row per staged usage row, with the metrics the
    endpoint has and nulls for those it has not (null = not applicable, not zero). `billed_model`
    is the model as cost line items name it (fine-tunes: `ft-<base>`), what model spend joins on. -#}
{%- set endpoints = {
    'completions': ['num_model_requests', 'input_tokens', 'output_tokens', 'input_cached_tokens',
                    'input_cache_write_tokens'],
    'embeddings': ['num_model_requests', 'input_tokens'],
    'moderations': ['num_model_requests', 'input_tokens'],
    'images': ['num_model_requests', 'images'],
    'audio_speeches': ['num_model_requests', 'characters'],
    'audio_transcriptions': ['num_model_requests', 'seconds'],
    'vector_stores': ['usage_bytes'],
    'code_interpreter_sessions': ['num_sessions'],
    'file_search_calls': ['num_requests'],
    'web_search_calls': ['num_model_requests', 'num_requests'],
} -%}
{%- set without_model = ['vector_stores', 'code_interpreter_sessions', 'file_search_calls'] -%}
{%- set without_api_key = ['vector_stores', 'code_interpreter_sessions'] -%}
{%- set metrics = {
    'num_model_requests': 'bigint',
    'num_requests': 'bigint',
    'input_tokens': 'bigint',
    'output_tokens': 'bigint',
    'input_cached_tokens': 'bigint',
    'input_cache_write_tokens': 'bigint',
    'images': 'bigint',
    'characters': 'bigint',
    'seconds': 'double',
    'usage_bytes': 'bigint',
    'num_sessions': 'bigint',
} -%}

with
{% for endpoint, endpoint_metrics in endpoints.items() %}
    {{ endpoint }} as (

        select
            provider,
            '{{ endpoint }}' as endpoint,
            connection,
            date,
            project_id,
            {{ 'cast(null as varchar)' if endpoint in without_api_key else 'api_key_id' }} as api_key_id,
            {{ 'cast(null as varchar)' if endpoint in without_model else 'model' }} as model,
            {{ 'cast(null as varchar)' if endpoint in without_model else billed_model('model') }} as billed_model,
            {%- for metric, data_type in metrics.items() %}
                {{ metric if metric in endpoint_metrics else 'cast(null as ' ~ data_type ~ ')' }} as {{ metric }},
            {%- endfor %}
            is_final
        from {{ ref('stg_openai__usage_' ~ endpoint) }}

    ),
{% endfor %}

final as (
    {% for endpoint in endpoints %}
        select * from {{ endpoint }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}

)

select * from final
