"""Constants of the Anthropic Admin API as Stax uses it: endpoints, page limits, grouping, columns.

The one place the ``raw_anthropic`` schema is written: the dbt sources
(``models/staging/anthropic/_anthropic__sources.yml``) declare the same tables and columns, and a
test checks them against :data:`RAW_TABLES`.
"""

from __future__ import annotations

from stax_pipeline.sources.contract import Columns

PROVIDER = "anthropic"
DATASET_NAME = "raw_anthropic"
# The base URL ends in /v1, as OpenAI's does, so the paths below are the same kind of relative path
# and STAX_ANTHROPIC_BASE_URL has the same shape as STAX_OPENAI_BASE_URL.
DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
BASE_URL_SETTING = "STAX_ANTHROPIC_BASE_URL"
API_VERSION = "2023-06-01"  # the `anthropic-version` header every request carries

COST_REPORT_PATH = "/organizations/cost_report"
USAGE_MESSAGES_PATH = "/organizations/usage_report/messages"
WORKSPACES_PATH = "/organizations/workspaces"
API_KEYS_PATH = "/organizations/api_keys"
ORGANIZATION_PATH = "/organizations/me"  # the key's organization: id (a UUID) and name

BUCKET_WIDTH = "1d"  # the cost report has no other width; usage is pulled at the same grain
MAX_BUCKETS_PER_PAGE = 31  # `limit` at 1d, for both reports
LIST_MAX_LIMIT = 100  # objects per page of a listing (the API allows up to 1000)
LIST_MAX_PAGES = 1000  # past that, the API is paging forever

# Cost: per workspace and per description. Grouping by description is what fills model,
# cost_type, token_type, service_tier, context_window (null otherwise). There is no per-API-key
# cost: spend by key exists in usage only.
COST_GROUP_BY = ("workspace_id", "description")
# Usage: every dimension that attributes spend, never per user account.
USAGE_GROUP_BY = ("model", "workspace_id", "api_key_id", "service_tier", "context_window", "inference_geo")
# If the API refuses that grouping (an older API without the newer dimensions), coarser ones, in
# order; the dimensions left out are null. Model, workspace and key always attribute usage.
USAGE_FALLBACK_GROUP_BYS = (
    ("model", "workspace_id", "api_key_id", "service_tier", "context_window"),
    ("model", "workspace_id", "api_key_id"),
)

# The id staging gives the default workspace, which the reports name with a null workspace_id.
DEFAULT_WORKSPACE_ID = "default"
DEFAULT_WORKSPACE_NAME = "Default workspace"


# Columns every report row carries besides the API's own fields.
BUCKET_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "date": {"data_type": "date", "nullable": False},
    "bucket_start_time": {"data_type": "bigint", "nullable": False},  # unix seconds of starting_at
    "bucket_end_time": {"data_type": "bigint", "nullable": False},  # unix seconds of ending_at
    "loaded_at": {"data_type": "timestamp", "nullable": False},
    "sync_id": {"data_type": "text", "nullable": False},
}

# `amount` is a decimal string in the currency's lowest unit (cents for USD). It is kept as the API
# sent it (`amount`), and converted to dollars exactly (`amount_usd`: Decimal / 100, landed as
# DECIMAL(38, 18), never through a float; digits past 1e-18 dollars, if the API ever sent them,
# are rounded half-even).
AMOUNT_USD_SCALE = 18
COST_REPORT_COLUMNS: Columns = {
    **BUCKET_COLUMNS,
    "amount": {"data_type": "text"},
    "amount_usd": {"data_type": "decimal", "precision": 38, "scale": AMOUNT_USD_SCALE},
    "currency": {"data_type": "text"},
    "workspace_id": {"data_type": "text"},
    "description": {"data_type": "text"},
    "cost_type": {"data_type": "text"},
    "model": {"data_type": "text"},
    "token_type": {"data_type": "text"},
    "service_tier": {"data_type": "text"},
    "context_window": {"data_type": "text"},
    "inference_geo": {"data_type": "text"},
}

# Nested objects flattened with dlt's `__` separator, as its normalizer would name them.
USAGE_MESSAGES_METRICS = (
    "uncached_input_tokens",
    "cache_read_input_tokens",
    "cache_creation__ephemeral_1h_input_tokens",
    "cache_creation__ephemeral_5m_input_tokens",
    "output_tokens",
    "server_tool_use__web_search_requests",
)
USAGE_MESSAGES_COLUMNS: Columns = {
    **BUCKET_COLUMNS,
    **{dim: {"data_type": "text"} for dim in USAGE_GROUP_BY},
    **{metric: {"data_type": "bigint"} for metric in USAGE_MESSAGES_METRICS},
}

WORKSPACES_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "type": {"data_type": "text"},
    "name": {"data_type": "text"},
    "display_color": {"data_type": "text"},
    "created_at": {"data_type": "text"},  # RFC 3339, as the API sends it
    "archived_at": {"data_type": "text"},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
}

API_KEYS_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "type": {"data_type": "text"},
    "name": {"data_type": "text"},
    "workspace_id": {"data_type": "text"},  # null: the default workspace
    "status": {"data_type": "text"},
    "partial_key_hint": {"data_type": "text"},
    "created_at": {"data_type": "text"},
    "created_by__id": {"data_type": "text"},
    "created_by__type": {"data_type": "text"},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
}

SYNC_WINDOWS_TABLE = "sync_windows"
SYNC_WINDOWS_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "resource": {"data_type": "text", "nullable": False},
    "date": {"data_type": "date", "nullable": False},
    "is_final": {"data_type": "bool", "nullable": False},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
    "sync_id": {"data_type": "text", "nullable": False},
}

# The raw-table catalogue: table -> its columns (the dbt sources must declare exactly these).
COST_REPORT_TABLE = "cost_report"
# The day table whose commit marker says a day is synced (what `stax doctor` counts as gaps).
COST_RESOURCE = COST_REPORT_TABLE
USAGE_MESSAGES_TABLE = "usage_messages"
RAW_TABLES: dict[str, Columns] = {
    COST_REPORT_TABLE: COST_REPORT_COLUMNS,
    USAGE_MESSAGES_TABLE: USAGE_MESSAGES_COLUMNS,
    "workspaces": WORKSPACES_COLUMNS,
    "api_keys": API_KEYS_COLUMNS,
    SYNC_WINDOWS_TABLE: SYNC_WINDOWS_COLUMNS,
}
