"""Running dbt for a sync: which dbt, where its artifacts go, and one ``dbt build`` as a subprocess."""

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stax_pipeline.credentials.crypto import MASTER_KEY_ENV, NEW_MASTER_KEY_ENV
from stax_pipeline.lib.private_files import make_private
from stax_pipeline.lib.processes import mark_as_parent
from stax_pipeline.settings import Settings

# Only processes that decrypt stored keys may see these; dbt is not one of them.
SECRET_ENV_VARS = (MASTER_KEY_ENV, NEW_MASTER_KEY_ENV)

# The environment variable the dbt project's `sync_window()` macro reads the window from.
WINDOW_ENV = "STAX_DBT_WINDOW"


def dbt_executable() -> str:
    """The dbt installed in this Python environment, so PATH does not matter (a Dagster code
    server may run with a PATH that lacks .venv/bin), started as ``stax-dbt``: it dies with
    the process that runs it (see ``lib/processes.py``)."""
    for bin_dir in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        if (bin_dir / "stax-dbt").exists():
            return str(bin_dir / "stax-dbt")
    return shutil.which("stax-dbt") or "stax-dbt"


# dbt runs independent nodes (most of them: the tests) this many at a time, on its one DuckDB
# connection's cursors. Measured on 2 cores, a large 30-day build: 29.5 s with 1 thread, 19.0 s
# with 4 — a test waits on dbt's Python more than on DuckDB.
DBT_THREADS = 4

# dbt's artifacts of the last few runs are kept for debugging; older ones are removed.
KEEP_DBT_RUNS = 5
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


@contextmanager
def dbt_run_dir(settings: Settings, run_id: str, project_dir: Path | None = None) -> Iterator[Path]:
    """The target folder of one dbt invocation, under ``$STAX_HOME/dbt/runs/`` (never in the
    code checkout, so two checkouts or two STAX_HOMEs never share run state).

    dbt's partial-parse file is carried from run to run through ``$STAX_HOME/dbt/``: with the
    window passed in the environment (not ``--vars``), a run re-parses nothing that did not
    change; a home's first run starts from ``project_dir``'s own (``make install`` parses the
    project). Only the last :data:`KEEP_DBT_RUNS` run folders are kept.
    """
    root = settings.home / "dbt"
    runs = root / "runs"
    target = runs / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{run_id[:8]}"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (root, runs, target):  # parents=True made the first two with the umask's mode
        make_private(folder)
    saved = root / PARTIAL_PARSE_FILE
    seed = saved if saved.exists() or project_dir is None else project_dir / "target" / PARTIAL_PARSE_FILE
    if seed.exists():  # a new home starts from the parse `make install` prepared
        shutil.copyfile(seed, target / PARTIAL_PARSE_FILE)
    try:
        yield target
    finally:
        fresh = target / PARTIAL_PARSE_FILE
        if fresh.exists():
            tmp = root / f".{PARTIAL_PARSE_FILE}.{os.getpid()}"
            shutil.copyfile(fresh, tmp)
            os.replace(tmp, saved)
        for old in sorted(p for p in runs.iterdir() if p.is_dir())[:-KEEP_DBT_RUNS]:
            shutil.rmtree(old, ignore_errors=True)


def environment_without_secrets() -> dict[str, str]:
    """A copy of this process's environment for dbt: without the master keys."""
    return {name: value for name, value in os.environ.items() if name not in SECRET_ENV_VARS}


# The warehouse as a sync's dbt names it (profiles.yml): relative to its working directory,
# $STAX_HOME. dbt keys its partial parse on the profile's values, so a path that is the same in
# every STAX_HOME lets the parse prepared by `make install` serve each new home's first sync.
WAREHOUSE_ENV = "STAX_DBT_WAREHOUSE"
SYNC_WAREHOUSE_PATH = "warehouse.duckdb"


def sync_dbt_environment() -> dict[str, str]:
    """The environment of a sync's dbt (and of the parse that `make install` prepares)."""
    return {**environment_without_secrets(), WAREHOUSE_ENV: SYNC_WAREHOUSE_PATH}


@contextmanager
def window_in_environment(dbt_window: dict) -> Iterator[None]:
    """Put the run's window in ``STAX_DBT_WINDOW`` for the dbt subprocess started in the block
    (dbt run in-process, as the dbt tests do, reads it there)."""
    previous = os.environ.get(WINDOW_ENV)
    os.environ[WINDOW_ENV] = json.dumps(dbt_window)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(WINDOW_ENV, None)
        else:
            os.environ[WINDOW_ENV] = previous


@dataclass
class DbtBuild:
    """What one ``dbt build`` did: its exit code, the results of ``run_results.json`` (one per
    node it ran) and the tail of its console output (for the error when it failed early)."""

    returncode: int
    results: list[dict[str, Any]]
    output_tail: str

    @property
    def success(self) -> bool:
        return self.returncode == 0

    def error(self) -> str:
        """One line saying what failed (the first failed nodes and dbt's message), then dbt's
        last console lines (where a failure before any node, e.g. a locked warehouse, is told)."""
        failed = [r for r in self.results if r.get("status") in ("error", "fail", "runtime error")]
        if failed:
            what = "; ".join(
                f"{r['unique_id']}: {(r.get('message') or r['status']).strip().splitlines()[0]}"
                for r in failed[:3]
            )
        else:
            errors = [line.strip() for line in self.output_tail.splitlines() if "error" in line.lower()]
            what = errors[0] if errors else f"exit code {self.returncode}"
        return f"dbt build failed: {what}\n{self.output_tail}"


