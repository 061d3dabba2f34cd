{#- Custom schema names are used verbatim, so the warehouse reads `staging`, `intermediate` and
    `marts` (not dbt's default `main_marts`). Models without a custom schema land in the target's. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
