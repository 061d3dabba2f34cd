{#- FOCUS 1.3 rules on marts.focus_cost_and_usage (types are the model's contract): the columns
    the spec says MUST NOT be null, the allowed values, the pairs that are null together, periods
    that hold their charge, and money: per (connection, day) sum(BilledCost) equals the spend of
    fct_spend_daily to 1e-6 USD. One row per broken rule, connection and day. Scoped to the sync
    window when window vars are set (that is what the run rebuilt), so a nightly run's check costs
    the same whatever the history length. -#}
{{ config(meta={'dagster': {'ref': {'name': 'focus_cost_and_usage'}}}) }}
{%- set tolerance = 0.000001 -%}
{%- set never_null = [
    'BilledCost', 'BillingAccountId', 'BillingAccountName', 'BillingCurrency', 'BillingPeriodEnd',
    'BillingPeriodStart', 'ChargeCategory', 'ChargePeriodEnd', 'ChargePeriodStart',
    'ContractedCost', 'EffectiveCost', 'HostProviderName', 'InvoiceIssuerName', 'ListCost',
    'ProviderName', 'PublisherName', 'ServiceCategory', 'ServiceName', 'ServiceProviderName',
    'ChargeFrequency', 'ServiceSubcategory',
] -%}
{%- set service_categories = [
    'AI and Machine Learning', 'Analytics', 'Business Applications', 'Compute', 'Databases',
    'Developer Tools', 'Multicloud', 'Identity', 'Integration', 'Internet of Things',
    'Management and Governance', 'Media', 'Migration', 'Mobile', 'Networking', 'Security',
    'Storage', 'Web', 'Other',
] -%}

with focus as (

    select * from {{ ref('focus_cost_and_usage') }}
    where {{ in_sync_window('x_ChargeDate', 'x_Connection') }}

),

spend as (

    select connection, date, sum(cost_usd) as cost_usd
    from {{ ref('fct_spend_daily') }}
    where {{ in_sync_window('date', 'connection') }}
    group by connection, date

),

row_rules as (

    select
        x_Connection as connection,
        x_ChargeDate as date,
        unnest(list_filter([
            {%- for column in never_null %}
            case when {{ column }} is null then '{{ column }} is null' end,
            {%- endfor %}
            case when ChargeCategory not in ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')
                then 'ChargeCategory not allowed' end,
            case when ChargeClass is distinct from 'Correction' and ChargeClass is not null
                then 'ChargeClass not allowed' end,
            case when ServiceCategory not in ('{{ service_categories | join("', '") }}')
                then 'ServiceCategory not allowed' end,
            case when ChargeFrequency not in ('One-Time', 'Recurring', 'Usage-Based')
                then 'ChargeFrequency not allowed' end,
            case when not regexp_full_match(BillingCurrency, '[A-Z]{3}')
                then 'BillingCurrency not ISO 4217' end,
            case when (PricingQuantity is null) != (PricingUnit is null)
                then 'PricingUnit and PricingQuantity not null together' end,
            case when (ConsumedQuantity is null) != (ConsumedUnit is null)
                then 'ConsumedUnit and ConsumedQuantity not null together' end,
            case when (SubAccountId is null) != (SubAccountName is null)
                then 'SubAccountName and SubAccountId not null together' end,
            case when ChargeCategory = 'Tax' and (PricingQuantity is not null or SkuId is not null)
                then 'Tax with a PricingQuantity or SkuId' end,
            case when json_type(Tags) != 'OBJECT' then 'Tags not a JSON object' end,
            case when not (BillingPeriodStart <= ChargePeriodStart
                    and ChargePeriodStart < ChargePeriodEnd
                    and ChargePeriodEnd <= BillingPeriodEnd)
                then 'charge period outside its billing period' end,
            case when ListCost != BilledCost or ContractedCost != BilledCost or EffectiveCost != BilledCost
                then 'costs differ although no discounts are known' end
        ], lambda rule: rule is not null)) as rule
    from focus

),

money as (

    select
        coalesce(focus_days.connection, spend.connection) as connection,
        coalesce(focus_days.date, spend.date) as date,
        'sum(BilledCost) differs from fct_spend_daily' as rule
    from (
        select x_Connection as connection, x_ChargeDate as date, sum(BilledCost) as billed_cost
        from focus
        group by x_Connection, x_ChargeDate
    ) as focus_days
    full outer join spend
        on focus_days.connection = spend.connection
        and focus_days.date = spend.date
    where abs(coalesce(focus_days.billed_cost, 0) - coalesce(spend.cost_usd, 0)) > {{ tolerance }}

)

select connection, cast(date as varchar) as date, rule, count(*) as rows_breaking_it
from (
    select * from row_rules
    union all
    select * from money
) as broken
group by connection, date, rule
