{{ config(materialized='view') }}

with monthly as (

    select * from {{ ref('fct_spend_monthly_by_model') }}

),

final as (

    select
        month,
        provider,
        connection,
        spend_category,
        model,
        product,
        sku,
        cost_usd,
        cost_usd / nullif(sum(cost_usd) over (partition by provider, connection), 0)
            as share_of_connection_cost,
        rank() over (partition by provider, connection order by cost_usd desc) as spend_rank,
        input_tokens,
        output_tokens,
        input_cached_tokens,
        input_cache_write_tokens,
        images,
        characters,
        seconds,
        web_search_calls,
        num_model_requests,
        days_in_data,
        last_date
    from monthly
    where is_month_to_date

)

select * from final
