{#- Lists cost line items the grammar `[<product> | ]<model-or-sku>[, <charge>]` does not parse.
    Their spend is kept (model null), so this only warns: extend the parser when it fires. -#}
{{ config(severity='warn') }}

select
    coalesce(line_item, '<null>') as line_item,
    count(*) as cost_rows,
    sum(cost_usd) as cost_usd,
    min(date) as first_date,
    max(date) as last_date
from {{ ref('int_openai__cost_line_items') }}
where line_item_shape = 'unknown'
group by line_item
