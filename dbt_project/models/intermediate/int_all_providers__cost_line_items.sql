{#- Every provider's cost rows in one shape (each provider's int_<provider>__cost_line_items);
    the marts read this. Columns only one provider has are null for the others. -#}

select
    *,
    cast(null as varchar) as service_tier,
    cast(null as varchar) as context_window,
    cast(null as varchar) as inference_geo
from {{ ref('int_openai__cost_line_items') }}

union all by name

select * from {{ ref('int_anthropic__cost_line_items') }}
