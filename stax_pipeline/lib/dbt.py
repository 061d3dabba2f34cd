"""Which dbt to run, and a DbtCliResource that does not ask it its version on every run."""

import shutil
import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version


def dbt_executable() -> str:
    """The dbt installed beside this Python, so PATH does not matter."""
    beside_python = Path(sys.executable).parent / "dbt"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("dbt") or "dbt"


class StaxDbtCliResource(DbtCliResource):
    """dagster-dbt runs ``dbt --version`` once per run to learn the version; that costs seconds
    (dbt also tries to look up the newest release online). Our dbt is dbt-core installed in this
    same environment, so its version is known without a subprocess."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(installed_version("dbt-core"))
