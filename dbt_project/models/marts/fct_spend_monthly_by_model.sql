{{ config(materialized='view') }}

with model_spend as (

    select * from {{ ref('fct_model_spend_daily') }}

),

final as (

    select
        cast(date_trunc('month', date) as date) as month,
        provider,
        connection,
        model,
        sum(cost_usd) as cost_usd,
        cast(sum(input_tokens) as bigint) as input_tokens,
        cast(sum(output_tokens) as bigint) as output_tokens,
        cast(sum(input_cached_tokens) as bigint) as input_cached_tokens,
        cast(sum(num_model_requests) as bigint) as num_model_requests,
        count(distinct date) as days_in_data,
        min(date) as first_date,
        max(date) as last_date,
        cast(date_trunc('month', date) as date)
            = cast(date_trunc('month', {{ utc_today() }}) as date) as is_month_to_date
    from model_spend
    group by cast(date_trunc('month', date) as date), provider, connection, model

)

select * from final
