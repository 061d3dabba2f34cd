{#- Every provider's listed projects in one shape: OpenAI projects, Anthropic workspaces (the
    default workspace included, named). -#}

select
    provider,
    connection,
    project_id,
    name,
    status,
    created_at,
    archived_at
from {{ ref('stg_openai__projects') }}

union all

select
    provider,
    connection,
    project_id,
    name,
    status,
    created_at,
    archived_at
from {{ ref('int_anthropic__projects') }}
