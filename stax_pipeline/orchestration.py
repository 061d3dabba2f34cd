"""Running the Dagster definitions in-process, as the CLI does: the same job, partitions and
instance (under STAX_HOME) that the UI and the daemon use."""

from __future__ import annotations

import logging
import os
import re
import uuid
from contextlib import redirect_stdout
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunRecord, RunsFilter

from stax_pipeline.lib.dagster_storage import PLANNED_EVENTS_ENV, install_fast_event_storage
from stax_pipeline.lib.instance_config import write_instance_config
from stax_pipeline.lib.private_files import make_tree_private
from stax_pipeline.lib.redaction import redact
from stax_pipeline.lib.warehouse import warehouse_lock_failure
from stax_pipeline.lib.window import CONNECTION_DIM, SyncWindow, range_run_tags
from stax_pipeline.settings import Settings, load_settings

log = logging.getLogger(__name__)

INSTANCE_TEMPLATE = Path(__file__).resolve().parents[1] / "dagster.yaml"


def prepare_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at ``$STAX_HOME/dagster``, whose dagster.yaml is the repo's until the
    user edits it (lib/instance_config.py); make everything under STAX_HOME private first."""
    home = settings.dagster_home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_instance_config(home, INSTANCE_TEMPLATE)
    make_tree_private(settings.home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault(PLANNED_EVENTS_ENV, "true")
    install_fast_event_storage(home)
    return home


def dagster_instance(settings: Settings) -> DagsterInstance:
    prepare_dagster_home(settings)
    return DagsterInstance.get()


def register_connection(instance: DagsterInstance, name: str) -> None:
    """Make ``name`` a partition of the ``connection`` dimension (idempotent)."""
    if not instance.has_dynamic_partition(CONNECTION_DIM, name):
        instance.add_dynamic_partitions(CONNECTION_DIM, [name])


def unregister_connection(instance: DagsterInstance, name: str) -> None:
    if instance.has_dynamic_partition(CONNECTION_DIM, name):
        instance.delete_dynamic_partition(CONNECTION_DIM, name)


@dataclass(frozen=True)
class RunOutcome:
    connection: str
    window: SyncWindow
    success: bool
    run_id: str
    error: str | None = None


# The most days one in-process run covers. A run keeps every event it wrote in memory until it
# ends (``execute_in_process``): one per ingest partition (day), a few per mart and check. A long
# window is also safer in parts: a failure keeps the parts before it. Longer windows run as
# consecutive runs of at most this many days: 372 = 12 pages of 31 days for every endpoint, so a
# part costs no more requests than its days need (a 30- or 90-day backfill is one run), and each
# run's own events (the marts', the checks'), dbt's start and the run's set-up are paid once per
# year of days.
MAX_DAYS_PER_RUN = 372


def run_sync(
    instance: DagsterInstance, connection: str, window: SyncWindow, tags: dict[str, str] | None = None
) -> RunOutcome:
    """Materialize every asset for ``window`` of ``connection``, in-process: ONE range run, or
    for a window of more than :data:`MAX_DAYS_PER_RUN` days one run per part of it, in order,
    stopping at the first that fails (the days before it stay synced). ``tags`` are added to
    each run's, e.g. a backfill's claim."""
    outcome = None
    for part in _parts(window, MAX_DAYS_PER_RUN):
        outcome = _run_one(instance, connection, part, tags)
        if not outcome.success:
            if part != window:  # say which part failed
                outcome = replace(outcome, error=f"days {part}: {outcome.error}")
            break
    assert outcome is not None
    return replace(outcome, window=window) if outcome.success else outcome


def _parts(window: SyncWindow, days: int) -> list[SyncWindow]:
    """``window`` cut into consecutive windows of at most ``days`` days."""
    parts, start = [], window.start
    while start < window.end:
        end = min(start + timedelta(days=days), window.end)
        parts.append(SyncWindow(start, end))
        start = end
    return parts


def _run_one(
    instance: DagsterInstance, connection: str, window: SyncWindow, tags: dict[str, str] | None
) -> RunOutcome:
    """One range run of ``window`` of ``connection``, in-process."""
    from stax_pipeline.credentials import ConnectionStore
    from stax_pipeline.definitions import defs
    from stax_pipeline.defs.dbt.project import DBT_PROJECT_DIR
    from stax_pipeline.defs.ingest import sync_selection
    from stax_pipeline.defs.jobs import SYNC_JOB_NAME
    from stax_pipeline.lib.dbt import early_dbt
    from stax_pipeline.lib.runs import owner_tags, recover_dead_runs, stoppable_run

    recover_dead_runs(instance)  # else a killed run's warehouse slot blocks this one forever
    register_connection(instance, connection)
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    settings = load_settings()
    selection = sync_selection(ConnectionStore(settings).get(connection).provider)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    # Our progress lines go through Python logging (stderr); Dagster's console is muted and
    # whatever a library prints to stdout goes to a log file (dbt's console output is in its run
    # folder, $STAX_HOME/dbt/runs/).
    run_id = str(uuid.uuid4())
    with (
        open(settings.logs_dir / "sync.log", "a") as log_file,
        redirect_stdout(log_file),
        stoppable_run(instance, run_id),
        early_dbt(settings, run_id, DBT_PROJECT_DIR),  # every step runs here: dbt can start early
    ):
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            asset_selection=selection,
            tags={**range_run_tags(connection, window), **owner_tags(), **(tags or {})},
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    make_tree_private(settings.home)  # what the run's libraries created, whatever their umask
    return RunOutcome(
        connection=connection,
        window=window,
        success=result.success,
        run_id=result.run_id,
        error=None if result.success else run_failure_reason(result.all_events),
    )


def run_failure_reason(events) -> str:
    """The first failed step's own error, in one line, from a run's events."""
    for event in events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if busy := warehouse_lock_failure(load_settings(), error):
                return busy  # dlt's "check your credentials" or dbt's summary hides the lock
            while error is not None and error.cause is not None:
                error = error.cause  # the user-code error, not Dagster's wrapper
            if error is not None:
                # "stax_pipeline.errors.ProviderError: GET …" → "GET …"
                first_line = error.message.strip().splitlines()[0]
                return redact(re.sub(r"^[\w.]+(Error|Exception): ", "", first_line))
    return "the run failed; see `make ui` for its logs"


def finished_run_failure(instance: DagsterInstance, run: DagsterRun) -> str:
    """Why a finished run did not succeed, in one line: its first failed step's own error, or
    the run's failure (its process died, or it never started), or that it was canceled."""
    if run.status == DagsterRunStatus.CANCELED:
        return "the run was canceled"
    steps = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
    if steps:
        return run_failure_reason([entry.dagster_event for entry in steps])
    # No step failed: the run itself was failed (its process died, or it never started).
    ends = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    message = ends[-1].dagster_event.message if ends and ends[-1].dagster_event else None
    return (message or "the run failed").strip().splitlines()[0]


def last_run(instance: DagsterInstance, connection: str) -> RunRecord | None:
    """The latest run of ``connection`` that Stax launched (CLI, schedule and sensor runs carry
    its ``stax/connection`` tag; a backfill launched by hand in the UI does not)."""
    records = instance.get_run_records(filters=RunsFilter(tags={"stax/connection": connection}), limit=1)
    return records[0] if records else None
