"""Constants of the OpenAI Admin API as Stax uses it: endpoints, page limits, grouping, columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from stax_pipeline.sources.contract import Columns

if TYPE_CHECKING:
    from dlt.common.schema.typing import TColumnSchema

PROVIDER = "openai"
DATASET_NAME = "raw_openai"
# The day table whose commit marker says a day is synced (what `stax doctor` counts as gaps).
COST_RESOURCE = "costs"
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # new connections' API unless STAX_OPENAI_BASE_URL says

COSTS_PATH = "/organization/costs"
PROJECTS_PATH = "/organization/projects"
USAGE_MAX_LIMIT_1D = 31
# The buckets Stax asks per costs page (the API allows 180 at 1d). A page is parsed whole before
# its rows stream on, and a large organization's day of costs is ~10k rows: 180 days in one page
# held 1.8M rows and took 3.2 GB. At 31 a page holds at most what a 30-day backfill's does (still
# one page, as for every usage endpoint), so memory is flat in the window's length; a long window
# costs a few more costs requests (a year: 12 instead of 3, beside the 120 of the usage endpoints).
COSTS_PAGE_LIMIT = 31
LIST_MAX_LIMIT = 100  # objects per page of a cursor list (projects, a project's API keys)
LIST_MAX_PAGES = 1000  # 100,000 objects: past that, the API is paging forever


def project_api_keys_path(project_id: str) -> str:
    """The listing of one project's API keys."""
    return f"{PROJECTS_PATH}/{project_id}/api_keys"


# Costs attribute spend by project, line item and API key. Older API versions refuse
# api_key_id; the source then retries without it (usage endpoints likewise fall back to
# project_id and model).
COSTS_GROUP_BY = ("project_id", "line_item", "api_key_id")
COSTS_FALLBACK_GROUP_BY = ("project_id", "line_item")

_ID_DIMS = {"project_id": "text", "user_id": "text", "api_key_id": "text", "model": "text"}


@dataclass(frozen=True)
class UsageEndpoint:
    """One ``/organization/usage/<name>`` endpoint.

    ``group_by`` lists the dimensions Stax groups by: every one that helps attribute spend.
    ``user_id`` is left out everywhere: costs carry no user dimension to join it to, and grouping
    by user multiplies rows by the number of users (thousands in large organizations).
    """

    name: str
    group_by: tuple[str, ...]
    metrics: tuple[str, ...]
    dimensions: dict[str, str] = field(default_factory=dict)

    @property
    def fallback_group_by(self) -> tuple[str, ...]:
        """What to group by if the API refuses the full grouping (an older API version)."""
        return tuple(d for d in self.group_by if d in ("project_id", "model"))

    @property
    def path(self) -> str:
        return f"/organization/usage/{self.name}"

    @property
    def table(self) -> str:
        return f"usage_{self.name}"


_COMPLETIONS_TOKENS = (
    "input_tokens",
    "output_tokens",
    "num_model_requests",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "input_uncached_tokens",
    "input_text_tokens",
    "output_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_image_tokens",
)

USAGE_ENDPOINTS: tuple[UsageEndpoint, ...] = (
    UsageEndpoint(
        "completions",
        ("project_id", "model", "api_key_id", "batch", "service_tier"),
        _COMPLETIONS_TOKENS,
        {**_ID_DIMS, "batch": "bool", "service_tier": "text"},
    ),
    UsageEndpoint(
        "embeddings", ("project_id", "model", "api_key_id"), ("input_tokens", "num_model_requests"), _ID_DIMS
    ),
    UsageEndpoint(
        "moderations", ("project_id", "model", "api_key_id"), ("input_tokens", "num_model_requests"), _ID_DIMS
    ),
    UsageEndpoint(
        "images",
        ("project_id", "model", "api_key_id", "size", "source"),
        ("images", "num_model_requests"),
        {**_ID_DIMS, "size": "text", "source": "text"},
    ),
    UsageEndpoint(
        "audio_speeches",
        ("project_id", "model", "api_key_id"),
        ("characters", "num_model_requests"),
        _ID_DIMS,
    ),
    UsageEndpoint(
        "audio_transcriptions",
        ("project_id", "model", "api_key_id"),
        ("seconds", "num_model_requests"),
        _ID_DIMS,
    ),
    UsageEndpoint("vector_stores", ("project_id",), ("usage_bytes",), {"project_id": "text"}),
    UsageEndpoint("code_interpreter_sessions", ("project_id",), ("num_sessions",), {"project_id": "text"}),
    UsageEndpoint(
        "file_search_calls",
        ("project_id", "api_key_id", "vector_store_id"),
        ("num_requests",),
        {"project_id": "text", "user_id": "text", "api_key_id": "text", "vector_store_id": "text"},
    ),
    UsageEndpoint(
        "web_search_calls",
        ("project_id", "model", "api_key_id", "context_level"),
        ("num_model_requests", "num_requests"),
        {**_ID_DIMS, "context_level": "text"},
    ),
)

