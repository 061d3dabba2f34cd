"""Which dbt to run, and a DbtCliResource that does not ask it its version on every run."""

import shutil
import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliInvocation, DbtCliResource
from packaging import version

from stax_pipeline.lib.processes import mark_as_parent


def dbt_executable() -> str:
    """The dbt installed in this Python environment, so PATH does not matter (a Dagster code
    server may run with a PATH that lacks .venv/bin), started as ``stax-dbt``: it dies with
    the process that runs it (see ``lib/processes.py``)."""
    for bin_dir in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        if (bin_dir / "stax-dbt").exists():
            return str(bin_dir / "stax-dbt")
    return shutil.which("stax-dbt") or "stax-dbt"


class StaxDbtCliResource(DbtCliResource):
    """dagster-dbt runs ``dbt --version`` once per run to learn the version; that costs seconds
    (dbt also tries to look up the newest release online). Our dbt is dbt-core installed in this
    same environment, so its version is known without a subprocess."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))

    def cli(self, *args: Any, **kwargs: Any) -> DbtCliInvocation:
        mark_as_parent()  # the environment dbt inherits names us, for stax-dbt's check
        return super().cli(*args, **kwargs)
