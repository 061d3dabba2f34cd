{#- Parses the free-text `line_item` with the grammar `[<product> | ]<model-or-sku>[, <charge>]`:
      'gpt-4o-2024-08-06, input'                    -> model gpt-4o-2024-08-06, charge input
      'evals | gpt-4o-mini-2024-07-18, input'       -> product evals, model ..., charge input
      'assistants api | file search'                -> product assistants api, sku file search
      'Image models'                                -> sku Image models
    A part is text that starts with a letter or digit, has no '|', ',' or control characters and
    no trailing space; a model id additionally has no whitespace and contains a digit or '-'.
    Anything else (null, empty, stray separators) is shape 'unknown': kept, with every parsed
    field null, so spend is never dropped.

    Returns a select of every column of `relation` (a CTE or relation name with a `line_item`
    column) plus `line_item_shape`, `product`, `model`, `sku` and `charge_type`, in its rows'
    order of columns (not of rows). The one
    definition of the grammar: the cost line items and the restatements both use it. -#}
{% macro parse_line_item(relation) -%}
{%- set part_pattern = '[[:alnum:]]([^|,[:cntrl:]]*[^|,[:space:]])?' -%}
{%- set model_pattern = '[A-Za-z0-9][A-Za-z0-9._:/-]*' -%}
-- Each distinct line item is parsed once (an organization has hundreds, its days' cost rows
-- hundreds of thousands), then joined back to its rows.
select
    line_item_rows.*,
    parsed_items.line_item_shape,
    parsed_items.product,
    parsed_items.model,
    parsed_items.sku,
    parsed_items.charge_type
from {{ relation }} as line_item_rows
left join (
    select
        classified.* exclude (product_part, item_and_charge_part, item_part, charge_part),
        case when line_item_shape != 'unknown' then product_part end as product,
        case when line_item_shape = 'model' then item_part end as model,
        case when line_item_shape = 'sku' then item_part end as sku,
        case when line_item_shape != 'unknown' then lower(charge_part) end as charge_type
    from (
        select
            *,
            case
                when line_item is null
                    or not coalesce(regexp_full_match(item_part, '{{ part_pattern }}'), false)
                    or (product_part is not null and not regexp_full_match(product_part, '{{ part_pattern }}'))
                    or (charge_part is not null and not regexp_full_match(charge_part, '{{ part_pattern }}'))
                    then 'unknown'
                when regexp_full_match(item_part, '{{ model_pattern }}')
                    and regexp_matches(item_part, '[0-9-]')
                    then 'model'
                else 'sku'
            end as line_item_shape
        from (
            select
                *,
                -- the greedy first group makes the split at the last ', '
                case
                    when strpos(item_and_charge_part, ', ') > 0
                        then regexp_extract(item_and_charge_part, '^(.*), (.*)$', 1)
                    else item_and_charge_part
                end as item_part,
                case
                    when strpos(item_and_charge_part, ', ') > 0
                        then regexp_extract(item_and_charge_part, '^(.*), (.*)$', 2)
                end as charge_part
            from (
                select
                    *,
                    case
                        when strpos(line_item, ' | ') > 0
                            then left(line_item, strpos(line_item, ' | ') - 1)
                    end as product_part,
                    case
                        when strpos(line_item, ' | ') > 0
                            then substr(line_item, strpos(line_item, ' | ') + 3)
                        else line_item
                    end as item_and_charge_part
                from (select distinct line_item from {{ relation }}) as distinct_line_items
            ) as split_product
        ) as split_charge
    ) as classified
) as parsed_items
    on line_item_rows.line_item is not distinct from parsed_items.line_item
{%- endmacro %}
