"""A real `stax sync` killed (SIGKILL, as the OOM killer does) or interrupted (SIGINT, SIGTERM) at a
chosen point. Killed: the next plain `stax sync` is not blocked and the marts equal the simulator's
truth. Interrupted: it exits 130 at once, its run failed and its slot free. Either way nothing the
command started lives on.

Each point is reached by watching the process, not by sleeping: the simulator's request log and
the command's progress lines (fetch, slowed down by simulator latency), dlt's load package folder
(load), the process's children and their open files (dbt writing the warehouse), the Dagster
instance's pool (queued behind another sync).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from stax_pipeline.credentials import ConnectionStore
from stax_pipeline.lib.runs import PID_TAG
from stax_pipeline.orchestration import dagster_instance
from stax_pipeline.settings import load_settings
from stax_pipeline.simulator import Faults
from stax_pipeline.usecases import run_backfill
from tests.cli.test_connect import STAX
from tests.conftest import ADMIN_KEY
from tests.orchestration.test_sync_runs import WINDOW, _assert_marts_equal_truth

SYNC_ARGS = ("sync", "--connection", "acme", "--start", str(WINDOW.start), "--end", str(WINDOW.last))
POOL = "duckdb_warehouse"
T = TypeVar("T")


@pytest.fixture
def start_sync() -> Iterator[Callable[[], subprocess.Popen]]:
    """Starts `stax sync` of WINDOW, each in its own process group (so we can check that nothing
    of it survives); whatever a failed test leaves running is killed."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [STAX, *SYNC_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        for member in group_members(process.pid):
            member.kill()
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for(condition: Callable[[], T], what: str, timeout: float = 120.0, every: float = 0.01) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def alive(process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        out, err = process.communicate()
        raise AssertionError(f"stax exited early ({process.returncode}):\n{out}\n{err}")
    return True


def running(process: psutil.Process) -> bool:
    """Whether it runs: a zombie is dead, it only waits to be reaped."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_members(pgid: int) -> list[psutil.Process]:
    """The running processes of a process group."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and running(process):
                members.append(process)
        except ProcessLookupError:
            continue
    return members


def dbt_writing(pid: int, warehouse: Path) -> list[psutil.Process]:
    """dbt among the descendants of ``pid``, once it has the warehouse open."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            command = child.cmdline()[:3]  # python -m stax_pipeline.lib.dbt_worker, or …/dbt
            is_dbt = "stax_pipeline.lib.dbt_worker" in command or any(
                Path(p).name == "dbt" for p in command[:2]
            )
            if is_dbt and any(Path(f.path) == warehouse for f in child.open_files()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def run_of(instance: DagsterInstance, pid: int):
    runs = [r for r in instance.get_runs() if r.tags.get(PID_TAG) == str(pid)]
    assert len(runs) == 1, runs
    return runs[0]


def pool_users(instance: DagsterInstance) -> tuple[set[str], set[str]]:
    """Run ids holding a slot of the warehouse pool, and run ids queued for one."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return (
        {s.run_id for s in info.claimed_slots},
        {s.run_id for s in info.pending_steps if s.assigned_timestamp is None},
    )


def blocked_runs(instance: DagsterInstance) -> set[str]:
    """Runs queued for the pool that have said so (then they only wait)."""
    return {
        run_id
        for run_id in pool_users(instance)[1]
        if any(
            r.event_log_entry.message.startswith("Step blocked by limit for pool")
            for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
        )
    }


def kill_hard(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)  # reap it: a zombie is dead, but would still show up as a process


