"""Housekeeping the daemon does: runs whose process died must not block the warehouse pool.

``stax`` recovers dead runs before each of its own runs; this sensor does it for the runs the
daemon launches (the nightly schedule, backfills), which would otherwise queue forever behind a
killed ``stax sync`` or a run cut short by a reboot.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from stax_pipeline.lib.runs import recover_dead_runs


@sensor(
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process died and frees their warehouse slots.",
)
def dead_run_recovery(context: SensorEvaluationContext) -> SkipReason:
    dead = recover_dead_runs(context.instance)
    return SkipReason("; ".join(run.describe() for run in dead) or "no dead runs")
