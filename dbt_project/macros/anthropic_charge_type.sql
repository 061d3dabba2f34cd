{#- An Anthropic cost report `token_type` in the marts' charge vocabulary: input, cached input,
    cache write, output; null for costs of no token (web search, code execution). -#}
{% macro anthropic_charge_type(token_type) -%}
    case
        when {{ token_type }} = 'uncached_input_tokens' then 'input'
        when {{ token_type }} = 'cache_read_input_tokens' then 'cached input'
        when {{ token_type }} like 'cache_creation.%' then 'cache write'
        when {{ token_type }} = 'output_tokens' then 'output'
    end
{%- endmacro %}
