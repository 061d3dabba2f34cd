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
    )

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
        priced.cost_usd as billedcost,
        priced.billing_account_id as billingaccountid,
        priced.connection as billingaccountname,
        upper(coalesce(priced.currency, 'usd')) as billingcurrency,
        timezone('UTC', cast(date_trunc('month', priced.date) + interval 1 month as timestamp))
            as billingperiodend,
        timezone('UTC', cast(date_trunc('month', priced.date) as timestamp)) as billingperiodstart,
        'Usage' as chargecategory,
        -- a restated day replaces its rows: no row is a correction of a closed billing period
        cast(null as varchar) as chargeclass,
        priced.line_item as chargedescription,
        'Usage-Based' as chargefrequency,
        timezone('UTC', cast(priced.date + interval 1 day as timestamp)) as chargeperiodend,
        timezone('UTC', cast(priced.date as timestamp)) as chargeperiodstart,
        priced.quantity as consumedquantity,
        priced.unit_name as consumedunit,
        priced.cost_usd as contractedcost,  -- no negotiated prices are known
        priced.cost_usd as effectivecost,  -- no commitments or prepayments are known
        priced.provider_name as hostprovidername,
        priced.provider_name as invoiceissuername,
        priced.cost_usd as listcost,  -- no discounts are known
        priced.quantity as pricingquantity,
        priced.unit_name as pricingunit,
        priced.provider_name as providername,  -- FOCUS 1.2 (1.3: ServiceProviderName)
        priced.provider_name as publishername,  -- FOCUS 1.2 (deprecated in 1.3)
        priced.api_key_id as resourceid,
        'AI and Machine Learning' as servicecategory,
        priced.service_name as servicename,
        priced.provider_name as serviceprovidername,
        'Generative AI' as servicesubcategory,
        priced.line_item as skuid,
        priced.project_id as subaccountid,
        case when priced.project_id is not null then coalesce(priced.project_name, priced.project_id) end
            as subaccountname,
        cast(to_json(map_from_entries(list_filter(
            [
                { 'key': 'stax/project_id', 'value': priced.project_id },
                { 'key': 'stax/project_name', 'value': priced.project_name },
                { 'key': 'stax/api_key_id', 'value': priced.api_key_id },
                { 'key': 'stax/model', 'value': priced.model },
                { 'key': 'stax/charge_type', 'value': priced.charge_type },
                { 'key': 'stax/product', 'value': priced.product }
            ],
            lambda tag: tag.value is not null
        ))) as json) as tags,

        -- Stax's own columns
        priced.api_key_id as x_apikeyid,
        priced.date as x_chargedate,
        priced.charge_type as x_chargetype,
        priced.connection as x_connection,
        priced.is_final as x_isfinal,
        priced.model as x_model,
        priced.provider as x_provider,
        priced.quantity_unit as x_quantityunit
    from priced

)

select * from final
