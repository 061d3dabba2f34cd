"""Processes: dbt dies with the process that started it, and a stop signal is never lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil

from stax_pipeline.lib.processes import PARENT_PID_ENV, InterruptLatch
from tests.conftest import ADMIN_KEY, TODAY, load_from_api

STAX_DBT = str(Path(sys.executable).parent / "stax-dbt")

# A parent that starts a child the way dagster-dbt starts stax-dbt (a plain Popen), says the
# child's pid, and waits. The child asks to die with its parent, says so, then would live a minute.
PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}, str(os.getpid())])
print(child.pid, flush=True)
child.wait()
"""
CHILD = """
import sys, time
from stax_pipeline.lib.processes import die_with_parent
die_with_parent(int(sys.argv[1]))
print("asked", flush=True)
time.sleep(60)
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


def test_a_child_that_asked_to_die_with_its_parent_does():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(CHILD=CHILD)], stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    assert parent.stdout.readline() == "asked\n"
    parent.kill()
    parent.wait()
    assert _gone_within(child, 2.0)  # orphaned, it would sleep on for a minute


def test_stax_dbt_started_by_a_parent_that_is_already_gone_stops_at_once():
    # Our pid is not the one the environment names: as if that parent died before stax-dbt
    # could ask to die with it.
    env = {**os.environ, PARENT_PID_ENV: str(os.getppid())}
    started = time.monotonic()
    result = subprocess.run([STAX_DBT, "--version"], env=env, capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == b""  # dbt never ran
    assert time.monotonic() - started < 5


def test_the_interrupt_latch_sees_a_signal_another_handler_swallowed():
    swallowed = []
    previous = {
        signo: signal.signal(signo, lambda signo, frame: swallowed.append(signo))
        for signo in (signal.SIGTERM, signal.SIGUSR1)
    }
    try:
        with InterruptLatch() as latch:
            os.kill(os.getpid(), signal.SIGUSR1)  # not a stop signal
            assert not latch.tripped
            os.kill(os.getpid(), signal.SIGTERM)
            assert swallowed == [signal.SIGUSR1, signal.SIGTERM]  # as Dagster's handler would
            assert latch.tripped
        assert signal.set_wakeup_fd(-1) == -1  # the latch put the previous wakeup fd back
    finally:
        for signo, handler in previous.items():
            signal.signal(signo, handler)


def test_a_syncs_dbt_exits_as_dbt_would_with_its_writes_in_the_warehouse_file(stax_home, simulator):
    """The dbt worker leaves without the interpreter's teardown (``os._exit``) with dbt's exit
    code: a build whose model failed exits 1 with the error in its results, and one that passed exits 0
    having closed the warehouse (no write-ahead log left beside it: every write is in the
    file) and released what dbt held (no "leaked semaphore" warning)."""
    import duckdb

    from stax_pipeline.defs.dbt.project import DBT_PROJECT_DIR
    from stax_pipeline.lib.dbt import DbtProcess
    from stax_pipeline.lib.window import SyncWindow, dbt_vars
    from stax_pipeline.settings import load_settings

    settings = load_settings()
    window = SyncWindow.inclusive(TODAY - timedelta(days=2), TODAY - timedelta(days=1))
    load_from_api(settings, simulator.base_url, connection="acme", window=window)

    def run_sql(sql: str) -> None:
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            con.execute(sql)
        finally:
            con.close()

    # a window that is no date: the checks that read it fail to compile, so does the build (exit 1)
    bad_window = {**dbt_vars(window, ["acme"]), "start_date": "the day before"}
    failed = DbtProcess(settings, "run-with-a-bad-window", DBT_PROJECT_DIR).build(bad_window)
    assert failed.returncode == 1
    errors = [r["unique_id"] for r in failed.results if r["status"] == "error"]
    assert "test.stax.assert_spend_reconciles_with_costs" in errors
    assert failed.error().startswith("dbt build failed: test.stax.")

    process = DbtProcess(settings, "run-with-line-items", DBT_PROJECT_DIR)
    built = process.build(dbt_vars(window, ["acme"]))
    assert built.returncode == 0, built.error()
    # its console and its log were flushed before it left
    assert "Completed successfully" in built.output_tail
    assert "Completed successfully" in (process.target / "dbt.log").read_text()
    assert all(r["status"] in ("success", "pass") for r in built.results)
    assert "leaked" not in built.output_tail
    assert not settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal").exists()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows, usd = con.execute("select count(*), sum(cost_usd) from marts.fct_spend_daily").fetchall()[0]
    finally:
        con.close()
    truth = simulator.org_for_key(ADMIN_KEY).cost_total_by_day(window.start, window.end)
    assert rows > 0 and abs(usd - sum(truth.values())) < 1e-6
