"""Running dbt for a sync: which dbt, where its artifacts go, and one ``dbt build`` as a subprocess."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
def dbt_run_dir(settings: Settings, run_id: str) -> Iterator[Path]:
    """The target folder of one dbt invocation, under ``$STAX_HOME/dbt/runs/`` (never in the
    code checkout, so two checkouts or two STAX_HOMEs never share run state).

    dbt's partial-parse file is carried from run to run through ``$STAX_HOME/dbt/``: with the
    window passed in the environment (not ``--vars``), a run re-parses nothing that did not
    change. Only the last :data:`KEEP_DBT_RUNS` run folders are kept.
    """
    root = settings.home / "dbt"
    runs = root / "runs"
    target = runs / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{run_id[:8]}"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (root, runs, target):  # parents=True made the first two with the umask's mode
        make_private(folder)
    saved = root / PARTIAL_PARSE_FILE
    if saved.exists():
        shutil.copyfile(saved, target / PARTIAL_PARSE_FILE)
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


def run_dbt_build(project_dir: Path, target: Path, dbt_window: dict, select: Sequence[str] = ()) -> DbtBuild:
    """``dbt build`` of the project (or of ``select``) as a plain subprocess, for the window in
    ``STAX_DBT_WINDOW``, with its artifacts and logs in ``target``.

    Not dagster-dbt's streaming invocation: that makes dbt log every event as JSON and parses
    each line in this process; the results are all we use, and ``run_results.json`` has them.
    dbt runs as ``stax-dbt`` (dies with this process) without the master key in its environment.
    Unit tests check the SQL, not the data: they run in the test suite, not in syncs.
    """
    mark_as_parent()
    env = environment_without_secrets()
    env[WINDOW_ENV] = json.dumps(dbt_window)
    args = [
        dbt_executable(),
        "build",
        "--exclude-resource-type",
        "unit_test",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target),
        "--log-path",
        str(target),
        "--no-use-colors",
        "--threads",
        str(DBT_THREADS),
        *(["--select", *select] if select else []),
    ]
    output = target / "console.log"
    with open(output, "wb") as out:
        process = subprocess.Popen(args, cwd=project_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            returncode = process.wait()
        finally:
            if process.poll() is None:  # interrupted: dbt must not outlive the run
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
    make_private(output)
    results_path = target / "run_results.json"
    results = json.loads(results_path.read_text())["results"] if results_path.exists() else []
    tail = "\n".join(output.read_text(errors="replace").splitlines()[-30:])
    return DbtBuild(returncode=returncode, results=results, output_tail=tail)
