"""Which dbt to run, and a DbtCliResource that does not ask it its version on every run."""

import shutil
import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version


def dbt_executable() -> str:
    """The dbt installed in this Python environment, so PATH does not matter (a Dagster code
    server may run with a PATH that lacks .venv/bin)."""
    for candidate in (Path(sys.prefix) / "bin" / "dbt", Path(sys.executable).parent / "dbt"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


class StaxDbtCliResource(DbtCliResource):
    """dagster-dbt runs ``dbt --version`` once per run to learn the version; that costs seconds
    (dbt also tries to look up the newest release online). Our dbt is dbt-core installed in this
    same environment, so its version is known without a subprocess."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))