# Columns every costs/usage row carries besides the API's own fields.
BUCKET_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "date": {"data_type": "date", "nullable": False},
    "bucket_start_time": {"data_type": "bigint", "nullable": False},
    "bucket_end_time": {"data_type": "bigint", "nullable": False},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
    "sync_id": {"data_type": "text", "nullable": False},
    "object": {"data_type": "text"},
}

# Declared up front so a column exists even when every value in a load is null (dlt only
# creates columns it has seen a value for), keeping the dbt sources stable.
COSTS_COLUMNS: Columns = {
    **BUCKET_COLUMNS,
    "amount__value": {"data_type": "double"},
    "amount__currency": {"data_type": "text"},
    "line_item": {"data_type": "text"},
    "project_id": {"data_type": "text"},
    "api_key_id": {"data_type": "text"},
    "quantity": {"data_type": "double"},
    "quantity_unit": {"data_type": "text"},
    "organization_id": {"data_type": "text"},
}

PROJECTS_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "object": {"data_type": "text"},
    "name": {"data_type": "text"},
    "created_at": {"data_type": "bigint"},
    "archived_at": {"data_type": "bigint"},
    "status": {"data_type": "text"},
    "external_key_id": {"data_type": "text"},
    "residency": {"data_type": "text"},
    "loaded_at": {"data_type": "timestamp", "nullable": False},
}

# A project's API keys, flattened from the API's object: ``owner`` holds ``type`` ('user' or
# 'service_account') and the owner object under that name.
PROJECT_API_KEYS_COLUMNS: Columns = {
    "connection": {"data_type": "text", "nullable": False},
    "project_id": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "object": {"data_type": "text"},
    "name": {"data_type": "text"},
    "redacted_value": {"data_type": "text"},
    "created_at": {"data_type": "bigint"},
    "last_used_at": {"data_type": "bigint"},
    "owner__type": {"data_type": "text"},
    "owner__user__id": {"data_type": "text"},
    "owner__user__name": {"data_type": "text"},
    "owner__service_account__id": {"data_type": "text"},
    "owner__service_account__name": {"data_type": "text"},
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


def usage_columns(endpoint: UsageEndpoint) -> Columns:
    """dlt column hints for one usage endpoint's table."""
    columns: Columns = dict(BUCKET_COLUMNS)
    columns.update({metric: {"data_type": "bigint"} for metric in endpoint.metrics})
    # the dimensions' kinds are dlt data types (text, bigint, …), written as plain strings above
    columns.update(
        {dim: cast("TColumnSchema", {"data_type": kind}) for dim, kind in endpoint.dimensions.items()}
    )
    return columns


# The raw schema: every table the source writes, with its columns (dlt's hints; dlt adds
# ``_dlt_load_id``, and ``_dlt_id`` to rows it normalizes: the Arrow tables bring their own).
# The one place it is written: the dbt sources (``_openai__sources.yml``) and the usage endpoints of ``int_openai__usage_by_endpoint`` are
# checked against it (tests/sources/test_raw_catalogue.py).
RAW_TABLES: dict[str, Columns] = {
    "costs": COSTS_COLUMNS,
    **{endpoint.table: usage_columns(endpoint) for endpoint in USAGE_ENDPOINTS},
    SYNC_WINDOWS_TABLE: SYNC_WINDOWS_COLUMNS,
    "projects": PROJECTS_COLUMNS,
    "project_api_keys": PROJECT_API_KEYS_COLUMNS,
}
