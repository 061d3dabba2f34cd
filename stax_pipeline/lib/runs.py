"""Runs whose process died, and in-process runs that stop when asked.

A Dagster run records its own end. Killed with SIGKILL (the OOM killer, a reboot), it never does:
it stays STARTED and keeps its ``duckdb_warehouse`` pool slot, and every later run waits in the
pool queue forever. So each run knows its process, and before a run (and while one waits for
the pool) :func:`recover_dead_runs` fails the runs whose process is gone and frees their slots.

- Runs that ``stax`` executes in-process carry :func:`owner_tags`: host, pid and the process's
  start time, so a reused pid is never taken for the run's process.
- Runs launched by the daemon or the UI run in a worker process that the code server starts; it
  logs "Started process for run (pid: N)" first thing. Such a run is dead when that pid no longer
  runs, or runs a process started after that event. Dagster's own run monitoring cannot tell: the
  default run launcher has no worker health check, and the code server that notices its worker
  died is gone too after a reboot or a killed ``dagster dev``.

Dagster 1.13's in-process executor waits for a pool slot in a loop that never sleeps (a core at
100%) and never looks at SIGINT/SIGTERM, which it only records: :func:`stoppable_run` gives that
wait a sleep and an interrupt checkpoint (see :func:`_wait_for_pool_politely`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

from stax_pipeline.lib.processes import (
    InterruptLatch,
    ProcessIdentity,
    child_pids,
    is_running_since,
    stop_children,
)

log = logging.getLogger(__name__)

HOST_TAG = "stax/host"
PID_TAG = "stax/pid"
PROCESS_STARTED_TAG = "stax/process_started"

# Statuses in which a run's process may be alive. Launched runs have a worker to check only once
# STARTED; ours have their process from the moment they exist.
_OWNED_RUN_STATUSES = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_LAUNCHED_RUN_STATUSES = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]

POOL_POLL_INTERVAL_S = 0.5  # how often a run waiting for a pool slot looks up
DEAD_RUN_SWEEP_INTERVAL_S = 5.0  # and how often it looks for a dead run holding the slot


def owner_tags() -> dict[str, str]:
    """Tags naming this process, for a run it executes in-process."""
    me = ProcessIdentity.current()
    return {HOST_TAG: me.host, PID_TAG: str(me.pid), PROCESS_STARTED_TAG: repr(me.started_at)}


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    pid: int

    def describe(self) -> str:
        return (
            f"a previous sync (run {self.run_id[:8]}, pid {self.pid}) died without finishing; "
            "marked it failed and freed its warehouse slot"
        )


def recover_dead_runs(instance: DagsterInstance) -> list[DeadRun]:
    """Mark failed every unfinished run whose process is gone, and free the pool slots (claimed
    or queued for) of every run that has finished. Says so, one line per run it marked failed."""
    dead = []
    statuses = sorted({*_OWNED_RUN_STATUSES, *_LAUNCHED_RUN_STATUSES}, key=lambda s: s.value)
    for record in instance.get_run_records(RunsFilter(statuses=statuses)):
        pid = _dead_process_of(instance, record.dagster_run)
        if pid is None:
            continue
        run = instance.get_run_by_id(record.dagster_run.run_id)  # unless someone just did it
        if run is None or run.is_finished:
            continue
        instance.report_run_failed(
            run, f"The process running this run (pid {pid}) died without finishing it."
        )
        dead.append(DeadRun(run.run_id, pid))
        log.warning(dead[-1].describe())
    free_slots_of_finished_runs(instance)
    return dead


def free_slots_of_finished_runs(instance: DagsterInstance) -> None:
    """A finished run uses no slot: free the ones it still claims or is queued for."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    holders: set[str] = set()
    for pool in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(pool)
        holders |= {slot.run_id for slot in info.claimed_slots}
        holders |= {step.run_id for step in info.pending_steps}
    for run_id in holders:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)


