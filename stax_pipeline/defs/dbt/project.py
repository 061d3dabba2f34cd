"""The dbt project beside the package, in a module of its own so that
``dagster-dbt project prepare-and-package --file stax_pipeline/defs/dbt/project.py`` can import it
without a manifest. ``make install`` prepares the manifest; tests, CI and the CLI rely on that.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

from dagster_dbt import DbtProject

from stax_pipeline.lib.dbt import SECRET_ENV_VARS, environment_without

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

stax_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
stax_dbt_project.prepare_if_dev()


def ensure_manifest() -> Path:
    """The manifest path, parsing the project first if the build has not (e.g. a fresh clone
    used without ``make install``)."""
    if not stax_dbt_project.manifest_path.exists():
        with environment_without(SECRET_ENV_VARS):  # `dbt parse` runs as a subprocess
            stax_dbt_project.preparer.prepare(stax_dbt_project)
    return stax_dbt_project.manifest_path


@cache
def load_manifest() -> dict[str, Any]:
    """The parsed manifest (read once per process)."""
    return json.loads(ensure_manifest().read_text())
