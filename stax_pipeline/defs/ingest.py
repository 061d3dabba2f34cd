"""Ingest assets: one Dagster asset per provider, keyed by its raw dataset (``raw_openai``).

The ingest assets are the only day-partitioned assets (day × connection): their partitions show
which days of which connection are synced. Why one asset for all the raw tables of a provider,
not one per table: a range run writes a Dagster materialization per partitioned asset per
(connection, day), so thirteen raw-table assets cost thirteen times the events of one — in a
backfill's time, the run's memory and Dagster's storage. The tables of a provider are also never
loaded apart: one ``load_window`` pulls them all and commits them together (``sync_windows``).
The dbt sources of the dataset all map to this key (``defs/dbt/assets.py``), so the lineage reads
``raw_openai`` → marts.

Every registered provider gets its asset here (:data:`INGEST_ASSETS`, built from the registry):
adding a provider adds no line to the Dagster definitions. A run syncs one connection, so it
selects that connection's provider's asset and the marts (:func:`sync_selection`).
"""

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BetaWarning,
    MaterializeResult,
    MetadataValue,
    asset,
)

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.partitions import (
    WAREHOUSE_POOL,
    add_metadata_by_partition,
    single_run,
    sync_partitions,
)
from stax_pipeline.defs.retries import retry_step_after_outages
from stax_pipeline.errors import UsageError
from stax_pipeline.ingest import WindowLoad, load_connection_window
from stax_pipeline.lib.dbt import start_dbt_early
from stax_pipeline.lib.warehouse import wait_for_warehouse
from stax_pipeline.lib.window import partition_key, window_from_context
from stax_pipeline.providers import PROVIDERS, Provider, get_provider
from stax_pipeline.settings import Settings, load_settings

# load(settings, *, connection, window, run_id, on_pages_freed): one connection's window, loaded
# and committed.
LoadConnectionWindow = Callable[..., WindowLoad]


def provider_ingest_asset(
    provider: Provider, load: LoadConnectionWindow = load_connection_window
) -> AssetsDefinition:
    """The asset that loads ``provider``'s API into its raw dataset (the asset's key) for a run's
    window.

    Each (connection, day) partition's materialization carries that day's ``cost_usd`` and
    ``cost_rows`` (so the UI's plot of the asset by partition is the daily spend curve). The last
    day of the run's window also carries the run's figures: ``window_cost_usd``, ``rows_loaded``,
    ``rows`` and ``requests`` per table and path, the committed ``tables``. Not every day: they
    would be most of each day's event, and a long sync writes one per day.
    """
    key = AssetKey([provider.dataset_name])
    with warnings.catch_warnings():  # backfill_policy is "beta" on @asset: no warning at every import
        warnings.simplefilter("ignore", BetaWarning)
        return _ingest_asset(key, provider, load)


def _ingest_asset(key: AssetKey, provider: Provider, load: LoadConnectionWindow) -> AssetsDefinition:
    tables = list(provider.module("settings").RAW_TABLES)

    @asset(
        key=key,
        group_name="ingest",
        kinds={"dlt", "duckdb", provider.name},
        description=f"The {provider.title} Admin API for the run's window, landed by dlt in the "
        f"`{provider.dataset_name}` schema: its day tables as append-only snapshots (staging reads "
        "each day's latest), its listings merged, and `sync_windows`, the commit marker written "
        "once the data loaded.",
        metadata={"dataset": provider.dataset_name, "raw_tables": ", ".join(tables)},
        partitions_def=sync_partitions,
        backfill_policy=single_run,
        pool=WAREHOUSE_POOL,
    )
    @retry_step_after_outages
    def ingest(context: AssetExecutionContext) -> Iterator[Any]:
        settings = load_settings()
        wait_for_warehouse(settings)
        window, connections = window_from_context(context)
        _check_provider(settings, provider, connections)
        rows: dict[str, int] = defaultdict(int)
        requests: dict[str, int] = defaultdict(int)
        committed: set[str] = set()
        cost_usd = 0.0
        by_partition: dict[str, dict[str, Any]] = {}
        for connection in connections:
            context.log.info(f"{connection}: pulling {window} ({window.num_days} days)")
            loaded = load(
                settings,
                connection=connection,
                window=window,
                run_id=context.run.run_id,
                on_pages_freed=partial(start_dbt_early, context.run.run_id),
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
            for day in window.days():
                by_partition[partition_key(connection, day)] = {
                    "cost_usd": float(loaded.cost_usd_by_day.get(day, 0.0)),
                    "cost_rows": int(loaded.cost_rows_by_day.get(day, 0)),
                }
            cost_usd += loaded.cost_usd
        by_partition[partition_key(connections[-1], window.last)].update(
            {
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "connections": ", ".join(connections),
                "window_cost_usd": float(cost_usd),
                "rows_loaded": sum(rows.values()),
                "rows": MetadataValue.json(dict(sorted(rows.items()))),
                "requests": MetadataValue.json(dict(sorted(requests.items()))),
                "tables": ", ".join(sorted(committed)),
            }
        )
        add_metadata_by_partition(context, key, by_partition)
        yield MaterializeResult(asset_key=key)

    return ingest


def _check_provider(settings: Settings, provider: Provider, connections: Iterable[str]) -> None:
    """Refuse, before any request, a connection of another provider: a run selects the ingest
    asset of its connection's provider (:func:`sync_selection`), and one launched by hand in
    the UI with the wrong asset gets this line instead of another API's key sent to this one."""
    store = ConnectionStore(settings)
    for connection in connections:
        other = store.get(connection).provider
        if other != provider.name:
            theirs = get_provider(other)
            raise UsageError(
                f"{connection!r} is a connection to {theirs.title}: materialize {theirs.dataset_name} "
                f"for it, not {provider.dataset_name}"
            )


# One ingest asset per registered provider, keyed by its raw dataset.
INGEST_ASSETS: dict[str, AssetsDefinition] = {p.name: provider_ingest_asset(p) for p in PROVIDERS}


def sync_selection(provider_name: str) -> list[AssetKey]:
    """What a run of one connection materializes: its provider's ingest asset and every mart."""
    from stax_pipeline.defs.dbt.assets import stax_dbt_assets

    return [*INGEST_ASSETS[provider_name].keys, *stax_dbt_assets.keys]