class DbtProcess:
    """One sync's dbt: a process (``lib/dbt_worker.py``) that imports dbt and parses the project
    into the run's folder as soon as it is started, then waits for :meth:`build`.

    Started early (:func:`start_dbt_early`, while the sync loads), a build finds dbt ready: the
    import and the parse, seconds of every run, are off the sync's path. Not dagster-dbt's
    streaming invocation either: that makes dbt log every event as JSON and parses each line
    in this process; the results are all we use, and ``run_results.json`` has them. dbt runs
    without the master key in its environment and dies with this process (``die_with_parent``).
    Unit tests check the SQL, not the data: they run in the test suite, not in syncs.
    """

    def __init__(self, settings: Settings, run_id: str, project_dir: Path) -> None:
        self._run_dir = ExitStack()
        self.target = self._run_dir.enter_context(dbt_run_dir(settings, run_id, project_dir))
        self._console_path = self.target / "console.log"
        mark_as_parent()
        command = [sys.executable, "-m", "stax_pipeline.lib.dbt_worker", str(project_dir), str(self.target)]
        started: list[subprocess.Popen | BaseException] = []
        ready = threading.Event()

        def start_and_wait() -> None:
            # dbt dies with the *thread* that started it (PR_SET_PDEATHSIG): this one lives as
            # long as dbt does, whichever thread asked for it (e.g. one of dlt's extract pool).
            try:
                with open(self._console_path, "wb") as console:  # dbt's own copy stays open
                    process = subprocess.Popen(
                        command,
                        cwd=settings.home,  # where the relative warehouse path points
                        env=sync_dbt_environment(),
                        stdin=subprocess.PIPE,
                        stdout=console,
                        stderr=subprocess.STDOUT,
                    )
            except BaseException as exc:  # handed to the thread that asked
                started.append(exc)
                ready.set()
                return
            started.append(process)
            ready.set()
            process.wait()

        threading.Thread(target=start_and_wait, name="stax-dbt", daemon=True).start()
        ready.wait()
        if isinstance(started[0], BaseException):
            self._run_dir.close()
            raise started[0]
        self._process: subprocess.Popen = started[0]
        make_private(self._console_path)

    def build(self, dbt_window: dict, select: Sequence[str] = ()) -> DbtBuild:
        """``dbt build`` of the project (or of ``select``) for the window, in ``STAX_DBT_WINDOW``;
        waits for it (stopping dbt if this thread is interrupted)."""
        args = [
            "build",
            "--exclude-resource-type",
            "unit_test",
            # (the project and the run folder: the worker adds them, as for its parse)
            # dbt.log at debug level has every statement: 4 threads then queue on its lock
            # (~1 s of a large build). The parse above still logs at debug level.
            "--log-level-file",
            "info",
            "--threads",
            str(DBT_THREADS),
            *(["--select", *select] if select else []),
        ]
        command = {"args": args, "env": {WINDOW_ENV: json.dumps(dbt_window)}}
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.close()
        except BrokenPipeError:
            pass  # dbt died before the build: its exit code and console say why
        try:
            returncode = self._process.wait()
        finally:
            self.close()
        results_path = self.target / "run_results.json"
        results = json.loads(results_path.read_text())["results"] if results_path.exists() else []
        tail = "\n".join(self._console_path.read_text(errors="replace").splitlines()[-30:])
        return DbtBuild(returncode=returncode, results=results, output_tail=tail)

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        """Stop dbt if it still runs (the build was interrupted, or never asked for), then keep
        the run folder's partial parse and prune old run folders."""
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            with suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._run_dir.close()


# Runs whose dbt may start before their build (their process runs every step: the CLI's), and
# the dbt started for each. A run whose steps are separate processes (the UI's, the daemon's)
# is not listed: a dbt started in its ingest step's process could not serve its dbt step.
_EARLY_RUNS: dict[str, tuple[Settings, Path]] = {}
_STARTED: dict[str, DbtProcess] = {}


@contextmanager
def early_dbt(settings: Settings, run_id: str, project_dir: Path) -> Iterator[None]:
    """Within the block, run ``run_id`` may start its dbt early (:func:`start_dbt_early`); one
    started but never used (the run failed before its build) is stopped at the end."""
    _EARLY_RUNS[run_id] = (settings, project_dir)
    try:
        yield
    finally:
        _EARLY_RUNS.pop(run_id, None)
        unused = _STARTED.pop(run_id, None)
        if unused is not None:
            unused.close()


def start_dbt_early(run_id: str) -> None:
    """Start the dbt of ``run_id`` now, if its run allows it and it has not started yet.

    The ingest calls this once the source let go of its biggest page (and again after the
    extract, for a source that does not say): dbt's ~130 MB then do not add to that page's
    peak, and its import and parse overlap the rest of the extract, normalize and load.
    """
    if run_id in _EARLY_RUNS and run_id not in _STARTED:
        settings, project_dir = _EARLY_RUNS[run_id]
        _STARTED[run_id] = DbtProcess(settings, run_id, project_dir)


def dbt_for_run(settings: Settings, run_id: str, project_dir: Path) -> DbtProcess:
    """The run's dbt: the one started early if any, else one started now."""
    started = _STARTED.pop(run_id, None)
    if started is not None and started.running:
        return started
    if started is not None:  # it died (killed from outside): a fresh one
        started.close()
    return DbtProcess(settings, run_id, project_dir)
