"""Loading one Anthropic connection's window into the warehouse: the data, then the commit marker.

The same use-case as ``stax_pipeline/ingest.py``'s ``load_window`` for OpenAI, for this provider's
source and dataset, until the seam makes that function provider-generic: tests and scripts call
it, and the Dagster ingest asset can.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from stax_pipeline.lib.warehouse import dlt_pipeline, wait_for_warehouse
from stax_pipeline.lib.window import SyncWindow
from stax_pipeline.settings import Settings
from stax_pipeline.sources.anthropic_admin import (
    DATA_RESOURCES,
    LISTING_RESOURCES,
    AnthropicAdminClient,
    LoadStats,
    SyncRequest,
    anthropic_admin_source,
    sync_windows,
)
from stax_pipeline.sources.anthropic_admin.settings import DATASET_NAME


def load_anthropic_window(
    settings: Settings,
    *,
    connection: str,
    window: SyncWindow,
    api_key: str,
    base_url: str,
    expect_simulator: bool | None = None,
    stats: LoadStats | None = None,
) -> tuple[SyncRequest, LoadStats, list[str]]:
    """Pull ``window`` of ``connection`` into ``raw_anthropic``, then commit it.

    The data load appends a snapshot tagged with a new ``sync_id``; only once it succeeded is the
    commit marker (``sync_windows``) loaded, so a failure at any point leaves the previous
    snapshot of every day in force. Returns the request, the statistics and the committed tables.
    """
    request = SyncRequest(
        connection=connection,
        window=window,
        lookback_days=settings.lookback_days,
        loaded_at=datetime.now(UTC),
        sync_id=uuid.uuid4().hex,
    )
    stats = stats if stats is not None else LoadStats()
    pipeline = dlt_pipeline(settings, DATASET_NAME)
    client = AnthropicAdminClient(base_url, api_key, expect_simulator=expect_simulator)
    try:
        pipeline.extract(anthropic_admin_source(client, request, stats).with_resources(*DATA_RESOURCES))
    finally:
        client.close()
    wait_for_warehouse(settings)
    pipeline.normalize()
    pipeline.load()
    committed = [t for t in DATA_RESOURCES if t not in LISTING_RESOURCES and t not in stats.skipped]
    pipeline.run(sync_windows(request, committed))
    return request, stats, committed
