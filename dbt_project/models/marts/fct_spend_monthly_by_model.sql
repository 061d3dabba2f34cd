{{ config(materialized='view') }}

{%- set usage_units = [
    'input_tokens', 'output_tokens', 'input_cached_tokens', 'input_cache_write_tokens', 'images',
    'characters', 'seconds', 'web_search_calls', 'num_model_requests',
] -%}

with model_spend as (

    select * from {{ ref('fct_model_spend_daily') }}

),

final as (

    select
        cast(date_trunc('month', date) as date) as month,
        provider,
        connection,
        spend_category,
        model,
        product,
        sku,
        sum(cost_usd) as cost_usd,
        {%- for column in usage_units %}
            {{ 'sum(' ~ column ~ ')' if column == 'seconds' else 'cast(sum(' ~ column ~ ') as bigint)' }}
                as {{ column }},
        {%- endfor %}
        count(distinct date) as days_in_data,
        min(date) as first_date,
        max(date) as last_date,
        cast(date_trunc('month', date) as date)
        = cast(date_trunc('month', {{ utc_today() }}) as date) as is_month_to_date
    from model_spend
    group by
        cast(date_trunc('month', date) as date), provider, connection, spend_category, model, product, sku

)

select * from final
