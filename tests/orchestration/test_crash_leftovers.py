"""What a killed sync leaves behind, and how the next one deals with it.

- Its run: a run whose process is gone is failed and its warehouse slot freed; a run whose
  process lives — or cannot be judged from here — is left alone. The runs are records in a real
  Dagster instance under STAX_HOME; their processes are real processes these tests start and end.
- Its dlt load package: dropped, never loaded in place of the next sync's data.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid

import duckdb
import psutil
import pytest
from dagster import DagsterRun, DagsterRunStatus, DefaultSensorStatus, build_sensor_context
from dagster._core.events import EngineEventData

from stax_pipeline.lib.processes import ProcessIdentity
from stax_pipeline.lib.runs import HOST_TAG, PID_TAG, PROCESS_STARTED_TAG, recover_dead_runs
from stax_pipeline.lib.warehouse import dlt_pipeline
from stax_pipeline.orchestration import dagster_instance
from stax_pipeline.settings import load_settings

POOL = "duckdb_warehouse"


@pytest.fixture
def instance(stax_home):
    instance = dagster_instance(load_settings())
    instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
    return instance


def dead_process() -> ProcessIdentity:
    """A process that ran and ended (its pid is free again)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity(
        ProcessIdentity.current().host, child.pid, psutil.Process(child.pid).create_time()
    )
    child.communicate(b"")
    return identity


def owned_by(identity: ProcessIdentity) -> dict[str, str]:
    return {
        HOST_TAG: identity.host,
        PID_TAG: str(identity.pid),
        PROCESS_STARTED_TAG: repr(identity.started_at),
    }


def add_run(instance, tags=None, status=DagsterRunStatus.STARTED, holds_slot=True) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="stax_sync", run_id=run_id, tags=tags or {}, status=status))
    if holds_slot:
        instance.event_log_storage.claim_concurrency_slot(POOL, run_id, "raw_openai")
    return run_id


def status(instance, run_id) -> DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def pool(instance) -> tuple[set[str], set[str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return (
        {s.run_id for s in info.claimed_slots},
        {s.run_id for s in info.pending_steps if s.assigned_timestamp is None},
    )


def test_a_run_whose_process_died_is_failed_and_its_slot_passes_on(instance, caplog):
    dead = dead_process()
    crashed = add_run(instance, owned_by(dead))
    waiting = add_run(instance, owned_by(ProcessIdentity.current()))
    assert pool(instance) == ({crashed}, {waiting})

    with caplog.at_level(logging.WARNING, logger="stax_pipeline"):
        recovered = recover_dead_runs(instance)

    assert [r.run_id for r in recovered] == [crashed]
    assert status(instance, crashed) == DagsterRunStatus.FAILURE
    assert status(instance, waiting) == DagsterRunStatus.STARTED
    assert crashed not in set.union(*pool(instance))  # the slot went to the waiting run
    assert instance.event_log_storage.claim_concurrency_slot(POOL, waiting, "raw_openai").is_claimed
    assert caplog.messages == [
        f"a previous sync (run {crashed[:8]}, pid {dead.pid}) died without finishing; "
        "marked it failed and freed its warehouse slot"
    ]
    assert recover_dead_runs(instance) == []  # once


def test_a_reused_pid_does_not_keep_a_dead_run_alive(instance):
    # Same pid as a running process (ours), but that process started later than the run's.
    me = ProcessIdentity.current()
    crashed = add_run(instance, owned_by(ProcessIdentity(me.host, me.pid, me.started_at - 3600)))
    recover_dead_runs(instance)
    assert status(instance, crashed) == DagsterRunStatus.FAILURE
    assert pool(instance) == (set(), set())


def test_runs_whose_process_lives_or_cannot_be_judged_here_are_left_alone(instance):
    alive = add_run(instance, owned_by(ProcessIdentity.current()))
    elsewhere = add_run(instance, owned_by(ProcessIdentity("another-host", 4242, 0.0)), holds_slot=False)
    # Launched, but its worker has not said which process it is (yet).
    launching = add_run(instance, status=DagsterRunStatus.STARTING, holds_slot=False)
    unreported = add_run(instance, holds_slot=False)
    # Re-executed from the UI: it carries its dead parent's tags, but runs in a worker of its own.
    reexecuted = add_run(
        instance,
        {**owned_by(dead_process()), "dagster/parent_run_id": alive},
        status=DagsterRunStatus.STARTING,
        holds_slot=False,
    )
    assert recover_dead_runs(instance) == []
    assert [status(instance, r) for r in (alive, elsewhere, launching, unreported, reexecuted)] == [
        DagsterRunStatus.STARTED,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.STARTING,
    ]
    assert pool(instance) == ({alive}, set())


def test_a_launched_run_is_judged_by_the_process_its_worker_reported(instance):
    """Runs of the daemon or the UI carry no tags; their worker logs its pid when it starts."""

    def launched_run(pid: int) -> str:
        run_id = add_run(instance, holds_slot=False)
        instance.report_engine_event(
            f"Started process for run (pid: {pid}).",
            instance.get_run_by_id(run_id),
            EngineEventData.in_process(pid),
        )
        return run_id

    dead = launched_run(dead_process().pid)
    alive = launched_run(os.getpid())
    recover_dead_runs(instance)
    assert status(instance, dead) == DagsterRunStatus.FAILURE
    assert status(instance, alive) == DagsterRunStatus.STARTED


def test_a_finished_run_that_still_holds_a_slot_lets_go(instance):
    finished = add_run(instance, owned_by(ProcessIdentity.current()), status=DagsterRunStatus.SUCCESS)
    assert pool(instance) == ({finished}, set())
    assert recover_dead_runs(instance) == []
    assert pool(instance) == (set(), set())


def test_a_load_package_left_by_a_killed_sync_is_dropped_not_loaded(stax_home):
    settings = load_settings()
    pipeline = dlt_pipeline(settings, "raw_probe")
    pipeline.run([{"sync": "first"}], table_name="rows")
    # What a kill between normalize and load leaves: a package that is normalized, not loaded.
    pipeline.extract([{"sync": "killed"}], table_name="rows")
    pipeline.normalize()
    assert pipeline.has_pending_data

    pipeline = dlt_pipeline(settings, "raw_probe")
    assert not pipeline.has_pending_data
    # Without the drop, dlt's run() would load the killed package and skip this data.
    pipeline.run([{"sync": "next"}], table_name="rows")
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        loaded = con.execute("select sync from raw_probe.rows order by all").fetchall()
    finally:
        con.close()
    assert loaded == [("first",), ("next",)]


def test_the_daemon_recovers_dead_runs_too(instance):
    """Runs the daemon launches would otherwise queue forever behind a killed `stax sync`."""
    from stax_pipeline.definitions import defs

    dead = dead_process()
    crashed = add_run(instance, owned_by(dead))
    sensor = defs.get_sensor_def("dead_run_recovery")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    result = sensor.evaluate_tick(build_sensor_context(instance=instance))
    assert f"run {crashed[:8]}, pid {dead.pid}) died without finishing" in result.skip_message
    assert status(instance, crashed) == DagsterRunStatus.FAILURE
    assert pool(instance) == (set(), set())
