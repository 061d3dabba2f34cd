"""Which dbt to run, and a DbtCliResource that does not ask it its version on every run."""

import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version

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


class StaxDbtCliResource(DbtCliResource):
    """A DbtCliResource without per-run overheads we do not need.

    dagster-dbt runs ``dbt --version`` once per run to learn the version; that costs seconds
    (dbt also tries to look up the newest release online). Our dbt is dbt-core installed in this
    same environment, so its version is known without a subprocess."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def cli(self, args, **kwargs):  # type: ignore[override]
        """dagster-dbt's ``cli``, with the master key kept out of dbt's environment: dbt never
        decrypts anything, and whatever it runs (macros, packages, adapters) could read it."""
        mark_as_parent()  # the environment dbt inherits names us, for stax-dbt's check
        with environment_without(SECRET_ENV_VARS):
            return super().cli(args, **kwargs)  # dbt's process is started (and its env copied) here

    def _initialize_dbt_core_adapter(self, args):  # type: ignore[override]
        """dagster-dbt loads dbt's adapter in-process on every run, only for column and row-count
        metadata we do not fetch; skipping it saves importing and configuring dbt twice."""
        return None


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


@contextmanager
def environment_without(names: Iterable[str]) -> Iterator[None]:
    """Remove ``names`` from this process's environment for the block, so a subprocess started
    in it does not inherit them (dagster-dbt copies ``os.environ`` for dbt); then put them back."""
    removed = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(removed)


@contextmanager
def window_in_environment(dbt_window: dict) -> Iterator[None]:
    """Put the run's window in ``STAX_DBT_WINDOW`` for the dbt subprocess started in the block
    (dagster-dbt hands dbt a copy of this process's environment)."""
    previous = os.environ.get(WINDOW_ENV)
    os.environ[WINDOW_ENV] = json.dumps(dbt_window)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(WINDOW_ENV, None)
        else:
            os.environ[WINDOW_ENV] = previous