def assert_rerun_recovers(stax_home: Path, simulator, killed_pid: int) -> None:
    """A plain re-run after the kill: exit 0, one line about the dead run, marts equal truth,
    the dead run failed, no slot left behind."""
    settings = load_settings()
    instance = dagster_instance(settings)
    dead = run_of(instance, killed_pid)
    assert dead.status == DagsterRunStatus.STARTED  # what a SIGKILL leaves: the run never ended

    simulator.faults.latency_ms = 0
    rerun = subprocess.run(
        [STAX, *SYNC_ARGS], capture_output=True, text=True, env=dict(os.environ), timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    notes = [line for line in rerun.stderr.splitlines() if "died without finishing" in line]
    assert notes == [
        f"  a previous sync (run {dead.run_id[:8]}, pid {killed_pid}) died without finishing; "
        "marked it failed and freed its warehouse slot"
    ]
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert pool_users(instance) == (set(), set())
    _assert_marts_equal_truth(settings, simulator.org_for_key(ADMIN_KEY))


@pytest.fixture
def acme(stax_home, simulator):
    ConnectionStore(load_settings()).add("acme", "openai", ADMIN_KEY)
    return simulator


def test_kill_during_fetch_then_during_load_each_rerun_recovers(stax_home, acme, start_sync):
    acme.faults.latency_ms = 400  # 12 requests: the fetch takes seconds
    sync = start_sync()
    wait_for(lambda: alive(sync) and acme.requests, "the first API request")
    kill_hard(sync)
    assert_rerun_recovers(stax_home, acme, sync.pid)

    # Now a warehouse with history (on a first sync dlt wipes its working folder anyway), and the
    # provider restates the days: only a real re-pull makes the marts equal the new truth.
    acme.faults = Faults(revision=1, revised_days=3, retry_after=0)
    packages = stax_home / "dlt" / "stax_raw_openai" / "load" / "normalized"
    sync = start_sync()
    wait_for(
        lambda: alive(sync) and packages.is_dir() and any(packages.iterdir()),
        "a normalized dlt load package",
        every=0.002,
    )
    kill_hard(sync)
    assert any(packages.iterdir()), "the kill came after the load"  # else this tests nothing
    assert_rerun_recovers(stax_home, acme, sync.pid)


def test_kill_during_dbt_takes_dbt_down_then_rerun(stax_home, acme, start_sync):
    sync = start_sync()
    warehouse = stax_home / "warehouse.duckdb"
    dbt = wait_for(lambda: alive(sync) and dbt_writing(sync.pid, warehouse), "dbt to write")
    kill_hard(sync)
    # dbt dies with its parent at once (an orphaned dbt went on for 10+ s, holding the
    # warehouse), and so does every other process of the command (Dagster's log tailers take ~1 s).
    wait_for(lambda: not any(map(running, dbt)), "dbt to die with its parent", timeout=3)
    wait_for(lambda: not group_members(sync.pid), "the killed sync's processes to end", timeout=10)
    assert_rerun_recovers(stax_home, acme, sync.pid)


def test_sigterm_stops_a_sync_queued_for_the_pool_and_sigint_one_fetching(stax_home, acme, start_sync):
    acme.faults.latency_ms = 3000  # 12 requests: whoever gets the pool holds it for half a minute
    instance = dagster_instance(load_settings())
    syncs = {sync.pid: sync for sync in (start_sync(), start_sync())}
    holder_run = wait_for(
        lambda: all(map(alive, syncs.values())) and pool_users(instance)[0],
        "a sync to hold the warehouse pool",
    ).pop()
    queued_run = wait_for(
        lambda: all(map(alive, syncs.values())) and blocked_runs(instance), "the other sync to queue for it"
    ).pop()
    holder = syncs[int(instance.get_run_by_id(holder_run).tags[PID_TAG])]
    queued = syncs[int(instance.get_run_by_id(queued_run).tags[PID_TAG])]
    # Waiting for the pool is sleeping, not spinning a core (it did: 60-100% of one).
    assert psutil.Process(queued.pid).cpu_percent(interval=1.0) < 20

    assert_stops(instance, queued, signal.SIGTERM, queued_run)
    assert holder_run in pool_users(instance)[0]  # the other sync goes on
    # ... until Ctrl-C.
    assert_stops(instance, holder, signal.SIGINT, holder_run)
    assert pool_users(instance) == (set(), set())


def test_sigint_amid_parallel_requests_ends_the_command(stax_home, acme, start_sync):
    """Interrupted while its first requests are in flight, a sync once printed "interrupted" and
    then hung for good: an extract worker waited on a lock the abandoned costs pull held."""
    acme.faults.latency_ms = 3000
    sync = start_sync()
    instance = dagster_instance(load_settings())
    for line in sync.stderr:  # the costs page is in: its rows are on their way to dlt
        if "/organization/costs:" in line:
            break
    assert_stops(instance, sync, signal.SIGINT, run_of(instance, sync.pid).run_id)


def test_sigterm_while_dbt_writes_stops_dbt_with_the_command(stax_home, acme, start_sync):
    sync = start_sync()
    instance = dagster_instance(load_settings())
    dbt = wait_for(
        lambda: alive(sync) and dbt_writing(sync.pid, stax_home / "warehouse.duckdb"), "dbt to write"
    )
    assert_stops(instance, sync, signal.SIGTERM, run_of(instance, sync.pid).run_id)
    assert not any(map(running, dbt))
    assert pool_users(instance) == (set(), set())


def assert_stops(instance, process: subprocess.Popen, signo: signal.Signals, run_id: str) -> None:
    """``signo`` stops the command promptly: exit 130, "interrupted", its run failed, its slot
    free, none of its processes left."""
    asked = time.monotonic()
    process.send_signal(signo)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - asked < 15, f"{signo!r} took {time.monotonic() - asked:.1f} s"
    assert process.returncode == 130, stderr
    assert stderr.rstrip().splitlines()[-1] == "stax: interrupted"
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
    claimed, pending = pool_users(instance)
    assert run_id not in claimed | pending
    wait_for(lambda: not group_members(process.pid), "the command's processes to end", timeout=10)


def test_an_interrupted_backfill_fails_its_run_and_is_released_for_a_retry(stax_home, acme):
    """In-process, as `stax connect` runs it, with a real SIGINT: here while Dagster still plans
    the run, before it handles signals itself (stops during the run are tested above)."""
    settings = load_settings()
    store = ConnectionStore(settings)
    instance = dagster_instance(settings)

    def interrupt_once_the_run_exists() -> None:
        wait_for(lambda: instance.get_runs(), "the run to be created")
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_the_run_exists, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_backfill(instance, store, "acme")
    acme_now = store.get("acme")  # not claimed forever: failed, for the daemon to retry
    assert (acme_now.backfill_state, acme_now.backfill_error) == ("failed", "interrupted")
    (run,) = instance.get_runs()
    assert run.status == DagsterRunStatus.FAILURE
    assert pool_users(instance) == (set(), set())
