{#- Today's date in UTC, whatever the session time zone (all Stax dates are UTC days). -#}
{% macro utc_today() -%}
    cast(timezone('UTC', now()) as date)
{%- endmacro %}
