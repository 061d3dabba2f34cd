"""Partitions: UTC day × connection.

A connection added with ``stax connect`` becomes a partition of the dynamic ``connection``
dimension, so the UI shows per connection which days are synced and one connection can be
backfilled alone.
"""

from dagster import (
    BackfillPolicy,
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
