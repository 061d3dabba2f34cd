"""Partitions: UTC day × connection.

A connection added with ``stax connect`` becomes a partition of the dynamic ``connection``
dimension, so the UI shows per connection which days are synced and one connection can be
backfilled alone.
"""

from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DagsterInvariantViolationError,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionsDefinition,
)

from stax_pipeline.lib.window import CONNECTION_DIM, DATE_DIM, FIRST_DAY

connection_partitions = DynamicPartitionsDefinition(name=CONNECTION_DIM)

# end_offset=1 includes today (a partial day, marked not final) so `stax sync --end today` works.
day_partitions = DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC", end_offset=1)

sync_partitions = MultiPartitionsDefinition({CONNECTION_DIM: connection_partitions, DATE_DIM: day_partitions})

# A range of days is one run (one request per endpoint per page), never one run per day.
single_run = BackfillPolicy.single_run()

# Every asset that writes the DuckDB warehouse takes this pool's only slot: DuckDB allows one
# writing process, so overlapping runs queue instead of failing on the file lock.
WAREHOUSE_POOL = "duckdb_warehouse"


def add_metadata_by_partition(
    context: AssetExecutionContext, key: AssetKey, by_partition: Mapping[str, Mapping[str, Any]]
) -> None:
    """``context.add_asset_metadata(metadata, asset_key=key, partition_key=p)`` for every
    partition ``p`` of ``by_partition``, checked against the run's partitions once.

    Dagster's method lists every partition of the run's range (and reads the dynamic partitions
    from the instance) on each call, to check the one key: for every day of every mart that was
    seconds of a 30-day run, and grew with the square of the days. The step's metadata is added
    the way the method adds it (Dagster is pinned; a version without that accumulator falls back
    to the method itself).
    """
    step = getattr(context, "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if step is None or accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        for partition, metadata in by_partition.items():
            context.add_asset_metadata(metadata, asset_key=key, partition_key=partition)
        return
    if key not in context.assets_def.keys:
        raise DagsterInvariantViolationError(f"{key.to_user_string()} is not materialized by this step")
    unknown = set(by_partition) - set(context.partition_keys)
    if unknown:
        raise DagsterInvariantViolationError(f"partitions not targeted by this run: {sorted(unknown)[:3]}")
    for partition, metadata in by_partition.items():
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=key, partition_key=partition, metadata=metadata
        )
    step._metadata_accumulator = accumulator
