"""Ingest assets: the OpenAI Admin API landed in ``raw_openai`` by dlt, one asset per table.

Asset keys are ``raw_openai/<table>``, the same keys dagster-dbt gives the dbt sources, so
dlt → dbt lineage is one graph.
"""


import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
from dagster import AssetExecutionContext, AssetKey, AssetObservation, AssetSpec, MaterializeResult
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.partitions import WAREHOUSE_POOL, single_run, sync_partitions
from stax_pipeline.lib.warehouse import dlt_pipeline, wait_for_warehouse
from stax_pipeline.lib.window import partition_key, window_from_context
from stax_pipeline.settings import load_settings
from stax_pipeline.sources.openai_admin import (
    DATA_RESOURCES,
    LoadStats,
    OpenAIAdminClient,
    SyncRequest,
    openai_admin_source,
    sync_windows,
)
from stax_pipeline.sources.openai_admin.settings import DATASET_NAME, USAGE_ENDPOINTS

COSTS_KEY = AssetKey([DATASET_NAME, "costs"])
WINDOWS_KEY = AssetKey([DATASET_NAME, "sync_windows"])

_DESCRIPTIONS = {
    "costs": "Daily USD costs from /organization/costs by project, line item and API key "
    "(append-only snapshots; staging reads the latest sync of each day).",
    "projects": "Projects of the organization, archived ones included (merged on id).",
    "sync_windows": "One row per (connection, table, day) a sync covered, written after its data "
    "loaded: staging reads each day from the latest sync recorded here.",
    **{
        e.table: f"Daily usage from /organization/usage/{e.name} grouped by "
        f"{', '.join(e.group_by)} (append-only snapshots)."
        for e in USAGE_ENDPOINTS
    },
}


class StaxDltTranslator(DagsterDltTranslator):
    """``raw_openai/<table>`` keys in the ``ingest`` group."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        name = data.resource.name
        return spec.replace_attributes(
            key=AssetKey([DATASET_NAME, name]),
            group_name="ingest",
            description=_DESCRIPTIONS.get(name, spec.description),
            kinds={"dlt", "duckdb", "openai"},
            deps=[],  # the API itself is not an asset
        )


# Only describes the resources for the asset specs; runs build their own pipeline under
# STAX_HOME (read at run time, not import time).
_describe_pipeline = dlt.pipeline(
    pipeline_name="stax_raw_openai_describe",
    destination=dlt.destinations.duckdb(":pipeline:"),
    dataset_name=DATASET_NAME,
    pipelines_dir=str(Path(tempfile.gettempdir()) / "stax-dlt-describe"),
)


@dlt_assets(
    dlt_source=openai_admin_source(),
    dlt_pipeline=_describe_pipeline,
    name="openai_admin",
    dagster_dlt_translator=StaxDltTranslator(),
    partitions_def=sync_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def openai_admin_assets(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """Pull the run's window for each of its connections, then record the sync's windows."""
    settings = load_settings()
    wait_for_warehouse(settings)
    store = ConnectionStore(settings)
    window, connections = window_from_context(context)
    pipeline = dlt_pipeline(settings, DATASET_NAME)
    merged: dict[AssetKey, dict[str, Any]] = {}
    rows: dict[AssetKey, int] = defaultdict(int)
    cost_usd = 0.0
    for connection in connections:
        request = SyncRequest(
            connection=connection,
            window=window,
            lookback_days=settings.lookback_days,
            loaded_at=datetime.now(UTC),
            sync_id=uuid.uuid4().hex,
        )
        stats = LoadStats()
        client = OpenAIAdminClient(settings.openai_base_url, store.api_key(connection))
        context.log.info(f"{connection}: pulling {window} ({window.num_days} days)")
        loaded_tables = []
        try:
            source = openai_admin_source(client, request, stats).with_resources(*DATA_RESOURCES)
            for result in dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline):
                table = result.asset_key.path[-1]
                merged[result.asset_key] = dict(result.metadata or {})
                rows[result.asset_key] += stats.rows.get(table, 0)
                if table != "projects" and table not in stats.skipped:
                    loaded_tables.append(table)
        finally:
            client.close()
        # The commit marker, written only once the data load succeeded.
        pipeline.run(sync_windows(request, loaded_tables))
        if WINDOWS_KEY in context.selected_asset_keys:
            merged[WINDOWS_KEY] = {"tables": ", ".join(loaded_tables)}
            rows[WINDOWS_KEY] += len(loaded_tables) * window.num_days
        for note in stats.notes:
            context.log.warning(f"{connection}: {note}")
        context.log.info(
            f"{connection}: {sum(stats.rows.values())} rows, "
            f"${sum(stats.cost_usd_by_day.values()):,.2f} over {window}"
        )
        if COSTS_KEY in merged:
            for day in window.days():
                context.log_event(
                    AssetObservation(
                        asset_key=COSTS_KEY,
                        partition=partition_key(connection, day),
                        metadata={"cost_usd": float(stats.cost_usd_by_day.get(day, 0.0))},
                    )
                )
        cost_usd += sum(stats.cost_usd_by_day.values())
    if COSTS_KEY in merged:
        merged[COSTS_KEY]["cost_usd"] = float(cost_usd)
    for key, metadata in merged.items():
        metadata["rows_loaded"] = rows[key]
        metadata["window_start"] = window.start.isoformat()
        metadata["window_end"] = window.end.isoformat()
        metadata["connections"] = ", ".join(connections)
        yield MaterializeResult(asset_key=key, metadata=metadata)
