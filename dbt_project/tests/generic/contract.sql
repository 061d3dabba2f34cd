{#- A model's contract, checked in one test: the columns that are never null, the grain no two
    rows share, and the values each enumerated column accepts. It fails with a row per row with
    a null, per grain shared, and per row with a value not accepted, each naming its rule and
    where (`dbt test --store-failures` keeps them): what the separate tests it replaces said.
    Only error-severity rules belong here; a check that only warns stays a test of its own.

    One test (one scan of the model, one dbt node) per model instead of one per rule and column:
    a sync builds every model's tests, and each node costs dbt ~30 ms of its own Python
    whatever the data (a large backfill's 40 such nodes were ~0.8 s of its dbt build).
    The grain check handles nullable grain columns (GROUP BY treats nulls as equal, so two rows
    alike with both project_id null are a duplicate); like dbt's accepted_values, a null value is
    not checked against the accepted ones (not_null says whether it may be null). -#}
{% test contract(model, not_null=none, grain=none, accepted_values=none) %}

{%- if not (not_null or grain or accepted_values) -%}
    {{ exceptions.raise_compiler_error("the contract test of " ~ model ~ " needs not_null, grain or accepted_values") }}
{%- endif %}

with checked as (

    select * from {{ model }}

)

{% if not_null -%}
select
    'not_null' as rule,
    'null in ' || concat_ws(
        ', ',
        {%- for column in not_null %}
        case when {{ column }} is null then '{{ column }}' end{% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as failure
from checked
where
    {%- for column in not_null %}
    {{ column }} is null{% if not loop.last %} or{% endif %}
    {%- endfor %}
{%- endif %}

{%- if grain %}
{% if not_null %}union all{% endif %}
select
    'grain' as rule,
    count(*) || ' rows share (' || concat_ws(
        ', ',
        {%- for column in grain %}
        coalesce(cast({{ column }} as varchar), 'null'){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) || ')' as failure
from checked
group by {{ grain | join(', ') }}
having count(*) > 1
{%- endif %}

{%- for column, values in (accepted_values or {}).items() %}
{% if not_null or grain or not loop.first %}union all{% endif %}
select
    'accepted_values' as rule,
    '{{ column }} = ' || cast({{ column }} as varchar) as failure
from checked
where {{ column }} not in (
    {%- for value in values %}'{{ value | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor -%}
)
{%- endfor %}

{% endtest %}
