"""Processes: naming one for sure, tying dbt's life to its parent's, and stopping children.

Three facts drive this module:

- A pid alone does not name a process: pids are reused (after a reboot, or on a busy machine),
  so a process is its host, its pid *and* its start time.
- A child does not die with its parent. A sync starts its dbt with a plain ``subprocess.Popen``;
  when the process running the sync is killed (SIGKILL: the OOM killer), dbt goes on for seconds,
  holding the warehouse's write lock that the next run needs. :func:`die_with_parent`, called
  first thing by a sync's dbt (``lib/dbt_worker.py``) and by ``stax-dbt``, fixes that.
- Dagster swaps the SIGINT/SIGTERM handlers while it runs a job and acts on them only at its own
  checkpoints, so "did the user ask us to stop?" needs a record no handler swap can lose.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psutil

# psutil derives a start time from the boot time, which Linux reports to the second: two readings
# for one process can differ by up to a second. A pid reused that fast is not a real risk.
START_TIME_TOLERANCE_S = 1.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_PID_ENV = "STAX_DBT_PARENT_PID"


@dataclass(frozen=True)
class ProcessIdentity:
    """One process for sure: its host, pid and start time (seconds since the epoch)."""

    host: str
    pid: int
    started_at: float

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def is_running(self) -> bool:
        """Whether this very process still runs (only answerable on its own host)."""
        started = _running_process_start(self.pid)
        return started is not None and abs(started - self.started_at) < START_TIME_TOLERANCE_S


def is_running_since(pid: int, seen_at: float) -> bool:
    """Whether the process ``pid`` that was seen alive at ``seen_at`` still runs: a process with
    that pid started later is a stranger that reused it."""
    started = _running_process_start(pid)
    return started is not None and started <= seen_at + START_TIME_TOLERANCE_S


def _running_process_start(pid: int) -> float | None:
    """The start time of ``pid`` if it runs (a zombie is dead: it only waits to be reaped)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # another user's process: it exists, its start time is readable
        return psutil.Process(pid).create_time()


# --- children ----------------------------------------------------------------------------------


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere a no-op).

    The request survives ``exec``, so whatever this process becomes dies with the parent too.
    Linux ties it to the parent *thread* that started us; the dbt asset starts dbt from the thread
    that runs the step, which lives until dbt has finished. A parent that died before the
    request (we are then some other process's child) is checked against ``parent_pid``.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel would have done


def mark_as_parent() -> None:
    """Name this process as the parent of the dbt (``lib/dbt_worker.py``, ``stax-dbt``) it is
    about to start."""
    os.environ[PARENT_PID_ENV] = str(os.getpid())


def dbt_tied_to_parent() -> NoReturn:
    """``stax-dbt``: the dbt of this environment, killed with the process that started it.

    For dbt commands Stax runs outside a sync (the manifest's ``dbt parse`` when ``make install``
    did not prepare it), so whatever they hold dies with the process that started them. Startup
    costs one small Python import; then this process *becomes* dbt (same pid, same pipes). A
    sync's dbt is ``lib/dbt_worker.py``, tied to its parent the same way.
    """
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
    dbt = Path(sys.executable).parent / "dbt"
    os.execv(dbt, [str(dbt), *sys.argv[1:]])


def child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def stop_children(*, spare: Set[int] = frozenset(), timeout: float = 3.0) -> None:
    """Terminate this process's descendants (but ``spare``), then kill whichever lingers."""
    children = [c for c in psutil.Process().children(recursive=True) if c.pid not in spare]
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, lingering = psutil.wait_procs(children, timeout=timeout)
    for child in lingering:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(lingering, timeout=timeout)


# --- interrupts --------------------------------------------------------------------------------


def exit_now(code: int) -> NoReturn:
    """End this process with ``code`` at once, once stdout and stderr are flushed.

    For a command that was interrupted: its run is already settled, and an interrupt can leave
    library threads blocked for good (a worker of dlt's extract pool waiting on a lock that the
    generator the interrupt abandoned still holds), which a normal exit would wait for forever.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


class InterruptLatch:
    """Remembers that SIGINT or SIGTERM arrived while it was open, whichever handler took it.

    Python writes the number of every signal that has a Python-level handler to the "wakeup fd",
    before and whatever that handler does. Dagster's handlers, which only set a flag it resets
    (or which raise inside a step, where a retry policy turns the interrupt into a retry), cannot
    hide a signal from it. Only the main thread can set the wakeup fd; elsewhere the latch stays
    open and never trips.
    """

    _STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

    def __init__(self) -> None:
        self._tripped = False
        self._read_fd: int | None = None
        self._write_fd: int | None = None
        self._previous_fd = -1

    def __enter__(self) -> InterruptLatch:
        if threading.current_thread() is threading.main_thread():
            self._read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._read_fd, False)
            os.set_blocking(self._write_fd, False)
            self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        return self

    @property
    def tripped(self) -> bool:
        if self._read_fd is not None and not self._tripped:
            try:
                received = os.read(self._read_fd, 512)
            except BlockingIOError:
                received = b""
            self._tripped = any(number in self._STOP_SIGNALS for number in received)
        return self._tripped

    def __exit__(self, *exc_info: object) -> None:
        if self._read_fd is None or self._write_fd is None:
            return
        _ = self.tripped  # a signal that came in last still counts
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)
        self._read_fd = self._write_fd = None
