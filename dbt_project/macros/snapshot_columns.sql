{#- The columns every staged bucket row carries, around the endpoint's own fields: where the row
    belongs (provider, connection, UTC day, bucket) and which sync it came from. One definition
    for every staging model of a bucketed endpoint. -#}
{% macro bucket_key_columns(provider) -%}
        '{{ provider }}' as provider,
        connection,
        date,
        bucket_start_time,
        bucket_end_time,
        to_timestamp(bucket_start_time) as bucket_start_at,
{%- endmacro %}

{% macro snapshot_lineage_columns() -%}
        is_final,
        loaded_at,
        sync_id,
        _dlt_load_id as dlt_load_id
{%- endmacro %}