def _dead_process_of(instance: DagsterInstance, run: DagsterRun) -> int | None:
    """The pid of ``run``'s process if that process is known and gone; else None."""
    # A re-execution (from the UI, or Dagster's run retries) copies its parent's tags, ours
    # included, but is launched: it runs in a worker process of its own.
    if PID_TAG in run.tags and PARENT_RUN_ID_TAG not in run.tags:
        owner = ProcessIdentity(
            host=run.tags.get(HOST_TAG, ""),
            pid=int(run.tags[PID_TAG]),
            started_at=float(run.tags.get(PROCESS_STARTED_TAG, "0")),
        )
        if not owner.on_this_host or owner.is_running():
            return None
        return owner.pid
    if run.status not in _LAUNCHED_RUN_STATUSES:
        return None
    worker = _run_worker(instance, run.run_id)
    if worker is None:
        return None
    pid, seen_at = worker
    return None if is_running_since(pid, seen_at) else pid


def _run_worker(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the process that runs a launched run, and when it said so: the first engine
    event carrying a pid ("Started process for run (pid: N)"). Later ones name step processes,
    which come and go while the run lives."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(event and event.event_specific_data, "metadata", None) or {}
        if "pid" in metadata:
            return int(metadata["pid"].value), record.event_log_entry.timestamp
    return None


# --- in-process runs that stop when asked -------------------------------------------------------

# What the pool wait of the run executing in this process does on each turn (see stoppable_run).
_on_pool_wait: Callable[[], None] | None = None


@contextmanager
def stoppable_run(instance: DagsterInstance, run_id: str) -> Iterator[None]:
    """Around the in-process execution of ``run_id``: a run waiting for the warehouse pool sleeps
    between looks, frees a dead holder's slot, and stops on SIGINT or SIGTERM like a running one.

    Whenever a stop was asked for — queued, in a step, or waiting to retry one — the run's child
    processes are stopped, the run is marked failed (if Dagster has not), its slots are freed and
    ``KeyboardInterrupt`` is raised for the command to exit 130.
    """
    global _on_pool_wait
    _wait_for_pool_politely()
    spare = child_pids()
    last_sweep = time.monotonic()

    with InterruptLatch() as latch:

        def on_pool_wait() -> None:
            nonlocal last_sweep
            if latch.tripped:
                from dagster._core.errors import DagsterExecutionInterruptedError

                raise DagsterExecutionInterruptedError()
            if time.monotonic() - last_sweep >= DEAD_RUN_SWEEP_INTERVAL_S:
                last_sweep = time.monotonic()
                recover_dead_runs(instance)

        _on_pool_wait = on_pool_wait
        interrupted = False
        try:
            yield
        except KeyboardInterrupt:
            interrupted = True
        finally:
            _on_pool_wait = None
        interrupted = interrupted or latch.tripped
    if interrupted:
        stop_children(spare=spare)
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_failed(run, "Interrupted (SIGINT or SIGTERM).")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        raise KeyboardInterrupt


def _wait_for_pool_politely() -> None:
    """Replace the in-process executor's idle wait (once per process).

    Dagster 1.13.27 ``ActiveExecution.sleep_til_ready`` sleeps ``sleep_interval()``, which is
    never positive while a step waits for a pool slot (``interval_to_next_pending_claim_check``
    returns ``min(0, …)``), so the loop spins; and the loop runs under ``capture_interrupts``,
    which records SIGINT/SIGTERM for a checkpoint this loop never reaches. The replacement
    sleeps (at most :data:`POOL_POLL_INTERVAL_S` while queued; Dagster still paces its own slot
    claims), lets interrupts raise while it does, and calls the current run's hook.
    """
    from dagster._core.errors import raise_execution_interrupts
    from dagster._core.execution.plan.active import ActiveExecution

    if getattr(ActiveExecution.sleep_til_ready, "__stax__", False):
        return

    def sleep_til_ready(self: ActiveExecution) -> None:
        with raise_execution_interrupts():  # raises at once if an interrupt was recorded
            if _on_pool_wait is not None:
                _on_pool_wait()
            interval = self.sleep_interval()
            time.sleep(interval if interval > 0 else POOL_POLL_INTERVAL_S)

    sleep_til_ready.__stax__ = True  # type: ignore[attr-defined]
    ActiveExecution.sleep_til_ready = sleep_til_ready  # type: ignore[method-assign]
