"""Nightly sync at 02:00 UTC: yesterday plus the lookback days, one range run per connection."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.defs.jobs import sync_job
from stax_pipeline.lib.window import CONNECTION_DIM, nightly_window, range_run_tags
from stax_pipeline.settings import load_settings


@schedule(
    job=sync_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every night: yesterday plus STAX_LOOKBACK_DAYS closed days (providers revise "
    "recent days), as one range run per connection.",
)
def nightly_sync(context: ScheduleEvaluationContext):
    settings = load_settings()
    today = context.scheduled_execution_time.date()
    window = nightly_window(today, settings.lookback_days)
    registered = set(context.instance.get_dynamic_partitions(CONNECTION_DIM))
    for connection in ConnectionStore(settings).list():
        if connection.name not in registered:
            context.log.warning(f"{connection.name}: not a partition yet; the sensor adds it")
            continue
        yield RunRequest(
            run_key=f"nightly:{connection.name}:{today.isoformat()}",
            tags=range_run_tags(connection.name, window),
        )
