"""The OpenAI ingest asset: the Admin API landed in ``raw_openai`` by dlt (``ingest.load_window``),
one asset for all its tables (see ``defs/ingest.py``)."""

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.ingest import provider_ingest_asset
from stax_pipeline.ingest import WindowLoad, load_window
from stax_pipeline.lib.endpoints import sync_endpoint
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import Settings
from stax_pipeline.sources.openai_admin.settings import (
    DATASET_NAME,
    PROVIDER,
    SYNC_WINDOWS_TABLE,
    USAGE_ENDPOINTS,
)

RAW_TABLES = ("costs", *(e.table for e in USAGE_ENDPOINTS), "projects", "project_api_keys", SYNC_WINDOWS_TABLE)


def load_openai_window(settings: Settings, connection: str, window: SyncWindow, run_id: str) -> WindowLoad:
    """One stored OpenAI connection's window, with its key and the API it was checked against."""
    store = ConnectionStore(settings)
    endpoint = sync_endpoint(store.get(connection), settings.configured_openai_base_url)
    return load_window(
        settings,
        connection=connection,
        window=window,
        api_key=store.api_key(connection),
        base_url=endpoint.base_url,
        expect_simulator=endpoint.simulator,
        run_id=run_id,
    )


openai_ingest_asset = provider_ingest_asset(
    dataset_name=DATASET_NAME,
    provider=PROVIDER,
    load=load_openai_window,
    tables=RAW_TABLES,
    description="The OpenAI Admin API for the run's window, landed by dlt in the `raw_openai` schema: "
    "daily costs (by project, line item and API key) and every usage endpoint as append-only "
    "snapshots, the projects and their API keys merged, and `sync_windows`, the commit marker "
    "staging reads each day's latest sync from.",
)
