{#- The spend in the FinOps Foundation's FOCUS 1.3 format (its Cost and Usage dataset): one row
    per charge of marts.fct_spend_daily, i.e. per provider, connection, UTC day, project, API key
    and line item. Every column FOCUS 1.3 makes mandatory, 1.2's ProviderName and PublisherName
    (deprecated by 1.3, kept so 1.2 tools load it), the conditional and recommended columns the
    API can fill, then Stax's own x_ columns. Mapping and what is not known: README.md, "FOCUS
    export".

    A view: it costs the nightly sync nothing, it can never disagree with fct_spend_daily (a
    restated or purged day changes here too), and a filter on x_ChargeDate reaches the scans of
    fct_spend_daily and stg_openai__costs, so a sync's windowed check reads only its window. The
    published marts.duckdb holds it as a table. -#}
{{ config(materialized='view') }}

with spend as (

    select * from {{ ref('fct_spend_daily') }}

),

projects as (

    select
        provider,
        connection,
        project_id,
        name
    from {{ ref('dim_projects') }}

),

organizations as (

    -- The organization the day's costs were billed to, as the API sends it on cost rows
    -- (undocumented: it may be missing, see BillingAccountId). Per day, not per connection, so
    -- a filter on the day reaches this scan too and a query of a few days reads only those.
    select
        connection,
        date,
        max(organization_id) as organization_id
    from {{ ref('stg_openai__costs') }}
    group by connection, date

),

providers as (

    -- FOCUS's service provider, host provider and invoice issuer of a provider's spend: the API
    -- vendor itself, which bills directly and discloses no hosting provider.
    select *
    from (
        values
        ('openai', 'OpenAI', 'OpenAI API'),
        ('anthropic', 'Anthropic', 'Claude API')
    ) as listed (provider, provider_name, service_name)

),

described as (

    select
        spend.*,
        -- a provider missing from the list keeps its spend, under its own name
        coalesce(providers.provider_name, spend.provider) as provider_name,
        coalesce(providers.service_name, spend.provider) as service_name,
        coalesce(organizations.organization_id, 'stax-connection/' || spend.connection)
            as billing_account_id,
        projects.name as project_name,
        nullif(trim(spend.quantity_unit), '') as api_unit
    from spend
    left join providers
        on spend.provider = providers.provider
    left join organizations
        on
            spend.connection = organizations.connection
            and spend.date = organizations.date
    left join projects
        on
            spend.provider = projects.provider
            and spend.connection = projects.connection
            and spend.project_id = projects.project_id

),

priced as (

    select
        *,
        -- the API's open enum of units (tokens, 1000_tokens, images, ...) in FOCUS's Unit Format;
        -- a quantity the API gives no unit for counts the line item itself: FOCUS's 'Units'
        case
            when quantity is null then null
            when api_unit is null then 'Units'
            when api_unit = 'duration_seconds' then 'Seconds'
            when api_unit = 'gibibyte_hours' then 'GiB-Hours'
            else array_to_string(
                list_transform(string_split(api_unit, '_'), lambda word: upper(word[1]) || word[2:]),
                ' '
            )
        end as unit_name
    from described

),

final as (

    select
        -- FOCUS columns, alphabetically
        cost_usd as BilledCost,
        billing_account_id as BillingAccountId,
        connection as BillingAccountName,
        upper(coalesce(currency, 'usd')) as BillingCurrency,
        timezone('UTC', cast(date_trunc('month', date) + interval 1 month as timestamp)) as BillingPeriodEnd,
        timezone('UTC', cast(date_trunc('month', date) as timestamp)) as BillingPeriodStart,
        'Usage' as ChargeCategory,
        -- a restated day replaces its rows: no row is a correction of a closed billing period
        cast(null as varchar) as ChargeClass,
        line_item as ChargeDescription,
        'Usage-Based' as ChargeFrequency,
        timezone('UTC', cast(date + interval 1 day as timestamp)) as ChargePeriodEnd,
        timezone('UTC', cast(date as timestamp)) as ChargePeriodStart,
        quantity as ConsumedQuantity,
        unit_name as ConsumedUnit,
        cost_usd as ContractedCost,  -- no negotiated prices are known
        cost_usd as EffectiveCost,  -- no commitments or prepayments are known
        provider_name as HostProviderName,
        provider_name as InvoiceIssuerName,
        cost_usd as ListCost,  -- no discounts are known
        quantity as PricingQuantity,
        unit_name as PricingUnit,
        provider_name as ProviderName,  -- FOCUS 1.2 (1.3: ServiceProviderName)
        provider_name as PublisherName,  -- FOCUS 1.2 (deprecated in 1.3)
        api_key_id as ResourceId,
        'AI and Machine Learning' as ServiceCategory,
        service_name as ServiceName,
        provider_name as ServiceProviderName,
        'Generative AI' as ServiceSubcategory,
        line_item as SkuId,
        project_id as SubAccountId,
        case when project_id is not null then coalesce(project_name, project_id) end as SubAccountName,
        -- a JSON object of the tags that have a value, built as text: a map per row
        -- (to_json(map_from_entries(...))) cost 3x the whole row's other columns
        cast('{' || concat_ws(
            ',',
            '"stax/project_id":' || to_json(project_id),
            '"stax/project_name":' || to_json(project_name),
            '"stax/api_key_id":' || to_json(api_key_id),
            '"stax/model":' || to_json(model),
            '"stax/charge_type":' || to_json(charge_type),
            '"stax/product":' || to_json(product)
        ) || '}' as json) as Tags,

        -- Stax's own columns
        api_key_id as x_ApiKeyId,
        date as x_ChargeDate,
        charge_type as x_ChargeType,
        connection as x_Connection,
        is_final as x_IsFinal,
        model as x_Model,
        provider as x_Provider,
        quantity_unit as x_QuantityUnit
    from priced

)

select * from final
