"""The dbt project beside the package, and its manifest.

``make install`` parses the project into ``dbt_project/target/manifest.json`` (and again when a
model changes); the definitions read the marts, their lineage and their tests from it. Nothing
here imports dbt or dagster-dbt: together they cost seconds of every ``stax`` command's start-up,
and a sync only needs dbt's own process (``lib/dbt.DbtProcess``).
"""

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from stax_pipeline.lib.dbt import dbt_executable, sync_dbt_environment

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def ensure_manifest() -> Path:
    """The manifest path, parsing the project first if the build has not (e.g. a fresh clone
    used without ``make install``)."""
    if not MANIFEST_PATH.exists():
        subprocess.run(
            [dbt_executable(), "parse", "--quiet", "--profiles-dir", ".", "--target-path", "target"],
            cwd=DBT_PROJECT_DIR,
            env=sync_dbt_environment(),  # so a sync's dbt can start from this parse
            check=True,
        )
    return MANIFEST_PATH


@cache
def load_manifest() -> dict[str, Any]:
    """The parsed manifest (read once per process)."""
    return json.loads(ensure_manifest().read_text())
