"""Nightly sync at 02:00 UTC: one range run per connection, each over its own catch-up window —
yesterday plus the lookback days, or from the first day it is missing if nights were missed."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.ingest import sync_selection
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.lib.window import CONNECTION_DIM, catch_up_window, range_run_tags
from stax_pipeline.settings import load_settings


@schedule(
    job=sync_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every night, per connection: from the first day it is missing (at the latest "
    "yesterday minus STAX_LOOKBACK_DAYS: providers revise recent days) to yesterday, as one range run.",
)
def nightly_sync(context: ScheduleEvaluationContext):
    settings = load_settings()
    today = context.scheduled_execution_time.date()
    registered = set(context.instance.get_dynamic_partitions(CONNECTION_DIM))
    store = ConnectionStore(settings)
    for connection in store.list():
        if connection.name not in registered:
            context.log.warning(f"{connection.name}: not a partition yet; the sensor adds it")
            continue
        window = catch_up_window(today, store.synced_days(connection.name), settings.lookback_days)
        yield RunRequest(
            run_key=f"nightly:{connection.name}:{today.isoformat()}",
            asset_selection=sync_selection(connection.provider),
            tags=range_run_tags(connection.name, window),
        )
