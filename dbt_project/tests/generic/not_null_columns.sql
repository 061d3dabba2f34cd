{#- Fails for every row with a null in any of ``columns``. One test (one scan, one dbt node) per
    model instead of a `not_null` per column: a sync builds every model's tests, and each node
    costs dbt tens of milliseconds whatever the data. -#}
{% test not_null_columns(model, columns) %}

select {{ columns | join(', ') }}
from {{ model }}
where
    {%- for column in columns %}
    {{ column }} is null{% if not loop.last %} or{% endif %}
    {%- endfor %}

{% endtest %}
