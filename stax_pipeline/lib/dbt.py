"""Which dbt to run: the one installed beside this Python, so PATH does not matter."""

import shutil
import sys
from pathlib import Path


def dbt_executable() -> str:
    beside_python = Path(sys.executable).parent / "dbt"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("dbt") or "dbt"
