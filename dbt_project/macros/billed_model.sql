{#- The model as cost line items bill it, from the model id usage reports. Usage names a fine-tune
    `ft:<base>:<org>:<suffix>:<id>`; its costs bill `ft-<base>` (all fine-tunes of one base model
    share that line item). Every other model id is the same on both sides. -#}
{% macro billed_model(model_column) -%}
    case
        when {{ model_column }} like 'ft:%:%'
            then 'ft-' || split_part({{ model_column }}, ':', 2)
        else {{ model_column }}
    end
{%- endmacro %}
