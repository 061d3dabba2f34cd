{#- Every provider's usage in one long table (each provider's int_<provider>__usage_by_endpoint);
    the marts read this. -#}

select * from {{ ref('int_openai__usage_by_endpoint') }}

union all by name

select * from {{ ref('int_anthropic__usage_by_endpoint') }}
