"""Keeps the ``connection`` partitions equal to the stored connections and gives a connection
that has never been backfilled its 30-day backfill (when the Dagster daemon runs).

``stax connect`` runs that backfill itself unless ``--no-backfill``; both paths claim it in the
credential store first, so a connection is backfilled once whichever path runs.
"""

from datetime import UTC, datetime

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.lib.window import CONNECTION_DIM, backfill_window, range_run_tags
from stax_pipeline.settings import load_settings


@sensor(
    job=sync_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers new connections as partitions and backfills their last 30 days once.",
)
def new_connection_backfill(context: SensorEvaluationContext) -> SensorResult:
    store = ConnectionStore(load_settings())
    connections = store.list()
    names = {c.name for c in connections}
    registered = set(context.instance.get_dynamic_partitions(CONNECTION_DIM))
    partition_requests = []
    if names - registered:
        partition_requests.append(
            AddDynamicPartitionsRequest(CONNECTION_DIM, sorted(names - registered))
        )
    if registered - names:
        partition_requests.append(
            DeleteDynamicPartitionsRequest(CONNECTION_DIM, sorted(registered - names))
        )
    window = backfill_window(datetime.now(UTC).date())
    run_requests = [
        RunRequest(run_key=f"backfill:{c.id}", tags=range_run_tags(c.name, window))
        for c in store.pending_backfills()
        if store.claim_backfill(c.name, "sensor")
    ]
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests)
