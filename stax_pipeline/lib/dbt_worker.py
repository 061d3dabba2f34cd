"""The dbt process of one sync, started before the sync needs it (``lib/dbt.DbtProcess``).

Every ``dbt build`` used to pay, before its first model, about 1.5 s importing dbt and 1 s
loading its partial parse (3 s of full parse in a fresh ``STAX_HOME``): a third of the dbt
step of a large backfill, and most of a small nightly sync's. None of that needs the data, so
this process does it while the sync is still loading, then waits on stdin for the build:

1. it dies with the process that started it (``die_with_parent``: a killed sync must not leave
   dbt holding the warehouse);
2. imports dbt and parses the project into the run's target folder (``dbt parse``: it reads
   the project, never the warehouse, so it runs while dlt writes);
3. reads ONE line of JSON from stdin, ``{"args": [...], "env": {...}}``: the ``dbt`` command
   line of the build (this process adds where the project and the run folder are, as for
   the parse) and the variables to set first (the window, ``STAX_DBT_WINDOW``, is read
   while executing, so it can come this late); end of input instead means the sync ended
   before its build: exit 0 having done nothing;
4. runs the build on the parsed manifest (``dbtRunner(manifest=…)``) and exits as the ``dbt``
   command would: 0 success, 1 a node failed, 2 dbt itself failed. It closes the warehouse and
   flushes its logs first, then leaves at once (``os._exit``): tearing down the interpreter
   that holds dbt's modules and manifest took 0.6-1.2 s after every build, all of it on the
   sync's path and none of it useful.

Its stdout and stderr are the run folder's ``console.log``; results are ``run_results.json``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing.util
import os
import sys
from typing import Any, NoReturn

from stax_pipeline.lib.processes import PARENT_PID_ENV, die_with_parent


def main(argv: list[str]) -> None:
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None)
    project_dir, target = argv
    from dbt.cli.main import dbtRunner

    manifest = _parse(dbtRunner, project_dir, target)
    line = sys.stdin.readline()
    if not line.strip():
        sys.exit(0)
    command: dict[str, Any] = json.loads(line)
    os.environ.update(command.get("env") or {})
    # A parse that failed is done again by the build, which then reports the error itself.
    result = dbtRunner(manifest=manifest).invoke([*command["args"], *_locations(project_dir, target)])
    code = 0 if result.success else 2 if result.exception is not None else 1
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Close dbt's DuckDB (its last writes reach the warehouse file, as at a normal exit), flush
    every log and stream, and end the process without the interpreter's teardown."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager

        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            environment.close()
    except Exception as exc:  # reported, and the exit code says dbt failed
        print(f"stax: closing dbt's warehouse connection failed: {exc}", file=sys.stderr)
        code = code or 2
    for step in (_release_shared_locks, logging.shutdown, sys.stdout.flush, sys.stderr.flush):
        try:
            step()
        except Exception:  # the exit below must happen, with dbt's code
            pass
    os._exit(code)


def _release_shared_locks() -> None:
    """dbt's process-shared locks, released as a normal exit releases them (else Python's
    resource tracker cleans them up and warns about "leaked semaphores" in console.log)."""
    multiprocessing.util._exit_function()  # type: ignore[attr-defined]


def _locations(project_dir: str, target: str) -> list[str]:
    """Where every command of this process reads the project and writes its artifacts and logs."""
    return [
        *("--project-dir", project_dir, "--profiles-dir", project_dir),
        *("--target-path", target, "--log-path", target, "--no-use-colors"),
    ]


def _parse(runner_class, project_dir: str, target: str):
    """The project's manifest (dbt's partial parse, from the run folder, makes it quick), or
    None if it could not be parsed."""
    try:
        parsed = runner_class().invoke(["parse", *_locations(project_dir, target)])
    except Exception:  # reported again, with dbt's own message, when the build parses
        return None
    from dbt.contracts.graph.manifest import Manifest

    return parsed.result if parsed.success and isinstance(parsed.result, Manifest) else None


if __name__ == "__main__":
    main(sys.argv[1:])
