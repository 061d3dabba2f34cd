"""Keeps the ``connection`` partitions equal to the stored connections and gives a connection
that has never been backfilled its 30-day backfill (when the Dagster daemon runs), until it is done.

``stax connect`` runs that backfill itself unless ``--no-backfill``; both paths claim it in the
credential store first, so a connection is backfilled once whichever path runs. A claim is a token
that its run carries as a tag: when the run ends, a run-status sensor marks the backfill done or
releases the claim with the failure and a retry time (backing off), and the next tick of the
backfill sensor retries it. A claim whose outcome no sensor saw (its run never launched, or the
run-status sensors were off) is settled by the backfill sensor itself after a grace period.
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    run_status_sensor,
    sensor,
)

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.ingest import sync_selection
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.lib.window import CONNECTION_DIM, backfill_window, range_run_tags
from stax_pipeline.orchestration import finished_run_failure
from stax_pipeline.settings import load_settings

BACKFILL_TAG = "stax/backfill"  # the connection id whose backfill the run is
BACKFILL_CLAIM_TAG = "stax/backfill-claim"  # the claim it settles
# A claim older than this whose run is missing or already ended is settled by the backfill sensor.
CLAIM_GRACE = timedelta(minutes=10)


def backfill_run_tags(connection_id: str, claim: str) -> dict[str, str]:
    """Tags of a backfill run, so its end can settle exactly its claim (CLI or daemon)."""
    return {BACKFILL_TAG: connection_id, BACKFILL_CLAIM_TAG: claim}


@sensor(
    job=sync_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers new connections as partitions and backfills their last 30 days once, "
    "retrying a failed backfill with backoff.",
)
def new_connection_backfill(context: SensorEvaluationContext) -> SensorResult:
    store = ConnectionStore(load_settings())
    connections = store.list()
    names = {c.name for c in connections}
    registered = set(context.instance.get_dynamic_partitions(CONNECTION_DIM))
    partition_requests = []
    if names - registered:
        partition_requests.append(AddDynamicPartitionsRequest(CONNECTION_DIM, sorted(names - registered)))
    if registered - names:
        partition_requests.append(DeleteDynamicPartitionsRequest(CONNECTION_DIM, sorted(registered - names)))
    now = datetime.now(UTC)
    settle_stale_claims(context.instance, store, now)
    window = backfill_window(now.date())
    run_requests = []
    for connection in store.due_backfills(now):
        claim = store.claim_backfill(connection.name, "sensor", now=now)
        if claim is not None:
            run_requests.append(
                RunRequest(
                    run_key=f"backfill:{connection.id}:{claim}",
                    asset_selection=sync_selection(connection.provider),
                    tags={
                        **range_run_tags(connection.name, window),
                        **backfill_run_tags(connection.id, claim),
                    },
                )
            )
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests)


def settle_backfill_run(instance: DagsterInstance, store: ConnectionStore, run: DagsterRun) -> None:
    """Apply a finished backfill run to its claim: done on success; on failure or cancel, the
    claim released with the reason and a retry time. Idempotent: a settled claim is left alone."""
    claim = run.tags.get(BACKFILL_CLAIM_TAG)
    if claim is None or not run.is_finished:
        return
    now = datetime.now(UTC)
    if run.status == DagsterRunStatus.SUCCESS:
        store.finish_backfill(claim, now)
    else:
        store.fail_backfill(claim, finished_run_failure(instance, run), now)


def settle_stale_claims(instance: DagsterInstance, store: ConnectionStore, now: datetime) -> None:
    """Settle claims older than :data:`CLAIM_GRACE` that no run-status sensor settled: the run
    ended unseen (sensors off, or a CLI run marked failed after its process died) or was never
    launched (the tick that claimed it failed before its run was submitted)."""
    for connection in store.claimed_backfills():
        claim, claimed_at = connection.backfill_claim, connection.backfill_claimed_at
        if claim is None or (claimed_at is not None and now - claimed_at < CLAIM_GRACE):
            continue
        runs = instance.get_runs(filters=RunsFilter(tags={BACKFILL_CLAIM_TAG: claim}), limit=1)
        if not runs:
            store.fail_backfill(claim, "no run was launched for the backfill", now)
        else:
            settle_backfill_run(instance, store, runs[0])


def _backfill_run_sensor(status: DagsterRunStatus) -> SensorDefinition:
    @run_status_sensor(
        run_status=status,
        name=f"backfill_run_{status.value.lower()}",
        monitored_jobs=[sync_job],
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Settles the backfill claim of a backfill run that ended in {status.value}.",
    )
    def settle(context: RunStatusSensorContext) -> None:
        settle_backfill_run(context.instance, ConnectionStore(load_settings()), context.dagster_run)

    return settle


# One per way a run ends: success marks the backfill done; failure and cancel release it.
backfill_run_sensors = [
    _backfill_run_sensor(status)
    for status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
]
