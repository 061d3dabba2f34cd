"""Ingest assets: the OpenAI Admin API landed in ``raw_openai`` by dlt, one asset per table.

Asset keys are ``raw_openai/<table>``, the same keys dagster-dbt gives the dbt sources, so
dlt → dbt lineage is one graph.
"""


from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult
from dagster_dlt import DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from stax_pipeline.defs.partitions import WAREHOUSE_POOL, single_run, sync_partitions
from stax_pipeline.defs.retries import retry_step_after_outages
from stax_pipeline.ingest import load_connection_window
from stax_pipeline.lib.warehouse import describe_only_pipeline, wait_for_warehouse
from stax_pipeline.lib.window import partition_key, window_from_context
from stax_pipeline.settings import load_settings
from stax_pipeline.sources.openai_admin import openai_admin_source
from stax_pipeline.sources.openai_admin.settings import (
    COSTS_PATH,
    DATASET_NAME,
    SYNC_WINDOWS_TABLE,
    USAGE_ENDPOINTS,
)

COSTS_KEY = AssetKey([DATASET_NAME, "costs"])
# The request path of each bucketed table, for the requests metadata.
_PATHS = {"costs": COSTS_PATH, **{e.table: e.path for e in USAGE_ENDPOINTS}}

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
_describe_pipeline = describe_only_pipeline("stax_raw_openai_describe", DATASET_NAME)


@dlt_assets(
    dlt_source=openai_admin_source(),
    dlt_pipeline=_describe_pipeline,
    name="openai_admin",
    dagster_dlt_translator=StaxDltTranslator(),
    partitions_def=sync_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
@retry_step_after_outages
def openai_admin_assets(context: AssetExecutionContext) -> Iterator[Any]:
    """Load the run's window for each of its connections (:func:`load_connection_window`), then report
    rows, spend and requests as metadata. Each table's materialization of every (connection, day)
    partition carries the window's figures; those of ``raw_openai/costs`` carry the day's own
    ``cost_usd`` and ``cost_rows`` too (the window's total is ``window_cost_usd``), so the UI's
    plot of the asset by partition is the daily spend curve."""
    settings = load_settings()
    wait_for_warehouse(settings)
    window, connections = window_from_context(context)
    rows: dict[str, int] = defaultdict(int)
    requests: dict[str, int] = defaultdict(int)
    committed: set[str] = set()
    cost_usd = 0.0
    for connection in connections:
        context.log.info(f"{connection}: pulling {window} ({window.num_days} days)")
        loaded = load_connection_window(
            settings, connection=connection, window=window, run_id=context.run.run_id
        )
        for note in loaded.notes:
            context.log.warning(f"{connection}: {note}")
        context.log.info(
            f"{connection}: {sum(loaded.rows.values())} rows, ${loaded.cost_usd:,.2f} over {window} "
            f"(fetch {loaded.seconds['fetch']:.1f}s, load {loaded.seconds['load']:.1f}s)"
        )
        for table, count in loaded.rows.items():
            rows[table] += count
        for path, count in loaded.requests_by_path.items():
            requests[path] += count
        committed.update(loaded.committed_tables)
        rows[SYNC_WINDOWS_TABLE] += len(loaded.committed_tables) * window.num_days
        if COSTS_KEY in context.selected_asset_keys:
            for day in window.days():
                context.add_asset_metadata(
                    {
                        "cost_usd": float(loaded.cost_usd_by_day.get(day, 0.0)),
                        "cost_rows": int(loaded.cost_rows_by_day.get(day, 0)),
                    },
                    asset_key=COSTS_KEY,
                    partition_key=partition_key(connection, day),
                )
        cost_usd += loaded.cost_usd
    common = {
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "connections": ", ".join(connections),
    }
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        table = key.path[-1]
        metadata: dict[str, Any] = {"rows_loaded": rows.get(table, 0), **common}
        if table == "costs":
            metadata["window_cost_usd"] = float(cost_usd)
        if table == SYNC_WINDOWS_TABLE:
            metadata["tables"] = ", ".join(sorted(committed))
        path = _PATHS.get(table)
        if path is not None:
            metadata["requests"] = requests.get(path, 0)
        yield MaterializeResult(asset_key=key, metadata=metadata)
