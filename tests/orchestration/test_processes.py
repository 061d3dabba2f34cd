"""Processes: dbt dies with the process that started it, and a stop signal is never lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from stax_pipeline.lib.processes import PARENT_PID_ENV, InterruptLatch

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
