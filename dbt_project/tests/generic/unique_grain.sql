{#- Fails for every grain value held by more than one row. Unlike `unique` on a concatenated key
    it handles nullable grain columns: GROUP BY treats nulls as equal, so two rows with the same
    values and both project_id null count as a duplicate. -#}
{% test unique_grain(model, grain) %}

select
    {{ grain | join(', ') }},
    count(*) as rows_in_grain
from {{ model }}
group by {{ grain | join(', ') }}
having count(*) > 1

{% endtest %}
