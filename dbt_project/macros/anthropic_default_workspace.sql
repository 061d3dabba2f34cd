{#- The project_id Stax gives Anthropic's default workspace, which the cost and usage reports
    name with a null workspace_id (sources/anthropic_admin/settings.py DEFAULT_WORKSPACE_ID). -#}
{% macro anthropic_default_workspace_id() -%}
    'default'
{%- endmacro %}
